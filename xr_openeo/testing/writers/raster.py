"""Raster cubes to files: COG GeoTIFFs (per date, optionally per tile or feature), netCDF, Zarr, xarray JSON."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import h5netcdf
import numpy as np
import pandas as pd
import pyproj
import rasterio
import xarray as xr

from ..assets import WrittenAsset
from .extras import write_gdalinfo
from .grid import (
    Grid,
    band_names,
    date_slug,
    iso,
    iter_dates,
    nodata_of,
    time_range,
    timestamps,
)
from .options import OutputOptions
from .splits import Piece, feature_pieces, tile_grid_pieces
from .tables import write_json

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
NETCDF_EPOCH = pd.Timestamp("1990-01-01")
NETCDF_TILE = 256


def raster_asset(
    path: Path,
    media_type: str,
    cube: xr.DataArray,
    grid: Grid,
    nodata: float | int,
    *,
    date: pd.Timestamp | None = None,
    times: pd.DatetimeIndex | None = None,
    piece: Piece | None = None,
    opts: OutputOptions | None = None,
) -> WrittenAsset:
    """The record of one raster file on ``grid`` (the piece's own grid for a split output)."""
    start, end = time_range(times)
    return WrittenAsset(
        key=path.name,
        path=path,
        media_type=media_type,
        bands=band_names(cube),
        epsg=grid.crs_epsg,
        shape=grid.shape,
        bbox=grid.bbox,
        dtype=str(cube.dtype),
        nodata=nodata_of(cube.dtype, nodata),
        datetime=None if date is None else iso(date),
        start_datetime=start,
        end_datetime=end,
        tile=None if piece is None else piece.name,
        job_proj=piece is not None and opts is not None and opts.tile_grid is not None and opts.tile_grid_proj == "job",
    )


def split_pieces(opts: OutputOptions, grid: Grid) -> list[Piece] | None:
    """The files a raster splits into under ``opts``; None when it is not split."""
    if opts.tile_grid is not None:
        return tile_grid_pieces(opts.tile_grid, grid)
    if opts.sample_by_feature:
        return feature_pieces(opts.geometries, grid, opts.feature_id_property)
    return None


# --- GTiff ---


def write_gtiff(
    cube: xr.DataArray, grid: Grid, out_dir: Path, opts: OutputOptions, nodata: float | int, blocksize: int
) -> Iterator[WrittenAsset]:
    """One COG per date with all bands; per date and piece for split outputs; plus gdalinfo assets if asked."""
    pieces = split_pieces(opts, grid)
    fill = nodata_of(cube.dtype, nodata)
    for _, ts, array in iter_dates(cube):
        targets: list[tuple[Piece | None, Path]]
        if pieces is None:
            name = f"{opts.filename_prefix}.tif" if ts is None else f"{opts.filename_prefix}_{date_slug(ts)}.tif"
            targets = [(None, out_dir / name)]
        else:
            targets = [(piece, out_dir / _split_tif_name(opts, ts, piece)) for piece in pieces]
        for piece, path in targets:
            values = array if piece is None else piece.take(array, fill)
            file_grid = grid if piece is None else grid.window(piece.rows, piece.cols)
            _write_cog(path, values, file_grid, band_names(cube), fill, blocksize)
            asset = raster_asset(path, COG_MEDIA_TYPE, cube, file_grid, nodata, date=ts, piece=piece, opts=opts)
            yield asset
            if opts.attach_gdalinfo_assets:
                yield write_gdalinfo(asset, values)


def _split_tif_name(opts: OutputOptions, ts: pd.Timestamp | None, piece: Piece) -> str:
    """geopyspark's names: ``openEO_2023-01-03Z_31UFS_4_12.tif``; a dateless tile is ``openEO-31UFS_4_12.tiff``."""
    if ts is not None:
        return f"{opts.filename_prefix}_{date_slug(ts)}_{piece.name}.tif"
    if opts.tile_grid is not None:
        return f"{opts.filename_prefix}-{piece.name}.tiff"
    return f"{opts.filename_prefix}_{piece.name}.tif"


def _write_cog(
    path: Path, array: np.ndarray, grid: Grid, bands: tuple[str, ...], nodata: float | int, blocksize: int
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


def write_zarr(cube: xr.DataArray, grid: Grid, path: Path, nodata: float | int) -> WrittenAsset:
    """A Zarr v2 store (a folder), one variable per band, consolidated metadata, CRS as a ``crs`` variable."""
    ds = cube.to_dataset(dim="bands")
    for name in ds.data_vars:
        ds[name].attrs["grid_mapping"] = "crs"
        ds[name].encoding["_FillValue"] = nodata_of(cube.dtype, nodata)
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": pyproj.CRS.from_epsg(grid.crs_epsg).to_wkt()})
    chunks = {d: (1 if d == "t" else min(cube.sizes[d], NETCDF_TILE)) for d in ds.dims}
    # Explicit scheduler: a dask.distributed Client may be the process-wide default.
    ds.chunk(chunks).to_zarr(path, mode="w", zarr_format=2, consolidated=True, compute=False).compute(
        scheduler="threads"
    )
    times = timestamps(cube) if "t" in cube.dims else None
    return raster_asset(path, "application/vnd+zarr", cube, grid, nodata, times=times)


# --- netCDF ---


def write_netcdf(
    cube: xr.DataArray, grid: Grid, out_dir: Path, opts: OutputOptions, nodata: float | int
) -> list[WrittenAsset]:
    """One CF netCDF of all dates; one per piece (``openEO_0.nc``, ``openEO_31UFS_4_12.nc``) for split outputs."""
    pieces = split_pieces(opts, grid)
    targets: list[tuple[Piece | None, Path]] = (
        [(None, out_dir / f"{opts.filename_prefix}.nc")]
        if pieces is None
        else [(p, out_dir / f"{opts.filename_prefix}_{p.name}.nc") for p in pieces]
    )
    crs = pyproj.CRS.from_epsg(grid.crs_epsg)
    times = timestamps(cube) if "t" in cube.dims else None
    fill = nodata_of(cube.dtype, nodata)
    assets = []
    with ExitStack() as stack:
        outputs = []
        for piece, path in targets:
            part = cube if piece is None else cube.isel(y=piece.rows, x=piece.cols)
            part_grid = grid if piece is None else grid.window(piece.rows, piece.cols)
            nc = stack.enter_context(h5netcdf.File(path, "w"))
            outputs.append(_netcdf_layout(nc, part, part_grid, crs, times, fill))
            assets.append(
                raster_asset(path, "application/x-netcdf", cube, part_grid, nodata, times=times, piece=piece, opts=opts)
            )
        for i, _, array in iter_dates(cube):
            for (piece, _), variables in zip(targets, outputs, strict=True):
                values = array if piece is None else piece.take(array, fill)
                for variable, band_values in zip(variables, values, strict=True):
                    variable[... if times is None else i] = band_values
    return assets


def _netcdf_layout(
    nc: h5netcdf.File,
    cube: xr.DataArray,
    grid: Grid,
    crs: pyproj.CRS,
    times: pd.DatetimeIndex | None,
    fill: float | int,
) -> list[h5netcdf.Variable]:
    """Dimensions, coordinates, the ``crs`` variable and one empty variable per band; returns those."""
    nc.attrs.update(Conventions="CF-1.9", institution="openEO platform")
    # t is unlimited, as in geopyspark's files.
    nc.dimensions = {**({} if times is None else {"t": None}), "y": grid.shape[0], "x": grid.shape[1]}
    if crs.is_geographic:
        names = {"x": ("longitude", "degrees_east"), "y": ("latitude", "degrees_north")}
    else:
        names = {"x": ("projection_x_coordinate", "m"), "y": ("projection_y_coordinate", "m")}
    for dim, (standard_name, units) in names.items():
        variable = nc.create_variable(dim, (dim,), "f8", data=cube[dim].values.astype("f8"))
        variable.attrs.update(standard_name=standard_name, units=units)
    crs_variable = nc.create_variable("crs", (), "S1")
    crs_variable.attrs.update(crs.to_cf())
    crs_variable.attrs["spatial_ref"] = crs.to_wkt()
    dims = ("y", "x") if times is None else ("t", "y", "x")
    tile = (NETCDF_TILE, NETCDF_TILE) if min(grid.shape) > NETCDF_TILE else grid.shape
    chunks = (1, *tile) if times is not None else tile
    variables = []
    for band in band_names(cube):
        variable = nc.create_variable(band.replace("/", "_"), dims, cube.dtype, fillvalue=fill, chunks=chunks)
        variable.attrs["grid_mapping"] = "crs"
        variables.append(variable)
    if times is not None:
        nc.resize_dimension("t", times.size)
        days = (times.normalize() - NETCDF_EPOCH).days.to_numpy(dtype="i4")
        t = nc.create_variable("t", ("t",), "i4", data=days)
        t.attrs.update(units="days since 1990-01-01", axis="T", standard_name="time")
    return variables


# --- raster JSON ---


def write_raster_json(data: xr.DataArray, path: Path) -> WrittenAsset:
    """xarray's ``to_dict`` plus dtype and shape attributes (the openeo client's ``XarrayIO`` format)."""
    array = data.reset_coords(drop=True).compute(scheduler="threads")
    document = array.to_dict()
    document["attrs"].update(dtype=str(array.dtype), shape=list(array.shape))
    for name, coord in array.coords.items():
        document["coords"][name]["attrs"].update(dtype=str(coord.dtype), shape=list(coord.shape))
    write_json(path, document)
    bands = tuple(str(b) for b in array["bands"].values) if "bands" in array.dims else ()
    start, end = time_range(timestamps(array) if "t" in array.dims else None)
    return WrittenAsset(
        key=path.name,
        path=path,
        media_type="application/json",
        bands=bands,
        dtype=str(array.dtype),
        start_datetime=start,
        end_datetime=end,
    )
