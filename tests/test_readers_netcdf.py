"""netCDF results on the local backend: lazy range reads, whole downloads, pickling, URL renewal, odd servers.

Every test opens a real job's netCDF through the public fronts (``open_results``, the xarray engine)
or through the reader (``NetCDFReader(links).info(key)`` / ``.read(key, Window(...), bands)``),
and compares with the file downloaded whole and opened by xarray's own h5netcdf engine. The
request log of the backend says what moved. Files of one grid mosaicking, and CF files on disk,
are tested in ``test_readers_cf*.py``.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import dask.array as da
import numpy as np
import pytest
import requests
import xarray as xr

import xr_openeo
from xr_openeo.cube import RasterCube
from xr_openeo.errors import AssetReadError, URLExpiredError
from xr_openeo.readers.base import Window
from xr_openeo.readers.netcdf import MERGE_GAP, NetCDFReader, plan_requests
from xr_openeo.sources import load_results
from xr_openeo.testing import Faults, LocalBackend, ManualClock, SyntheticCollection

SMALL_BLOCK = 64 * 2**10  # the test file is ~3 MB: small blocks make lazy reads visible
LAZY = {"download_threshold": 0, "block_bytes": SMALL_BLOCK}  # read by ranges, whatever the size
COLLECTION = SyntheticCollection(dates=3, width=300, height=300)
KEY = "openEO.nc"
WEEK = 7 * 24 * 3600.0


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    with LocalBackend([COLLECTION]) as b:
        yield b


@pytest.fixture(scope="module")
def conn(backend: LocalBackend) -> Any:
    return backend.connect()


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # File headers are kept per process: each test counts its own requests from nothing.
    xr_openeo.clear_caches()
    yield
    xr_openeo.clear_caches()


def run_job(conn: Any, faults: dict | None = None) -> Any:
    """A finished netCDF job (3 dates × 2 bands of 300², uint16 with nodata 0, HDF5 chunks of 256²)."""
    options = {"faults": faults} if faults else None
    job = conn.load_collection("SENTINEL2_L2A", bands=["B04", "B08"]).create_job(
        out_format="netCDF", job_options=options
    )
    job.start_and_wait(max_poll_interval=0.1, show_error_logs=False, print=lambda *a: None)
    return job


@pytest.fixture(scope="module")
def job(conn: Any) -> Any:
    return run_job(conn)


def reference(href: str, headers: dict[str, str] | None = None) -> xr.Dataset:
    """The asset downloaded whole and opened with xarray's own h5netcdf engine."""
    body = requests.get(href, headers=headers or {}, timeout=30).content
    return xr.open_dataset(io.BytesIO(body), engine="h5netcdf").load()


@pytest.fixture(scope="module")
def ref(job: Any) -> xr.Dataset:
    (asset,) = job.get_results().get_assets()
    return reference(asset.href)


def file_size(backend: LocalBackend, job: Any) -> int:
    return (backend.job(job.job_id).out_dir / KEY).stat().st_size


def asset_requests(backend: LocalBackend) -> list[Any]:
    return [r for r in backend.requests if "/assets/" in r.path]


