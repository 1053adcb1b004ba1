"""Batch-job results documents (``GET /jobs/{id}/results``) in the styles real backends serve.

Three styles, after ``reference/openeo-results.md`` §2:

- ``"item"``: the API 1.0 STAC Item the python-driver still serves under ``/openeo/1.0/``
  (``stac_version`` 0.9.0, top-level ``openeo:status``, job-level ``proj:*`` in ``properties``,
  no item links).
- ``"stac-1.0"``: geopyspark's default STAC Collection; collection assets keyed by file name with
  ``eo:bands`` + ``raster:bands``, one ``rel=item`` link per raster/table data file (not JSON).
- ``"stac-1.1"``: geopyspark's STAC 1.1 Collection; one item per date (per file when dateless),
  collection asset keys ``{item_id}_{item asset key}``, band metadata in ``bands``, ``item_assets``.

The functions here are pure: they build plain JSON-serialisable dicts from :class:`WrittenAsset`
records; URLs (signing, expiry) come from the caller's :class:`Urls`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any, Protocol

from pyproj import Transformer

from xr_openeo.testing.assets import WrittenAsset

STYLES = ("item", "stac-1.0", "stac-1.1")

_STAC_VERSION = {"item": "0.9.0", "stac-1.0": "1.0.0", "stac-1.1": "1.1.0"}
_EXTENSIONS = {
    "stac-1.0": (
        "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        "https://stac-extensions.github.io/file/v2.1.0/schema.json",
        "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
        "https://stac-extensions.github.io/projection/v1.2.0/schema.json",
    ),
    "stac-1.1": (
        "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
        "https://stac-extensions.github.io/file/v2.1.0/schema.json",
        "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
        "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    ),
}
# Job status -> openeo:status (API 1.2 ``result_status``: created/queued count as running).
_RESULT_STATUS = {
    "created": "running",
    "queued": "running",
    "running": "running",
    "finished": "finished",
    "error": "error",
    "canceled": "canceled",
}
_UNFINISHED = frozenset({"created", "queued", "running"})
# Sentinel-2 band name -> (common name, centre wavelength in µm); SCL has no common name.
_S2_BANDS = {
    "B02": ("blue", 0.49),
    "B03": ("green", 0.56),
    "B04": ("red", 0.665),
    "B08": ("nir", 0.842),
}
# geopyspark "STAC 1.0" style: media types that get an item link (JSON/GeoJSON do not).
_ITEM_MEDIA_TOKENS = ("geotiff", "netcdf", "text", "csv", "parquet")
_WORLD = (-180.0, -90.0, 180.0, 90.0)
_JSON = "application/json"
_GEOJSON = "application/geo+json"
_OCTET = "application/octet-stream"

BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class JobSummary:
    """What a results document says about the job itself."""

    id: str
    title: str | None
    description: str | None
    process: dict  # {"process_graph": {...}, ...}
    status: str  # created|queued|running|canceled|finished|error
    created: str  # RFC 3339
    updated: str  # RFC 3339
    owner: str  # user name


class Urls(Protocol):
    """URLs a results document points to; signing and expiry are the server's business."""

    def self_url(self) -> str:
        """The results URL itself (``…/jobs/{id}/results``)."""
        ...

    def canonical(self) -> str:
        """Signed URL serving this document without auth."""
        ...

    def asset(self, key: str) -> str:
        """Download URL of the file ``key``."""
        ...

    def item(self, item_id: str) -> str:
        """URL of the item document ``item_id``."""
        ...


# ---------------------------------------------------------------------------------------------
# public API


