"""Readers of result assets, one module per format family, behind one protocol (:mod:`.base`).

:data:`RASTER_READERS` maps a format (as :attr:`AssetSpec.format` names it) to the reader
class that reads it as a raster; tables (JSON, CSV, Parquet, GeoJSON) are read by
:mod:`.tables`. Readers are imported when used: importing xr_openeo pulls in no rasterio or h5py.
"""

from __future__ import annotations

from typing import Any

RASTER_FORMATS = ("geotiff", "netcdf", "zarr")
TABLE_FORMATS = ("json", "csv", "parquet", "geojson")


def raster_reader(fmt: str, links: Any, *, masked: bool = True) -> Any:
    """The reader of raster format ``fmt`` for the assets behind ``links``."""
    if fmt == "geotiff":
        from .geotiff import GeoTIFFReader

        return GeoTIFFReader(links)
    if fmt == "netcdf":
        from .netcdf import NetCDFReader

        return NetCDFReader(links, masked=masked)
    if fmt == "zarr":
        from .zarr import ZarrReader

        return ZarrReader(links, masked=masked)
    raise ValueError(f"no raster reader for format {fmt!r}; raster formats are {RASTER_FORMATS}")
