"""Result files of the local backend's save_result, read back the way clients read them."""

from __future__ import annotations

import json
import math

import dask
import geopandas as gpd
import h5netcdf
import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import shapely
import xarray as xr
import xvec  # noqa: F401  (registers the .xvec accessor)
from affine import Affine
from openeo.udf.xarraydatacube import XarrayIO

from xr_openeo.testing.assets import WrittenAsset
from xr_openeo.testing.writers import save_result

EPSG = 32631
X0, Y0, RES = 500_000.0, 5_000_000.0, 10.0
DATES = ("2023-01-03", "2023-01-08T00:00:00", "2023-12-31T21:41:00")
COG = "image/tiff; application=geotiff; profile=cloud-optimized"


@pytest.fixture(autouse=True)
def _refuse_default_scheduler():
    """Stands in for an active dask.distributed Client: writers must pick their scheduler."""

    def refuse(*args, **kwargs):
        raise AssertionError("save_result computed with the default dask scheduler")

    with dask.config.set(scheduler=refuse):
        yield


def raster(
    *,
    dates: tuple[str, ...] | None = DATES[:2],
    bands: tuple[str, ...] | None = ("B04", "B08"),
    shape: tuple[int, int] = (6, 8),
    dtype: str = "float32",
    x0: float = X0,
    y0: float = Y0,
    res: float = RES,
) -> xr.DataArray:
    """A dask cube shaped like load_collection output, one chunk per date, NaN in float cubes."""
    coords = {
        **({"t": pd.to_datetime(list(dates), format="ISO8601").to_numpy()} if dates else {}),
        **({"bands": list(bands)} if bands else {}),
        "y": y0 - res * (np.arange(shape[0]) + 0.5),
        "x": x0 + res * (np.arange(shape[1]) + 0.5),
    }
    sizes = tuple(len(c) for c in coords.values())
    values = (np.arange(math.prod(sizes)) % 997).reshape(sizes).astype(dtype)
    if values.dtype.kind == "f":
        values[..., 0, 0] = np.nan
    cube = xr.DataArray(values, dims=tuple(coords), coords={**coords, "spatial_ref": 0})
    return cube.chunk({"t": 1} if dates else {})


GEOMETRIES = (
    shapely.box(X0, Y0 - 50, X0 + 40, Y0),
    shapely.box(X0 + 40, Y0 - 60, X0 + 80, Y0 - 20),
    shapely.Point(X0 + 5, Y0 - 5),
)


def vector(*, dates: tuple[str, ...] | None = DATES, bands: tuple[str, ...] | None = ("B04", "B08")) -> xr.DataArray:
    """A dask vector cube shaped like aggregate_spatial output; feature 1 is NaN on the first date."""
    coords = {
        "geometry": list(GEOMETRIES),
        **({"t": pd.to_datetime(list(dates), format="ISO8601").to_numpy()} if dates else {}),
        **({"bands": list(bands)} if bands else {}),
    }
    sizes = tuple(len(c) for c in coords.values())
    values = np.arange(math.prod(sizes), dtype="float64").reshape(sizes) / 4
    values[(1, 0) if dates else 1] = np.nan
    cube = xr.DataArray(values, dims=tuple(coords), coords={**coords, "spatial_ref": 0}).chunk(1)
    return cube.xvec.set_geom_indexes("geometry", crs=EPSG)


def expected(cube: xr.DataArray, *order: str) -> np.ndarray:
    return cube.transpose(*order).compute(scheduler="threads").values


# --- GTiff ------------------------------------------------------------------------------------


