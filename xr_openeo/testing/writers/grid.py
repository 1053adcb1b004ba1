"""Raster cubes as the writers see them: dims ``([t,] bands, y, x)``, a pixel grid, dates computed in blocks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from affine import Affine

RASTER_DIMS = ("t", "bands", "y", "x")
DEFAULT_BAND = "var"
# Upper bound on what one compute() materialises when a dask chunk spans several dates.
MAX_BLOCK_BYTES = 256 * 2**20


def load_raster(data: xr.DataArray) -> xr.DataArray:
    """Lazy cube with dims ``([t,] bands, y, x)``, north-up, only index coordinates."""
    if not {"x", "y"} <= set(data.dims) or not set(data.dims) <= set(RASTER_DIMS):
        raise ValueError(
            f"save_result: a raster cube needs dims x and y and at most t and bands besides, got {data.dims}."
        )
    cube = data.reset_coords(drop=True)
    if "bands" not in cube.dims:
        cube = cube.expand_dims(bands=[DEFAULT_BAND])
    cube = cube.transpose(*(d for d in RASTER_DIMS if d in cube.dims))
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
class Grid:
    """Pixel grid of a north-up raster and the asset fields derived from it."""

    transform: Affine
    shape: tuple[int, int]
    crs_epsg: int

    @classmethod
    def of(cls, cube: xr.DataArray, crs_epsg: int) -> Grid:
        """The grid of a cube from its pixel-centre coordinates."""
        x, y = cube.x.values, cube.y.values
        res_x, res_y = _pixel_size(x, y), _pixel_size(y, x)
        transform = Affine(res_x, 0.0, x[0] - res_x / 2, 0.0, -res_y, y[0] + res_y / 2)
        return cls(transform, (y.size, x.size), crs_epsg)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """Pixel edges: (west, south, east, north) in the grid's CRS."""
        rows, cols = self.shape
        left, top = self.transform.c, self.transform.f
        return (left, top + self.transform.e * rows, left + self.transform.a * cols, top)

    def window(self, rows: slice, cols: slice) -> Grid:
        """The grid of the pixels ``rows`` × ``cols`` of this one."""
        start_row, stop_row, _ = rows.indices(self.shape[0])
        start_col, stop_col, _ = cols.indices(self.shape[1])
        transform = self.transform @ Affine.translation(start_col, start_row)
        return Grid(transform, (stop_row - start_row, stop_col - start_col), self.crs_epsg)


def _pixel_size(coord: np.ndarray, other: np.ndarray) -> float:
    # A one-pixel-wide cube borrows the other axis' spacing (square pixels).
    steps = coord if coord.size > 1 else other
    if steps.size < 2:
        raise ValueError("save_result: cannot infer the pixel size of a 1x1 raster cube from its coordinates.")
    return float(abs(steps[1] - steps[0]))


def nodata_of(dtype: np.dtype, nodata: float | int) -> float | int:
    """The nodata value written for cells of ``dtype``: NaN for floats, else the collection's."""
    return math.nan if dtype.kind == "f" else nodata


def band_names(cube: xr.DataArray) -> tuple[str, ...]:
    return tuple(str(b) for b in cube["bands"].values)


def timestamps(data: xr.DataArray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(data["t"].values)


def iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def time_range(times: pd.DatetimeIndex | None) -> tuple[str | None, str | None]:
    if times is None or times.empty:
        return None, None
    return iso(times.min()), iso(times.max())


def date_slug(ts: pd.Timestamp) -> str:
    """``2023-01-03Z`` at midnight UTC, else ``20231231T214100Z`` (geopyspark's file-name dates)."""
    return ts.strftime("%Y-%m-%dZ") if ts == ts.normalize() else ts.strftime("%Y%m%dT%H%M%SZ")


def iter_dates(cube: xr.DataArray) -> Iterator[tuple[int, pd.Timestamp | None, np.ndarray]]:
    """Yield ``(index, timestamp, (bands, y, x) values)`` per date, computing one block of dates at a time."""
    if "t" not in cube.dims:
        yield 0, None, compute(cube)
        return
    times = timestamps(cube)
    for block in _date_blocks(cube):
        values = compute(cube.isel(t=block))
        for i, array in enumerate(values, start=block.start):
            yield i, times[i], array


def _date_blocks(cube: xr.DataArray) -> Iterator[slice]:
    # Never straddle a dask chunk: a date computed alone costs its whole chunk anyway, so computing
    # the chunk once beats recomputing it per date, within the byte budget.
    bytes_per_date = max(cube.isel(t=0).nbytes, 1)
    per_block = max(1, MAX_BLOCK_BYTES // bytes_per_date)
    start = 0
    for size in cube.chunksizes.get("t", (cube.sizes["t"],)):
        for block_start in range(start, start + size, per_block):
            yield slice(block_start, min(block_start + per_block, start + size))
        start += size


def compute(data: xr.DataArray) -> np.ndarray:
    """The values of ``data``, computed with dask's threaded scheduler."""
    # Explicit scheduler: a dask.distributed Client may be the process-wide default.
    return np.asarray(data.compute(scheduler="threads").values)
