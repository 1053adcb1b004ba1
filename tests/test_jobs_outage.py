"""The backend goes down while a job is waited for: real sockets, connection refused, same port again.

``LocalBackend.pause()`` closes the API server's listening socket and its open keep-alive connections
(so every request is refused) while the job keeps running on the backend; ``resume()`` serves again on
the same port with the same jobs and tokens. The connections here are made with ``retry=False``: the
openeo client's own urllib3 retries (3, with 5 s and 10 s pauses) would otherwise hide a short outage
from the code under test, and make these tests slow.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import numpy as np
import openeo
import pytest
import requests
from conftest import SMALL_EXTENT, expected_ndvi

import xr_openeo
from xr_openeo import jobs
from xr_openeo.errors import JobError, JobTimeoutError, XrOpenEOError
from xr_openeo.jobs import PollSchedule
from xr_openeo.results import redact
from xr_openeo.testing import TEST_USER

FAST = PollSchedule(min_interval=0.05)


def plain_connection(backend):
    """An authenticated connection without the openeo client's own retries."""
    return openeo.connect(backend.url, retry=False).authenticate_basic(*TEST_USER)


def ndvi_job(connection, **faults):
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, temporal_extent=["2023-01-01", "2023-01-31"], bands=["B04", "B08"]
    )
    return cube.ndvi(red="B04", nir="B08"), {"faults": faults}


def until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def refused(backend) -> bool:
    try:
        requests.get(backend.url, timeout=2)
    except requests.ConnectionError:
        return True
    return False


def transient_records(caplog):
    return [r for r in caplog.records if r.name == "xr_openeo.jobs" and "Transient error" in r.getMessage()]


def test_pause_refuses_connections_and_resume_keeps_port_jobs_and_tokens(backend):
    connection = plain_connection(backend)
    cube, options = ndvi_job(connection, run_duration=0.5)
    job = cube.create_job(job_options=options)
    job.start()
    port, url = backend.port, backend.url
    assert job.describe()["status"] in ("queued", "running")  # a pooled keep-alive connection exists now

    backend.pause()
    assert backend.port == port and backend.url == url
    assert refused(backend)
    with pytest.raises(requests.ConnectionError, match="refused"):
        job.describe()  # the pooled connection was closed too: not served by a lingering handler
    time.sleep(0.8)  # the job finishes while the API is down
    backend.resume()

    assert backend.port == port and not refused(backend)
    assert job.describe()["status"] == "finished"  # same job, same token
    with pytest.raises(RuntimeError, match="not paused"):
        backend.resume()


def test_compute_batch_waits_out_an_outage(backend, caplog):
    """The backend refuses connections for ~2.5 s while the job runs; compute_batch retries and returns it."""
    connection = plain_connection(backend)
    cube, options = ndvi_job(connection, run_duration=3.0)
    outage = {}

    def take_down_for_a_while():
        # Once the waiter has seen the job running (a polled GET /jobs/{id} answered "running"):
        until(
            lambda: any(
                isinstance(r.json_body, dict) and r.json_body.get("status") == "running" for r in backend.requests
            )
        )
        backend.pause()
        outage["refused"] = refused(backend)
        time.sleep(2.5)
        backend.resume()

    port = backend.port
    outage_thread = threading.Thread(target=take_down_for_a_while, daemon=True)
    outage_thread.start()
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, logger="xr_openeo"):
        ds = xr_openeo.compute_batch(cube, job_options=options, progress=False)
    took = time.monotonic() - t0
    outage_thread.join(10)

    assert outage["refused"] and backend.port == port
    # The right data, read after the outage.
    (name,) = ds.data_vars
    values = ds[name].values
    np.testing.assert_allclose(values, np.stack([expected_ndvi(i) for i in range(values.shape[0])]), rtol=1e-6)

    # Retried, with backoff, boundedly, and visibly: one WARNING per retry, one when the backend answered again.
    retries = transient_records(caplog)
    assert 1 <= len(retries) <= 4, [r.getMessage() for r in retries]
    assert all(r.levelno == logging.WARNING for r in retries)
    assert all("ConnectionError" in r.getMessage() and "refused" in r.getMessage() for r in retries)
    delays = [float(re.search(r"retrying in ([\d.]+) s", r.getMessage()).group(1)) for r in retries]
    assert delays == sorted(delays) and delays[0] == 1.0  # exponential: 1, 2, 4 s
    back = [r.getMessage() for r in caplog.records if "answered again" in r.getMessage()]
    assert len(back) == 1 and f"after {len(retries)} transient error(s)" in back[0]
    # No request was lost or repeated: the job was started once, and it is the one opened.
    starts = [r for r in backend.requests if r.method == "POST" and r.path.endswith("/results")]
    assert len(starts) == 1 and ds.openeo.job_id in starts[0].path
    # Back within a few seconds of the backend: outage 2.5 s, job 3 s, at most a 4 s backoff step.
    assert took < 3.0 + 2.5 + 4.0 + 3.0


