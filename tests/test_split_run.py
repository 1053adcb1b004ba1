"""Split runs end to end on the local backend: many jobs, resumable, opened as one lazy mosaic.

Every test compares the mosaic with what one job of the same graph gives (or with the values the
synthetic collection defines), and counts what the backend's request log shows: jobs created
(``POST /jobs``), jobs started, asset requests.
"""

from __future__ import annotations

import pickle
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL, SMALL_BLOCKSIZE, SMALL_EXTENT, expected_ndvi, until

import xr_openeo
from xr_openeo import Split
from xr_openeo.errors import JobFailedError
from xr_openeo.jobs.jobdb import open_job_db
from xr_openeo.many import PartialMosaicWarning
from xr_openeo.testing import Faults, LocalBackend, ManualClock

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def quick_polls():
    with xr_openeo.set_options(split_poll_interval=0.05):
        yield


def ndvi_cube(connection):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    return cube.ndvi(red="B04", nir="B08", target_band="NDVI")


def created(backend) -> int:
    return sum(1 for r in backend.requests if r.method == "POST" and r.path.endswith("/jobs"))


def started(backend) -> list[str]:
    return [r.path.split("/")[-2] for r in backend.requests if r.method == "POST" and r.path.endswith("/results")]


def asset_requests(backend) -> list:
    return [r for r in backend.requests if "/results/assets/" in r.path]


def assert_same(mosaic, one) -> None:
    assert mosaic.sizes == one.sizes and list(mosaic.data_vars) == list(one.data_vars)
    for name in ("t", "y", "x"):
        np.testing.assert_array_equal(mosaic[name].values, one[name].values)
    assert mosaic.rio.crs == one.rio.crs and mosaic.rio.transform() == one.rio.transform()
    for name in one.data_vars:
        np.testing.assert_array_equal(mosaic[name].values, one[name].values)


def test_a_4x4_split_equals_one_job_and_a_finished_split_opens_without_submitting(backend, connection, tmp_path):
    cube = ndvi_cube(connection)
    one = xr_openeo.compute_batch(cube, progress=False)
    db = tmp_path / "jobs.parquet"
    backend.clear_requests()
    mosaic = xr_openeo.compute_batch(cube, split=Split(tiles=(4, 4)), job_db=db, parallel_jobs=16, progress=False)
    assert created(backend) == 16 and len(set(started(backend))) == 16
    assert_same(mosaic, one)

    table = mosaic.openeo.jobs
    assert list(table.index) == [f"r{i}c{j}" for i in range(4) for j in range(4)]
    assert (table["status"] == "finished").all() and (table["east"] - table["west"] == 640).all()
    assert set(mosaic.attrs["openeo:jobs"]) == set(table["id"]) and mosaic.attrs["openeo:missing_pieces"] == []
    assert table["results_bytes"].sum() == sum(
        a.file_size for job_id in table["id"] for a in backend.job(job_id).assets
    )
    logs = mosaic.openeo.piece_logs("r2c3")
    assert "Job finished: 3 asset(s)" in list(logs["message"])
    assets = mosaic.openeo.assets  # every piece's files, under the keys the mosaic reads them by
    assert len(assets) == 48 and assets["opened"].all()
    assert {key.split("/")[0] for key in assets.index} == set(table.index)
    # The mosaic's graph pickles (for dask.distributed) without the token, and reads the same from the pickle.
    pickled = pickle.dumps(mosaic)
    assert connection.auth.bearer.encode() not in pickled
    np.testing.assert_array_equal(pickle.loads(pickled).NDVI.isel(t=2).values, one.NDVI.isel(t=2).values)

    # The same call again: nothing submitted, no asset read at open; a full read is one GET per file.
    backend.clear_requests()
    again = xr_openeo.compute_batch(cube, split=Split(tiles=(4, 4)), job_db=db, parallel_jobs=16, progress=False)
    assert created(backend) == 0 and started(backend) == [] and asset_requests(backend) == []
    xr_openeo.clear_caches()  # the first mosaic's windows, read above
    again.load()
    reads = asset_requests(backend)
    files = sum(a.file_size for job_id in table["id"] for a in backend.job(job_id).assets)
    assert len(reads) == 48 and all(r.status == 200 for r in reads)
    assert sum(r.bytes_sent for r in reads) == files
    assert_same(again, one)
    # ds.openeo.load() of the mosaic: every piece's file decoded into place, once
    lean = xr_openeo.compute_batch(cube, split=Split(tiles=(4, 4)), job_db=db, parallel_jobs=16, progress=False)
    xr_openeo.clear_caches()
    backend.clear_requests()
    lean.openeo.load()
    reads = asset_requests(backend)
    assert len(reads) == 48 and sum(r.bytes_sent for r in reads) == files
    assert_same(lean, one)