def test_gtiff_writes_one_cog_per_date_with_all_bands(tmp_path):
    cube = raster(dates=DATES, shape=(280, 300))
    reported: list[WrittenAsset] = []

    assets = save_result(cube, "GTiff", None, tmp_path, crs_epsg=EPSG, on_asset=reported.append)

    assert assets == reported
    assert [a.key for a in assets] == [
        "openEO_2023-01-03Z.tif",
        "openEO_2023-01-08Z.tif",
        "openEO_20231231T214100Z.tif",
    ]
    assert [a.datetime for a in assets] == ["2023-01-03T00:00:00Z", "2023-01-08T00:00:00Z", "2023-12-31T21:41:00Z"]
    for i, asset in enumerate(assets):
        assert asset.path == tmp_path / asset.key
        assert (asset.media_type, asset.roles, asset.bands) == (COG, ("data",), ("B04", "B08"))
        assert (asset.epsg, asset.shape, asset.dtype) == (EPSG, (280, 300), "float32")
        assert asset.bbox == (X0, Y0 - 2800, X0 + 3000, Y0)
        assert math.isnan(asset.nodata)
        with rasterio.open(asset.path) as src:
            profile = src.profile
            assert (profile["driver"], profile["tiled"], profile["compress"]) == ("GTiff", True, "deflate")
            assert (profile["blockxsize"], profile["blockysize"]) == (256, 256)
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.overviews(1)
            assert src.descriptions == ("B04", "B08")
            assert math.isnan(src.nodata)
            assert src.dtypes == ("float32", "float32")
            assert src.crs.to_epsg() == EPSG
            assert src.transform == Affine(RES, 0, X0, 0, -RES, Y0)
            assert tuple(src.bounds) == asset.bbox
            np.testing.assert_array_equal(src.read(), expected(cube, "t", "bands", "y", "x")[i])


@pytest.mark.parametrize("format", ["COG", "geotiff", "gtiff"])
def test_gtiff_without_time_is_one_file_named_by_prefix(tmp_path, format):
    cube = raster(dates=None, dtype="uint16", shape=(100, 90))

    (asset,) = save_result(
        cube, format, {"filename_prefix": "result"}, tmp_path, crs_epsg=EPSG, nodata=65535, blocksize=64
    )

    assert asset.key == "result.tif"
    assert (asset.datetime, asset.start_datetime, asset.dtype, asset.nodata) == (None, None, "uint16", 65535)
    with rasterio.open(asset.path) as src:
        assert (src.profile["blockxsize"], src.profile["blockysize"]) == (64, 64)
        assert src.overviews(1)
        assert (src.nodata, src.dtypes, src.descriptions) == (65535, ("uint16", "uint16"), ("B04", "B08"))
        np.testing.assert_array_equal(src.read(), expected(cube, "bands", "y", "x"))


@pytest.mark.parametrize(("dtype", "written"), [("float64", "float64"), ("int16", "int16"), ("bool", "uint8")])
def test_gtiff_without_bands_has_one_band_named_var(tmp_path, dtype, written):
    cube = raster(bands=None, dtype=dtype)

    assets = save_result(cube, "GTiff", None, tmp_path, crs_epsg=EPSG, nodata=0)

    assert [(a.bands, a.dtype) for a in assets] == [(("var",), written)] * 2
    with rasterio.open(assets[0].path) as src:
        assert (src.count, src.descriptions, src.dtypes) == (1, ("var",), (written,))
        assert src.overviews(1) == []  # smaller than one block
        np.testing.assert_array_equal(src.read(1), expected(cube, "t", "y", "x")[0].astype(written))


def test_gtiff_accepts_dims_in_any_order(tmp_path):
    cube = raster()

    straight = save_result(cube, "GTiff", None, tmp_path / "a", crs_epsg=EPSG)
    shuffled = save_result(cube.transpose("x", "bands", "y", "t"), "GTiff", None, tmp_path / "b", crs_epsg=EPSG)

    assert [a.bbox for a in straight] == [a.bbox for a in shuffled]
    for a, b in zip(straight, shuffled, strict=True):
        with rasterio.open(a.path) as src_a, rasterio.open(b.path) as src_b:
            assert src_a.transform == src_b.transform
            np.testing.assert_array_equal(src_a.read(), src_b.read())


def test_gtiff_computes_and_reports_one_date_at_a_time(tmp_path):
    computed: list[int] = []

    def record(block, block_info=None):
        computed.append(block_info[None]["chunk-location"][0])
        return block

    cube = raster(dates=tuple(f"2023-02-{d:02d}" for d in range(1, 6)))
    cube = cube.copy(data=cube.data.map_blocks(record, meta=np.array((), dtype=cube.dtype)))
    reported: list[str] = []

    def on_asset(asset: WrittenAsset) -> None:
        with rasterio.open(asset.path) as src:
            src.read()  # complete and readable now
        assert sorted(computed) == list(range(len(reported) + 1)), "later dates computed too early"
        assert len(list(tmp_path.glob("*.tif"))) == len(reported) + 1, "next file started before the report"
        reported.append(asset.key)

    assets = save_result(cube, "GTiff", None, tmp_path, crs_epsg=EPSG, on_asset=on_asset)

    assert [a.key for a in assets] == reported
    assert sorted(computed) == [0, 1, 2, 3, 4]


