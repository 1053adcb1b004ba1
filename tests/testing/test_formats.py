"""Every output format, end to end: a job on the local backend yields readable files of the documented layout."""

from __future__ import annotations

import io
import json

import geopandas as gpd
import h5netcdf
import numpy as np
import pandas as pd
import pytest
import requests
import xarray as xr
from conftest import SMALL, SMALL_EXTENT, two_polygons

from xr_openeo.testing import synthetic_pixels

DATES = ["2023-01-01T00:00:00Z", "2023-01-06T00:00:00Z", "2023-01-11T00:00:00Z"]


def run(connection, cube, out_format):
    job = cube.create_job(out_format=out_format)
    job.start_and_wait(max_poll_interval=0.1)
    assets = job.get_results().get_assets()
    return job, {a.key: a for a in assets}


def bands_cube(connection):
    return connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])


def timeseries_cube(connection):
    return bands_cube(connection).aggregate_spatial(two_polygons(), "mean")


def test_netcdf_is_cf_with_t_y_x_a_crs_variable_and_one_variable_per_band(backend, connection):
    _, assets = run(connection, bands_cube(connection), "netCDF")
    assert list(assets) == ["openEO.nc"]
    asset = assets["openEO.nc"]
    assert asset.media_type == "application/x-netcdf"
    data = requests.get(asset.href, timeout=10).content
    with h5netcdf.File(io.BytesIO(data), "r") as f:
        assert f.attrs["Conventions"] == "CF-1.9"
        assert set(f.variables) >= {"t", "x", "y", "crs", "B04", "B08"}
        assert f["B04"].dimensions == ("t", "y", "x")
        assert f["B04"].attrs["grid_mapping"] == "crs"
        assert "crs_wkt" in f["crs"].attrs
        assert f["t"].attrs["units"] == "days since 1990-01-01"
    ds = xr.open_dataset(io.BytesIO(data), engine="h5netcdf")
    assert [str(t)[:10] for t in ds.t.values] == ["2023-01-01", "2023-01-06", "2023-01-11"]
    assert ds.y.values[0] > ds.y.values[-1] and ds.x.values[0] == 640005.0
    expected = synthetic_pixels(SMALL.seed, 2, 1, np.arange(256), np.arange(256))
    # _FillValue is the collection's nodata (0), which xarray decodes to NaN.
    assert ds.B04.encoding["_FillValue"] == 0 and (expected == 0).any()
    np.testing.assert_array_equal(ds.B04.isel(t=1).values, np.where(expected == 0, np.nan, expected))
    ds.close()


def test_json_time_series_is_date_geometry_band(backend, connection):
    _, assets = run(connection, timeseries_cube(connection), "JSON")
    assert list(assets) == ["timeseries.json"]
    series = requests.get(assets["timeseries.json"].href, timeout=10).json()
    assert sorted(series) == DATES
    for per_geometry in series.values():
        assert len(per_geometry) == 2 and all(len(per_band) == 2 for per_band in per_geometry)
        assert all(v is None or 1 <= v <= 10000 for per_band in per_geometry for v in per_band)
    # The openeo client's own parser accepts it.
    from openeo.rest.conversions import timeseries_json_to_pandas

    frame = timeseries_json_to_pandas(series)
    assert frame.shape == (3, 4)


def test_csv_time_series(backend, connection):
    _, assets = run(connection, timeseries_cube(connection), "CSV")
    assert list(assets) == ["timeseries.csv"] and assets["timeseries.csv"].media_type == "text/csv"
    frame = pd.read_csv(io.StringIO(requests.get(assets["timeseries.csv"].href, timeout=10).text))
    assert list(frame.columns) == ["date", "feature_index", "B04", "B08"]
    assert len(frame) == 6 and sorted(frame.feature_index.unique()) == [0, 1]
    assert frame.date.iloc[0] == "2023-01-01T00:00:00.000Z"


def test_parquet_is_geoparquet_in_lonlat(backend, connection, tmp_path):
    _, assets = run(connection, timeseries_cube(connection), "Parquet")
    asset = assets["timeseries.parquet"]
    assert asset.media_type == "application/parquet; profile=geo"
    path = tmp_path / "ts.parquet"
    path.write_bytes(requests.get(asset.href, timeout=10).content)
    frame = gpd.read_parquet(path)
    assert frame.crs.to_epsg() == 4326
    assert {"date", "feature_index", "B04", "B08", "geometry"} <= set(frame.columns)
    assert len(frame) == 6
    assert frame.geometry.iloc[0].bounds[0] == pytest.approx(5.0, abs=0.1)


def test_geojson_vector_cube(backend, connection):
    _, assets = run(connection, timeseries_cube(connection), "GeoJSON")
    asset = assets["vectorcube.geojson"]
    assert asset.media_type == "application/geo+json"
    collection = json.loads(requests.get(asset.href, timeout=10).content)
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 2
    properties = collection["features"][0]["properties"]
    assert f"{DATES[0]}~B04" in properties and f"{DATES[2]}~B08" in properties


def test_raster_json_is_xarray_json(backend, connection):
    _, assets = run(
        connection,
        bands_cube(connection).filter_bbox(west=640000, south=5689920, east=640080, north=5690000, crs=32631),
        "JSON",
    )
    doc = requests.get(next(iter(assets.values())).href, timeout=10).json()
    restored = xr.DataArray.from_dict(doc)
    assert restored.sizes["t"] == 3 and restored.sizes["bands"] == 2


def test_a_format_that_does_not_fit_the_cube_fails_the_job_with_a_clear_message(backend, connection):
    import openeo

    job = bands_cube(connection).create_job(out_format="CSV")
    with pytest.raises(openeo.rest.JobFailedException):
        job.start_and_wait(max_poll_interval=0.1, show_error_logs=False)
    assert "CSV" in job.logs(level="error")[0]["message"]
