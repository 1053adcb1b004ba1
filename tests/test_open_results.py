"""open_results / engine="openeo" end to end against the local backend: values, requests, auth, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import requests
import xarray as xr
from conftest import SMALL_EXTENT
from rasterio.io import MemoryFile

import xr_openeo
from xr_openeo.errors import JobNotFinishedError, JobNotFoundError, ResultsDocumentError, UnsupportedMediaTypeError
from xr_openeo.testing import LocalBackend, SyntheticCollection

DATES = ["2023-01-01", "2023-01-06", "2023-01-11"]


def run_job(connection, out_format="GTiff", bands=("B04", "B08"), **job_options):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=list(bands))
    job = cube.create_job(out_format=out_format, job_options=job_options or None)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


def downloaded(connection, job):
    """{file name: (bands × y × x float array with nodata as NaN, band descriptions)} read from the downloads."""
    out = {}
    for asset in job.get_results().get_assets():
        data = connection.get(asset.href).content if "expires" not in asset.href else requests.get(asset.href).content
        with MemoryFile(data) as memfile, memfile.open() as ds:
            values = ds.read().astype("float32")
            values[values == ds.nodata] = np.nan
            out[asset.key.rsplit("_", 1)[0] if asset.key.endswith("_openEO") else asset.key] = (values, ds.descriptions)
    return out


@pytest.mark.parametrize("style", [{}, {"stac-version": "1.1"}, {"results-style": "item"}])
@pytest.mark.parametrize("signed", [True, False])
def test_geotiff_values_equal_the_downloaded_files(backend, connection, open_results, style, signed):
    job = run_job(connection, **style, faults={"signed_urls": signed})
    ds = open_results(job)
    assert sorted(ds.data_vars) == ["B04", "B08"]
    assert ds.B04.dims == ("t", "y", "x") and ds.B04.dtype == np.float32
    assert [str(t)[:10] for t in ds.t.values] == DATES
    assert ds.rio.crs.to_epsg() == 32631
    assert ds.x.values[0] == 640005.0 and ds.y.values[0] == 5689995.0
    assert ds.attrs["openeo:job_id"] == job.job_id
    files = downloaded(connection, job)
    for i, (values, descriptions) in enumerate(v for _, v in sorted(files.items())):
        assert descriptions == ("B04", "B08")
        np.testing.assert_array_equal(ds.B04.isel(t=i).values, values[0])
        np.testing.assert_array_equal(ds.B08.isel(t=i).values, values[1])


def test_opening_sends_no_request_for_asset_bytes(open_results):
    collection = SyntheticCollection(dates=20, width=512, height=512)
    with LocalBackend([collection], blocksize=256) as b:
        conn = b.connect()
        job = conn.load_collection("SENTINEL2_L2A", bands=["B02", "B03", "B04"]).create_job(out_format="GTiff")
        job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
        b.clear_requests()
        ds = open_results(job)  # default chunks: whole files (one GET each when read whole)
        assert ds.sizes == {"t": 20, "y": 512, "x": 512} and ds.B03.chunks[1:] == ((512,), (512,))
        assert not [r for r in b.requests if "/results/assets/" in r.path]

        # One tile of one band across all dates, default chunks: a header and a tile per file, nothing else.
        b.clear_requests()
        window = ds.B03.isel(y=slice(256, 512), x=slice(0, 256)).values
        assert window.shape == (20, 256, 256)
        asset_requests = [r for r in b.requests if "/results/assets/" in r.path]
        per_file = {}
        for r in asset_requests:
            per_file.setdefault(r.path.rsplit("/", 1)[1], []).append(r)
        assert len(per_file) == 20 and all(len(rs) <= 2 for rs in per_file.values())
        assert all(r.status == 206 for r in asset_requests)
        file_size = sum(f.stat().st_size for f in b.job(job.job_id).out_dir.iterdir())
        assert sum(r.bytes_sent for r in asset_requests) < file_size / 3

        # A few dates touch only their files.
        b.clear_requests()
        ds.B03.isel(t=slice(0, 5), y=slice(0, 256), x=slice(0, 256)).load()
        touched = {r.path.rsplit("/", 1)[1] for r in b.requests if "/results/assets/" in r.path}
        assert touched == {f"openEO_2023-01-{d:02d}Z.tif" for d in (1, 6, 11, 16, 21)}


def test_a_whole_file_chunk_is_one_get(backend, connection, open_results):
    job = run_job(connection)
    ds = open_results(job)
    backend.clear_requests()
    ds.load()
    assets = [r for r in backend.requests if "/results/assets/" in r.path]
    assert len(assets) == 3 and all(r.status == 200 and "Range" not in r.headers for r in assets)


def test_several_dates_per_task(backend, connection):
    ds = xr_openeo.open_results(run_job(connection), chunks={"t": 2})
    assert ds.B04.chunks[0] == (2, 1)
    graph = dict(ds.B04.data.__dask_graph__())
    reads = [k for k in graph if isinstance(k, tuple) and str(k[0]).startswith("openeo-read-") and "-band" not in k[0]]
    assert len(reads) == 2


def test_the_token_only_goes_under_the_backend_root(backend, connection, open_results):
    job = run_job(connection, faults={"signed_urls": False})
    ds = open_results(job)
    ds.load()
    asset_requests = [r for r in backend.requests if "/results/assets/" in r.path]
    assert asset_requests and all(r.headers.get("Authorization", "").startswith("Bearer ") for r in asset_requests)
    signed = open_results(run_job(connection))
    backend.clear_requests()
    signed.load()
    assert [r.path for r in backend.requests if "Authorization" in r.headers] == []


def test_graphs_pickle_without_the_token(backend, connection, open_results):
    job = run_job(connection, faults={"signed_urls": True})
    ds = open_results(job)
    blob = pickle.dumps(ds)
    token = connection.auth.bearer.split("/")[-1]
    assert token.encode() not in blob
    restored = pickle.loads(blob)
    xr.testing.assert_identical(restored.load(), ds.load())


def test_open_by_url_document_path_and_job_id(backend, connection, tmp_path):
    job = run_job(connection)
    expected = xr_openeo.open_results(job).load()
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    canonical = next(link["href"] for link in doc["links"] if link["rel"] == "canonical")
    path = tmp_path / "job-results.json"
    path.write_text(__import__("json").dumps(doc))
    for source, kwargs in [
        (canonical, {}),
        (f"{backend.url}/jobs/{job.job_id}/results", {"connection": connection}),
        (job.job_id, {"connection": connection}),
        (doc, {}),
        (path, {}),
        (job.get_results(), {}),
    ]:
        xr.testing.assert_equal(xr_openeo.open_results(source, **kwargs).load(), expected)


def test_expired_urls_are_renewed(clocked_backend, clock, open_results):
    connection = clocked_backend.connect()
    job = run_job(connection, faults={"url_validity": 60})
    ds = open_results(job)
    clock.advance(120)  # the backend now refuses every asset URL the graph holds
    clocked_backend.clear_requests()
    ds.load()
    doc_fetches = [r for r in clocked_backend.requests if r.path.endswith("/results") and r.method == "GET"]
    refused = [r for r in clocked_backend.requests if "/results/assets/" in r.path and r.status == 410]
    assert refused and len(doc_fetches) == 1  # renewed once, however many reads were refused


def test_distributed_with_expiring_urls(clocked_backend, clock, open_results):
    import distributed  # in the test extra: this test must run, never skip

    connection = clocked_backend.connect()
    job = run_job(connection, faults={"url_validity": 60, "canonical_validity": 600})
    ds = open_results(job, chunks={"t": 1})
    expected = ds.compute(scheduler="threads")
    clock.advance(120)  # every asset URL in the graph has expired now; the canonical link has not
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address="127.0.0.1:0"
    ) as cluster:
        with distributed.Client(cluster) as client:
            result = client.compute(ds).result()
    xr.testing.assert_identical(result, expected)


def test_raster_json_opens_through_both_fronts(backend, connection, open_results):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    expected = xr_openeo.open_results(run_job(connection), dtype="uint16", masked=False).load()
    job = cube.create_job(out_format="JSON")
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    ds = open_results(job)
    assert set(ds.data_vars) == {"B04", "B08"} and ds.B04.dims == ("t", "y", "x")
    np.testing.assert_array_equal(ds.B04.values, expected.B04.values)
    np.testing.assert_array_equal(ds.t.values, expected.t.values)
    assert ds.openeo.job_id == job.job_id


def test_bad_input_raises_library_errors(backend, connection):
    with pytest.raises(JobNotFoundError, match="JobNotFound"):
        xr_openeo.open_results("j-doesnotexist", connection=connection)
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])
    unstarted = cube.create_job(out_format="GTiff")
    with pytest.raises(JobNotFinishedError, match="partial=True"):
        xr_openeo.open_results(unstarted)
    with pytest.raises(ResultsDocumentError, match="assets.x.href"):
        xr_openeo.open_results({"type": "Collection", "stac_version": "1.0.0", "assets": {"x": {"type": "image/tiff"}}})
    odd = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "assets": {"model.onnx": {"href": "http://127.0.0.1:1/model.onnx", "type": "application/onnx"}},
    }
    with pytest.raises(UnsupportedMediaTypeError, match="model.onnx"):
        xr_openeo.open_results(odd)
    with pytest.raises(TypeError, match="cannot open a int"):
        xr_openeo.open_results(42)


def test_the_engine_guesses_syntactically():
    from xr_openeo.backend import OpenEOBackendEntrypoint

    engine = OpenEOBackendEntrypoint()
    assert engine.guess_can_open("https://openeo.example/openeo/1.2/jobs/j-1/results")
    assert not engine.guess_can_open("https://example.com/data.nc")
    assert not engine.guess_can_open("local.nc")


@pytest.mark.parametrize("style", [{}, {"stac-version": "1.1"}, {"results-style": "item"}])
@pytest.mark.parametrize("signed", [True, False])
def test_netcdf_values_equal_the_downloaded_file(backend, connection, open_results, style, signed):
    import io

    job = run_job(connection, out_format="netCDF", **style, faults={"signed_urls": signed})
    ds = open_results(job)
    assert sorted(ds.data_vars) == ["B04", "B08"] and ds.B04.dims == ("t", "y", "x")
    assert ds.rio.crs.to_epsg() == 32631 and ds.attrs["openeo:job_id"] == job.job_id
    (asset,) = job.get_results().get_assets()
    raw = connection.get(asset.href).content if not signed else requests.get(asset.href, timeout=10).content
    with xr.open_dataset(io.BytesIO(raw), engine="h5netcdf") as expected:
        for band in ("B04", "B08"):
            np.testing.assert_array_equal(ds[band].values, expected[band].values)
        np.testing.assert_array_equal(ds.t.values, expected.t.values)
