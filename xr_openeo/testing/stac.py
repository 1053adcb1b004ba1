"""Batch-job results documents (``GET /jobs/{id}/results``) in the styles real backends serve.

Three styles, after openeo-python-driver's results views (``views.py``) and openeo-geopyspark-driver:

- ``"item"``: the API 1.0 STAC Item the python-driver still serves under ``/openeo/1.0/``
  (``stac_version`` 0.9.0, top-level ``openeo:status``, job-level ``proj:*`` in ``properties``,
  no item links).
- ``"stac-1.0"``: geopyspark's default STAC Collection; collection assets keyed by file name with
  ``eo:bands`` + ``raster:bands``, one ``rel=item`` link per raster/table data file (not JSON).
- ``"stac-1.1"``: geopyspark's STAC 1.1 Collection; one item per date (per file when dateless),
  collection asset keys ``{item_id}_{item asset key}``, band metadata in ``bands``, ``item_assets``.

Split outputs (``tile_grid``, ``sample_by_feature``) get an item per file (per date and tile in STAC
1.1), a ``*_gdalinfo.json`` metadata asset no item of its own (STAC 1.0) or a place in its GeoTIFF's
item (STAC 1.1), and a model file the ml-model item ``ml_model_metadata.json``.

The functions here are pure: they build plain JSON-serialisable dicts from :class:`WrittenAsset`
records; URLs (signing, expiry) come from the caller's :class:`Urls`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from xr_openeo.testing.assets import MODEL_ITEM_ID, WrittenAsset
from xr_openeo.testing.stac_fields import (
    WORLD,
    BBox,
    JobGrid,
    asset_object,
    bbox_4326,
    datetime_properties,
    footprint,
    job_grid,
    proj_fields,
    time_span,
    union,
)
from xr_openeo.testing.stac_items import (
    ML_MODEL_EXTENSION,
    item_asset_keys,
    item_assets,
    items_1_0,
    items_1_1,
    model_item,
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
_JSON = "application/json"
_GEOJSON = "application/geo+json"


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
        return items_1_0(assets)
    if style == "stac-1.1":
        return items_1_1(assets, job_id)
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
        return model_item(
            job.id,
            members[0],
            stac_version=_STAC_VERSION[style],
            item_url=urls.item(MODEL_ITEM_ID),
            asset_url=urls.asset(members[0].key),
            collection_url=urls.self_url(),
        )
    keys = [a.key for a in members] if style == "stac-1.0" else item_asset_keys(members)
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
        "stac_extensions": list(_EXTENSIONS[style]) + ([ML_MODEL_EXTENSION] if models else []),
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
        doc["item_assets"] = item_assets(items)
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
        for key, a in zip(item_asset_keys(members), members, strict=True)
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
