"""The real files of a corpus entry, written with known values in the layouts real backends write.

GeoTIFF: one date, all bands, tiled and deflated, band descriptions = band names and the nodata
tag (geotrellis-extensions' writer, as geopyspark calls it). netCDF: geopyspark's
``NetCDFRDDWriter`` layout (``t`` in whole days since 1990-01-01, pixel-centre ``x``/``y`` with
``y`` descending, a ``crs`` variable, one variable per band with ``_FillValue`` and
``grid_mapping``). Time series: geopyspark's JSON and CSV.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import h5netcdf
import numpy as np
import pandas as pd
import pyproj
import rasterio
from affine import Affine

from .model import Cube, File, Window

NETCDF_EPOCH = pd.Timestamp("1990-01-01")
FEATURES = 2  # time series: geometries of the aggregate_spatial


def write(cube: Cube, file: File, target: Path) -> None:
    """Write ``file`` of ``cube`` at ``target`` (its folders are created)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    writers = {
        "geotiff": _geotiff,
        "netcdf": _netcdf,
        "timeseries-json": _timeseries_json,
        "timeseries-csv": _timeseries_csv,
        "gdalinfo": _gdalinfo,
        "geotiff-stack": _geotiff_stack,
        "sh-userdata": _sh_userdata,
        "process-json": _process_json,
        "bytes": _bytes,
    }
    writers[file.kind](cube, file, target)


def transform(cube: Cube, window: Window | None) -> Affine:
    minx, _, _, maxy = cube.bbox(window)
    return Affine(cube.resolution, 0.0, minx, 0.0, -cube.resolution, maxy)


def timeseries_value(feature: int, band: int, date: int) -> float | None:
    """The mean of band ``band`` over geometry ``feature`` on date ``date``; None for a gap (feature 1, date 1)."""
    if (feature, date) == (1, 1):
        return None
    return round(0.1 * (band + 1) + 0.01 * date + feature, 4)


def _geotiff(cube: Cube, file: File, target: Path) -> None:
    (date,) = file.dates or (0,)
    window = file.window or Window(0, 0, *cube.shape)
    _write_tiff(cube, file, target, np.stack([cube.values(b, date, window) for b in range(len(cube.bands))]))


def _geotiff_stack(cube: Cube, file: File, target: Path) -> None:
    window = file.window or Window(0, 0, *cube.shape)
    bands = range(len(cube.bands))
    _write_tiff(cube, file, target, np.stack([cube.values(b, d, window) for d in file.dates for b in bands]))


