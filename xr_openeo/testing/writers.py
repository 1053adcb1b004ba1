"""``save_result`` for the local backend: result files laid out like the VITO/CDSE (geopyspark) backends.

Ground truth for every layout: ``reference/openeo-results.md`` §3.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import h5netcdf
import numpy as np
import pandas as pd
import pyproj
import rasterio
import xarray as xr
from affine import Affine
from shapely.geometry import mapping

from xr_openeo.testing.assets import WrittenAsset

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
_RASTER_DIMS = ("t", "bands", "y", "x")
_VECTOR_DIMS = ("geometry", "t", "bands")

_COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_DEFAULT_BAND = "var"
_NETCDF_EPOCH = pd.Timestamp("1990-01-01")
_NETCDF_TILE = 256
# Upper bound on what one compute() materialises when a dask chunk spans several dates.
_MAX_BLOCK_BYTES = 256 * 2**20


def save_result(
    data: xr.DataArray,
    format: str,
    options: dict | None,
    out_dir: Path,
    *,
    crs_epsg: int,
    nodata: float | int = 0,
    blocksize: int = 256,
    on_asset: Callable[[WrittenAsset], None] | None = None,
) -> list[WrittenAsset]:
    """Write ``data`` to ``out_dir`` in ``format`` as geopyspark would and describe each file.

    Raster cubes (dims among ``t, bands, y, x``) go to GTiff (one COG per date, all bands),
    netCDF (one CF file) or JSON (xarray ``to_dict``). Vector cubes from ``aggregate_spatial``
    (dims ``geometry`` plus ``t``/``bands``) go to JSON, CSV, Parquet or GeoJSON.

    A cube without a ``bands`` dimension holds one band named ``"var"`` (the name geopyspark's
    netCDF uses): the GeoTIFF band description, netCDF variable and table column. A vector cube
    without ``t`` is written to JSON as ``[[band values] per geometry]`` (geopyspark's spatial
    aggregation result) and to CSV/Parquet without a ``date`` column. Raster JSON writes
    datetimes as ``YYYY-MM-DDTHH:MM:SS`` (no ``Z``, so numpy and the openeo client parse them)
    and NaN as ``null``. netCDF ``t`` holds whole days since 1990-01-01, as geopyspark's does.

    Dask data is computed with ``scheduler="threads"``, a block of dates at a time (at most one
    dask chunk along ``t``), and ``on_asset`` is called as soon as each file is complete.

    Raises
    ------
    ValueError
        Unknown format, a cube the format cannot hold, or an unusable ``filename_prefix``.
    """
    fmt = _canonical_format(format)
    prefix = _filename_prefix(options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "geometry" in data.dims:
        _check_accepts(format, fmt, "vector")
        writer = _write_vector(fmt, data, out_dir, crs_epsg)
    else:
        _check_accepts(format, fmt, "raster")
        writer = _write_raster(fmt, data, out_dir, prefix, crs_epsg, nodata, blocksize)
    assets = []
    for asset in writer:
        if on_asset is not None:
            on_asset(asset)
        assets.append(asset)
    return assets


def _canonical_format(format: str) -> str:
    try:
        return _FORMATS[format.lower()]
    except KeyError:
        raise ValueError(
            f"save_result: unsupported format {format!r}; supported formats are GTiff (alias GeoTIFF, COG), "
            "netCDF (alias nc), Zarr, JSON, CSV, Parquet (alias GeoParquet) and GeoJSON."
        ) from None


def _filename_prefix(options: dict | None) -> str:
    prefix = (options or {}).get("filename_prefix") or "openEO"
    if not isinstance(prefix, str) or Path(prefix).name != prefix:
        raise ValueError(f"save_result: filename_prefix must be a plain file name, got {prefix!r}.")
    return prefix


def _check_accepts(format: str, fmt: str, kind: str) -> None:
    if fmt not in _ACCEPTED[kind]:
        other = "raster cubes" if kind == "vector" else "vector cubes (from aggregate_spatial)"
        *first, last = _ACCEPTED[kind]
        raise ValueError(
            f"save_result: format {format!r} cannot hold a {kind} cube, only {other}. "
            f"Save a {kind} cube as {', '.join(first)} or {last}."
        )


# --- raster cubes -----------------------------------------------------------------------------


def _write_raster(
    fmt: str, data: xr.DataArray, out_dir: Path, prefix: str, crs_epsg: int, nodata: float | int, blocksize: int
) -> Iterator[WrittenAsset]:
    if fmt == "JSON":
        yield _write_raster_json(data, out_dir / "openEO.json")
        return
    cube = _load_raster(data)
    grid = _Grid.of(cube, crs_epsg)
    if fmt == "GTiff":
        yield from _write_gtiff(cube, grid, out_dir, prefix, nodata, blocksize)
    elif fmt == "Zarr":
        yield _write_zarr(cube, grid, out_dir / f"{prefix}.zarr", nodata)
    else:
        yield _write_netcdf(cube, grid, out_dir / f"{prefix}.nc", nodata)


def _load_raster(data: xr.DataArray) -> xr.DataArray:
    """Lazy cube with dims ``([t,] bands, y, x)``, north-up, only index coordinates."""
    if not {"x", "y"} <= set(data.dims) or not set(data.dims) <= set(_RASTER_DIMS):
        raise ValueError(
            f"save_result: a raster cube needs dims x and y and at most t and bands besides, got {data.dims}."
        )
    cube = data.reset_coords(drop=True)
    if "bands" not in cube.dims:
        cube = cube.expand_dims(bands=[_DEFAULT_BAND])
    cube = cube.transpose(*(d for d in _RASTER_DIMS if d in cube.dims))
    if cube.sizes["y"] > 1 and cube.y[0] < cube.y[-1]:
        cube = cube.isel(y=slice(None, None, -1))
    if cube.sizes["x"] > 1 and cube.x[0] > cube.x[-1]:
        cube = cube.isel(x=slice(None, None, -1))
    return cube.astype(_storage_dtype(cube.dtype), copy=False)


def _storage_dtype(dtype: np.dtype) -> np.dtype:
    """GDAL and netCDF have no bool or float16 cells."""
    if dtype == np.bool_:
        return np.dtype("uint8")
    if dtype == np.float16:
        return np.dtype("float32")
    return np.dtype(dtype)


@dataclass(frozen=True)
class _Grid:
    """Pixel grid of a north-up raster cube and the asset fields derived from it."""

    transform: Affine
    shape: tuple[int, int]
    crs_epsg: int

    @classmethod
    def of(cls, cube: xr.DataArray, crs_epsg: int) -> _Grid:
        x, y = cube.x.values, cube.y.values
        res_x, res_y = _pixel_size(x, y), _pixel_size(y, x)
        transform = Affine(res_x, 0.0, x[0] - res_x / 2, 0.0, -res_y, y[0] + res_y / 2)
        return cls(transform, (y.size, x.size), crs_epsg)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        rows, cols = self.shape
        left, top = self.transform.c, self.transform.f
        return (left, top + self.transform.e * rows, left + self.transform.a * cols, top)


def _pixel_size(coord: np.ndarray, other: np.ndarray) -> float:
    # A one-pixel-wide cube borrows the other axis' spacing (square pixels).
    steps = coord if coord.size > 1 else other
    if steps.size < 2:
        raise ValueError("save_result: cannot infer the pixel size of a 1x1 raster cube from its coordinates.")
    return float(abs(steps[1] - steps[0]))


def _nodata(dtype: np.dtype, nodata: float | int) -> float | int:
    return math.nan if dtype.kind == "f" else nodata


def _raster_asset(
    path: Path,
    media_type: str,
    cube: xr.DataArray,
    grid: _Grid,
    nodata: float | int,
    *,
    date: pd.Timestamp | None = None,
    times: pd.DatetimeIndex | None = None,
) -> WrittenAsset:
    start, end = _time_range(times)
    return WrittenAsset(
        key=path.name,
        path=path,
        media_type=media_type,
        bands=_band_names(cube),
        epsg=grid.crs_epsg,
        shape=grid.shape,
        bbox=grid.bbox,
        dtype=str(cube.dtype),
        nodata=_nodata(cube.dtype, nodata),
        datetime=None if date is None else _iso(date),
        start_datetime=start,
        end_datetime=end,
    )


def _band_names(cube: xr.DataArray) -> tuple[str, ...]:
    return tuple(str(b) for b in cube["bands"].values)


def _iter_dates(cube: xr.DataArray) -> Iterator[tuple[int, pd.Timestamp | None, np.ndarray]]:
    """Yield ``(index, timestamp, (bands, y, x) values)`` per date, computing one block of dates at a time."""
    if "t" not in cube.dims:
        yield 0, None, _compute(cube)
        return
    times = _timestamps(cube)
    for block in _date_blocks(cube):
        values = _compute(cube.isel(t=block))
        for i, array in enumerate(values, start=block.start):
            yield i, times[i], array


def _date_blocks(cube: xr.DataArray) -> Iterator[slice]:
    # Never straddle a dask chunk: a date computed alone costs its whole chunk anyway, so computing
    # the chunk once beats recomputing it per date, within the byte budget.
    bytes_per_date = max(cube.isel(t=0).nbytes, 1)
    per_block = max(1, _MAX_BLOCK_BYTES // bytes_per_date)
    start = 0
    for size in cube.chunksizes.get("t", (cube.sizes["t"],)):
        for block_start in range(start, start + size, per_block):
            yield slice(block_start, min(block_start + per_block, start + size))
        start += size


def _compute(data: xr.DataArray) -> np.ndarray:
    # Explicit scheduler: a dask.distributed Client may be the process-wide default.
    return np.asarray(data.compute(scheduler="threads").values)


def _timestamps(data: xr.DataArray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(data["t"].values)


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _time_range(times: pd.DatetimeIndex | None) -> tuple[str | None, str | None]:
    if times is None or times.empty:
        return None, None
    return _iso(times.min()), _iso(times.max())


# --- GTiff ---


def _write_gtiff(
    cube: xr.DataArray, grid: _Grid, out_dir: Path, prefix: str, nodata: float | int, blocksize: int
) -> Iterator[WrittenAsset]:
    for _, ts, array in _iter_dates(cube):
        path = out_dir / (f"{prefix}.tif" if ts is None else f"{prefix}_{_date_slug(ts)}.tif")
        _write_cog(path, array, grid, _band_names(cube), _nodata(cube.dtype, nodata), blocksize)
        yield _raster_asset(path, _COG_MEDIA_TYPE, cube, grid, nodata, date=ts)


def _date_slug(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dZ") if ts == ts.normalize() else ts.strftime("%Y%m%dT%H%M%SZ")


def _write_cog(
    path: Path, array: np.ndarray, grid: _Grid, bands: tuple[str, ...], nodata: float | int, blocksize: int
) -> None:
    count, height, width = array.shape
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=width,
        height=height,
        count=count,
        dtype=array.dtype,
        crs=f"EPSG:{grid.crs_epsg}",
        transform=grid.transform,
        nodata=nodata,
        BLOCKSIZE=blocksize,
        COMPRESS="DEFLATE",
        OVERVIEWS="AUTO",
        NUM_THREADS="ALL_CPUS",
    ) as dst:
        dst.write(array)
        dst.descriptions = bands


# --- Zarr ---


def _write_zarr(cube: xr.DataArray, grid: _Grid, path: Path, nodata: float | int) -> WrittenAsset:
    """A Zarr v2 store (a folder), one variable per band, consolidated metadata, CRS as a ``crs`` variable."""
    ds = cube.to_dataset(dim="bands")
    for name in ds.data_vars:
        ds[name].attrs["grid_mapping"] = "crs"
        ds[name].encoding["_FillValue"] = _nodata(cube.dtype, nodata)
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": pyproj.CRS.from_epsg(grid.crs_epsg).to_wkt()})
    chunks = {d: (1 if d == "t" else min(cube.sizes[d], _NETCDF_TILE)) for d in ds.dims}
    # Explicit scheduler: a dask.distributed Client may be the process-wide default.
    ds.chunk(chunks).to_zarr(path, mode="w", zarr_format=2, consolidated=True, compute=False).compute(
        scheduler="threads"
    )
    times = _timestamps(cube) if "t" in cube.dims else None
    return _raster_asset(path, "application/vnd+zarr", cube, grid, nodata, times=times)


# --- netCDF ---


def _write_netcdf(cube: xr.DataArray, grid: _Grid, path: Path, nodata: float | int) -> WrittenAsset:
    crs = pyproj.CRS.from_epsg(grid.crs_epsg)
    times = _timestamps(cube) if "t" in cube.dims else None
    dims = ("y", "x") if times is None else ("t", "y", "x")
    with h5netcdf.File(path, "w") as nc:
        nc.attrs.update(Conventions="CF-1.9", institution="openEO platform")
        # t is unlimited, as in geopyspark's files.
        nc.dimensions = {**({} if times is None else {"t": None}), "y": grid.shape[0], "x": grid.shape[1]}
        _netcdf_xy(nc, cube, crs)
        _netcdf_crs(nc, crs)
        variables = [_netcdf_band(nc, band, dims, cube.dtype, nodata, grid.shape) for band in _band_names(cube)]
        if times is not None:
            _netcdf_time(nc, times)
        for i, _, array in _iter_dates(cube):
            for variable, band_values in zip(variables, array, strict=True):
                variable[... if times is None else i] = band_values
    return _raster_asset(path, "application/x-netcdf", cube, grid, nodata, times=times)


def _netcdf_xy(nc: h5netcdf.File, cube: xr.DataArray, crs: pyproj.CRS) -> None:
    if crs.is_geographic:
        names = {"x": ("longitude", "degrees_east"), "y": ("latitude", "degrees_north")}
    else:
        names = {"x": ("projection_x_coordinate", "m"), "y": ("projection_y_coordinate", "m")}
    for dim, (standard_name, units) in names.items():
        variable = nc.create_variable(dim, (dim,), "f8", data=cube[dim].values.astype("f8"))
        variable.attrs.update(standard_name=standard_name, units=units)


def _netcdf_crs(nc: h5netcdf.File, crs: pyproj.CRS) -> None:
    variable = nc.create_variable("crs", (), "S1")
    variable.attrs.update(crs.to_cf())
    variable.attrs["spatial_ref"] = crs.to_wkt()


def _netcdf_time(nc: h5netcdf.File, times: pd.DatetimeIndex) -> None:
    nc.resize_dimension("t", times.size)
    days = (times.normalize() - _NETCDF_EPOCH).days.to_numpy(dtype="i4")
    variable = nc.create_variable("t", ("t",), "i4", data=days)
    variable.attrs.update(units="days since 1990-01-01", axis="T", standard_name="time")


def _netcdf_band(
    nc: h5netcdf.File, band: str, dims: tuple[str, ...], dtype: np.dtype, nodata: float | int, shape: tuple[int, int]
) -> h5netcdf.Variable:
    tile = (_NETCDF_TILE, _NETCDF_TILE) if min(shape) > _NETCDF_TILE else shape
    chunks = (1, *tile) if "t" in dims else tile
    variable = nc.create_variable(band.replace("/", "_"), dims, dtype, fillvalue=_nodata(dtype, nodata), chunks=chunks)
    variable.attrs["grid_mapping"] = "crs"
    return variable


# --- raster JSON ---


def _write_raster_json(data: xr.DataArray, path: Path) -> WrittenAsset:
    array = data.reset_coords(drop=True).compute(scheduler="threads")
    document = array.to_dict()
    document["attrs"].update(dtype=str(array.dtype), shape=list(array.shape))
    for name, coord in array.coords.items():
        document["coords"][name]["attrs"].update(dtype=str(coord.dtype), shape=list(coord.shape))
    _write_json(path, document)
    bands = tuple(str(b) for b in array["bands"].values) if "bands" in array.dims else ()
    start, end = _time_range(_timestamps(array) if "t" in array.dims else None)
    return WrittenAsset(
        key=path.name,
        path=path,
        media_type="application/json",
        bands=bands,
        dtype=str(array.dtype),
        start_datetime=start,
        end_datetime=end,
    )


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(_jsonable(document), allow_nan=False), encoding="utf-8")


def _jsonable(value: Any) -> Any:
    """Plain JSON values: NaN/inf become null, datetimes ISO strings, numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.datetime64 | datetime):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


