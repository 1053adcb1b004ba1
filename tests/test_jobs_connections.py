"""No hidden process state: a dataset carries the connection it was opened with (never into a pickle); nothing
is looked up in a per-process registry of connections."""

from __future__ import annotations

import copy
import pickle

import pytest
from conftest import SMALL_EXTENT

import xr_openeo
from xr_openeo import jobs
from xr_openeo.errors import JobNotFoundError, XrOpenEOError
from xr_openeo.jobs import PollSchedule

FAST = PollSchedule(min_interval=0.05)


def finished_job(connection):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])
    job = jobs.as_batch_job(cube)
    jobs.wait(job, progress=False, schedule=FAST)
    return job


def test_the_jobs_package_keeps_no_registry():
    for name in ("remember_connection", "connection_for", "_CONNECTIONS", "_SUBMITTED_OPTIONS"):
        assert not hasattr(jobs, name)


def test_each_dataset_keeps_its_own_connection(backend, connection):
    """Two users of one backend: the dataset opened last does not change whom the first one asks as."""
    bob = backend.connect(user=("bob", "bob123"))
    alice_ds = xr_openeo.open_results(finished_job(connection))
    bob_ds = xr_openeo.open_results(finished_job(bob).job_id, connection=bob)
    assert alice_ds.openeo.status() == "finished" and bob_ds.openeo.status() == "finished"
    assert alice_ds.openeo.job.connection is connection and bob_ds.openeo.job.connection is bob
    # Copies and selections keep it.
    for derived in (alice_ds.copy(), copy.deepcopy(alice_ds), alice_ds[["B04"]], alice_ds.isel(t=[0])):
        assert derived.openeo.job.connection is connection
    # Asking as the other user is possible, explicitly, and the backend says it is not bob's job.
    with pytest.raises(JobNotFoundError):
        alice_ds.openeo.status(connection=bob)


def test_without_a_connection_the_accessor_says_how_to_give_one(backend, connection):
    job = finished_job(connection)
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    canonical = next(link["href"] for link in doc["links"] if link["rel"] == "canonical")
    ds = xr_openeo.open_results(canonical)  # a signed URL: no login, no connection
    with pytest.raises(XrOpenEOError, match="carries no connection.*pass connection="):
        ds.openeo.status()
    assert ds.openeo.status(connection=connection) == "finished"
    assert ds.openeo.logs(connection=connection)["message"].iloc[0] == "Job created"


def test_a_pickle_carries_no_connection_and_no_token(backend, connection):
    ds = xr_openeo.open_results(finished_job(connection))
    token = connection.auth.bearer
    assert token and ds.openeo.status() == "finished"
    data = pickle.dumps(ds)
    assert token.encode() not in data
    restored = pickle.loads(data)
    with pytest.raises(XrOpenEOError, match="carries no connection"):
        restored.openeo.status()
    assert restored.openeo.status(connection=connection) == "finished"
    assert "not pickled" in repr(ds.encoding["openeo:connection"]) and token not in repr(ds.encoding)