def results_document(
    job: JobSummary,
    assets: Sequence[WrittenAsset],
    *,
    style: str,
    urls: Urls,
    partial: bool = False,
) -> dict[str, Any]:
    """The ``GET /jobs/{id}/results`` document of ``job`` in ``style``.

    Without ``partial`` the job must be finished (``openeo:status`` "finished"); the server
    answers ``JobNotFinished`` itself. With ``partial`` on an unfinished job (created, queued,
    running) the answer is a stub as geopyspark serves it: ``openeo:status`` "running",
    whole-world extent, only the canonical link, no item links. Unlike geopyspark, which lists
    no assets there, the stub lists the assets written so far (``assets``), as the API allows.
    With ``partial`` on an errored or canceled job the full document of the assets that exist
    is returned, with ``openeo:status`` "error"/"canceled".

    Raises
    ------
    ValueError
        Unknown ``style`` or job status, or an unfinished job without ``partial``.
    """
    _check_style(style)
    status = _result_status(job, partial)
    stub = partial and job.status in _UNFINISHED
    if style == "item":
        return _item_results(job, assets, urls=urls, status=status, stub=stub)
    return _collection(job, assets, style=style, urls=urls, status=status, stub=stub)


def item_ids(assets: Sequence[WrittenAsset], *, style: str, job_id: str) -> dict[str, list[WrittenAsset]]:
    """Item id -> the assets of that item, in the order of the results document's item links.

    ``"stac-1.0"``: one item per data file of a raster/table media type (not JSON/GeoJSON),
    id = file name. ``"stac-1.1"``: one item per datetime and one per dateless file (a file
    with only ``start/end_datetime`` counts as dateless), id ``{job_id}_{datetime}`` or
    ``{job_id}_{file stem}`` (the full file name where stems collide). ``"item"``: no items.
    """
    _check_style(style)
    if style == "stac-1.0":
        return {a.key: [a] for a in assets if _has_item_1_0(a)}
    if style == "stac-1.1":
        return _items_1_1(assets, job_id)
    return {}


def item_document(
    job: JobSummary,
    item_id: str,
    assets: Sequence[WrittenAsset],
    *,
    style: str,
    urls: Urls,
) -> dict[str, Any]:
    """The STAC Item ``item_id`` that a results document of ``style`` links to.

    ``assets`` are all the job's assets (as given to :func:`results_document`); the item's own
    are picked with :func:`item_ids`, and job-level ``proj:*`` come from the first gridded one.

    Raises
    ------
    KeyError
        ``item_id`` is no item of these assets in this style.
    ValueError
        Unknown style, or ``"item"`` (which has no item documents).
    """
    _check_style(style)
    if style == "item":
        raise ValueError("the 'item' style (API 1.0 STAC Item) has no item documents")
    members = item_ids(assets, style=style, job_id=job.id)[item_id]
    keys = [a.key for a in members] if style == "stac-1.0" else _item_asset_keys(members)
    grid = _grid_asset(assets)
    bbox = _union(_bbox_4326(a) for a in members)
    doc: dict[str, Any] = {
        "type": "Feature",
        "stac_version": _STAC_VERSION[style],
        "stac_extensions": list(_EXTENSIONS[style]),
        "id": item_id,
        "collection": job.id,
        **_footprint(bbox),
        "properties": {**_datetime_properties(members), **_proj_fields(grid)},
        "links": [
            {"rel": "self", "href": urls.item(item_id), "type": _GEOJSON},
            {"rel": "collection", "href": urls.self_url(), "type": _JSON},
        ],
        "assets": {k: _asset_object(a, urls.asset(a.key), style) for k, a in zip(keys, members, strict=False)},
    }
    if grid is not None and grid.epsg is not None:
        doc["epsg"] = int(grid.epsg)  # non-standard, as geopyspark
    return doc


# ---------------------------------------------------------------------------------------------
# documents