def assert_same_values(ds: xr.Dataset, ref: xr.Dataset) -> None:
    assert sorted(ds.data_vars) == ["B04", "B08"]
    for name in ("B04", "B08"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
    np.testing.assert_array_equal(ds.t.values, ref.t.values)


def cube_of(ds: xr.Dataset) -> RasterCube:
    """The cube the dask graph of ``ds`` reads from (stored once in the graph)."""
    (cube,) = {id(v): v for v in dict(ds.B04.data.__dask_graph__()).values() if isinstance(v, RasterCube)}.values()
    return cube


def assert_reads_whole_file(reader: NetCDFReader, ref: xr.Dataset) -> None:
    """Every band and date of the asset, read through ``reader`` in one window, equal the download's."""
    info = reader.info(KEY)
    rows, cols = info.grid.shape
    window = Window(slice(0, rows), slice(0, cols), slice(0, len(info.times or ())), full=(rows, cols))
    block = reader.read(KEY, window, info.bands)
    assert info.bands == ("B04", "B08") and block.masked
    for band, values in zip(info.bands, block.data, strict=True):
        np.testing.assert_array_equal(values, ref[band].values)


# -- lazy reads and values ------------------------------------------------------------------------


def test_lazy_open_reads_only_metadata_and_matches_download(
    backend: LocalBackend, job: Any, ref: xr.Dataset, open_results: Any
) -> None:
    backend.clear_requests()
    with xr_openeo.set_options(**LAZY):
        ds = open_results(job)
    opened = asset_requests(backend)
    assert 1 <= len(opened) <= 3 and sum(r.bytes_sent for r in opened) < file_size(backend, job) / 10
    assert all(r.method == "GET" and r.status == 206 for r in opened)
    assert all("Authorization" not in r.headers for r in opened)  # signed URLs: the token goes nowhere

    assert all(isinstance(ds[name].data, da.Array) for name in ds.data_vars)
    assert ds.B04.dims == ("t", "y", "x") and ds.B04.dtype == np.float32
    assert ds.B04.encoding["_FillValue"] == 0 and ds.B04.rio.encoded_nodata == 0
    assert ds.B04.chunks == ((1, 1, 1), (300,), (300,))  # one date per chunk, the whole file's extent
    assert "crs" not in ds.variables and ds.rio.crs.to_epsg() == 32631
    assert ds.t.dtype == np.dtype("datetime64[ns]")
    (asset,) = job.get_results().get_assets()
    signature = asset.href.split("?")[0].rsplit("/", 2)[-2]
    shown = [repr(ds), str(ds.attrs), str(ds.encoding), *(str(v.encoding) for v in ds.variables.values())]
    assert len(signature) >= 16 and not any(signature in text for text in shown)
    assert_same_values(ds, ref)


def test_one_chunk_read_moves_a_fraction_of_the_file(
    backend: LocalBackend, job: Any, ref: xr.Dataset, open_results: Any
) -> None:
    with xr_openeo.set_options(**LAZY):
        ds = open_results(job)
    backend.clear_requests()
    window = ds.B08.isel(t=1, y=slice(256, 300), x=slice(0, 256)).values
    moved = asset_requests(backend)
    np.testing.assert_array_equal(window, ref.B08.isel(t=1, y=slice(256, 300), x=slice(0, 256)).values)
    assert all(r.method == "GET" and r.status == 206 for r in moved)
    # one padded 256² uint16 chunk is 128 KiB (plus an index block); the file ~3 MB
    assert len(moved) <= 4 and sum(r.bytes_sent for r in moved) < 300 * 1024

    backend.clear_requests()
    ds.load()
    assert sum(r.bytes_sent for r in asset_requests(backend)) < 4 * 2**20


def test_chunk_ranges_join_when_close_and_stay_apart_when_far() -> None:
    """The requests of a window's HDF5 chunks (``(offset, size)``): sorted, overlapping, adjacent and
    nearby chunks in one request (the gap fetched too), far ones in requests of their own."""
    assert plan_requests([]) == []
    assert plan_requests([(300, 100), (0, 100), (100, 50), (120, 10), (500, 0)], gap=0) == [(0, 150), (300, 400)]
    assert plan_requests([(41, 10), (0, 10), (20, 10)], gap=10) == [(0, 30), (41, 51)]  # gaps of 10 and 11 bytes
    # one date's 256² uint16 tiles lie side by side; the next date's, of every band, 1.5 MiB further
    tile = 256 * 256 * 2
    one_date = [(32711 + i * tile, tile) for i in range(4)]
    assert plan_requests([*one_date, (1611847, tile)]) == [(32711, 32711 + 4 * tile), (1611847, 1611847 + tile)]
    assert plan_requests([(0, tile), (tile + MERGE_GAP, tile)]) == [(0, 2 * tile + MERGE_GAP)]
    assert plan_requests([(0, tile), (tile + MERGE_GAP + 1, tile)]) == [
        (0, tile),
        (tile + MERGE_GAP + 1, 2 * tile + MERGE_GAP + 1),
    ]


def test_a_full_read_fetches_each_block_once(backend: LocalBackend, job: Any, ref: xr.Dataset) -> None:
    """Tasks reading on many threads need the same blocks at the same time: each is fetched once."""
    with xr_openeo.set_options(download_threshold=0, block_bytes=256 * 2**10):  # 16 blocks hold the file
        ds = xr_openeo.open_results(job, chunks={"y": 256, "x": 256})  # 12 tasks, 4 per block or so
    backend.clear_requests()
    ds.load(scheduler="threads", num_workers=8)
    moved = asset_requests(backend)
    assert sum(r.bytes_sent for r in moved) <= file_size(backend, job)
    assert len({r.headers["Range"] for r in moved}) == len(moved)  # no range asked twice
    assert_same_values(ds, ref)


@pytest.mark.parametrize("threshold", ["default", "size+1"])
def test_small_files_are_downloaded_whole(backend: LocalBackend, job: Any, ref: xr.Dataset, threshold: str) -> None:
    size = file_size(backend, job)
    backend.clear_requests()
    with xr_openeo.set_options(download_threshold=None if threshold == "default" else size + 1):
        ds = xr_openeo.open_results(job)
    opened = asset_requests(backend)
    # The header request tells the size; the rest of the file follows in one GET.
    assert [r.headers.get("Range") for r in opened] == ["bytes=0-65535", f"bytes=65536-{size - 1}"]
    assert sum(r.bytes_sent for r in opened) == size
    backend.clear_requests()
    assert_same_values(ds, ref)
    assert asset_requests(backend) == []  # computed from memory


def test_files_of_the_threshold_size_are_read_by_ranges(backend: LocalBackend, job: Any, ref: xr.Dataset) -> None:
    size = file_size(backend, job)
    backend.clear_requests()
    with xr_openeo.set_options(download_threshold=size, block_bytes=SMALL_BLOCK):
        ds = xr_openeo.open_results(job)
    assert sum(r.bytes_sent for r in asset_requests(backend)) < size / 10
    assert_same_values(ds, ref)


# -- pickling and processes -----------------------------------------------------------------------


def test_pickles_without_open_files_and_unpickled_copies_compute(job: Any, ref: xr.Dataset) -> None:
    with xr_openeo.set_options(**LAZY):
        ds = xr_openeo.open_results(job)
    ds.B04.isel(t=0).load()  # the file is open now; pickling must not try to take it along
    payload = pickle.dumps(ds)
    assert len(payload) < 100_000
    assert_same_values(pickle.loads(payload), ref)

    reader = cube_of(ds).reader
    copy = pickle.loads(pickle.dumps(reader))
    assert len(pickle.dumps(reader)) < 5_000 and copy.links.auth.token is None
    assert (copy.download_threshold, copy.block_bytes) == (0, SMALL_BLOCK)  # the read choice travels
    assert copy.info(KEY) == reader.info(KEY)  # the copy opens the file itself

    script = (
        "import hashlib, pickle, sys\n"
        "ds = pickle.loads(sys.stdin.buffer.read())\n"
        "print(hashlib.sha256(ds.B04.values.tobytes() + ds.B08.values.tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], input=payload, capture_output=True, timeout=120, check=True)
    expected = hashlib.sha256(ref.B04.values.tobytes() + ref.B08.values.tobytes()).hexdigest()
    assert out.stdout.decode().strip() == expected


def test_computes_on_a_distributed_cluster(backend: LocalBackend, job: Any, ref: xr.Dataset) -> None:
    from dask.distributed import Client, LocalCluster

    with xr_openeo.set_options(**LAZY):
        ds = xr_openeo.open_results(job)
    with (
        LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster),
    ):
        backend.clear_requests()
        total = float(ds.B04.sum().compute())
    assert total == float(ds.B04.sum().compute(scheduler="threads"))
    assert np.isclose(total, float(np.nansum(ref.B04.values)), rtol=1e-6)
    # Workers open the file themselves, lazily as the client chose (no HEAD, no whole-file GET).
    worker_requests = asset_requests(backend)
    assert worker_requests and all(r.method == "GET" and r.status == 206 for r in worker_requests)


# -- signed URLs, bearer auth ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def clocked(clock: ManualClock) -> Iterator[LocalBackend]:
    """A backend on a clock of its own: links expire when a test moves it (and never otherwise)."""
    with LocalBackend([COLLECTION], clock=clock) as b:
        yield b


@pytest.mark.parametrize("case", ["proactive", "reactive", "reactive-403"])
def test_expired_urls_are_renewed_once(clocked: LocalBackend, clock: ManualClock, ref: xr.Dataset, case: str) -> None:
    """Links expire between the open and the read; the read renews them once, and only once.

    proactive: the client's clock says they expired, so they are renewed before asking. reactive:
    the client's clock says they are still good (a clock off, a document served late), the server
    refuses them (410, or 403 as object stores do) and the refusal renews them.
    """
    job = run_job(clocked.connect(), {"expired_status": 403 if case.endswith("403") else 410})
    opened_at = clock()
    client_clock = clock if case == "proactive" else (lambda: opened_at)
    loaded = load_results(job, clock=client_clock)
    with xr_openeo.set_options(**LAZY):
        reader = NetCDFReader(loaded.links)
    reader.info(KEY)  # opened while the links are fresh
    clock.advance(WEEK + 60)
    clocked.clear_requests()
    assert_reads_whole_file(reader, ref)
    assert loaded.links.refreshes == 1
    refused = [r.status for r in asset_requests(clocked) if r.status >= 400]
    assert refused == ([] if case == "proactive" else [403 if case.endswith("403") else 410])
    documents = [r for r in clocked.requests if r.path.endswith(f"/jobs/{job.job_id}/results")]
    assert len(documents) == 1


def test_persistent_refusal_names_asset_status_and_redacts(clocked: LocalBackend, clock: ManualClock) -> None:
    """A shared (signed canonical) link used after it expired: renewing fails too, and the error says why."""
    job = run_job(clocked.connect(), {"url_validity": 3600})
    share_url = load_results(job).info.canonical_url
    with xr_openeo.set_options(**LAZY):
        ds = xr_openeo.open_results(share_url)  # no connection: the canonical link is the only way to renew
    clock.advance(2 * 3600)
    clocked.clear_requests()
    with pytest.raises(AssetReadError) as info:
        ds.B04.isel(t=2).load()
    err = info.value
    assert isinstance(err, URLExpiredError) and err.key == KEY and err.status == 410
    assert "expires=REDACTED" in err.href and "expires=REDACTED" in str(err)
    expires = share_url.split("expires=")[1]
    assert expires not in str(err) and expires not in repr(err)
    renewals = [r for r in clocked.requests if "/assets/" not in r.path]
    canonical = urlsplit(share_url).path
    # The asset's refusal renewed once: each source of the document tried once (the canonical link
    # had expired too; the results URL needs a token this reader does not have).
    assert sorted((r.path == canonical, r.status) for r in renewals) == [(False, 401), (True, 410)]


@pytest.mark.parametrize("threshold", [0, None])
def test_bearer_only_urls_need_the_connections_auth(
    backend: LocalBackend, conn: Any, ref: xr.Dataset, threshold: int | None
) -> None:
    job = run_job(conn, {"signed_urls": False})
    doc = conn.get(f"/jobs/{job.job_id}/results").json()
    assert "expires" not in doc["assets"][KEY]["href"]
    backend.clear_requests()
    with xr_openeo.set_options(download_threshold=threshold, block_bytes=SMALL_BLOCK):
        ds = xr_openeo.open_results(job)
        assert_same_values(ds, ref)
    assert all(r.headers.get("Authorization", "").startswith("Bearer ") for r in asset_requests(backend))

    doc["links"] = [link for link in doc["links"] if link.get("rel") != "item"]  # (items need the token too)
    with xr_openeo.set_options(download_threshold=threshold), pytest.raises(AssetReadError) as info:
        xr_openeo.open_results(doc)  # no connection: no token
    assert info.value.status == 401 and info.value.key == KEY and "401" in str(info.value)


# -- servers that misbehave -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def range_backend() -> Iterator[LocalBackend]:
    # Its own backend: responses the client stops reading stay "in flight" in the request log,
    # which would slow every later look at the main backend's log.
    with LocalBackend([COLLECTION], faults=Faults(range_ignored=True)) as b:
        yield b


@pytest.fixture(scope="module")
def range_ignored(range_backend: LocalBackend) -> Any:
    return run_job(range_backend.connect())


@pytest.mark.parametrize("threshold", [0, None])
def test_range_ignored_falls_back_to_the_whole_answer(
    range_backend: LocalBackend, range_ignored: Any, ref: xr.Dataset, threshold: int | None
) -> None:
    range_backend.clear_requests()
    with xr_openeo.set_options(download_threshold=threshold, block_bytes=SMALL_BLOCK):
        ds = xr_openeo.open_results(range_ignored)
    # The header request is answered with the whole file (200, no Accept-Ranges), which is kept.
    assert [(r.method, r.status) for r in asset_requests(range_backend)] == [("GET", 200)]
    range_backend.clear_requests()
    assert_same_values(ds, ref)
    assert asset_requests(range_backend) == []


def test_range_ignored_detected_while_reading_lazily(
    range_backend: LocalBackend, range_ignored: Any, ref: xr.Dataset
) -> None:
    with xr_openeo.set_options(**LAZY):
        xr_openeo.open_results(range_ignored)  # keeps the file's start as its header (process-wide)
        range_backend.clear_requests()
        ds = xr_openeo.open_results(range_ignored)  # a new reader: header from the cache, then a ranged read
    # That first ranged GET got the whole file: caught, kept, and every later read comes from it.
    assert [(r.method, r.status, "Range" in r.headers) for r in asset_requests(range_backend)] == [("GET", 200, True)]
    range_backend.clear_requests()
    assert_same_values(ds, ref)
    assert asset_requests(range_backend) == []


@pytest.fixture(scope="module")
def no_length(conn: Any) -> Any:
    return run_job(conn, {"no_content_length": True})


@pytest.mark.parametrize("threshold", [0, None])
def test_no_content_length(backend: LocalBackend, no_length: Any, ref: xr.Dataset, threshold: int | None) -> None:
    backend.clear_requests()
    with xr_openeo.set_options(download_threshold=threshold, block_bytes=SMALL_BLOCK):
        ds = xr_openeo.open_results(no_length)
        assert_same_values(ds, ref)
    moved = asset_requests(backend)
    # The length came from the Content-Range of the header request: every request asked for a range.
    assert moved[0].headers.get("Range") == "bytes=0-65535" and moved[0].status == 206
    assert all("Range" in r.headers for r in moved)


@pytest.mark.parametrize("threshold", [0, None])
def test_head_refused(backend: LocalBackend, conn: Any, ref: xr.Dataset, threshold: int | None) -> None:
    job = run_job(conn, {"head_refused": True})
    backend.clear_requests()
    with xr_openeo.set_options(download_threshold=threshold, block_bytes=SMALL_BLOCK):
        ds = xr_openeo.open_results(job)
        assert_same_values(ds, ref)
    assert [r for r in asset_requests(backend) if r.method != "GET"] == []  # HEAD is never needed
    assert len([r for r in backend.requests if r.path.endswith(f"/jobs/{job.job_id}/results")]) == 1  # no renewal


SEED = 2  # a seed that injects a fault among the first requests (the same ones on every run)


@pytest.mark.parametrize("kind", ["500", "503", "drop", "truncate"])
def test_transient_errors_are_retried(ref: xr.Dataset, kind: str) -> None:
    """A quarter of the asset requests fail (HTTP 500/503, a dropped connection, a body cut short): the
    values are right all the same, and every request that failed was asked again.

    Faults are drawn per (request, attempt) from the seed, and one thread reads the whole file in
    one call: up to the first fault the requests are the same on every run, so faults happen on
    every run. (Through dask, the order of the reads, hence which blocks are fetched together,
    would change from run to run.)
    """
    faults = Faults(error_rate=0.25, error_kinds=(kind,), seed=SEED)
    with LocalBackend([COLLECTION], faults=faults) as faulty:  # its own: faults are counted server-wide
        job = run_job(faulty.connect())
        faulty.clear_requests()
        with xr_openeo.set_options(**LAZY, retry_backoff=0.0, retries=8):
            assert_reads_whole_file(NetCDFReader(load_results(job).links), ref)
        requests_ = asset_requests(faulty)
    faulted = Counter((r.path, r.headers.get("Range")) for r in requests_ if r.fault)
    asked = Counter((r.path, r.headers.get("Range")) for r in requests_)
    assert faulted and {r.fault for r in requests_ if r.fault} == {kind}
    assert all(asked[request] > n for request, n in faulted.items())
