"""What save_result writes with the output options of real backends: tiles, per-feature files, gdalinfo, models.

Shapes after openeo-geopyspark-driver (``geopysparkdatacube.py`` ``write_assets``, its
``tests/test_batch_result.py`` ``test_unified_asset_keys_tile_grid*`` and
``test_netcdf_sample_by_feature_asset_bbox_geometry``, ``ml/geopysparkrandomforestmodel.py``) and
openeo-geotrellis-extensions (``geotiff/package.scala`` ``saveStitchedTileGridTemporal``,
``tile_grid/TileGrid.scala``).
"""

from __future__ import annotations

import io
import json
import re
import tarfile

import dask
import h5netcdf
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import xarray as xr
from pyproj import Transformer

from xr_openeo.testing.writers import save_result

EPSG = 32631
X0, Y0, RES = 500_000.0, 5_000_000.0, 10.0
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
# 1 km cells of the 100 km aligned grid from (500000, 5000000): MGRS square 31TEK, columns/rows 0..2.
TILES = [f"31TEK_{c}_{r}" for r in range(3) for c in range(3)]


@pytest.fixture(autouse=True)
def _refuse_default_scheduler():
    """Stands in for an active dask.distributed Client: writers must pick their scheduler."""

    def refuse(*args, **kwargs):
        raise AssertionError("save_result computed with the default dask scheduler")

    with dask.config.set(scheduler=refuse):
        yield


def cube(dates=("2023-01-03", "2023-01-08"), shape=(260, 270), dtype="float32") -> xr.DataArray:
    """A dask (t, bands, y, x) cube of distinct values, NaN in a corner of float cubes."""
    coords = {
        **({"t": pd.to_datetime(list(dates)).to_numpy()} if dates else {}),
        "bands": ["B04", "B08"],
        "y": Y0 - RES * (np.arange(shape[0]) + 0.5),
        "x": X0 + RES * (np.arange(shape[1]) + 0.5),
    }
    sizes = tuple(len(c) for c in coords.values())
    values = np.arange(np.prod(sizes)).reshape(sizes).astype(dtype)
    if values.dtype.kind == "f":
        values[..., 0, 0] = np.nan
    return xr.DataArray(values, dims=tuple(coords), coords=coords).chunk({"t": 1} if dates else {})


def window(asset) -> tuple[slice, slice]:
    """Rows and columns of the full cube that an asset's bbox covers."""
    west, _, _, north = asset.bbox
    r0, c0 = round((Y0 - north) / RES), round((west - X0) / RES)
    return slice(r0, r0 + asset.shape[0]), slice(c0, c0 + asset.shape[1])