def _collection(
    job: JobSummary,
    assets: Sequence[WrittenAsset],
    *,
    style: str,
    urls: Urls,
    status: str,
    stub: bool,
) -> dict[str, Any]:
    """STAC Collection in the geopyspark "STAC 1.0" or "STAC 1.1" style."""
    items = item_ids(assets, style=style, job_id=job.id)
    doc: dict[str, Any] = {
        "type": "Collection",
        "stac_version": _STAC_VERSION[style],
        "stac_extensions": list(_EXTENSIONS[style]),
        "id": job.id,
        **({"title": job.title} if job.title else {}),
        "description": job.description or f"Results for batch job {job.id}",
        "license": "proprietary",
        "openeo:status": status,
        "extent": _stub_extent() if stub else _extent(assets),
        "providers": [_provider(job)],
        "links": _document_links(urls, _JSON, stub) + ([] if stub else _item_links(items, urls)),
        "assets": _collection_assets(assets, items, style=style, urls=urls),
    }
    if style == "stac-1.1" and not stub:
        doc["item_assets"] = _item_assets(items)
    return doc


def _item_results(
    job: JobSummary, assets: Sequence[WrittenAsset], *, urls: Urls, status: str, stub: bool
) -> dict[str, Any]:
    """API 1.0 STAC Item as the python-driver serves it (top-level ``openeo:status``)."""
    if stub:
        bbox: BBox | None = _WORLD
        properties: dict[str, Any] = {"datetime": None}
    else:
        bbox = _union(_bbox_4326(a) for a in assets)
        properties = {**_datetime_properties(assets), **_proj_fields(_grid_asset(assets))}
    return {
        "type": "Feature",
        "stac_version": _STAC_VERSION["item"],
        "id": job.id,
        "openeo:status": status,
        **_footprint(bbox),
        "properties": properties,
        "links": _document_links(urls, _GEOJSON, stub),
        "assets": {a.key: _asset_object(a, urls.asset(a.key), "item") for a in assets},
    }


def _document_links(urls: Urls, media_type: str, stub: bool) -> list[dict[str, str]]:
    """``self`` and ``canonical`` links (only ``canonical`` for a partial stub)."""
    canonical = {"rel": "canonical", "href": urls.canonical(), "type": media_type}
    if stub:
        return [canonical]
    return [{"rel": "self", "href": urls.self_url(), "type": media_type}, canonical]


def _item_links(items: dict[str, list[WrittenAsset]], urls: Urls) -> list[dict[str, str]]:
    return [{"rel": "item", "href": urls.item(item_id), "type": _GEOJSON} for item_id in items]


def _provider(job: JobSummary) -> dict[str, Any]:
    """The processing provider, with the process graph as ``processing:expression``."""
    graph = job.process.get("process_graph", job.process)
    return {
        "name": "xr_openeo local backend",
        "description": "Processed by the local openEO test backend of xr_openeo.",
        "roles": ["processor"],
        "processing:facility": "xr_openeo.testing",
        "processing:expression": {"format": "openeo", "expression": graph},
    }


def _extent(assets: Sequence[WrittenAsset]) -> dict[str, Any]:
    """Union of the assets' bboxes in EPSG:4326 (the world if none) and their time span."""
    bbox = _union(_bbox_4326(a) for a in assets) or _WORLD
    return {"spatial": {"bbox": [list(bbox)]}, "temporal": {"interval": [list(_time_span(assets))]}}


def _stub_extent() -> dict[str, Any]:
    return {"spatial": {"bbox": [list(_WORLD)]}, "temporal": {"interval": [[None, None]]}}


def _footprint(bbox: BBox | None) -> dict[str, Any]:
    """``bbox`` + polygon ``geometry`` of an Item; ``geometry`` null when unlocated."""
    if bbox is None:
        return {"geometry": None}
    west, south, east, north = bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"bbox": list(bbox), "geometry": {"type": "Polygon", "coordinates": [ring]}}


# ---------------------------------------------------------------------------------------------
# items


def _has_item_1_0(asset: WrittenAsset) -> bool:
    """geopyspark "STAC 1.0": item links only for data files of raster/table media types."""
    media_type = asset.media_type.lower()
    return "data" in asset.roles and any(token in media_type for token in _ITEM_MEDIA_TOKENS)


