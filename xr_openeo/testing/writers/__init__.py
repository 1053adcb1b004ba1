"""``save_result`` for the local backend: result files laid out like the VITO/CDSE (geopyspark) backends.

Raster cubes go to GTiff (one COG per date, all bands), netCDF (one CF file), Zarr or xarray
JSON (:mod:`.raster`); vector cubes from ``aggregate_spatial`` to JSON, CSV, GeoParquet or
GeoJSON (:mod:`.tables`). Output options (:mod:`.options`) split rasters into tiles of a grid
or per feature (:mod:`.splits`), attach ``*_gdalinfo.json`` assets or write a model file next to
the results (:mod:`.extras`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from ..assets import WrittenAsset
from .grid import Grid, band_names, load_raster
from .options import OutputOptions, output_options
from .raster import write_gtiff, write_netcdf, write_raster_json, write_zarr
from .tables import write_vector

__all__ = ["save_result"]

_FORMATS = {
    "gtiff": "GTiff",
    "geotiff": "GTiff",
    "cog": "GTiff",
    "netcdf": "netCDF",
    "nc": "netCDF",
    "json": "JSON",
    "csv": "CSV",
    "parquet": "Parquet",
    "geoparquet": "Parquet",
    "geojson": "GeoJSON",
    "zarr": "Zarr",
}
_ACCEPTED = {"raster": ("GTiff", "netCDF", "Zarr", "JSON"), "vector": ("JSON", "CSV", "Parquet", "GeoJSON")}
_SPLIT_FORMATS = ("GTiff", "netCDF")


def save_result(
    data: xr.DataArray,
    format: str,
    options: Mapping[str, Any] | None,
    out_dir: Path,
    *,
    crs_epsg: int,
    nodata: float | int = 0,
    blocksize: int = 256,
    on_asset: Callable[[WrittenAsset], None] | None = None,
    job_options: Mapping[str, Any] | None = None,
) -> list[WrittenAsset]:
    """Write ``data`` to ``out_dir`` in ``format`` as geopyspark would and describe each file.

    Raster cubes (dims among ``t, bands, y, x``) go to GTiff (one COG per date, all bands),
    netCDF (one CF file), Zarr or JSON (xarray ``to_dict``). Vector cubes from ``aggregate_spatial``
    (dims ``geometry`` plus ``t``/``bands``) go to JSON, CSV, Parquet or GeoJSON.

    A cube without a ``bands`` dimension holds one band named ``"var"`` (the name geopyspark's
    netCDF uses): the GeoTIFF band description, netCDF variable and table column. A vector cube
    without ``t`` is written to JSON as ``[[band values] per geometry]`` (geopyspark's spatial
    aggregation result) and to CSV/Parquet without a ``date`` column. Raster JSON writes
    datetimes as ``YYYY-MM-DDTHH:MM:SS`` (no ``Z``, so numpy and the openeo client parse them)
    and NaN as ``null``. netCDF ``t`` holds whole days since 1990-01-01, as geopyspark's does.

    ``options`` (save_result's format options) and ``job_options`` (the job's) may ask for more
    (a format option wins over the job option of the same name):

    - ``tile_grid`` (``"wgs84-1degree"``, ``"utm-10km"``, any ``"utm-<n>km"``/``"utm-<n>m"``):
      GTiff and netCDF results split into one file per grid cell (per date for GTiff);
      ``tile_grid_proj="job"`` makes every tile publish the job-level ``proj:*``.
    - ``sample_by_feature`` (with ``feature_id_property``): one file per feature of ``geometries``
      (GeoJSON, set by the process runner from the graph's last ``filter_spatial``).
    - ``attach_gdalinfo_assets``: a ``{file}_gdalinfo.json`` metadata asset after each GeoTIFF.
    - ``ml_model`` (true, ``"random-forest"`` or ``"catboost"``): a model archive after the results.

    Dask data is computed with ``scheduler="threads"``, a block of dates at a time (at most one
    dask chunk along ``t``), and ``on_asset`` is called as soon as each file is complete.

    Raises
    ------
    ValueError
        Unknown format, a cube the format cannot hold, an unusable ``filename_prefix`` or option.
    """
    fmt = _canonical_format(format)
    opts = output_options(options, job_options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "geometry" in data.dims:
        _check_accepts(format, fmt, "vector")
        _check_options(opts, fmt, "vector")
        writer = write_vector(fmt, data, out_dir, crs_epsg)
    else:
        _check_accepts(format, fmt, "raster")
        _check_options(opts, fmt, "raster")
        writer = _write_raster(fmt, data, out_dir, opts, crs_epsg, nodata, blocksize)
    assets = []
    for asset in writer:
        if on_asset is not None:
            on_asset(asset)
        assets.append(asset)
    if opts.ml_model is not None:
        from .extras import write_model

        model = write_model(out_dir, opts.ml_model, _bands(data))
        if on_asset is not None:
            on_asset(model)
        assets.append(model)
    return assets


def _canonical_format(format: str) -> str:
    try:
        return _FORMATS[format.lower()]
    except KeyError:
        raise ValueError(
            f"save_result: unsupported format {format!r}; supported formats are GTiff (alias GeoTIFF, COG), "
            "netCDF (alias nc), Zarr, JSON, CSV, Parquet (alias GeoParquet) and GeoJSON."
        ) from None


def _check_accepts(format: str, fmt: str, kind: str) -> None:
    if fmt not in _ACCEPTED[kind]:
        other = "raster cubes" if kind == "vector" else "vector cubes (from aggregate_spatial)"
        *first, last = _ACCEPTED[kind]
        raise ValueError(
            f"save_result: format {format!r} cannot hold a {kind} cube, only {other}. "
            f"Save a {kind} cube as {', '.join(first)} or {last}."
        )


def _check_options(opts: OutputOptions, fmt: str, kind: str) -> None:
    if opts.splits and (kind == "vector" or fmt not in _SPLIT_FORMATS):
        option = "tile_grid" if opts.tile_grid is not None else "sample_by_feature"
        raise ValueError(f"save_result: {option} splits raster cubes saved as GTiff or netCDF, not {fmt} {kind} cubes.")
    if opts.attach_gdalinfo_assets and (kind == "vector" or fmt != "GTiff"):
        raise ValueError(f"save_result: attach_gdalinfo_assets is only supported with format GTiff, not {fmt}.")


def _write_raster(
    fmt: str,
    data: xr.DataArray,
    out_dir: Path,
    opts: OutputOptions,
    crs_epsg: int,
    nodata: float | int,
    blocksize: int,
) -> Iterator[WrittenAsset]:
    if fmt == "JSON":
        yield write_raster_json(data, out_dir / "openEO.json")
        return
    cube = load_raster(data)
    grid = Grid.of(cube, crs_epsg)
    if fmt == "GTiff":
        yield from write_gtiff(cube, grid, out_dir, opts, nodata, blocksize)
    elif fmt == "Zarr":
        yield write_zarr(cube, grid, out_dir / f"{opts.filename_prefix}.zarr", nodata)
    else:
        yield from write_netcdf(cube, grid, out_dir, opts, nodata)


def _bands(data: xr.DataArray) -> tuple[str, ...]:
    return band_names(data) if "bands" in data.dims else ()
