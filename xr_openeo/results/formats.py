"""Which format family an asset is (from its media type, else its file extension), and what each purpose reads."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import UnsupportedMediaTypeError

if TYPE_CHECKING:
    from .specs import AssetSpec

FORMATS = ("geotiff", "netcdf", "json", "csv", "parquet", "geojson", "zarr")
# What open_results reads as rasters (JSON may hold a raster or a time series: its content decides)
# and what open_dataframe reads as tables.
RASTER_FORMATS = frozenset({"geotiff", "netcdf", "zarr", "json"})
TABLE_FORMATS = frozenset({"json", "csv", "parquet", "geojson"})
PURPOSES = {"raster": RASTER_FORMATS, "table": TABLE_FORMATS}

_MEDIA_TYPES = (  # (substring of the media type, format); first match wins
    ("geotiff", "geotiff"),
    ("image/tiff", "geotiff"),
    ("netcdf", "netcdf"),
    ("x-hdf", "netcdf"),
    ("zarr", "zarr"),
    ("geo+json", "geojson"),
    ("parquet", "parquet"),
    ("csv", "csv"),
    ("json", "json"),
)
_EXTENSIONS = {
    ".tif": "geotiff",
    ".tiff": "geotiff",
    ".nc": "netcdf",
    ".nc4": "netcdf",
    ".h5": "netcdf",
    ".json": "json",
    ".geojson": "geojson",
    ".csv": "csv",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
    ".zarr": "zarr",
}
# openEO format names users pass as ``assets=``, any case
FORMAT_ALIASES = {"gtiff": "geotiff", "cog": "geotiff", "tiff": "geotiff", "tif": "geotiff", "nc": "netcdf"}
# Formats whose ``proj:*`` fields describe no grid (geopyspark copies the job's onto every asset)
TABULAR = frozenset({"json", "csv", "parquet", "geojson"})


def asset_format(media_type: str | None, href: str = "", key: str = "") -> str | None:
    """The format family of a media type, falling back to the file extension of ``href`` or ``key``.

    Parameters
    ----------
    media_type
        The asset's ``type`` (``image/tiff; application=geotiff``…), or None.
    href, key
        Where the file extension is looked for when the media type names no known format.

    Returns
    -------
    str or None
        One of :data:`FORMATS`, or None when neither says a format xr_openeo reads.
    """
    if media_type:
        lowered = media_type.lower()
        for token, fmt in _MEDIA_TYPES:
            if token in lowered:
                return fmt
    for name in (urlsplit(href).path, key):
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in _EXTENSIONS:
            return _EXTENSIONS[suffix]
    return None


def require_format(spec: AssetSpec) -> str:
    """``spec.format``, or :class:`UnsupportedMediaTypeError` naming the asset and its media type."""
    fmt = spec.format
    if fmt is None:
        raise UnsupportedMediaTypeError(
            f"Asset {spec.key!r} has media type {spec.media_type!r}, which xr_openeo cannot open "
            f"(supported: GeoTIFF/COG, netCDF, JSON, CSV, Parquet, GeoJSON, Zarr). "
            "Pass assets=[...] to open the others.",
            key=spec.key,
            media_type=spec.media_type,
        )
    return fmt