# --- vector cubes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _VectorCube:
    """Computed ``aggregate_spatial`` result: ``values`` has dims (geometry, t, bands), always all three.

    ``geometries`` are in EPSG:4326, the CRS of every result format that stores them.
    """

    values: np.ndarray
    dates: pd.DatetimeIndex | None
    bands: tuple[str, ...]
    geometries: gpd.GeoSeries


def _load_vector(data: xr.DataArray, crs_epsg: int) -> _VectorCube:
    if not set(data.dims) <= set(_VECTOR_DIMS):
        raise ValueError(f"save_result: a vector cube has dims geometry and at most t and bands, got {data.dims}.")
    cube = data.reset_coords(drop=True)
    dates = _timestamps(cube) if "t" in cube.dims else None
    if "t" not in cube.dims:
        cube = cube.expand_dims("t")
    if "bands" not in cube.dims:
        cube = cube.expand_dims(bands=[_DEFAULT_BAND])
    cube = cube.transpose(*_VECTOR_DIMS)
    return _VectorCube(
        values=_compute(cube),
        dates=dates,
        bands=_band_names(cube),
        geometries=gpd.GeoSeries(np.asarray(cube["geometry"].values), crs=crs_epsg).to_crs(4326),
    )


def _write_vector(fmt: str, data: xr.DataArray, out_dir: Path, crs_epsg: int) -> Iterator[WrittenAsset]:
    vc = _load_vector(data, crs_epsg)
    if fmt == "JSON":
        yield _write_timeseries_json(vc, out_dir / "timeseries.json")
    elif fmt == "CSV":
        yield _write_csv(vc, out_dir / "timeseries.csv")
    elif fmt == "Parquet":
        yield _write_parquet(vc, out_dir / "timeseries.parquet")
    else:
        yield _write_geojson(vc, out_dir / "vectorcube.geojson")