def test_callers_numpy_error_state_reaches_the_computation(tmp_path):
    # The job runner silences 0/0 warnings of NDVI-like graphs with np.errstate around save_result.
    zeros = raster() - raster()

    with np.errstate(invalid="ignore"):
        assets = save_result(zeros / zeros, "GTiff", None, tmp_path, crs_epsg=EPSG)

    assert len(assets) == 2


# --- netCDF -----------------------------------------------------------------------------------


def test_netcdf_is_one_cf_file_with_a_variable_per_band(tmp_path):
    cube = raster(dates=DATES, bands=("B04", "a/b"), shape=(260, 270))
    reported: list[WrittenAsset] = []

    (asset,) = save_result(cube, "NetCDF", None, tmp_path, crs_epsg=EPSG, on_asset=reported.append)

    assert reported == [asset]
    assert (asset.key, asset.media_type, asset.bands) == ("openEO.nc", "application/x-netcdf", ("B04", "a/b"))
    assert (asset.start_datetime, asset.end_datetime, asset.datetime) == (
        "2023-01-03T00:00:00Z",
        "2023-12-31T21:41:00Z",
        None,
    )
    assert (asset.epsg, asset.shape, asset.bbox) == (EPSG, (260, 270), (X0, Y0 - 2600, X0 + 2700, Y0))
    with h5netcdf.File(asset.path, "r") as nc:
        assert dict(nc.attrs) == {"Conventions": "CF-1.9", "institution": "openEO platform"}
        assert nc.dimensions["t"].isunlimited()
        t = nc.variables["t"]
        assert t.dtype.kind == "i"
        assert t[:].tolist() == [12055, 12060, 12417]  # whole days since 1990-01-01
        assert {k: t.attrs[k] for k in ("units", "axis", "standard_name")} == {
            "units": "days since 1990-01-01",
            "axis": "T",
            "standard_name": "time",
        }
        for dim in ("x", "y"):
            assert nc.variables[dim].attrs["standard_name"] == f"projection_{dim}_coordinate"
            assert nc.variables[dim].attrs["units"] == "m"
        crs = nc.variables["crs"]
        assert crs.shape == ()
        assert pyproj.CRS(crs.attrs["crs_wkt"]).to_epsg() == EPSG
        assert pyproj.CRS(crs.attrs["spatial_ref"]).to_epsg() == EPSG
        assert crs.attrs["grid_mapping_name"] == "transverse_mercator"
        assert set(nc.variables) == {"t", "x", "y", "crs", "B04", "a_b"}
        for name in ("B04", "a_b"):
            band = nc.variables[name]
            assert (band.dimensions, band.chunks, band.dtype) == (("t", "y", "x"), (1, 256, 256), np.float32)
            assert band.attrs["grid_mapping"] == "crs"
            assert np.isnan(band.attrs["_FillValue"])

    with xr.open_dataset(asset.path, engine="h5netcdf") as ds:
        assert ds["t"].values.tolist() == pd.to_datetime(["2023-01-03", "2023-01-08", "2023-12-31"]).asi8.tolist()
        np.testing.assert_array_equal(ds["x"], cube["x"])
        np.testing.assert_array_equal(ds["y"], cube["y"])
        values = expected(cube, "bands", "t", "y", "x")
        np.testing.assert_array_equal(ds["B04"].values, values[0])
        np.testing.assert_array_equal(ds["a_b"].values, values[1])


def test_netcdf_without_time_or_bands_has_one_variable_var(tmp_path):
    cube = raster(dates=None, bands=None, dtype="uint16", x0=3.0, y0=51.0, res=0.001)

    (asset,) = save_result(cube, "nc", {"filename_prefix": "ndvi"}, tmp_path, crs_epsg=4326, nodata=9)

    assert (asset.key, asset.bands, asset.start_datetime, asset.nodata) == ("ndvi.nc", ("var",), None, 9)
    with h5netcdf.File(asset.path, "r") as nc:
        assert set(nc.dimensions) == {"y", "x"}
        assert set(nc.variables) == {"x", "y", "crs", "var"}
        assert nc.variables["x"].attrs["standard_name"] == "longitude"
        assert nc.variables["y"].attrs["units"] == "degrees_north"
        band = nc.variables["var"]
        assert (band.dimensions, band.chunks, band.dtype) == (("y", "x"), (6, 8), np.uint16)
        assert band.attrs["_FillValue"] == 9
        np.testing.assert_array_equal(band[:], cube.compute(scheduler="threads").values)


