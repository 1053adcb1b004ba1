"""The official openeo client drives the local backend through a batch job's whole lifecycle."""

from __future__ import annotations

import json
import time

import numpy as np
import openeo
import pytest
import rasterio
from conftest import SMALL_EXTENT, expected_ndvi


def ndvi_cube(connection, **kwargs):
    cube = connection.load_collection(
        "SENTINEL2_L2A",
        spatial_extent=SMALL_EXTENT,
        temporal_extent=["2023-01-01", "2023-01-31"],
        bands=["B04", "B08"],
        **kwargs,
    )
    return cube.ndvi(red="B04", nir="B08")


def test_full_lifecycle_with_the_openeo_client(backend, connection, tmp_path):
    job = ndvi_cube(connection).create_job(out_format="GTiff", title="ndvi")
    assert job.status() == "created"
    job.start_and_wait(max_poll_interval=0.1, connection_retry_interval=0.1)
    assert job.status() == "finished"
    assert job.describe()["progress"] == 100

    results = job.get_results()
    assets = results.get_assets()
    assert sorted(a.key for a in assets) == [
        "openEO_2023-01-01Z.tif",
        "openEO_2023-01-06Z.tif",
        "openEO_2023-01-11Z.tif",
    ]
    assert {a.media_type for a in assets} == {"image/tiff; application=geotiff; profile=cloud-optimized"}

    paths = results.download_files(tmp_path)
    assert sorted(p.name for p in paths) == sorted([a.key for a in assets] + ["job-results.json"])
    for i, name in enumerate(sorted(a.key for a in assets)):
        with rasterio.open(tmp_path / name) as ds:
            np.testing.assert_allclose(ds.read(1), expected_ndvi(i), rtol=1e-6, equal_nan=True)

    messages = [entry["message"] for entry in job.logs()]
    assert messages[0] == "Job created" and messages[-1].startswith("Job finished")
    assert any(m.startswith("load_collection SENTINEL2_L2A") for m in messages)
    assert job.job_id in [j["id"] for j in connection.list_jobs()]


def test_a_job_that_fails_ends_in_error_with_its_message_in_the_logs(backend, connection):
    # A real failure of the graph: an extent far away from the collection's.
    far = {"west": 10.0, "south": 45.0, "east": 10.1, "north": 45.1}
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=far, bands=["B04"])
    job = cube.create_job(out_format="GTiff")
    with pytest.raises(openeo.rest.JobFailedException):
        job.start_and_wait(max_poll_interval=0.1, show_error_logs=False)
    assert job.status() == "error"
    errors = job.logs(level="error")
    assert len(errors) == 1 and "does not intersect collection 'SENTINEL2_L2A'" in errors[0]["message"]
    # Results of a failed job: 424 with the error log entry as body.
    response = connection.get(f"/jobs/{job.job_id}/results", expected_status=424)
    assert "does not intersect" in response.json()["message"]


def test_an_injected_failure_is_reported_verbatim(backend, connection):
    job = ndvi_cube(connection).create_job(out_format="GTiff", job_options={"faults": {"fail": "disk quota exceeded"}})
    with pytest.raises(openeo.rest.JobFailedException):
        job.start_and_wait(max_poll_interval=0.1, show_error_logs=False)
    assert [e["message"] for e in job.logs(level="error")] == ["disk quota exceeded"]


def test_a_canceled_job_ends_canceled(backend, connection):
    job = ndvi_cube(connection).create_job(out_format="GTiff", job_options={"faults": {"queue_duration": 30}})
    job.start()
    assert job.status() == "queued"
    job.stop()
    assert job.status() == "canceled"
    assert any("Cancel requested" in e["message"] for e in job.logs())
    assert ("DELETE", f"/openeo/1.2/jobs/{job.job_id}/results") in [(r.method, r.path) for r in backend.requests]
    # Results of a canceled job are not available without partial=true.
    connection.get(f"/jobs/{job.job_id}/results", expected_status=400)


def test_statuses_and_progress_follow_the_queue_and_run_durations(backend, connection):
    job = ndvi_cube(connection).create_job(
        out_format="GTiff", job_options={"faults": {"queue_duration": 0.6, "run_duration": 1.5}}
    )
    job.start()
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = job.describe()
        seen.append((info["status"], info.get("progress")))
        if info["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    statuses = [s for s, _ in seen]
    assert statuses[0] == "queued" and statuses[-1] == "finished"
    assert statuses.index("running") > 0 and "running" in statuses
    # Status only moves forward, progress never goes down.
    order = ["queued", "running", "finished"]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)
    progress = [p for _, p in seen]
    assert progress == sorted(progress) and progress[-1] == 100
    assert any(0 < p < 100 for s, p in seen if s == "running")


def test_job_errors_use_the_spec_codes(backend, connection):
    assert connection.get("/jobs/j-nope", expected_status=404).json()["code"] == "JobNotFound"
    job = ndvi_cube(connection).create_job(out_format="GTiff")
    response = connection.get(f"/jobs/{job.job_id}/results", expected_status=400)
    assert response.json()["code"] == "JobNotFinished"
    # Another user does not see the job.
    other = backend.connect(user=("bob", "bob123"))
    assert other.get(f"/jobs/{job.job_id}", expected_status=404).json()["code"] == "JobNotFound"
    # No token, bad password, revoked token.
    import requests

    assert requests.get(f"{backend.url}/jobs", timeout=10).status_code == 401
    assert requests.get(f"{backend.url}/credentials/basic", auth=("alice", "wrong"), timeout=10).status_code == 403
    backend.revoke_tokens("alice")
    assert connection.get("/jobs", expected_status=403).json()["code"] == "TokenInvalid"


def test_logs_support_offset_and_level(backend, connection):
    job = ndvi_cube(connection).create_job(out_format="GTiff")
    job.start_and_wait(max_poll_interval=0.1)
    entries = job.logs()
    assert len(entries) >= 4
    rest = connection.get(f"/jobs/{job.job_id}/logs", params={"offset": entries[1]["id"]}).json()["logs"]
    assert [e["id"] for e in rest] == [e["id"] for e in entries[2:]]
    assert connection.get(f"/jobs/{job.job_id}/logs", params={"level": "error"}).json()["logs"] == []


def test_well_known_and_capabilities(backend):
    import requests

    versions = requests.get(f"{backend.root_url}/.well-known/openeo", timeout=10).json()["versions"]
    assert {v["api_version"] for v in versions} == {"1.2.0", "1.0.1"}
    caps = requests.get(f"{backend.url}/", timeout=10).json()
    paths = {e["path"] for e in caps["endpoints"]}
    assert {
        "/jobs",
        "/jobs/{job_id}/results",
        "/jobs/{job_id}/logs",
        "/collections",
        "/processes",
        "/file_formats",
    } <= paths
    processes = requests.get(f"{backend.url}/processes", timeout=10).json()["processes"]
    assert {"load_collection", "save_result", "ndvi", "aggregate_spatial"} <= {p["id"] for p in processes}
    formats = requests.get(f"{backend.url}/file_formats", timeout=10).json()["output"]
    assert set(formats) == {"GTiff", "netCDF", "JSON", "CSV", "Parquet", "GeoJSON", "Zarr"}
    json.dumps(caps)