def _vector_asset(path: Path, media_type: str, vc: _VectorCube, *, with_geometry: bool = False) -> WrittenAsset:
    start, end = _time_range(vc.dates)
    minx, miny, maxx, maxy = (float(v) for v in vc.geometries.total_bounds)
    return WrittenAsset(
        key=path.name,
        path=path,
        media_type=media_type,
        bands=vc.bands,
        start_datetime=start,
        end_datetime=end,
        epsg=4326 if with_geometry else None,
        bbox=(minx, miny, maxx, maxy) if with_geometry else None,
    )


def _write_timeseries_json(vc: _VectorCube, path: Path) -> WrittenAsset:
    if vc.dates is None:
        document: Any = vc.values[:, 0, :].tolist()
    else:
        by_date = vc.values.transpose(1, 0, 2)
        document = {_iso(date): values.tolist() for date, values in zip(vc.dates, by_date, strict=True)}
    _write_json(path, document)
    return _vector_asset(path, "application/json", vc)


def _long_table(vc: _VectorCube) -> pd.DataFrame:
    """One row per (date, feature), dates outermost; columns ``[date,] feature_index, *bands``."""
    n_features, n_dates, n_bands = vc.values.shape
    table = pd.DataFrame(vc.values.transpose(1, 0, 2).reshape(n_dates * n_features, n_bands), columns=list(vc.bands))
    table.insert(0, "feature_index", np.tile(np.arange(n_features), n_dates))
    if vc.dates is not None:
        table.insert(0, "date", vc.dates.tz_localize("UTC").repeat(n_features))
    return table


