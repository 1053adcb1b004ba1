"""Items of the local backend's results documents: which files share an item, its asset keys, a model's item.

Pure functions over :class:`WrittenAsset` records, used by :mod:`xr_openeo.testing.stac`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from xr_openeo.testing.assets import MODEL_END, MODEL_ITEM_ID, MODEL_START, WrittenAsset
from xr_openeo.testing.stac_fields import OCTET, band_fields, footprint, rfc3339

# geopyspark "STAC 1.0" style: media types that get an item link (JSON/GeoJSON do not).
_ITEM_MEDIA_TOKENS = ("geotiff", "netcdf", "text", "csv", "parquet")
ML_MODEL_EXTENSION = "https://stac-extensions.github.io/ml-model/v1.0.0/schema.json"
# geopyspark gives its models a near-world footprint.
_MODEL_BBOX = (-179.999, -89.999, 179.999, 89.999)
_JSON = "application/json"


def items_1_0(assets: Sequence[WrittenAsset]) -> dict[str, list[WrittenAsset]]:
    """geopyspark "STAC 1.0": an item per data file of a raster/table media type, id = file name; a model's."""
    return {(MODEL_ITEM_ID if a.model else a.key): [a] for a in assets if a.model or _has_item_1_0(a)}


def _has_item_1_0(asset: WrittenAsset) -> bool:
    """geopyspark "STAC 1.0": item links only for data files of raster/table media types."""
    media_type = asset.media_type.lower()
    return "data" in asset.roles and any(token in media_type for token in _ITEM_MEDIA_TOKENS)


def items_1_1(assets: Sequence[WrittenAsset], job_id: str) -> dict[str, list[WrittenAsset]]:
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


def item_asset_keys(members: Sequence[WrittenAsset]) -> list[str]:
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


def item_assets(items: dict[str, list[WrittenAsset]]) -> dict[str, dict[str, Any]]:
    """STAC 1.1 ``item_assets``: per unprefixed item asset key, the first asset's description."""
    out: dict[str, dict[str, Any]] = {}
    for members in items.values():
        for key, asset in zip(item_asset_keys(members), members, strict=True):
            if key not in out:
                out[key] = {
                    "type": asset.media_type or OCTET,
                    "roles": list(asset.roles) or ["data"],
                    "title": key,
                    **band_fields(asset.bands, "stac-1.1"),
                }
    return out


def model_item(
    job_id: str, asset: WrittenAsset, *, stac_version: str, item_url: str, asset_url: str, collection_url: str
) -> dict[str, Any]:
    """The ml-model Item of a model file, as geopyspark's ``get_model_metadata`` describes it.

    Parameters
    ----------
    job_id
        The job (the item's ``collection``).
    asset
        The model file's record (its ``model`` set).
    stac_version
        Of the results document that links the item.
    item_url, asset_url, collection_url
        The item's own URL, the model file's and the results document's.
    """
    model = asset.model
    assert model is not None
    return {
        "type": "Feature",
        "stac_version": stac_version,
        "stac_extensions": [ML_MODEL_EXTENSION],
        "id": model.id,
        "collection": job_id,
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
            {"rel": "self", "href": item_url, "type": _JSON},
            {"rel": "collection", "href": collection_url, "type": _JSON},
        ],
        "assets": {
            "model": {
                "href": asset_url,
                "type": asset.media_type,
                "title": model.title,
                "roles": ["ml-model:checkpoint"],
            }
        },
    }