def test_a_4x4_split_of_netcdf_output_equals_one_job(backend, connection, tmp_path):
    cube = ndvi_cube(connection)
    one = xr_openeo.compute_batch(cube, out_format="netCDF", progress=False)
    mosaic = xr_openeo.compute_batch(
        cube, out_format="netCDF", split={"tiles": 16}, job_db=tmp_path / "jobs.csv", parallel_jobs=16, progress=False
    )
    assert len(mosaic.attrs["openeo:jobs"]) == 16
    assert_same(mosaic, one)


def test_a_split_in_time_and_space_equals_one_job(backend, connection, tmp_path):
    cube = ndvi_cube(connection)
    one = xr_openeo.compute_batch(cube, progress=False)
    backend.clear_requests()
    mosaic = xr_openeo.compute_batch(
        cube, split=Split(tiles=(2, 1), time=3), job_db=tmp_path / "jobs.csv", parallel_jobs=6, progress=False
    )
    assert created(backend) == 6
    assert_same(mosaic, one)
    table = mosaic.openeo.jobs
    assert list(table.index) == ["r0c0_t0", "r0c0_t1", "r0c0_t2", "r1c0_t0", "r1c0_t1", "r1c0_t2"]
    assert list(table["start"][:3]) == ["2023-01-01", "2023-01-05", "2023-01-08"]
    assert list(table["end"][:3]) == ["2023-01-05", "2023-01-08", "2023-01-12"]


def test_a_time_split_of_a_period_past_the_collections_dates_leaves_no_piece_without_data(
    backend, connection, tmp_path
):
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, temporal_extent=["2022-12-01", "2023-01-31"], bands=["B04"]
    )
    one = xr_openeo.compute_batch(cube, progress=False)
    mosaic = xr_openeo.compute_batch(cube, split={"time": 3}, job_db=tmp_path / "jobs.csv", progress=False)
    table = mosaic.openeo.jobs
    assert (table["status"] == "finished").all() and not table["failures"].fillna(0).any()
    assert table["start"].iloc[0] == "2023-01-01" and table["end"].iloc[-1] == "2023-01-12"  # the collection's
    assert_same(mosaic, one)


def test_a_split_of_load_stac_follows_the_grid_of_the_stac_document(backend, connection, tmp_path):
    source = xr_openeo.compute_batch(ndvi_cube(connection), progress=False)
    cube = connection.load_stac(source.openeo.share_url, bands=["NDVI"])
    one = xr_openeo.compute_batch(cube, progress=False)
    mosaic = xr_openeo.compute_batch(cube, split=Split(tiles=(1, 2)), job_db=tmp_path / "jobs.csv", progress=False)
    assert list(mosaic.openeo.jobs["west"]) == [640000, 641280]
    assert_same(mosaic, one)