def test_an_outage_longer_than_the_retry_budget_is_a_clear_error(backend, caplog):
    connection = plain_connection(backend)
    cube, options = ndvi_job(connection, run_duration=1.5)
    job = xr_openeo.jobs.as_batch_job(cube, job_options=options)
    job.start()
    until(lambda: job.describe()["status"] == "running")

    def sleep(seconds):  # the backend goes down after the first poll, which saw the job running
        if not paused:
            backend.pause()
            paused.append(True)
        time.sleep(seconds)

    paused: list[bool] = []

    try:
        with caplog.at_level(logging.WARNING, logger="xr_openeo"), pytest.raises(JobError) as info:
            jobs.wait(job, progress=False, schedule=FAST, max_retries=3, max_backoff=0.1, sleep=sleep)
    finally:
        backend.resume()

    error = info.value
    assert type(error) is JobError and not isinstance(error, JobTimeoutError)
    assert isinstance(error, XrOpenEOError) and not isinstance(error, requests.RequestException)
    assert isinstance(error.__cause__, requests.ConnectionError)  # kept as the cause, not raised
    message = str(error)
    assert error.job_id == job.job_id and error.http_status is None
    assert f"on {redact(backend.url)}:" in message
    assert "4 transient errors in a row" in message and "ConnectionError ([Errno" in message
    assert "keeps running on the backend" in message and "'running' when last seen" in message
    assert f"xr_openeo.jobs.wait(connection.job({job.job_id!r}))" in message
    assert f"xr_openeo.open_results(connection.job({job.job_id!r}))" in message
    assert "HTTPConnectionPool" not in message and len(message) < 800
    assert len(transient_records(caplog)) == 3

    # What the message says works: the job ran on, and reattaching by id gives its results.
    again = connection.job(job.job_id)
    assert jobs.wait(again, progress=False, schedule=FAST)["status"] == "finished"
    ds = xr_openeo.open_results(again)
    assert ds.openeo.job_id == job.job_id and len(ds.data_vars) == 1


def test_an_outage_from_the_start_of_the_wait_says_the_status_is_unknown(backend):
    connection = plain_connection(backend)
    cube, options = ndvi_job(connection)
    job = xr_openeo.jobs.as_batch_job(cube, job_options=options)
    backend.pause()
    try:
        with pytest.raises(JobError, match="status is unknown: if it was started, it keeps running") as info:
            jobs.wait(job, progress=False, max_retries=1, max_backoff=0.05)
    finally:
        backend.resume()
    assert "poll the status of" in str(info.value) and "starts it if needed" in str(info.value)
    assert job.status() == "created"


def test_timeout_during_an_outage_is_a_timeout_and_the_job_keeps_running(backend):
    connection = plain_connection(backend)
    cube, options = ndvi_job(connection, run_duration=30)
    job = xr_openeo.jobs.as_batch_job(cube, job_options=options)
    job.start()
    backend.pause()
    try:
        t0 = time.monotonic()
        with pytest.raises(JobTimeoutError, match="keeps running"):
            jobs.wait(job, progress=False, timeout=0.5, max_backoff=0.2)
        assert time.monotonic() - t0 < 3
    finally:
        backend.resume()
    assert job.status() in ("queued", "running")


def test_interrupt_during_an_outage_reraises_and_says_the_job_could_not_be_canceled(backend, caplog):
    connection = plain_connection(backend)
    cube, options = ndvi_job(connection, run_duration=30)
    job = xr_openeo.jobs.as_batch_job(cube, job_options=options)
    job.start()
    backend.pause()

    def interrupt(seconds):
        raise KeyboardInterrupt

    try:
        with caplog.at_level(logging.ERROR, logger="xr_openeo"), pytest.raises(KeyboardInterrupt):
            jobs.wait(job, progress=False, sleep=interrupt)
    finally:
        backend.resume()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "canceling batch job" in errors[0] and "refused" in errors[0]
    assert f"connection.job({job.job_id!r}).stop()" in errors[0]
    assert job.status() in ("queued", "running")  # not canceled: the cancel request never arrived
    job.stop()
