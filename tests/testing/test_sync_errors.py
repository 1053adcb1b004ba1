"""`POST /result` when things go wrong: openEO error bodies, the time limit, and faults in the body."""

from __future__ import annotations

import concurrent.futures

import openeo
import pytest
import requests
from conftest import SMALL_EXTENT, until

from xr_openeo.testing import Faults


def ndvi_graph(connection, extent=SMALL_EXTENT, fmt="GTiff"):
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=extent, temporal_extent=["2023-01-01", "2023-01-02"], bands=["B04", "B08"]
    )
    return cube.ndvi(red="B04", nir="B08").save_result(fmt).flat_graph()


def token(connection) -> str:
    return connection.auth.bearer.rpartition("/")[2]


def post(backend, connection, body) -> requests.Response:
    headers = {"Authorization": f"Bearer basic//{token(connection)}"} if connection is not None else {}
    return requests.post(f"{backend.url}/result", json=body, headers=headers, timeout=60)


def assert_openeo_error(response: requests.Response, status: int, code: str) -> dict:
    """An openEO error body whose ``id`` is the request's ``OpenEO-Identifier``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"] and body["links"] == []
    assert body["id"] == response.headers["OpenEO-Identifier"] and body["id"].startswith("r-")
    return body


def sync_files_gone(backend) -> bool:
    folder = backend.workdir / "_sync"
    return until(lambda: not folder.exists() or not any(folder.iterdir()), "the request's files to go")


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        ({}, 400, "ProcessGraphMissing", "process_graph"),
        ({"process": {"id": "x"}}, 400, "ProcessGraphMissing", "process_graph"),
        ({"process": {"process_graph": []}}, 400, "ProcessGraphInvalid", "non-empty object"),
        (
            {"process": {"process_graph": {"a": {"process_id": "absolute", "arguments": {"x": 1}}}}},
            400,
            "ProcessGraphInvalid",
            "exactly one node",
        ),
        (
            {"process": {"process_graph": {"a": {"process_id": "absolute", "arguments": {"x": {"from_node": "b"}}}}}},
            400,
            "ProcessGraphInvalid",
            "'b'",
        ),
        (
            {"process": {"process_graph": {"a": {"process_id": "teleport", "arguments": {}, "result": True}}}},
            400,
            "ProcessUnsupported",
            "'teleport'",
        ),
        (
            {
                "process": {
                    "process_graph": {
                        "a": {"process_id": "load_collection", "arguments": {"id": "LANDSAT"}, "result": True}
                    }
                }
            },
            404,
            "CollectionNotFound",
            "'LANDSAT'",
        ),
    ],
)
def test_a_graph_that_cannot_run_is_refused_before_running(backend, connection, body, status, code, says):
    body = assert_openeo_error(post(backend, connection, body), status, code)
    assert says in body["message"]


def test_a_failing_process_answers_500_with_its_message(backend, connection):
    far = {"west": 10.0, "south": 45.0, "east": 10.1, "north": 45.1}
    response = post(backend, connection, {"process": {"process_graph": ndvi_graph(connection, extent=far)}})
    body = assert_openeo_error(response, 500, "Internal")
    assert "does not intersect collection 'SENTINEL2_L2A'" in body["message"]
    assert sync_files_gone(backend)
    # The openeo client raises it with the backend's code and message.
    with pytest.raises(openeo.rest.OpenEoApiError, match="does not intersect") as info:
        connection.download(ndvi_graph(connection, extent=far))
    assert info.value.http_status_code == 500 and info.value.code == "Internal"


def test_an_injected_failure_is_reported_verbatim(backend, connection):
    body = {"process": {"process_graph": ndvi_graph(connection)}, "job_options": {"faults": {"fail": "out of memory"}}}
    assert assert_openeo_error(post(backend, connection, body), 500, "Internal")["message"] == "out of memory"


def test_job_options_may_be_top_level_properties(backend, connection):
    # openeo-python-driver takes extra top-level properties as job options when there is no "job_options".
    body = {"process": {"process_graph": ndvi_graph(connection)}, "faults": {"fail": "top-level"}}
    assert assert_openeo_error(post(backend, connection, body), 500, "Internal")["message"] == "top-level"


def test_bad_job_options_are_refused(backend, connection):
    body = {"process": {"process_graph": ndvi_graph(connection)}, "job_options": {"faults": {"bogus": 1}}}
    assert (
        "unknown fault switch"
        in assert_openeo_error(post(backend, connection, body), 400, "JobOptionsInvalid")["message"]
    )
    body = {"process": {"process_graph": ndvi_graph(connection)}, "job_options": ["stac-version"]}
    assert_openeo_error(post(backend, connection, body), 400, "JobOptionsInvalid")


def test_authentication_is_required(backend, connection):
    body = {"process": {"process_graph": ndvi_graph(connection)}}
    response = post(backend, None, body)
    assert response.status_code == 401 and response.json()["code"] == "AuthenticationRequired"
    backend.revoke_tokens()
    assert post(backend, connection, body).json()["code"] == "TokenInvalid"


# -- the time limit -------------------------------------------------------------------------------------


def test_a_run_over_the_time_limit_answers_408_request_timeout(backend, connection):
    # A limit of 0 s: no run finishes within it.
    body = {"process": {"process_graph": ndvi_graph(connection)}, "job_options": {"faults": {"sync_time_limit": 0}}}
    response = post(backend, connection, body)
    message = assert_openeo_error(response, 408, "RequestTimeout")["message"]
    assert "limit of 0 s" in message and "batch job" in message
    assert sync_files_gone(backend)


def test_the_limit_is_kept_on_the_backends_clock(clocked_backend, clock):
    connection = clocked_backend.connect()
    graph = ndvi_graph(connection)
    # A run of at least 1000 s against a limit of 60 s: it times out once the clock passes 60 s.
    faults = {"sync_time_limit": 60, "run_duration": 1000}
    slow = {"process": {"process_graph": graph}, "job_options": {"faults": faults}}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, clocked_backend, connection, slow)
        while not pending.done():  # the request may begin after any move of the clock: keep moving it
            clock.advance(61)
            concurrent.futures.wait([pending], timeout=0.05)
        assert_openeo_error(pending.result(), 408, "RequestTimeout")
    assert sync_files_gone(clocked_backend)
    # A run that ends within the limit answers normally, however long it takes in real time.
    quick = {"process": {"process_graph": graph}, "job_options": {"faults": {"sync_time_limit": 60}}}
    assert post(clocked_backend, connection, quick).status_code == 200


def test_a_gateway_timeout_answers_504_without_an_openeo_body(backend, connection):
    faults = {"sync_time_limit": 0, "sync_timeout_status": 504}
    response = post(backend, connection, {"process": {"process_graph": ndvi_graph(connection)}, "faults": faults})
    assert response.status_code == 504 and response.headers["Content-Type"].startswith("text/html")
    assert "504 Gateway Time-out" in response.text and "OpenEO-Identifier" not in response.headers


def test_timeout_statuses_are_checked():
    with pytest.raises(ValueError, match="sync_timeout_status"):
        Faults(sync_timeout_status=500)
    with pytest.raises(ValueError, match="sync_time_limit"):
        Faults(sync_time_limit=-1)


# -- faults in the body ---------------------------------------------------------------------------------


def test_a_body_cut_short_is_shorter_than_its_content_length(backend, connection):
    faults = {"error_rate": 1.0, "error_kinds": ["truncate"]}
    body = {"process": {"process_graph": ndvi_graph(connection)}, "job_options": {"faults": faults}}
    with requests.post(
        f"{backend.url}/result",
        json=body,
        headers={"Authorization": f"Bearer basic//{token(connection)}"},
        stream=True,
        timeout=60,
    ) as response:
        assert response.status_code == 200
        length = int(response.headers["Content-Length"])
        received = bytearray()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in response.iter_content(8192):
                received += chunk
    assert 0 < len(received) < length
    assert [r.fault for r in backend.requests if r.path.endswith("/result")] == ["truncate"]
    # The client's download raises instead of writing a short file silently.
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        connection.download(ndvi_graph(connection), job_options={"faults": faults})
    assert sync_files_gone(backend)


def test_a_server_error_fault_answers_with_an_openeo_error(backend, connection):
    faults = {"error_rate": 1.0, "error_kinds": ["503"]}
    body = {"process": {"process_graph": ndvi_graph(connection)}, "job_options": {"faults": faults}}
    assert_openeo_error(post(backend, connection, body), 503, "ServiceUnavailable")
    assert sync_files_gone(backend)