def _items_1_1(assets: Sequence[WrittenAsset], job_id: str) -> dict[str, list[WrittenAsset]]:
    """One item per datetime, one per dateless file; in order of first appearance."""
    dateless = [a for a in assets if a.datetime is None]
    stems = [PurePosixPath(a.key).stem for a in dateless]
    items: dict[str, list[WrittenAsset]] = {}
    for asset in assets:
        if asset.datetime is not None:
            suffix = _rfc3339(asset.datetime)
        else:
            stem = PurePosixPath(asset.key).stem
            suffix = stem if stems.count(stem) == 1 else asset.key
        items.setdefault(f"{job_id}_{suffix}", []).append(asset)
    return items


def _item_asset_keys(members: Sequence[WrittenAsset]) -> list[str]:
    """Asset keys inside a STAC-1.1 item: ``openEO``; band names (else file names) if several."""
    if len(members) == 1:
        return ["openEO"]
    names = [a.bands[0] if len(a.bands) == 1 else a.key for a in members]
    return names if len(set(names)) == len(names) else [a.key for a in members]


def _item_assets(items: dict[str, list[WrittenAsset]]) -> dict[str, dict[str, Any]]:
    """STAC 1.1 ``item_assets``: per unprefixed item asset key, the first asset's description."""
    out: dict[str, dict[str, Any]] = {}
    for members in items.values():
        for key, asset in zip(_item_asset_keys(members), members, strict=False):
            if key not in out:
                out[key] = {
                    "type": asset.media_type or _OCTET,
                    "roles": list(asset.roles) or ["data"],
                    "title": key,
                    **_band_fields(asset.bands, "stac-1.1"),
                }
    return out


def _collection_assets(
    assets: Sequence[WrittenAsset], items: dict[str, list[WrittenAsset]], *, style: str, urls: Urls
) -> dict[str, dict[str, Any]]:
    """Collection-level copies of every asset: by file name (1.0) or ``{item_id}_{key}`` (1.1)."""
    if style == "stac-1.0":
        return {a.key: _asset_object(a, urls.asset(a.key), style) for a in assets}
    return {
        f"{item_id}_{key}": _asset_object(a, urls.asset(a.key), style)
        for item_id, members in items.items()
        for key, a in zip(_item_asset_keys(members), members, strict=False)
    }


# ---------------------------------------------------------------------------------------------
# asset objects


def _asset_object(asset: WrittenAsset, href: str, style: str) -> dict[str, Any]:
    """A STAC asset as geopyspark's ``_asset_object``: no ``proj:transform``, nodata or datetime."""
    obj: dict[str, Any] = {
        "href": href,
        "type": asset.media_type or _OCTET,
        "roles": list(asset.roles) or ["data"],
        "title": asset.key,
    }
    if style == "item":
        if asset.bands:
            obj["eo:bands"] = [{"name": b} for b in asset.bands]
    else:
        obj.update(_band_fields(asset.bands, style))
        obj.update(_proj_fields(asset))
    obj.update(_file_size(asset))
    return obj


def _band_fields(bands: Sequence[str], style: str) -> dict[str, Any]:
    """``eo:bands`` + ``raster:bands`` (STAC 1.0 style) or ``bands`` (STAC 1.1 style)."""
    if not bands:
        return {}
    if style == "stac-1.1":
        return {"bands": [{"name": b, **_eo_fields(b, "eo:")} for b in bands]}
    return {
        "eo:bands": [{"name": b, **_eo_fields(b, "")} for b in bands],
        "raster:bands": [{"name": b} for b in bands],
    }


def _eo_fields(band: str, prefix: str) -> dict[str, Any]:
    """Common name and centre wavelength of a known Sentinel-2 band, else nothing."""
    if band not in _S2_BANDS:
        return {}
    common_name, wavelength = _S2_BANDS[band]
    return {f"{prefix}common_name": common_name, f"{prefix}center_wavelength": wavelength}


