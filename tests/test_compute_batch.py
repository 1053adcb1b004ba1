"""compute_batch, from_cube and the .openeo accessor, end to end on the local backend."""

from __future__ import annotations

import json
import os
import signal
import threading

import numpy as np
import pytest
import xarray as xr
from conftest import SMALL_EXTENT, expected_ndvi

import xr_openeo
from xr_openeo.errors import JobFailedError, JobTimeoutError


def ndvi_cube(connection, **load):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"], **load)
    return cube.ndvi(red="B04", nir="B08", target_band="NDVI")


def posts(backend) -> int:
    return sum(1 for r in backend.requests if r.method == "POST" and r.path.endswith("/jobs"))


def test_compute_batch_and_from_cube_give_the_expected_ndvi(backend, connection):
    cube = ndvi_cube(connection)
    plan = xr_openeo.from_cube(cube)
    assert not plan.data_vars and list(plan.bands.values) == ["B04", "B08", "NDVI"]
    assert "not computed yet" in repr(plan) and "not computed yet" in repr(plan.openeo)
    assert not [r for r in backend.requests if r.method == "POST"]  # from_cube sends nothing
    for ds in (plan.openeo.compute_batch(progress=False), xr_openeo.compute_batch(cube, progress=False)):
        assert ds.NDVI.chunks is not None  # dask-backed
        for i in range(3):
            np.testing.assert_allclose(ds.NDVI.isel(t=i).values, expected_ndvi(i), rtol=1e-6, equal_nan=True)
    assert posts(backend) == 2


def test_from_cube_shows_the_extents_the_graph_loads_not_the_collections(connection):
    whole = xr_openeo.from_cube(connection.load_collection("SENTINEL2_L2A", bands=["B04"]))
    assert "openeo:x_extent" in whole.attrs  # the collection's, as the client knows it
    box = {"west": 640000, "south": 5689000, "east": 640700, "north": 5690000, "crs": 32631}
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=box, temporal_extent=["2023-01-05", "2023-01-07"], bands=["B04"]
    )
    plan = xr_openeo.from_cube(cube)
    assert plan.attrs["openeo:temporal_extent"] == ["2023-01-05", "2023-01-07"]
    assert json.loads(plan.attrs["openeo:spatial_extent"]) == box
    assert "openeo:x_extent" not in plan.attrs and "openeo:y_extent" not in plan.attrs


def test_a_process_graph_dict_runs_too(backend, connection):
    graph = ndvi_cube(connection).flat_graph()
    ds = xr_openeo.compute_batch(graph, connection=connection, progress=False)
    assert set(ds.data_vars) == {"B04", "B08", "NDVI"}
    assert xr_openeo.compute_batch(graph, connection=connection, out_format="netCDF", progress=False).NDVI.dims == (
        "t",
        "y",
        "x",
    )


def test_a_failing_job_raises_with_the_backends_message(backend, connection):
    with pytest.raises(JobFailedError, match="quota exceeded") as info:
        xr_openeo.compute_batch(
            ndvi_cube(connection), job_options={"faults": {"fail": "quota exceeded"}}, progress=False
        )
    assert info.value.job_id and info.value.logs[0]["message"] == "quota exceeded"


def test_timeout_leaves_the_job_running(backend, connection):
    with pytest.raises(JobTimeoutError) as info:
        xr_openeo.compute_batch(
            ndvi_cube(connection), job_options={"faults": {"queue_duration": 30}}, timeout=1.5, progress=False
        )
    job_id = info.value.job_id
    assert job_id and connection.job(job_id).status() == "queued"
    connection.job(job_id).stop()


def test_ctrl_c_cancels_the_job(backend, connection):
    # Ctrl-C as in a terminal, also when the suite runs where SIGINT is ignored (a shell's background
    # job or nohup hands SIG_IGN down to pytest and its workers)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            xr_openeo.compute_batch(
                ndvi_cube(connection), job_options={"faults": {"queue_duration": 30}}, progress=False
            )
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    cancels = [r for r in backend.requests if r.method == "DELETE" and r.path.endswith("/results")]
    assert len(cancels) == 1
    job_id = cancels[0].path.split("/")[-2]
    assert connection.job(job_id).status() == "canceled"


def test_reuse_submits_no_new_job(backend, connection):
    first = xr_openeo.compute_batch(ndvi_cube(connection), progress=False)
    before = posts(backend)
    second = xr_openeo.compute_batch(ndvi_cube(connection), reuse=True, progress=False)
    assert posts(backend) == before
    assert second.openeo.job_id == first.openeo.job_id
    xr.testing.assert_equal(first.load(), second.load())
    other = xr_openeo.compute_batch(
        ndvi_cube(connection, temporal_extent=["2023-01-01", "2023-01-07"]), reuse=True, progress=False
    )
    assert posts(backend) == before + 1 and other.openeo.job_id != first.openeo.job_id


def test_the_accessor(backend, connection):
    ds = xr_openeo.compute_batch(ndvi_cube(connection), title="ndvi", progress=False)
    acc = ds.openeo
    assert acc.job_id and acc.status() == "finished"
    assert acc.job.job_id == acc.job_id
    assert acc.logs()["message"].str.startswith("Job finished").any()
    assert acc.logs(level="error").empty
    assert {n["process_id"] for n in acc.process_graph.values()} >= {"load_collection", "ndvi", "save_result"}
    table = acc.assets
    assert list(table.index) == ["openEO_2023-01-01Z.tif", "openEO_2023-01-06Z.tif", "openEO_2023-01-11Z.tif"]
    assert "REDACTED" in table.href.iloc[0] and table.bands.iloc[0] == ["B04", "B08", "NDVI"]
    assert acc.results_url.endswith(f"/jobs/{acc.job_id}/results")
    fresh = acc.refresh()
    xr.testing.assert_equal(fresh.load(), ds.load())
    remote = acc.cube
    assert "load_stac" in {n["process_id"] for n in remote.flat_graph().values()}
    html = acc._repr_html_()
    assert acc.job_id in html and "finished" in html and "created" in html and "openEO_2023-01-06Z.tif" in html
    again = acc.compute_batch(progress=False)
    assert again.openeo.job_id != acc.job_id
    xr.testing.assert_equal(again.load(), ds.load())


@pytest.mark.parametrize("first", ["xr_openeo", "openeo_processes_dask.process_implementations"])
def test_coexists_with_openeo_processes_dask_in_either_import_order(first):
    import subprocess
    import sys

    second = "openeo_processes_dask.process_implementations" if first == "xr_openeo" else "xr_openeo"
    code = (
        f"import {first}\nimport {second}\nimport xarray as xr\n"
        "assert hasattr(xr.Dataset, 'openeo') and hasattr(xr.DataArray, 'openeo')\n"
        "from openeo_processes_dask.process_implementations.cubes.reduce import reduce_dimension\n"
    )
    # Warnings are errors, except the third-party ones pyproject.toml lists (same modules, same reasons).
    ignores = [
        "ignore::DeprecationWarning:planetary_computer.sas",
        "ignore::ResourceWarning:openeo_processes_dask.specs",
        "ignore::DeprecationWarning:openeo_processes_dask.process_implementations.cubes.load",
    ]
    args = [sys.executable, "-W", "error", *[a for i in ignores for a in ("-W", i)], "-c", code]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