def _write_csv(vc: _VectorCube, path: Path) -> WrittenAsset:
    table = _long_table(vc)
    if "date" in table:
        table["date"] = table["date"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
    table.to_csv(path, index=False)
    return _vector_asset(path, "text/csv", vc)


def _write_parquet(vc: _VectorCube, path: Path) -> WrittenAsset:
    table = _long_table(vc)
    table.columns = [re.sub(r"[()/\\]", "_", str(c)) for c in table.columns]
    frame = gpd.GeoDataFrame(table, geometry=vc.geometries.values[table["feature_index"].to_numpy()], crs=4326)
    frame.to_parquet(path, index=False)
    return _vector_asset(path, "application/parquet; profile=geo", vc, with_geometry=True)


def _write_geojson(vc: _VectorCube, path: Path) -> WrittenAsset:
    keys = _property_keys(vc)
    features = [
        {
            "type": "Feature",
            "id": str(i),
            "geometry": mapping(geometry),
            "properties": {"feature_index": i, **dict(zip(keys, values.ravel().tolist(), strict=True))},
        }
        for i, (geometry, values) in enumerate(zip(vc.geometries, vc.values, strict=True))
    ]
    _write_json(path, {"type": "FeatureCollection", "features": features})
    return _vector_asset(path, "application/geo+json", vc, with_geometry=True)


def _property_keys(vc: _VectorCube) -> list[str]:
    """``date~band`` names in (t, bands) order; just the band when the cube has no time."""
    if vc.dates is None:
        return list(vc.bands)
    return [f"{_iso(date)}~{band}" for date in vc.dates for band in vc.bands]