# --- raster JSON ------------------------------------------------------------------------------


def test_raster_json_is_xarray_to_dict_readable_by_the_openeo_client(tmp_path):
    cube = raster(shape=(2, 3))

    (asset,) = save_result(cube, "json", None, tmp_path, crs_epsg=EPSG)

    assert (asset.key, asset.media_type, asset.bands) == ("openEO.json", "application/json", ("B04", "B08"))
    document = json.loads(asset.path.read_text())
    assert document["dims"] == ["t", "bands", "y", "x"]
    assert (document["attrs"]["dtype"], document["attrs"]["shape"]) == ("float32", [2, 2, 2, 3])
    assert document["coords"]["t"]["data"] == ["2023-01-03T00:00:00", "2023-01-08T00:00:00"]
    assert document["coords"]["t"]["attrs"] == {"dtype": "datetime64[ns]", "shape": [2]}
    assert "spatial_ref" not in document["coords"]
    assert document["data"][0][0][0][0] is None  # NaN
    restored = XarrayIO.from_json(document)
    xr.testing.assert_equal(restored.transpose(*cube.dims), cube.drop_vars("spatial_ref").compute(scheduler="threads"))


# --- vector cubes -----------------------------------------------------------------------------


def test_timeseries_json_maps_dates_to_values_per_geometry_and_band(tmp_path):
    cube = vector()

    (asset,) = save_result(cube, "JSON", None, tmp_path, crs_epsg=EPSG)

    assert (asset.key, asset.media_type, asset.bands) == ("timeseries.json", "application/json", ("B04", "B08"))
    assert (asset.start_datetime, asset.end_datetime) == ("2023-01-03T00:00:00Z", "2023-12-31T21:41:00Z")
    document = json.loads(asset.path.read_text())
    assert list(document) == ["2023-01-03T00:00:00Z", "2023-01-08T00:00:00Z", "2023-12-31T21:41:00Z"]
    assert document["2023-01-03T00:00:00Z"] == [[0.0, 0.25], [None, None], [3.0, 3.25]]
    assert document["2023-12-31T21:41:00Z"] == [[1.0, 1.25], [2.5, 2.75], [4.0, 4.25]]


def test_timeseries_json_without_time_is_a_list_per_geometry(tmp_path):
    (asset,) = save_result(vector(dates=None), "JSON", None, tmp_path, crs_epsg=EPSG)

    assert json.loads(asset.path.read_text()) == [[0.0, 0.25], [None, None], [1.0, 1.25]]
    assert asset.start_datetime is None


def test_csv_has_a_row_per_date_and_feature(tmp_path):
    (asset,) = save_result(vector(bands=None), "CSV", None, tmp_path, crs_epsg=EPSG)

    assert (asset.key, asset.media_type, asset.bands) == ("timeseries.csv", "text/csv", ("var",))
    lines = asset.path.read_text().splitlines()
    assert lines[:4] == [
        "date,feature_index,var",
        "2023-01-03T00:00:00.000Z,0,0.0",
        "2023-01-03T00:00:00.000Z,1,",
        "2023-01-03T00:00:00.000Z,2,1.5",
    ]
    assert lines[-1] == "2023-12-31T21:41:00.000Z,2,2.0"
    assert len(lines) == 1 + 3 * 3


def test_parquet_joins_statistics_with_geometries_in_wgs84(tmp_path):
    cube = vector(bands=("avg(B04)", "B/8"))

    (asset,) = save_result(cube, "GeoParquet", None, tmp_path, crs_epsg=EPSG)

    assert (asset.key, asset.media_type, asset.epsg) == ("timeseries.parquet", "application/parquet; profile=geo", 4326)
    frame = gpd.read_parquet(asset.path)
    assert list(frame.columns) == ["date", "feature_index", "avg_B04_", "B_8", "geometry"]
    assert frame.crs.to_epsg() == 4326
    assert str(frame["date"].dtype) == "datetime64[ns, UTC]"
    assert frame["feature_index"].tolist() == [0, 1, 2] * 3
    assert frame["date"].iloc[-1] == pd.Timestamp("2023-12-31T21:41:00Z")
    assert np.isnan(frame["avg_B04_"].iloc[1])
    assert frame["B_8"].iloc[-1] == 4.25
    lon, lat = pyproj.Transformer.from_crs(EPSG, 4326, always_xy=True).transform(X0 + 5, Y0 - 5)
    assert frame.geometry.iloc[2].coords[0] == pytest.approx((lon, lat))
    assert asset.bbox == pytest.approx(tuple(frame.total_bounds))