@pytest.mark.parametrize("proj", ["tile", "job"])
def test_tile_grid_gtiff_is_one_cog_per_date_and_cell(tmp_path, proj):
    data = cube()
    full = data.compute(scheduler="threads").values

    assets = save_result(
        data, "GTiff", None, tmp_path, crs_epsg=EPSG, job_options={"tile_grid": "utm-1km", "tile_grid_proj": proj}
    )

    assert [a.key for a in assets] == [f"openEO_{d}Z_{t}.tif" for d in ("2023-01-03", "2023-01-08") for t in TILES]
    assert [a.tile for a in assets] == TILES * 2
    assert {a.job_proj for a in assets} == {proj == "job"}
    assert {a.datetime for a in assets[:9]} == {"2023-01-03T00:00:00Z"}
    mosaic = np.full_like(full, -1.0)
    for i, asset in enumerate(assets):
        rows, cols = window(asset)
        assert asset.media_type == COG and asset.bands == ("B04", "B08")
        with rasterio.open(asset.path) as src:
            assert (src.height, src.width) == asset.shape and tuple(src.bounds) == asset.bbox
            assert src.crs.to_epsg() == EPSG and src.descriptions == ("B04", "B08")
            values = src.read()
        np.testing.assert_array_equal(values, full[i // 9, :, rows, cols])
        mosaic[i // 9, :, rows, cols] = values
    np.testing.assert_array_equal(mosaic, full)  # the tiles partition the cube
    shapes = {a.shape for a in assets}
    assert shapes == {(100, 100), (100, 70), (60, 100), (60, 70)}


def test_tile_grid_without_time_names_tiles_as_geopyspark(tmp_path):
    assets = save_result(cube(dates=None), "GTiff", {"tile_grid": "utm-1km"}, tmp_path, crs_epsg=EPSG)
    assert [a.key for a in assets] == [f"openEO-{t}.tiff" for t in TILES]
    assert {a.datetime for a in assets} == {None}


@pytest.mark.parametrize("proj", ["tile", "job"])
def test_tile_grid_netcdf_is_one_file_of_all_dates_per_cell(tmp_path, proj):
    data = cube(dates=("2023-01-03", "2023-01-08", "2023-01-13"), dtype="uint16")
    full = data.compute(scheduler="threads").values
    options = {"tile_grid": "utm-1km", "tile_grid_proj": proj}

    assets = save_result(data, "netCDF", None, tmp_path, crs_epsg=EPSG, nodata=0, job_options=options)

    assert [a.key for a in assets] == [f"openEO_{t}.nc" for t in TILES]
    assert {a.job_proj for a in assets} == {proj == "job"}
    for asset in assets:
        rows, cols = window(asset)
        assert (asset.start_datetime, asset.end_datetime) == ("2023-01-03T00:00:00Z", "2023-01-13T00:00:00Z")
        with h5netcdf.File(asset.path, "r") as nc:
            assert nc.attrs["Conventions"] == "CF-1.9"
            assert nc.dimensions["t"].size == 3
            np.testing.assert_array_equal(nc["x"][:], data.x.values[cols])
            np.testing.assert_array_equal(nc["y"][:], data.y.values[rows])
            np.testing.assert_array_equal(nc["B08"][:], full[:, 1, rows, cols])
            assert nc["B04"].attrs["_FillValue"] == 0


def geojson(*boxes_utm: shapely.Geometry) -> dict:
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)

    def lonlat(g):
        return shapely.transform(g, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))

    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"name": f"f{i}"}, "geometry": shapely.geometry.mapping(lonlat(b))}
            for i, b in enumerate(boxes_utm)
        ],
    }


@pytest.mark.parametrize("format", ["netCDF", "GTiff"])
def test_sample_by_feature_writes_one_file_per_feature(tmp_path, format):
    data = cube()
    full = data.compute(scheduler="threads").values
    features = geojson(
        shapely.box(X0 + 100, Y0 - 600, X0 + 500, Y0 - 200), shapely.box(X0 + 1500, Y0 - 2500, X0 + 2600, Y0 - 1000)
    )

    assets = save_result(data, format, {"sample_by_feature": True, "geometries": features}, tmp_path, crs_epsg=EPSG)

    if format == "netCDF":
        assert [a.key for a in assets] == ["openEO_0.nc", "openEO_1.nc"]
    else:
        assert [a.key for a in assets] == [f"openEO_{d}Z_{i}.tif" for d in ("2023-01-03", "2023-01-08") for i in (0, 1)]
    first, second = assets[:2]
    assert first.bbox != second.bbox and first.shape != second.shape
    for asset in assets[:2]:
        rows, cols = window(asset)
        # a box reprojected to lon/lat and back is a hair larger: the window snaps out by at most a pixel
        assert abs((rows.stop - rows.start) - (40 if asset is first else 150)) <= 2
        if format == "netCDF":
            with xr.open_dataset(asset.path, engine="h5netcdf") as ds:
                inside = ds.B04.values[:, 1:-1, 1:-1]
                np.testing.assert_array_equal(inside, full[:, 0, rows, cols][:, 1:-1, 1:-1])
        else:
            with rasterio.open(asset.path) as src:
                np.testing.assert_array_equal(src.read(1)[1:-1, 1:-1], full[0, 0, rows, cols][1:-1, 1:-1])


