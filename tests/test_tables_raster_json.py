"""Rasters saved as JSON, as openeo-python-driver (the openeo client's XarrayIO) and the local backend write them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import requests
import xarray as xr
from conftest import SMALL, SMALL_EXTENT, two_polygons
from openeo.udf.xarraydatacube import XarrayIO

from xr_openeo.errors import AssetReadError
from xr_openeo.readers.tables import is_raster_json, read_json, read_raster_json, read_table
from xr_openeo.results import AssetSpec
from xr_openeo.testing import synthetic_pixels


def spec(key: str = "openEO.json", bands: tuple[str, ...] = (), **kw) -> AssetSpec:
    return AssetSpec(key, f"https://be.example/results/{key}", "application/json", bands=bands, **kw)


def cube(dtype: str = "float32") -> xr.DataArray:
    values = np.arange(2 * 2 * 3 * 4, dtype=dtype).reshape(2, 2, 3, 4)
    return xr.DataArray(
        values,
        dims=("t", "bands", "y", "x"),
        coords={
            "t": pd.DatetimeIndex(["2023-01-01", "2023-01-06T12:30:00"]),
            "bands": ["B04", "B08"],
            "y": [5690005.0, 5689995.0, 5689985.0],
            "x": [640005.0, 640015.0, 640025.0, 640035.0],
        },
    )


def client_json(array: xr.DataArray, tmp_path) -> bytes:
    """What openeo-python-driver writes for ``save_result(raster, "JSON")``: ``XarrayIO.to_json_file``."""
    path = tmp_path / "openEO.json"
    XarrayIO.to_json_file(array, path)
    return path.read_bytes()


def test_the_clients_raster_json_reads_back_exactly(tmp_path):
    array = cube()
    array[0, 1, 2, 3] = np.nan
    data = client_json(array, tmp_path)
    assert b"NaN" in data and b'"2023-01-06 12:30:00"' in data  # bare NaN tokens, str() datetimes
    assert is_raster_json(json.loads(data))
    ds = read_raster_json(data, spec())
    xr.testing.assert_identical(ds, array.to_dataset(dim="bands"))
    assert ds.t.dtype == np.dtype("datetime64[ns]") and ds.B08.dtype == np.float32


@pytest.mark.parametrize("dtype", ["uint16", "int8", "float64"])
def test_the_clients_raster_json_keeps_its_dtype(tmp_path, dtype):
    array = cube(dtype)
    ds = read_raster_json(client_json(array, tmp_path), spec())
    assert ds.B04.dtype == np.dtype(dtype)
    xr.testing.assert_identical(ds, array.to_dataset(dim="bands"))


def test_a_crs_written_by_rioxarray_survives(tmp_path):
    import rioxarray  # noqa: F401  (registers .rio)

    array = cube().rio.write_crs(32631)
    ds = read_raster_json(client_json(array, tmp_path), spec())
    assert ds.rio.crs.to_epsg() == 32631 and float(ds.B08[1, 2, 3]) == float(array[1, 1, 2, 3])


def test_a_raster_without_time_or_band_coordinate(tmp_path):
    array = cube().isel(t=0, drop=True).drop_vars("bands")
    ds = read_raster_json(client_json(array, tmp_path), spec(bands=("red", "nir")))
    assert list(ds.data_vars) == ["red", "nir"] and ds.red.dims == ("y", "x")
    np.testing.assert_array_equal(ds.nir.values, array.values[1])


def test_raster_json_is_told_apart_from_tables(tmp_path):
    data = client_json(cube(), tmp_path)
    assert isinstance(read_json(data, spec()), xr.Dataset)
    with pytest.raises(AssetReadError, match="holds a raster"):
        read_table(data, spec())
    for table in ({"2023-01-01T00:00:00Z": [[1.0]]}, [[1.0, 2.0]], {"type": "FeatureCollection", "features": []}):
        assert not is_raster_json(table)


@pytest.mark.slow
def test_the_local_backends_json_results_are_told_apart_and_read(backend, connection):
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, temporal_extent=["2023-01-01", "2023-01-02"], bands=["B04"]
    )
    raster_job = cube.create_job(out_format="JSON")
    series_job = cube.aggregate_spatial(two_polygons(), "mean").create_job(out_format="JSON")
    docs = {}
    for name, job in (("raster", raster_job), ("series", series_job)):
        job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
        (asset,) = job.get_results().get_assets()
        bands = tuple(band["name"] for band in asset.metadata.get("eo:bands", []))
        docs[name] = (
            requests.get(asset.href, timeout=10).content,
            AssetSpec(asset.key, asset.href, asset.media_type, bands=bands),
        )
    data, raster_spec = docs["raster"]
    assert is_raster_json(json.loads(data))
    ds = read_raster_json(data, raster_spec)
    assert list(ds.data_vars) == ["B04"] and ds.B04.dims == ("t", "y", "x")
    assert ds.t.values.tolist() == [pd.Timestamp("2023-01-01").value]
    expected = synthetic_pixels(SMALL.seed, 2, 0, np.arange(SMALL.height), np.arange(SMALL.width))
    np.testing.assert_array_equal(ds.B04.values[0], expected)
    data, series_spec = docs["series"]
    assert not is_raster_json(json.loads(data))
    frame = read_table(data, series_spec)
    assert frame.index.names == ["t", "feature"] and list(frame.columns) == ["B04"] and len(frame) == 2