def test_geojson_flattens_dates_and_bands_into_properties(tmp_path):
    (asset,) = save_result(vector(), "GeoJSON", None, tmp_path, crs_epsg=EPSG)

    assert (asset.key, asset.media_type, asset.epsg) == ("vectorcube.geojson", "application/geo+json", 4326)
    document = json.loads(asset.path.read_text())
    assert document["type"] == "FeatureCollection"
    features = document["features"]
    assert [f["id"] for f in features] == ["0", "1", "2"]
    assert features[1]["properties"]["feature_index"] == 1
    assert features[1]["properties"]["2023-01-03T00:00:00Z~B04"] is None
    assert features[2]["properties"]["2023-12-31T21:41:00Z~B08"] == 4.25
    assert len(features[0]["properties"]) == 1 + 3 * 2
    lon, lat = pyproj.Transformer.from_crs(EPSG, 4326, always_xy=True).transform(X0 + 5, Y0 - 5)
    assert features[2]["geometry"] == {"type": "Point", "coordinates": [pytest.approx(lon), pytest.approx(lat)]}


def test_geojson_without_time_names_properties_by_band(tmp_path):
    (asset,) = save_result(vector(dates=None), "geojson", None, tmp_path, crs_epsg=EPSG)

    properties = json.loads(asset.path.read_text())["features"][2]["properties"]
    assert properties == {"feature_index": 2, "B04": 1.0, "B08": 1.25}


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["PNG", "GPKG", ""])
def test_unknown_format_names_the_supported_ones(tmp_path, format):
    with pytest.raises(ValueError, match=rf"unsupported format '{format}'.*GTiff.*GeoJSON"):
        save_result(raster(), format, None, tmp_path, crs_epsg=EPSG)


@pytest.mark.parametrize("format", ["CSV", "parquet", "GeoJSON"])
def test_raster_cube_to_a_vector_format_is_refused(tmp_path, format):
    with pytest.raises(ValueError, match=rf"format '{format}' cannot hold a raster cube.*GTiff, netCDF, Zarr or JSON"):
        save_result(raster(), format, None, tmp_path, crs_epsg=EPSG)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("format", ["GTiff", "netCDF"])
def test_vector_cube_to_a_raster_format_is_refused(tmp_path, format):
    with pytest.raises(
        ValueError, match=rf"format '{format}' cannot hold a vector cube.*JSON, CSV, Parquet or GeoJSON"
    ):
        save_result(vector(), format, None, tmp_path, crs_epsg=EPSG)


@pytest.mark.parametrize(
    ("cube", "message"),
    [
        (raster().rename(t="time"), "needs dims x and y"),
        (raster(dates=None, bands=None, shape=(1, 1)), "pixel size of a 1x1 raster"),
    ],
)
def test_unwritable_raster_cubes_are_refused(tmp_path, cube, message):
    with pytest.raises(ValueError, match=message):
        save_result(cube, "GTiff", None, tmp_path, crs_epsg=EPSG)


@pytest.mark.parametrize("prefix", ["../escape", "a/b"])
def test_filename_prefix_must_be_a_file_name(tmp_path, prefix):
    with pytest.raises(ValueError, match="filename_prefix"):
        save_result(raster(), "GTiff", {"filename_prefix": prefix}, tmp_path, crs_epsg=EPSG)


def test_zarr_is_a_consolidated_store_with_one_variable_per_band(tmp_path):
    import xarray as xr

    (asset,) = save_result(raster(), "ZARR", None, tmp_path, crs_epsg=EPSG)
    assert asset.key == "openEO.zarr" and asset.path.is_dir() and asset.media_type == "application/vnd+zarr"
    assert asset.file_size > 0 and asset.member(".zmetadata") is not None and asset.member("../x") is None
    ds = xr.open_zarr(asset.path, consolidated=True)
    assert set(ds.data_vars) >= set(asset.bands) and "crs_wkt" in ds["crs"].attrs
