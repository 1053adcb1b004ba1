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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol

from xr_openeo.testing.assets import MODEL_END, MODEL_ITEM_ID, MODEL_START, WrittenAsset
from xr_openeo.testing.stac_fields import (
    OCTET,
    WORLD,
    BBox,
    JobGrid,
    asset_object,
    band_fields,
    bbox_4326,
    datetime_properties,
    footprint,
    job_grid,
    proj_fields,
    rfc3339,
    time_span,
    union,
)

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
# geopyspark "STAC 1.0" style: media types that get an item link (JSON/GeoJSON do not).
_ITEM_MEDIA_TOKENS = ("geotiff", "netcdf", "text", "csv", "parquet")
_JSON = "application/json"
_GEOJSON = "application/geo+json"
_ML_MODEL_EXTENSION = "https://stac-extensions.github.io/ml-model/v1.0.0/schema.json"
# geopyspark gives its models a near-world footprint.
_MODEL_BBOX = (-179.999, -89.999, 179.999, 89.999)


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
    id = file name. ``"stac-1.1"``: one item per datetime and tile, one per dateless file (a
    file with only ``start/end_datetime`` counts as dateless), id ``{job_id}_{datetime}``,
    ``{job_id}_{datetime}_{tile}`` or ``{job_id}_{file stem}`` (the full file name where stems
    collide); a metadata asset (``*_gdalinfo.json``) joins the item of the file it describes.
    In both, a model file has its own item ``ml_model_metadata.json``. ``"item"``: no items.
    """
    _check_style(style)
    if style == "stac-1.0":
        return {(MODEL_ITEM_ID if a.model else a.key): [a] for a in assets if a.model or _has_item_1_0(a)}
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
    are picked with :func:`item_ids`. Its ``properties`` carry the job-level ``proj:*`` (the
    union grid of the rasters), its assets their own (or the job's, for ``job_proj`` assets), as
    geopyspark's do. A model's item is the ml-model document geopyspark writes for it.

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
    if members[0].model is not None:
        return _model_item(job, members[0], style=style, urls=urls)
    keys = [a.key for a in members] if style == "stac-1.0" else _item_asset_keys(members)
    grid = job_grid(assets)
    bbox = union(bbox_4326(a) for a in members)
    doc: dict[str, Any] = {
        "type": "Feature",
        "stac_version": _STAC_VERSION[style],
        "stac_extensions": list(_EXTENSIONS[style]),
        "id": item_id,
        "collection": job.id,
        **footprint(bbox),
        "properties": {**datetime_properties(members), **proj_fields(grid)},
        "links": [
            {"rel": "self", "href": urls.item(item_id), "type": _GEOJSON},
            {"rel": "collection", "href": urls.self_url(), "type": _JSON},
        ],
        "assets": {k: asset_object(a, urls.asset(a.key), style, grid) for k, a in zip(keys, members, strict=True)},
    }
    if grid is not None:
        doc["epsg"] = grid.epsg  # non-standard, as geopyspark
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
    grid = job_grid(assets)
    models = [a.model for a in assets if a.model is not None]
    doc: dict[str, Any] = {
        "type": "Collection",
        "stac_version": _STAC_VERSION[style],
        "stac_extensions": list(_EXTENSIONS[style]) + ([_ML_MODEL_EXTENSION] if models else []),
        "id": job.id,
        **({"title": job.title} if job.title else {}),
        "description": job.description or f"Results for batch job {job.id}",
        "license": "proprietary",
        "openeo:status": status,
        "extent": _stub_extent() if stub else _extent(assets),
        "providers": [_provider(job)],
        "links": _document_links(urls, _JSON, stub) + ([] if stub else _item_links(items, urls)),
        "assets": _collection_assets(assets, items, style=style, urls=urls, grid=grid),
    }
    if models:  # as the python-driver summarises a job's model
        doc["summaries"] = {
            "ml-model:learning_approach": ["supervised"],
            "ml-model:prediction_type": ["classification"],
            "ml-model:architecture": [models[0].architecture],
        }
    if style == "stac-1.1" and not stub:
        doc["item_assets"] = _item_assets(items)
    return doc


def _item_results(
    job: JobSummary, assets: Sequence[WrittenAsset], *, urls: Urls, status: str, stub: bool
) -> dict[str, Any]:
    """API 1.0 STAC Item as the python-driver serves it (top-level ``openeo:status``)."""
    if stub:
        bbox: BBox | None = WORLD
        properties: dict[str, Any] = {"datetime": None}
    else:
        bbox = union(bbox_4326(a) for a in assets)
        properties = {**datetime_properties(assets), **proj_fields(job_grid(assets))}
    return {
        "type": "Feature",
        "stac_version": _STAC_VERSION["item"],
        "id": job.id,
        "openeo:status": status,
        **footprint(bbox),
        "properties": properties,
        "links": _document_links(urls, _GEOJSON, stub),
        "assets": {a.key: asset_object(a, urls.asset(a.key), "item", None) for a in assets},
    }


def _model_item(job: JobSummary, asset: WrittenAsset, *, style: str, urls: Urls) -> dict[str, Any]:
    """The ml-model Item of a model file, as geopyspark's ``get_model_metadata`` describes it."""
    model = asset.model
    assert model is not None
    return {
        "type": "Feature",
        "stac_version": _STAC_VERSION[style],
        "stac_extensions": [_ML_MODEL_EXTENSION],
        "id": model.id,
        "collection": job.id,
        **footprint(_MODEL_BBOX),
        "properties": {
            "datetime": None,
            "start_datetime": MODEL_START,
            "end_datetime": MODEL_END,
            "ml-model:type": "ml-model",
            "ml-model:learning_approach": "supervised",
            "ml-model:prediction_type": "classification",
            "ml-model:architecture": model.architecture,
            "ml-model:training-processor-type": "cpu",
            "ml-model:training-os": "linux",
        },
        "links": [
            {"rel": "self", "href": urls.item(MODEL_ITEM_ID), "type": _JSON},
            {"rel": "collection", "href": urls.self_url(), "type": _JSON},
        ],
        "assets": {
            "model": {
                "href": urls.asset(asset.key),
                "type": asset.media_type,
                "title": model.title,
                "roles": ["ml-model:checkpoint"],
            }
        },
    }


