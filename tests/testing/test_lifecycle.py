"""The official openeo client drives the local backend through a batch job's whole lifecycle."""

from __future__ import annotations

import json

import numpy as np
import openeo
import pytest
import rasterio
from conftest import SMALL_EXTENT, expected_ndvi, until


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


def test_statuses_and_progress_follow_the_queue_and_run_durations(clocked_backend, clock):
    connection = clocked_backend.connect()
    job = ndvi_cube(connection).create_job(
        out_format="GTiff", job_options={"faults": {"queue_duration": 10, "run_duration": 30}}
    )
    job.start()

    def state():
        info = job.describe()
        return info["status"], info["progress"]

    assert state() == ("queued", 0)
    clock.advance(9.5)
    assert state() == ("queued", 0)  # the queue lasts 10 s of the backend's clock, however long that takes here
    clock.advance(0.5)
    until(lambda: state()[0] == "running", "the job to run")
    # Its 3 files appear one by one over the 30 s of its run: at 0, 10 and 20 s; it finishes at 30 s.
    assert until(lambda: state()[1] > 0 and state(), "the first file") == ("running", 25)
    for progress in (50, 75):
        clock.advance(10)
        assert until(lambda p=progress: state()[1] >= p and state(), f"progress {progress}") == ("running", progress)
    clock.advance(10)
    assert until(lambda: state()[0] != "running" and state(), "the end") == ("finished", 100)
    created, updated = job.describe()["created"], job.describe()["updated"]
    assert created < updated  # stamped by the backend's clock, which moved 40 s


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
        "/result",
    } <= paths
    assert next(e["methods"] for e in caps["endpoints"] if e["path"] == "/result") == ["POST"]
    processes = requests.get(f"{backend.url}/processes", timeout=10).json()["processes"]
    assert {"load_collection", "save_result", "ndvi", "aggregate_spatial"} <= {p["id"] for p in processes}
    formats = requests.get(f"{backend.url}/file_formats", timeout=10).json()["output"]
    assert set(formats) == {"GTiff", "netCDF", "JSON", "CSV", "Parquet", "GeoJSON", "Zarr"}
    json.dumps(caps)


def test_job_description_reports_the_job_options(backend, connection):
    options = {"stac-version": "1.1", "faults": {"head_refused": True}}
    job = ndvi_cube(connection).create_job(out_format="GTiff", job_options=options)
    assert job.describe()["job_options"] == options
    plain = ndvi_cube(connection).create_job(out_format="GTiff")
    assert plain.describe()["job_options"] == {}
    # The listing stays short, as the spec recommends.
    assert all("job_options" not in j for j in connection.get("/jobs").json()["jobs"])


# -- HTTP details found by the openEO API's test suite and an OpenAPI fuzzer (issue 11, item 10) ---------


def test_basic_credentials_without_authorization_ask_for_authentication(backend):
    import requests

    response = requests.get(f"{backend.url}/credentials/basic", timeout=10)
    assert response.status_code == 401 and response.json()["code"] == "AuthenticationRequired"
    wrong = requests.get(f"{backend.url}/credentials/basic", auth=("alice", "wrong"), timeout=10)
    assert wrong.status_code == 403 and wrong.json()["code"] == "CredentialsInvalid"
    bearer = requests.get(f"{backend.url}/credentials/basic", headers={"Authorization": "Bearer x"}, timeout=10)
    assert bearer.status_code == 403 and bearer.json()["code"] == "AuthenticationSchemeInvalid"


def test_an_empty_log_level_means_every_level(backend, connection):
    job = ndvi_cube(connection).create_job(out_format="GTiff")
    job.start_and_wait(max_poll_interval=0.1)
    everything = connection.get(f"/jobs/{job.job_id}/logs").json()
    empty = connection.get(f"/jobs/{job.job_id}/logs", params={"level": ""}).json()
    assert empty["logs"] == everything["logs"] and len(empty["logs"]) >= 4 and empty["level"] == "debug"
    refused = connection.get(f"/jobs/{job.job_id}/logs", params={"level": "loud"}, expected_status=400)
    assert refused.json()["code"] == "ParameterInvalid"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/jobs", {"GET", "POST"}),
        ("PATCH", "/result", {"POST"}),
        ("POST", "/collections", {"GET"}),
        ("DELETE", "/", {"GET"}),
    ],
)
def test_method_not_allowed_says_which_methods_are(backend, method, path, allowed):
    import requests

    response = requests.request(method, f"{backend.url}{path}", timeout=10)
    assert response.status_code == 405 and response.json()["code"] == "MethodNotAllowed"
    listed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed <= listed <= allowed | {"HEAD", "OPTIONS"}
