"""xr_openeo.execute end to end on the local backend: the same objects as compute_batch, without a batch job."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import SMALL_EXTENT, expected_ndvi, two_polygons

import xr_openeo
from xr_openeo.errors import NoJobError


def ndvi_cube(connection, dates=("2023-01-01", "2023-01-31")):
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, temporal_extent=list(dates), bands=["B04", "B08"]
    )
    return cube.ndvi(red="B04", nir="B08", target_band="NDVI")


def described(obj):
    """``obj`` without the attributes that say where it came from (job id, request id, backend…)."""
    obj = obj.copy()
    obj.attrs = {k: v for k, v in obj.attrs.items() if not k.startswith("openeo:")}
    for var in obj.variables.values():
        var.attrs = {k: v for k, v in var.attrs.items() if not k.startswith("openeo:")}
    return obj


def assert_same_result(sync: xr.Dataset, batch: xr.Dataset) -> None:
    """Dims, coordinates, names, dtypes, attributes that describe data, CRS, nodata and values agree."""
    xr.testing.assert_identical(described(sync.load()), described(batch.load()))
    assert sync.rio.crs == batch.rio.crs if "spatial_ref" in batch.coords else "spatial_ref" not in sync.coords
    for name in batch.data_vars:
        a, b = sync[name], batch[name]
        assert a.dtype == b.dtype
        assert repr(a.encoding.get("_FillValue")) == repr(b.encoding.get("_FillValue"))
        if "spatial_ref" in batch.coords:
            assert repr(a.rio.nodata) == repr(b.rio.nodata)
            assert repr(a.rio.encoded_nodata) == repr(b.rio.encoded_nodata)


def batch_posts(backend) -> int:
    return sum(1 for r in backend.requests if r.method == "POST" and r.path.endswith("/jobs"))


@pytest.mark.parametrize(
    ("fmt", "dates"),
    [
        ("GTiff", ("2023-01-01", "2023-01-31")),  # three files: a tar archive with a results document
        ("GTiff", ("2023-01-06", "2023-01-07")),  # one file: the body is the GeoTIFF itself
        ("netCDF", ("2023-01-01", "2023-01-31")),
    ],
)
def test_execute_equals_compute_batch_for_rasters(backend, connection, fmt, dates):
    cube = ndvi_cube(connection, dates)
    sync = xr_openeo.execute(cube, format=fmt)
    assert not backend.state.jobs.jobs  # no batch job was made
    batch = xr_openeo.compute_batch(cube, out_format=fmt, progress=False)
    assert_same_result(sync, batch)
    assert sync.NDVI.chunks is None  # a small answer comes back loaded
    lazy = xr_openeo.execute(cube, format=fmt, chunks={})
    assert lazy.NDVI.chunks is not None  # with chunks: dask-backed, as compute_batch
    assert_same_result(lazy, batch)
    lazy.close()
    first = 0 if dates[0] == "2023-01-01" else 1
    np.testing.assert_allclose(sync.NDVI.isel(t=0).values, expected_ndvi(first), rtol=1e-6, equal_nan=True)
    assert batch_posts(backend) == 1


@pytest.mark.parametrize("fmt", ["JSON", "CSV", "Parquet", "GeoJSON"])
def test_execute_equals_compute_batch_for_time_series(backend, connection, fmt):
    series = ndvi_cube(connection).aggregate_spatial(two_polygons(), "mean")
    sync = xr_openeo.execute(series, format=fmt)
    batch = xr_openeo.compute_batch(series, out_format=fmt, progress=False)
    assert sync.sizes == {"feature": 2, "t": 3} and list(sync.data_vars) == ["B04", "B08", "NDVI"]
    assert_same_result(sync, batch)
    # as_frame=True: the DataFrame open_dataframe gives for the batch job's results.
    frame = xr_openeo.execute(series, format=fmt, as_frame=True)
    expected = xr_openeo.open_dataframe(connection.job(batch.openeo.job_id))
    pd.testing.assert_frame_equal(frame, expected)
    assert frame.attrs["openeo:request_id"].startswith("r-") and frame.attrs["openeo:job_id"] == ""


def test_the_accessor_shows_how_it_was_made(backend, connection):
    cube = ndvi_cube(connection, ("2023-01-06", "2023-01-07"))
    ds = xr_openeo.execute(cube, job_options={"faults": {"sync_costs": 2.5}})
    acc = ds.openeo
    assert acc.job_id is None and acc.results_url is None and acc.is_executed and not acc.is_deferred
    assert acc.request_id.startswith("r-") and acc.backend == connection.root_url.rstrip("/")
    assert acc.costs == 2.5
    assert acc.process_graph == cube.save_result("GTiff").flat_graph()
    assert acc.request_id in repr(acc) and "synchronous" in repr(acc) and "2.5" in repr(acc)
    assert acc.request_id in acc._repr_html_()
    assert ds.NDVI.attrs["openeo:request_id"] == acc.request_id  # kept by ds.NDVI.to_dataset()
    with pytest.raises(NoJobError, match="synchronous processing"):
        acc.status()
    # The accessor forms: run a deferred graph, or the same graph again.
    again = xr_openeo.from_cube(cube).openeo.execute()
    xr.testing.assert_identical(described(again), described(ds))
    assert again.openeo.request_id != acc.request_id
    assert acc.execute().openeo.request_id not in (acc.request_id, again.openeo.request_id)
    assert batch_posts(backend) == 0


def test_a_graph_dict_with_a_connection_runs_too(backend, connection):
    graph = ndvi_cube(connection, ("2023-01-06", "2023-01-07")).flat_graph()
    ds = xr_openeo.execute(graph, connection=connection, format="netCDF")
    assert ds.attrs["openeo:assets"] == ["openEO.nc"]
    np.testing.assert_allclose(ds.NDVI.isel(t=0).values, expected_ndvi(1), rtol=1e-6, equal_nan=True)
    with pytest.raises(TypeError, match="not bound"):
        xr_openeo.execute(ds)


def test_the_clients_download_gives_the_bytes_execute_opens(backend, connection, tmp_path):
    cube = ndvi_cube(connection)
    cube.download(tmp_path / "ndvi.nc")  # the client's own synchronous path
    with xr.open_dataset(tmp_path / "ndvi.nc", engine="h5netcdf") as downloaded:
        ds = xr_openeo.execute(cube, format="netCDF")
        np.testing.assert_array_equal(ds.NDVI.values, downloaded["NDVI"].values)
        np.testing.assert_array_equal(ds.t.values, downloaded.t.values)
