"""What a new user trips over in their first hour (issue 11): nodata, misleading errors, signed URLs,
sharing, provenance through reshaping, netCDF chunks."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
from conftest import SMALL_EXTENT

import xr_openeo
from xr_openeo.errors import NoJobError, XrOpenEOError


def run_job(connection, out_format="GTiff", bands=("B04", "B08")):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=list(bands))
    job = cube.create_job(out_format=out_format)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


def canonical(connection, job) -> str:
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    return next(link["href"] for link in doc["links"] if link["rel"] == "canonical")


# -- nodata ----------------------------------------------------------------------------------------


def test_rasters_keep_their_nodata_through_a_round_trip(backend, connection, open_results, tmp_path):
    job = run_job(connection)
    ds = open_results(job)
    # The document gives no nodata (geopyspark never does) and opening reads no header: missing
    # pixels are NaN, and the data says so, so GIS tools mask them.
    assert np.isnan(ds.B04.rio.nodata)
    ds.B04.isel(t=0).rio.to_raster(tmp_path / "b04.tif")
    with rasterio.open(tmp_path / "b04.tif") as written:
        assert np.isnan(written.nodata)
        assert written.read(1, masked=True).mask.sum() == int(ds.B04.isel(t=0).isnull().sum())
    # The files' own dtype keeps their nodata value (the header is read for the dtype).
    raw = open_results(job, masked=False)
    assert raw.B04.dtype == np.uint16 and raw.B04.rio.nodata == 0
    raw.B04.isel(t=0).rio.to_raster(tmp_path / "raw.tif")
    with rasterio.open(tmp_path / "raw.tif") as written:
        assert written.nodata == 0 and written.dtypes[0] == "uint16"


def test_a_nodata_the_document_gives_is_encoded_the_rioxarray_way(backend, connection, tmp_path):
    job = run_job(connection)
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    doc["links"] = [link for link in doc["links"] if link["rel"] != "item"]
    for asset in doc["assets"].values():
        asset["raster:bands"] = [{"name": b["name"], "nodata": 0} for b in asset["eo:bands"]]
    ds = xr_openeo.open_results(doc)
    assert ds.B04.encoding["_FillValue"] == 0 and ds.B04.rio.encoded_nodata == 0
    assert np.isnan(ds.B04.rio.nodata)  # the data itself holds NaN where the files hold 0
    ds.B04.isel(t=0).rio.to_raster(tmp_path / "b04.tif")
    with rasterio.open(tmp_path / "b04.tif") as written:  # NaN written back as the files' nodata
        assert written.nodata == 0 and not np.isnan(written.read(1)).any()
        assert (written.read(1) == 0).sum() == int(ds.B04.isel(t=0).isnull().sum())


# -- errors that point the right way ---------------------------------------------------------------


def test_a_dataset_not_from_openeo_says_how_to_get_one():
    plain = xr.Dataset({"a": ("x", [1, 2])})
    for call in (lambda: plain.openeo.compute_batch(), lambda: plain.openeo.assets, lambda: plain.openeo.cube):
        with pytest.raises(NoJobError, match="not bound to an openEO graph or job.*from_cube.*open_results"):
            call()
    with pytest.raises(TypeError, match="not bound to one.*from_cube"):
        xr_openeo.compute_batch(plain)
    assert "not from openEO" in repr(plain.openeo)


def test_a_deferred_dataset_says_it_has_not_run(backend, connection):
    plan = xr_openeo.from_cube(connection.load_collection("SENTINEL2_L2A", bands=["B04"]))
    for call in (lambda: plan.openeo.assets, lambda: plan.openeo.status(), lambda: plan.openeo.download("x")):
        with pytest.raises(NoJobError, match="has not run.*ds.openeo.compute_batch"):
            call()


def test_a_mistyped_path_is_no_such_file(tmp_path):
    for wrong in (str(tmp_path / "job-results.jsn"), "results/job-results.json", "job-results.json"):
        with pytest.raises(XrOpenEOError, match="no such file"):
            xr_openeo.open_results(wrong)


@pytest.mark.parametrize(
    ("chunks", "message"),
    [({"t": 2.5}, r"chunks\['t'\] must be"), ({"band": 1}, "dimension 'band'"), ({"x": "big"}, r"chunks\['x'\]")],
)
def test_chunks_are_checked_before_anything_is_sent(chunks, message):
    with pytest.raises(ValueError, match=message):
        xr_openeo.open_results("https://127.0.0.1:9/openeo/1.2/jobs/j-1/results", chunks=chunks)


def test_chunks_accept_what_xarray_accepts(backend, connection):
    job = run_job(connection)
    assert xr_openeo.open_results(job, chunks={"t": "auto"}).B04.chunks[0] == (3,)
    assert xr_openeo.open_results(job, chunks={"t": -1, "y": None}).B04.chunks == ((3,), (256,), (256,))
    assert xr_openeo.open_results(job, chunks={"x": (128, 128)}).B04.chunks[2] == (128, 128)


# -- signed links, sharing, provenance --------------------------------------------------------------


def test_results_opened_from_a_signed_url_know_their_backend(backend, connection):
    job = run_job(connection)
    ds = xr_openeo.open_results(canonical(connection, job))
    assert ds.openeo.backend == backend.url and ds.attrs["openeo:backend"] == backend.url
    assert f"on {backend.url}" in repr(ds.openeo) and "None" not in repr(ds.openeo)
    with pytest.raises(XrOpenEOError, match=f"needs a connection to {backend.url}.*pass connection="):
        ds.openeo.status()


def test_share_url_opens_the_results_anywhere_without_a_login(backend, connection):
    job = run_job(connection)
    ds = xr_openeo.open_results(job)
    url = ds.openeo.share_url
    assert url and "/results/" in url and "expires=" in url
    assert url not in repr(ds.encoding) and url not in repr(ds.attrs)  # a secret: never shown
    shared = xr_openeo.open_results(url)  # no connection, no token
    xr.testing.assert_equal(shared.load(), ds.load())
    assert not [r for r in backend.requests[-5:] if "Authorization" in r.headers]


def test_the_jobs_identity_survives_the_usual_reshaping(backend, connection):
    ds = xr_openeo.compute_batch(
        connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"]).ndvi(
            red="B04", nir="B08", target_band="NDVI"
        ),
        progress=False,
    )
    for derived in (ds.NDVI.isel(t=0).to_dataset(), ds[["B04"]], ds.isel(x=slice(0, 10)), ds.NDVI.to_dataset()):
        assert derived.openeo.job_id == ds.openeo.job_id
        assert derived.openeo.backend == backend.url
        assert derived.openeo.status() == "finished"


def test_netcdf_default_chunks_are_one_date_like_geotiff(backend, connection, open_results):
    ds = open_results(run_job(connection, "netCDF"))
    assert ds.B04.chunks[0] == (1, 1, 1)
    tif = open_results(run_job(connection))
    assert tif.B04.chunks[0] == ds.B04.chunks[0]