def test_a_piece_that_fails_twice_is_retried_and_the_mosaic_is_complete(backend, connection, tmp_path):
    def flaky(piece):
        return {"faults": {"fail": "worker lost"}} if piece.name == "r0c1" and piece.failures < 2 else None

    backend.clear_requests()
    mosaic = xr_openeo.compute_batch(
        ndvi_cube(connection),
        split=Split(tiles=(2, 2)),
        job_db=tmp_path / "jobs.csv",
        parallel_jobs=4,
        job_options=flaky,
        progress=False,
    )
    assert created(backend) == 6
    row = mosaic.openeo.jobs.loc["r0c1"]
    assert row["status"] == "finished" and row["failures"] == 2 and "worker lost" in row["error"]
    failed = row["failed_jobs"].split(";")
    assert len(failed) == 2 and row["id"] not in failed
    assert all(backend.job(job_id).status == "error" for job_id in failed)
    for i in range(3):
        np.testing.assert_allclose(mosaic.NDVI.isel(t=i).values, expected_ndvi(i), rtol=1e-6, equal_nan=True)


def test_a_piece_that_always_fails_ends_the_run_unless_partial_results_are_allowed(backend, connection, tmp_path):
    def broken(piece):
        return {"faults": {"fail": "band B08 missing"}} if piece.name == "r1c0" else None

    cube, db = ndvi_cube(connection), tmp_path / "jobs.csv"
    with xr_openeo.set_options(split_retries=1):
        backend.clear_requests()
        with pytest.raises(JobFailedError, match=r"1 of 4 pieces.*r1c0: job j-\w+: band B08 missing") as info:
            xr_openeo.compute_batch(cube, split=(2, 2), job_db=db, job_options=broken, progress=False)
        assert created(backend) == 5  # 4 pieces, and one retry of r1c0
        assert info.value.logs[0]["piece"] == "r1c0" and "band B08 missing" in info.value.logs[0]["message"]

        backend.clear_requests()
        with pytest.warns(PartialMosaicWarning, match="without r1c0") as record:
            mosaic = xr_openeo.compute_batch(
                cube, split=(2, 2), job_db=db, job_options=broken, allow_partial=True, progress=False
            )
        assert created(backend) == 2  # a new run gives the failed piece its retries again; the rest is kept
        assert record[0].message.pieces == ("r1c0",)
    assert mosaic.attrs["openeo:missing_pieces"] == ["r1c0"] and mosaic.NDVI.shape == (3, 256, 256)
    ndvi = mosaic.NDVI.isel(t=0).values
    assert np.isnan(ndvi[128:, :128]).all()
    np.testing.assert_allclose(ndvi[:128], expected_ndvi(0)[:128], rtol=1e-6, equal_nan=True)

    # Fixed (the database keeps the static options only): the failed piece runs again, alone.
    backend.clear_requests()
    complete = mosaic.openeo.rerun_failed(progress=False)
    assert created(backend) == 1 and complete.attrs["openeo:missing_pieces"] == []
    np.testing.assert_allclose(complete.NDVI.isel(t=0).values, expected_ndvi(0), rtol=1e-6, equal_nan=True)


def test_a_job_created_but_never_started_is_started_when_the_run_resumes(backend, connection, tmp_path):
    from xr_openeo.jobs.jobdb import create_or_resume, pieces_frame, row_graph
    from xr_openeo.jobs.manager import run_pieces
    from xr_openeo.jobs.split import Piece

    graph = xr_openeo.jobs.prepare_process_graph(ndvi_cube(connection))[1]
    frame = pieces_frame([Piece("all")], [graph], run="r", title=None, description=None, job_options=None)
    db, _ = create_or_resume(tmp_path / "jobs.csv", frame, "r")
    job = connection.create_job(process_graph={"process_graph": row_graph(db.df.loc[0])})
    db.set(0, id=job.job_id, status="queued_for_start")  # as a run killed between creating and starting leaves it
    backend.clear_requests()
    run_pieces(db, connection, parallel_jobs=1, retries=0, poll_interval=0.05, progress=False)
    assert created(backend) == 0 and started(backend) == [job.job_id]
    assert db.df.loc[0, "status"] == "finished" and db.df.loc[0, "results_bytes"] > 0