def test_gdalinfo_assets_follow_each_geotiff(tmp_path):
    data = cube(dtype="uint16")

    assets = save_result(data, "GTiff", {"attach_gdalinfo_assets": True}, tmp_path, crs_epsg=EPSG, nodata=0)

    assert [a.key for a in assets] == [
        "openEO_2023-01-03Z.tif",
        "openEO_2023-01-03Z.tif_gdalinfo.json",
        "openEO_2023-01-08Z.tif",
        "openEO_2023-01-08Z.tif_gdalinfo.json",
    ]
    tif, info = assets[:2]
    assert (info.media_type, info.roles, info.describes, info.datetime) == (
        "application/json",
        ("metadata",),
        tif.key,
        tif.datetime,
    )
    assert (info.epsg, info.shape, info.bbox, info.job_proj) == (None, None, None, True)
    doc = json.loads(info.path.read_text())
    with rasterio.open(tif.path) as src:
        assert doc["size"] == [src.width, src.height]
        assert doc["geoTransform"] == list(src.transform.to_gdal())
        assert doc["stac"]["proj:shape"] == [src.height, src.width] and doc["stac"]["proj:epsg"] == EPSG
        values = src.read(2)
    band = doc["bands"][1]
    assert (band["band"], band["description"], band["type"], band["noDataValue"]) == (2, "B08", "UInt16", 0)
    valid = values[values != 0].astype("float64")
    assert band["minimum"] == valid.min() and band["maximum"] == valid.max()
    assert band["mean"] == pytest.approx(valid.mean())


def test_gdalinfo_of_tiles_carries_the_tile(tmp_path):
    assets = save_result(
        cube(dates=("2023-01-03",)),
        "GTiff",
        {"tile_grid": "utm-1km", "attach_gdalinfo_assets": True},
        tmp_path,
        crs_epsg=EPSG,
    )
    infos = [a for a in assets if a.describes]
    assert [(a.tile, a.describes) for a in infos] == [(t, f"openEO_2023-01-03Z_{t}.tif") for t in TILES]
    assert json.loads(infos[0].path.read_text())["bands"][0]["noDataValue"] == "nan"


@pytest.mark.parametrize(
    ("option", "file_name", "prefix", "title"),
    [
        (True, "randomforest.model.tar.gz", "rf", "org.apache.spark.mllib.tree.model.RandomForestModel"),
        ("catboost", "catboost_model.cbm.tar.gz", "cb", "ai.catboost.spark.CatBoostClassificationModel"),
    ],
)
def test_a_model_file_comes_after_the_results(tmp_path, option, file_name, prefix, title):
    reported = []

    assets = save_result(
        cube(), "netCDF", None, tmp_path, crs_epsg=EPSG, on_asset=reported.append, job_options={"ml_model": option}
    )

    assert [a.key for a in assets] == ["openEO.nc", file_name] and reported == assets
    model = assets[1]
    assert (model.media_type, model.roles, model.job_proj) == ("application/octet-stream", ("data",), True)
    assert model.model is not None and re.fullmatch(prefix + r"-[0-9a-f]{32}", model.model.id)
    assert (model.model.title, model.model.bands) == (title, ("B04", "B08"))
    with tarfile.open(fileobj=io.BytesIO(model.path.read_bytes()), mode="r:gz") as tar:
        (member,) = tar.getmembers()
        assert json.loads(tar.extractfile(member).read())["bands"] == ["B04", "B08"]


@pytest.mark.parametrize(
    ("format", "options", "message"),
    [
        ("Zarr", {"tile_grid": "utm-1km"}, "tile_grid splits raster cubes saved as GTiff or netCDF, not Zarr"),
        ("JSON", {"sample_by_feature": True}, "sample_by_feature splits raster cubes saved as GTiff or netCDF"),
        ("netCDF", {"attach_gdalinfo_assets": True}, "attach_gdalinfo_assets is only supported with format GTiff"),
        ("GTiff", {"sample_by_feature": True}, "needs the features of a filter_spatial"),
    ],
)
def test_options_a_format_cannot_honour_are_refused(tmp_path, format, options, message):
    with pytest.raises(ValueError, match=message):
        save_result(cube(), format, options, tmp_path, crs_epsg=EPSG)
