"""xr_openeo.execute when things go wrong: the backend's errors, time limits, retries, bodies cut short."""

from __future__ import annotations

import concurrent.futures
import glob
import os
import tempfile

import pytest
from conftest import SMALL_EXTENT, until

import xr_openeo
from xr_openeo.errors import AuthenticationError, ProcessingError, RequestError, SyncTimeoutError
from xr_openeo.testing import Faults


def ndvi_cube(connection, dates=("2023-01-06", "2023-01-07"), extent=SMALL_EXTENT):
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=extent, temporal_extent=list(dates), bands=["B04", "B08"]
    )
    return cube.ndvi(red="B04", nir="B08", target_band="NDVI")


def sync_posts(backend, expected: int) -> int:
    """The POST /result requests served, once the backend has logged ``expected`` of them (it logs a request
    when its response is done, which may be after the client has read it)."""

    def count() -> int:
        return sum(1 for r in backend.requests if r.method == "POST" and r.path.endswith("/result"))

    until(lambda: count() >= expected, f"{expected} POST /result in the request log")
    return count()


def spill_dirs() -> set[str]:
    """The temporary directories of synchronous answers that exist now."""
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "xr-openeo-execute-*")))


def test_a_failing_graph_raises_with_the_backends_message(backend, connection):
    with pytest.raises(ProcessingError, match="out of memory") as info:
        xr_openeo.execute(ndvi_cube(connection), job_options={"faults": {"fail": "out of memory"}})
    error = info.value
    assert (error.code, error.http_status) == ("Internal", 500) and error.request_id.startswith("r-")
    assert error.request_id in str(error)
    assert sync_posts(backend, 1) == 1  # an error while running is not sent again


def test_a_graph_the_backend_refuses_keeps_its_code(backend, connection):
    far = {"west": 10.0, "south": 45.0, "east": 10.1, "north": 45.1}
    with pytest.raises(ProcessingError, match="does not intersect collection 'SENTINEL2_L2A'"):
        xr_openeo.execute(ndvi_cube(connection, extent=far))
    graph = {"a": {"process_id": "load_collection", "arguments": {"id": "LANDSAT"}, "result": True}}
    with pytest.raises(ProcessingError, match="LANDSAT") as info:
        xr_openeo.execute(graph, connection=connection)
    assert (info.value.code, info.value.http_status) == ("CollectionNotFound", 404)
    assert not isinstance(info.value, SyncTimeoutError)


@pytest.mark.parametrize("status", [408, 504])
def test_a_time_limit_says_so_and_suggests_a_batch_job(backend, connection, status):
    faults = {"sync_time_limit": 0, "sync_timeout_status": status}
    with pytest.raises(SyncTimeoutError, match="time limit") as info:
        xr_openeo.execute(ndvi_cube(connection), job_options={"faults": faults})
    assert info.value.http_status == status and "compute_batch" in str(info.value)
    assert info.value.code == ("RequestTimeout" if status == 408 else None)
    assert sync_posts(backend, 1) == 1


def test_no_answer_within_the_timeout_says_so(clocked_backend, clock):
    connection = clocked_backend.connect()
    faults = {"run_duration": 1000}  # on the backend's clock, which this test never moves during the request
    with pytest.raises(SyncTimeoutError, match=r"within 0.5 s.*compute_batch"):
        xr_openeo.execute(ndvi_cube(connection), job_options={"faults": faults}, timeout=0.5)
    clock.advance(1001)  # the abandoned run ends


def test_unavailable_is_sent_again_and_then_reported(backend, connection):
    faults = {"error_rate": 1.0, "error_kinds": ["503"]}
    with xr_openeo.set_options(retries=2, retry_backoff=0):
        with pytest.raises(ProcessingError, match="after 3 attempts") as info:
            xr_openeo.execute(ndvi_cube(connection), job_options={"faults": faults})
    assert info.value.http_status == 503 and sync_posts(backend, 3) == 3


def test_a_503_then_an_answer_gives_the_result(backend, connection):
    # A seed whose first draw for this file is a 503 and whose second is no fault.
    key = "openEO_2023-01-06Z.tif|POST|"
    seed = next(
        s
        for s in range(1000)
        if Faults(error_rate=0.5, error_kinds=("503",), seed=s).download_fault(key, 1) == "503"
        and Faults(error_rate=0.5, error_kinds=("503",), seed=s).download_fault(key, 2) is None
    )
    faults = {"error_rate": 0.5, "error_kinds": ["503"], "seed": seed}
    with xr_openeo.set_options(retry_backoff=0):
        ds = xr_openeo.execute(ndvi_cube(connection), job_options={"faults": faults})
    assert ds.NDVI.shape == (1, 256, 256) and sync_posts(backend, 2) == 2


@pytest.mark.parametrize("memory_bytes", [2**30, 0], ids=["in memory", "spilled"])
@pytest.mark.parametrize("no_length", [False, True], ids=["Content-Length", "chunked"])
def test_a_body_cut_short_raises_and_leaves_nothing(backend, connection, memory_bytes, no_length):
    faults = {"error_rate": 1.0, "error_kinds": ["truncate"], "no_content_length": no_length}
    before = spill_dirs()
    with xr_openeo.set_options(execute_memory_bytes=memory_bytes):
        with pytest.raises(RequestError, match="cut short") as info:
            xr_openeo.execute(ndvi_cube(connection), job_options={"faults": faults})
    assert info.value.cause == "connection dropped" and info.value.status == 200
    assert sync_posts(backend, 1) == 1  # the graph ran: it is not sent again
    assert spill_dirs() == before


def test_refused_credentials_raise_authentication_error(backend, connection):
    backend.revoke_tokens()
    with pytest.raises(AuthenticationError, match="TokenInvalid"):
        xr_openeo.execute(ndvi_cube(connection))


def test_requests_run_side_by_side(backend, connection):
    cube = ndvi_cube(connection)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: xr_openeo.execute(cube), range(3)))
    assert len({ds.openeo.request_id for ds in results}) == 3
    for ds in results[1:]:
        assert (ds.NDVI.values == results[0].NDVI.values)[~ds.NDVI.isnull().values].all()