def _document_links(urls: Urls, media_type: str, stub: bool) -> list[dict[str, str]]:
    """``self`` and ``canonical`` links (only ``canonical`` for a partial stub)."""
    canonical = {"rel": "canonical", "href": urls.canonical(), "type": media_type}
    if stub:
        return [canonical]
    return [{"rel": "self", "href": urls.self_url(), "type": media_type}, canonical]


def _item_links(items: dict[str, list[WrittenAsset]], urls: Urls) -> list[dict[str, str]]:
    """One ``item`` link per item; a model's is typed ``application/json``, as geopyspark's."""
    return [
        {"rel": "item", "href": urls.item(item_id), "type": _JSON if members[0].model else _GEOJSON}
        for item_id, members in items.items()
    ]


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
    bbox = union(bbox_4326(a) for a in assets) or WORLD
    return {"spatial": {"bbox": [list(bbox)]}, "temporal": {"interval": [list(time_span(assets))]}}


def _stub_extent() -> dict[str, Any]:
    return {"spatial": {"bbox": [list(WORLD)]}, "temporal": {"interval": [[None, None]]}}


# ---------------------------------------------------------------------------------------------
# items


def _has_item_1_0(asset: WrittenAsset) -> bool:
    """geopyspark "STAC 1.0": item links only for data files of raster/table media types."""
    media_type = asset.media_type.lower()
    return "data" in asset.roles and any(token in media_type for token in _ITEM_MEDIA_TOKENS)


def _items_1_1(assets: Sequence[WrittenAsset], job_id: str) -> dict[str, list[WrittenAsset]]:
    """One item per (datetime, tile), one per dateless file; in order of first appearance."""
    dateless = [a for a in assets if a.datetime is None and a.describes is None and a.model is None]
    stems = [PurePosixPath(a.key).stem for a in dateless]
    items: dict[str, list[WrittenAsset]] = {}
    item_of: dict[str, str] = {}
    for asset in assets:
        if asset.model is not None:
            item_id = MODEL_ITEM_ID
        elif asset.describes is not None and asset.describes in item_of:
            item_id = item_of[asset.describes]
        elif asset.datetime is not None:
            item_id = f"{job_id}_{rfc3339(asset.datetime)}" + (f"_{asset.tile}" if asset.tile else "")
        else:
            stem = PurePosixPath(asset.key).stem
            item_id = f"{job_id}_{stem if stems.count(stem) == 1 else asset.key}"
        item_of[asset.key] = item_id
        items.setdefault(item_id, []).append(asset)
    return items


def _item_asset_keys(members: Sequence[WrittenAsset]) -> list[str]:
    """Asset keys inside a STAC-1.1 item.

    ``openEO`` for its one data file (band names, else file names, if several); ``model`` for a
    model; metadata files (``*_gdalinfo.json``) by file name.
    """
    data = [a for a in members if a.describes is None]
    if len(data) == 1:
        names = ["model" if data[0].model else "openEO"]
    else:
        names = [a.bands[0] if len(a.bands) == 1 else a.key for a in data]
        if len(set(names)) != len(names):
            names = [a.key for a in data]
    by_key = dict(zip((a.key for a in data), names, strict=True))
    return [by_key.get(a.key, a.key) if a.describes is None else a.key for a in members]


def _item_assets(items: dict[str, list[WrittenAsset]]) -> dict[str, dict[str, Any]]:
    """STAC 1.1 ``item_assets``: per unprefixed item asset key, the first asset's description."""
    out: dict[str, dict[str, Any]] = {}
    for members in items.values():
        for key, asset in zip(_item_asset_keys(members), members, strict=True):
            if key not in out:
                out[key] = {
                    "type": asset.media_type or OCTET,
                    "roles": list(asset.roles) or ["data"],
                    "title": key,
                    **band_fields(asset.bands, "stac-1.1"),
                }
    return out


def _collection_assets(
    assets: Sequence[WrittenAsset],
    items: dict[str, list[WrittenAsset]],
    *,
    style: str,
    urls: Urls,
    grid: JobGrid | None,
) -> dict[str, dict[str, Any]]:
    """Collection-level copies of every asset: by file name (1.0) or ``{item_id}_{key}`` (1.1)."""
    if style == "stac-1.0":
        return {a.key: asset_object(a, urls.asset(a.key), style, grid) for a in assets}
    return {
        f"{item_id}_{key}": asset_object(a, urls.asset(a.key), style, grid)
        for item_id, members in items.items()
        for key, a in zip(_item_asset_keys(members), members, strict=True)
    }


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
