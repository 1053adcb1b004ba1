"""Reading through injected download faults gives identical arrays; a persistent failure names the asset."""

from __future__ import annotations

import pytest
import xarray as xr
from conftest import SMALL, SMALL_BLOCKSIZE, SMALL_EXTENT

import xr_openeo
from xr_openeo.errors import AssetReadError
from xr_openeo.testing import Faults, LocalBackend, SyntheticCollection


def finished_job(connection, fmt="GTiff", bands=("B04", "B08"), spatial_extent=SMALL_EXTENT, **job_options):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=spatial_extent, bands=list(bands))
    job = cube.create_job(out_format=fmt, job_options=job_options or None)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


@pytest.mark.parametrize("chunks", [None, {"y": 128, "x": 128}])
def test_ten_percent_failing_requests_change_nothing(chunks):
    with LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE) as clean:
        expected = xr_openeo.open_results(finished_job(clean.connect()), chunks=chunks).load()
    with LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE, faults=Faults(error_rate=0.1, seed=31)) as flaky:
        result = xr_openeo.open_results(finished_job(flaky.connect()), chunks=chunks).load()
        assets = [r for r in flaky.requests if "/results/assets/" in r.path]
        injected = [r for r in assets if r.fault]
    xr.testing.assert_equal(result.drop_attrs(), expected.drop_attrs())
    assert injected, "the seed injected no fault; pick another"  # seed 31 faults two of three whole-file GETs
    assert retries(assets) >= len(injected)


def retries(requests) -> int:
    """Faulted requests that were asked again later (same path and range), from the server's log."""
    later = {}
    for r in sorted(requests, key=lambda r: r.started):
        later[(r.path, r.headers.get("Range"))] = r.started
    return sum(1 for r in requests if r.fault and later[(r.path, r.headers.get("Range"))] > r.started)


def test_a_persistently_failing_asset_raises_naming_it(backend, connection):
    job = finished_job(connection, faults={"error_rate": 1.0, "error_kinds": ["503"]})
    ds = xr_openeo.open_results(job)
    with pytest.raises(AssetReadError) as info:
        ds.load()
    err = info.value
    assert err.key.startswith("openEO_2023-") and err.status == 503
    assert "expires=REDACTED" in err.href and "REDACTED" in str(err)


@pytest.mark.parametrize("fmt", ["GTiff", "netCDF"])
@pytest.mark.parametrize("fault", ["head_refused", "range_ignored", "no_content_length"])
def test_server_quirks_still_give_the_right_values(fmt, fault):
    # 512 × 256 pixels: two 256-pixel GeoTIFF windows per file (the metadata's tiles are 256), so
    # the GeoTIFFs are read by window through GDAL, not as whole files.
    with LocalBackend([SyntheticCollection(dates=2, width=512, height=256)]) as b:
        connection = b.connect()
        expected = xr_openeo.open_results(finished_job(connection, fmt, spatial_extent=None)).load()
        chunks = {"y": 256, "x": 256} if fmt == "GTiff" else None
        quirky = xr_openeo.open_results(
            finished_job(connection, fmt, spatial_extent=None, faults={fault: True}), chunks=chunks
        )
        b.clear_requests()
        quirky = quirky.load()
        ranged = [r for r in b.requests if "/results/assets/" in r.path and "Range" in r.headers]
    assert ranged or fmt == "netCDF", "no ranged request: the GeoTIFFs were not read by window"
    xr.testing.assert_equal(quirky.drop_attrs(), expected.drop_attrs())


@pytest.mark.slow  # ~8 s: a 16-date job and a compute that outlives two URL expiries
def test_expiring_urls_refetch_the_document_once_per_expiry_not_per_task():
    """Signed URLs valid for 2 s during a ~4 s threaded compute of 64 tasks: one document GET per expiry.

    (test_open_results.py::test_expired_urls_are_renewed only checks that renewal happens.)
    """
    import time

    from xr_openeo.results import parse_results, url_expiry

    collection = SyntheticCollection(dates=16, width=512, height=512)
    with LocalBackend([collection], record_json=True) as b:
        conn = b.connect()
        cube = conn.load_collection("SENTINEL2_L2A", bands=["B04"])
        job = cube.create_job(out_format="GTiff", job_options={"faults": {"url_validity": 2, "latency": 0.1}})
        job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
        ds = xr_openeo.open_results(job, chunks={"y": 256, "x": 256})
        tasks = ds.B04.data.npartitions
        t0 = time.time()
        ds.load(scheduler="threads", num_workers=4)
        t1 = time.time()
        docs = [r for r in b.requests if r.method == "GET" and r.path.endswith(f"/jobs/{job.job_id}/results")]
        during = [r for r in docs if r.started >= t0]
        # The expiry instant of each document served (its asset URLs all expire together).
        expiries = {url_expiry(parse_results(r.json_body).assets[0].href) for r in docs}
        expired_during = sorted(e for e in expiries if e is not None and t0 <= e <= t1)
    assert tasks == 64 and len(expired_during) >= 1, (t1 - t0, expired_during)
    assert len(during) <= len(expired_during) + 1, (len(during), expired_during, t1 - t0)
    assert len(during) * 8 <= tasks


@pytest.mark.slow  # a LocalCluster of two processes, two jobs
def test_ten_percent_faults_on_a_distributed_cluster_change_nothing():
    """Random seeded faults while dask.distributed workers (other processes) read GeoTIFF windows."""
    import distributed  # in the test extra: this test must run, never skip

    collection = SyntheticCollection(dates=6, width=512, height=512)
    chunks, bands = {"y": 256, "x": 256}, ("B02", "B03", "B04")
    with LocalBackend([collection]) as clean:
        expected = xr_openeo.open_results(
            finished_job(clean.connect(), bands=bands, spatial_extent=None), chunks=chunks
        )
        expected = expected.load().drop_attrs()
    with (
        LocalBackend([collection], faults=Faults(error_rate=0.1, seed=7)) as flaky,
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        ds = xr_openeo.open_results(finished_job(flaky.connect(), bands=bands, spatial_extent=None), chunks=chunks)
        flaky.clear_requests()
        result = client.compute(ds).result()
        workers = client.run(lambda: 1)
        assets = [r for r in flaky.requests if "/results/assets/" in r.path]
    injected = [r for r in assets if r.fault]
    assert len(workers) == 2 and ds.B02.data.npartitions == 24
    xr.testing.assert_identical(result.drop_attrs(), expected)
    assert injected, "the seed injected no fault; pick another"
    assert retries(assets) == len(injected), (retries(assets), len(injected), len(assets))