def _write_tiff(cube: Cube, file: File, target: Path, data: np.ndarray) -> None:
    window = file.window or Window(0, 0, *cube.shape)
    profile = {
        "driver": "GTiff",
        "width": window.cols,
        "height": window.rows,
        "count": len(data),
        "dtype": cube.dtype,
        "crs": f"EPSG:{cube.epsg}",
        "transform": transform(cube, window),
        "tiled": True,
        "blockxsize": file.blocksize,
        "blockysize": file.blocksize,
        "compress": "deflate",
    }
    if cube.nodata is not None:
        profile["nodata"] = cube.nodata
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
        if file.descriptions:
            dst.descriptions = cube.bands * (len(data) // len(cube.bands))
        dst.update_tags(PROCESSING_SOFTWARE="openeo-geotrellis-corpus")


def _netcdf(cube: Cube, file: File, target: Path) -> None:
    window = file.window or Window(0, 0, *cube.shape)
    crs = pyproj.CRS.from_epsg(cube.epsg)
    y, x = cube.coords(window)
    fill = cube.nodata if cube.nodata is not None else 0
    with h5netcdf.File(target, "w") as nc:
        nc.attrs.update(Conventions="CF-1.9", institution="openEO platform")
        nc.dimensions = {"t": None, "y": window.rows, "x": window.cols}
        for dim, values, standard_name in (("x", x, "projection_x_coordinate"), ("y", y, "projection_y_coordinate")):
            variable = nc.create_variable(dim, (dim,), "f8", data=values)
            variable.attrs.update(standard_name=standard_name, long_name=f"{dim} coordinate of projection", units="m")
        projection = nc.create_variable("crs", (), "S1")
        projection.attrs.update(crs.to_cf())
        projection.attrs["spatial_ref"] = crs.to_wkt()
        nc.resize_dimension("t", len(file.dates))
        days = [(pd.Timestamp(cube.dates[d]).tz_localize(None).normalize() - NETCDF_EPOCH).days for d in file.dates]
        t = nc.create_variable("t", ("t",), "i4", data=np.array(days, dtype="i4"))
        t.attrs.update(units="days since 1990-01-01", axis="T", standard_name="time", long_name="t")
        for b, band in enumerate(cube.bands):
            variable = nc.create_variable(band.replace("/", "_"), ("t", "y", "x"), cube.dtype, fillvalue=fill)
            variable.attrs.update(grid_mapping="crs", long_name=band)
            for i, d in enumerate(file.dates):
                variable[i] = cube.values(b, d, window)


def _timeseries_json(cube: Cube, file: File, target: Path) -> None:
    doc = {}
    for d in file.dates:
        per_feature = []
        for f in range(FEATURES):
            values = [timeseries_value(f, b, d) for b in range(len(cube.bands))]
            per_feature.append([] if all(v is None for v in values) else values)
        doc[cube.dates[d]] = per_feature
    target.write_text(json.dumps(doc))


def _timeseries_csv(cube: Cube, file: File, target: Path) -> None:
    with target.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["date", "feature_index", *(f"avg(band_{b})" for b in range(len(cube.bands)))])
        for d in file.dates:
            day = pd.Timestamp(cube.dates[d]).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            for f in range(FEATURES):
                values = [timeseries_value(f, b, d) for b in range(len(cube.bands))]
                writer.writerow([day, f, *("" if v is None else v for v in values)])


def _gdalinfo(cube: Cube, file: File, target: Path) -> None:
    """What ``gdalinfo -json`` says of the GeoTIFF ``file.of`` (geopyspark's ``attach_gdalinfo_assets``)."""
    window = file.window or Window(0, 0, *cube.shape)
    minx, miny, maxx, maxy = cube.bbox(window)
    doc = {
        "description": file.of,
        "driver": "GTiff",
        "size": [window.cols, window.rows],
        "coordinateSystem": {"wkt": pyproj.CRS.from_epsg(cube.epsg).to_wkt()},
        "geoTransform": [minx, cube.resolution, 0.0, maxy, 0.0, -cube.resolution],
        "cornerCoordinates": {"upperLeft": [minx, maxy], "lowerRight": [maxx, miny]},
        "bands": [
            {"band": b + 1, "block": [file.blocksize] * 2, "type": "UInt16", "description": name, "noDataValue": 0}
            for b, name in enumerate(cube.bands)
        ],
    }
    target.write_text(json.dumps(doc, indent=2))


def _sh_userdata(cube: Cube, file: File, target: Path) -> None:
    """Sentinel Hub's batch ``userdata.json``: the cube's dimensions, dates as JavaScript writes them."""
    dims = [
        {"name": "t", "type": "temporal", "labels": [cube.dates[d] for d in file.dates]},
        {"name": "bands", "type": "bands", "labels": list(cube.bands)},
    ]
    target.write_text(json.dumps({"outputDimensions": dims}))


def _process_json(cube: Cube, file: File, target: Path) -> None:
    graph = {"load": {"process_id": "load_collection", "arguments": {"id": "SENTINEL2_L2A"}, "result": True}}
    target.write_text(json.dumps({"process_graph": graph}))


def _bytes(cube: Cube, file: File, target: Path) -> None:
    seed = hashlib.sha256(file.path.encode()).digest()
    target.write_bytes((seed * (file.size // len(seed) + 1))[: file.size])
