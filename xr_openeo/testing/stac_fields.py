"""Fields of the local backend's STAC documents: asset objects, band and ``proj:*`` fields, space and time.

Pure functions over :class:`WrittenAsset` records, shared by the results documents and their items
(:mod:`xr_openeo.testing.stac`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pyproj import Transformer

from xr_openeo.testing.assets import WrittenAsset

# Sentinel-2 band name -> (common name, centre wavelength in µm); SCL has no common name.
_S2_BANDS = {
    "B02": ("blue", 0.49),
    "B03": ("green", 0.56),
    "B04": ("red", 0.665),
    "B08": ("nir", 0.842),
}
WORLD = (-180.0, -90.0, 180.0, 90.0)
OCTET = "application/octet-stream"

BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class JobGrid:
    """The job-level grid: the union of the result's rasters on the first raster's CRS and resolution."""

    epsg: int
    shape: tuple[int, int]
    bbox: BBox


def job_grid(assets: Sequence[WrittenAsset]) -> JobGrid | None:
    """The grid geopyspark reports for the whole job (``proj:*`` of items and of assets without their own).

    For a result in one file per date it is that files' grid; for tiles of one grid (``tile_grid``,
    ``sample_by_feature``) the grid of their union. None when no asset has a grid.
    """
    gridded = [a for a in assets if a.epsg is not None and a.shape is not None and a.bbox is not None]
    if not gridded:
        return None
    first = gridded[0]
    assert first.epsg is not None and first.shape is not None and first.bbox is not None
    res_x = (first.bbox[2] - first.bbox[0]) / first.shape[1]
    res_y = (first.bbox[3] - first.bbox[1]) / first.shape[0]
    boxes = [a.bbox for a in gridded if a.epsg == first.epsg and a.bbox is not None]
    bbox = union(boxes)
    assert bbox is not None
    shape = (round((bbox[3] - bbox[1]) / res_y), round((bbox[2] - bbox[0]) / res_x))
    return JobGrid(int(first.epsg), shape, bbox)


# ---------------------------------------------------------------------------------------------
# asset objects


def asset_object(asset: WrittenAsset, href: str, style: str, grid: JobGrid | None) -> dict[str, Any]:
    """A STAC asset as geopyspark's ``_asset_object``: no ``proj:transform``, nodata or datetime.

    An asset marked ``job_proj`` shows the job-level ``proj:*`` (``grid``) instead of its own, as
    the python-driver falls back to them for assets whose grid it was not told.
    """
    obj: dict[str, Any] = {
        "href": href,
        "type": asset.media_type or OCTET,
        "roles": list(asset.roles) or ["data"],
        "title": asset.key,
    }
    if style == "item":
        if asset.bands:
            obj["eo:bands"] = [{"name": b} for b in asset.bands]
    else:
        obj.update(band_fields(asset.bands, style))
        obj.update(proj_fields(grid if asset.job_proj else asset))
    obj.update(_file_size(asset))
    return obj


def band_fields(bands: Sequence[str], style: str) -> dict[str, Any]:
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


def proj_fields(source: WrittenAsset | JobGrid | None) -> dict[str, Any]:
    """The known ``proj:*`` fields of an asset or grid (``proj:bbox`` in its CRS, pixel edges)."""
    if source is None:
        return {}
    fields: dict[str, Any] = {}
    if source.epsg is not None:
        fields["proj:epsg"] = int(source.epsg)
        fields["proj:code"] = f"EPSG:{int(source.epsg)}"
    if source.shape is not None:
        fields["proj:shape"] = [int(n) for n in source.shape]
    if source.bbox is not None:
        fields["proj:bbox"] = [float(v) for v in source.bbox]
    return fields


def _file_size(asset: WrittenAsset) -> dict[str, int]:
    """``file:size`` when the file is there (a partial job may still be writing elsewhere)."""
    try:
        return {"file:size": asset.file_size}
    except OSError:
        return {}


# ---------------------------------------------------------------------------------------------
# space and time


@lru_cache(maxsize=64)
def _to_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)


def bbox_4326(asset: WrittenAsset) -> BBox | None:
    """The asset's bbox as lon/lat, densified so curved edges stay inside."""
    if asset.epsg is None or asset.bbox is None:
        return None
    transformer = _to_lonlat(int(asset.epsg))
    west, south, east, north = transformer.transform_bounds(*asset.bbox, densify_pts=21)
    return float(west), float(south), float(east), float(north)


def union(bboxes: Iterable[BBox | None]) -> BBox | None:
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


def footprint(bbox: BBox | None) -> dict[str, Any]:
    """``bbox`` + polygon ``geometry`` of an Item; ``geometry`` null when unlocated."""
    if bbox is None:
        return {"geometry": None}
    west, south, east, north = bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"bbox": list(bbox), "geometry": {"type": "Polygon", "coordinates": [ring]}}


def rfc3339(value: str) -> str:
    """Normalise an ISO 8601 string to RFC 3339 UTC with ``Z`` (naive times are UTC)."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def time_span(assets: Sequence[WrittenAsset]) -> tuple[str | None, str | None]:
    """Earliest start and latest end over the assets' datetimes; ``(None, None)`` if none."""
    starts = [rfc3339(t) for a in assets if (t := a.datetime or a.start_datetime)]
    ends = [rfc3339(t) for a in assets if (t := a.datetime or a.end_datetime)]
    start = min(starts, key=datetime.fromisoformat) if starts else None
    end = max(ends, key=datetime.fromisoformat) if ends else None
    return start, end


def datetime_properties(assets: Sequence[WrittenAsset]) -> dict[str, str | None]:
    """Item ``datetime`` if the assets share one instant, else null + ``start/end_datetime``."""
    instants = {rfc3339(a.datetime) for a in assets if a.datetime}
    ranged = any(a.start_datetime or a.end_datetime for a in assets if not a.datetime)
    if len(instants) == 1 and not ranged:
        return {"datetime": instants.pop()}
    start, end = time_span(assets)
    span = {k: v for k, v in (("start_datetime", start), ("end_datetime", end)) if v is not None}
    return {"datetime": None, **span}