INTERRUPTED_RUN = """
import signal
import sys
import openeo
import xr_openeo

# Ctrl-C as in a terminal, also when the suite runs where SIGINT is ignored (a background job, nohup)
signal.signal(signal.SIGINT, signal.default_int_handler)

url, db = sys.argv[1], sys.argv[2]
connection = openeo.connect(url).authenticate_basic("alice", "alice123")
extent = {"west": 640000, "south": 5687440, "east": 642560, "north": 5690000, "crs": 32631}
cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=extent, bands=["B04", "B08"])
cube = cube.ndvi(red="B04", nir="B08", target_band="NDVI")
with xr_openeo.set_options(split_poll_interval=0.05):
    xr_openeo.compute_batch(cube, split={"tiles": (2, 2)}, job_db=db, parallel_jobs=2, progress="text")
"""


def test_an_interrupted_run_resumes_submitting_only_the_missing_pieces(tmp_path):
    clock = ManualClock()
    with LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE, clock=clock, faults=Faults(run_duration=60)) as backend:
        script, db = tmp_path / "run.py", tmp_path / "jobs.csv"
        script.write_text(textwrap.dedent(INTERRUPTED_RUN))
        proc = subprocess.Popen(
            [sys.executable, str(script), backend.url, str(db)],
            cwd=tmp_path,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def two_running():
                if not db.exists():
                    return False
                rows = open_job_db(db).df
                running = [j for j in backend.state.jobs.jobs.values() if j.status == "running"]
                return rows["id"].notna().sum() == 2 and len(running) == 2

            until(two_running, "two jobs of the split run to be running")
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode != 0 and "KeyboardInterrupt" in err and "re-attach" in err
        assert re.search(
            r"Split run 'jobs.csv' \(4 pieces\): 0 done, (0 running, 2|1 running, 1|2 running, 0) queued, 2 to", err
        )
        first = {row["piece"]: row["id"] for _, row in open_job_db(db).df.iterrows() if row["id"]}
        assert len(first) == 2 and len(backend.state.jobs.jobs) == 2

        # While nobody watched, the two jobs finished; new jobs run at once.
        backend.set_faults(run_duration=0)
        clock.advance(61)
        backend.clear_requests()
        connection = backend.connect()
        with xr_openeo.set_options(split_poll_interval=0.05):
            mosaic = xr_openeo.compute_batch(
                ndvi_cube(connection), split={"tiles": (2, 2)}, job_db=db, parallel_jobs=2, progress=False
            )
        assert created(backend) == 2
        assert not set(started(backend)) & set(first.values())
        polled = {r.path.rsplit("/", 1)[1] for r in backend.requests if r.method == "GET" and "/jobs/j-" in r.path}
        assert set(first.values()) <= polled  # re-attached to the jobs of the interrupted run
        table = mosaic.openeo.jobs
        assert all(table.loc[piece, "id"] == job_id for piece, job_id in first.items())
        for i in range(3):
            np.testing.assert_allclose(mosaic.NDVI.isel(t=i).values, expected_ndvi(i), rtol=1e-6, equal_nan=True)


def test_expired_links_of_a_piece_are_renewed_through_its_own_results(clock, tmp_path):
    faults = Faults(url_validity=600)
    with LocalBackend(
        [SMALL], blocksize=SMALL_BLOCKSIZE, clock=clock, faults=faults, results_style="stac-1.1"
    ) as backend:
        connection = backend.connect()
        mosaic = xr_openeo.compute_batch(
            ndvi_cube(connection), split=Split(tiles=(1, 2)), job_db=tmp_path / "jobs.csv", progress=False
        )
        clock.advance(3600)  # every signed link of both pieces has expired
        backend.clear_requests()
        values = mosaic.NDVI.isel(t=1).values
        np.testing.assert_allclose(values, expected_ndvi(1), rtol=1e-6, equal_nan=True)
        refused = [r for r in asset_requests(backend) if r.status == 410]
        renewed = [r for r in backend.requests if r.method == "GET" and r.path.endswith("/results")]
        assert refused and len(renewed) == 2  # each piece's document fetched again, once