def _proj_fields(asset: WrittenAsset | None) -> dict[str, Any]:
    """The known ``proj:*`` fields of an asset (``proj:bbox`` in its CRS, pixel edges)."""
    if asset is None:
        return {}
    fields: dict[str, Any] = {}
    if asset.epsg is not None:
        fields["proj:epsg"] = int(asset.epsg)
        fields["proj:code"] = f"EPSG:{int(asset.epsg)}"
    if asset.shape is not None:
        fields["proj:shape"] = [int(n) for n in asset.shape]
    if asset.bbox is not None:
        fields["proj:bbox"] = [float(v) for v in asset.bbox]
    return fields


def _file_size(asset: WrittenAsset) -> dict[str, int]:
    """``file:size`` when the file is there (a partial job may still be writing elsewhere)."""
    try:
        return {"file:size": asset.file_size}
    except OSError:
        return {}


def _grid_asset(assets: Sequence[WrittenAsset]) -> WrittenAsset | None:
    """The first raster asset: the source of job-level ``proj:*``."""
    return next((a for a in assets if None not in (a.epsg, a.shape, a.bbox)), None)


# ---------------------------------------------------------------------------------------------
# space and time


@lru_cache(maxsize=64)
def _to_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)


def _bbox_4326(asset: WrittenAsset) -> BBox | None:
    """The asset's bbox as lon/lat, densified so curved edges stay inside."""
    if asset.epsg is None or asset.bbox is None:
        return None
    transformer = _to_lonlat(int(asset.epsg))
    west, south, east, north = transformer.transform_bounds(*asset.bbox, densify_pts=21)
    return float(west), float(south), float(east), float(north)


def _union(bboxes: Iterable[BBox | None]) -> BBox | None:
    """Bounding box of the given boxes (``None`` entries skipped; ``None`` if there are none)."""
    boxes = [b for b in bboxes if b is not None]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _rfc3339(value: str) -> str:
    """Normalise an ISO 8601 string to RFC 3339 UTC with ``Z`` (naive times are UTC)."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time_span(assets: Sequence[WrittenAsset]) -> tuple[str | None, str | None]:
    """Earliest start and latest end over the assets' datetimes; ``(None, None)`` if none."""
    starts = [_rfc3339(t) for a in assets if (t := a.datetime or a.start_datetime)]
    ends = [_rfc3339(t) for a in assets if (t := a.datetime or a.end_datetime)]
    start = min(starts, key=datetime.fromisoformat) if starts else None
    end = max(ends, key=datetime.fromisoformat) if ends else None
    return start, end


def _datetime_properties(assets: Sequence[WrittenAsset]) -> dict[str, str | None]:
    """Item ``datetime`` if the assets share one instant, else null + ``start/end_datetime``."""
    instants = {_rfc3339(a.datetime) for a in assets if a.datetime}
    ranged = any(a.start_datetime or a.end_datetime for a in assets if not a.datetime)
    if len(instants) == 1 and not ranged:
        return {"datetime": instants.pop()}
    start, end = _time_span(assets)
    span = {k: v for k, v in (("start_datetime", start), ("end_datetime", end)) if v is not None}
    return {"datetime": None, **span}


# ---------------------------------------------------------------------------------------------
# checks


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown results style {style!r}; expected one of {', '.join(STYLES)}")


def _result_status(job: JobSummary, partial: bool) -> str:
    """``openeo:status`` of the document; an unfinished job needs ``partial``."""
    if job.status not in _RESULT_STATUS:
        raise ValueError(f"unknown job status {job.status!r} of job {job.id!r}")
    if not partial and job.status != "finished":
        raise ValueError(f"job {job.id!r} is {job.status!r}: results without partial need a finished job")
    return _RESULT_STATUS[job.status]
