"""The backend as a process (`python -m xr_openeo.testing`), its test-only endpoints, and the pytest fixture."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from conftest import validate_responses


def test_runs_as_a_process_with_a_remote_request_log_and_faults():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xr_openeo.testing",
            "--port",
            "0",
            "--dates",
            "2",
            "--size",
            "64",
            "64",
            "--faults",
            '{"latency": 0.01}',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("openEO API 1.2 at http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[4]
        root = url.rsplit("/openeo/", 1)[0]
        assert requests.get(f"{url}/", timeout=10).json()["api_version"] == "1.2.0"
        assert requests.get(f"{root}/_local/faults", timeout=10).json()["latency"] == 0.01
        changed = requests.put(f"{root}/_local/faults", json={"head_refused": True}, timeout=10).json()
        assert changed["head_refused"] is True and changed["latency"] == 0.0
        bad = requests.put(f"{root}/_local/faults", json={"nope": 1}, timeout=10)
        assert bad.status_code == 400 and "unknown fault switch" in bad.json()["message"]
        log = requests.get(f"{root}/_local/requests", timeout=10).json()
        assert [(r["method"], r["path"]) for r in log][:2] == [("GET", "/openeo/1.2/"), ("GET", "/_local/faults")]
        assert requests.delete(f"{root}/_local/requests", timeout=10).status_code == 204
        after = requests.get(f"{root}/_local/requests", timeout=10).json()
        assert [(r["method"], r["path"]) for r in after] == [("DELETE", "/_local/requests")]
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_the_pytest_fixture_gives_a_running_backend(local_backend, local_connection):
    assert local_connection.list_collection_ids() == ["SENTINEL2_L2A"]
    assert local_backend.url.startswith("http://127.0.0.1:")


def test_deleting_a_job_removes_it_and_its_files(backend, connection):
    from conftest import SMALL_EXTENT

    job = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"]).create_job(
        out_format="GTiff"
    )
    job.start_and_wait(max_poll_interval=0.1)
    out_dir = backend.job(job.job_id).out_dir
    assert any(out_dir.iterdir())
    job.delete()
    assert not out_dir.exists()
    assert connection.get(f"/jobs/{job.job_id}", expected_status=404).json()["code"] == "JobNotFound"


def test_the_spec_check_catches_a_bad_answer(backend, connection):
    from xr_openeo.testing.requestlog import RequestRecord

    connection.list_jobs()
    assert validate_responses(backend) >= 3  # capabilities, credentials, jobs: all checked
    bad = RequestRecord(
        method="GET",
        path="/openeo/1.2/jobs/j-1",
        query="",
        status=200,
        bytes_sent=0,
        headers={},
        started=0.0,
        duration=0.0,
        json_body={"id": "j-1", "status": "sleeping"},
    )
    backend.state.log.add(backend.state.log.begin(), bad)
    with pytest.raises(AssertionError, match="violates the openEO API 1.2 spec"):
        validate_responses(backend)
    backend.clear_requests()
