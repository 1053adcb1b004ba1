"""Synchronous processing (`POST /result`): the same graph gives the same result as a batch job, through the client."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import rasterio
import requests
import xarray as xr
from conftest import SMALL_EXTENT, expected_ndvi, two_polygons, until

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
DATES = ["openEO_2023-01-01Z.tif", "openEO_2023-01-06Z.tif", "openEO_2023-01-11Z.tif"]


def ndvi_cube(connection, dates=("2023-01-01", "2023-01-31")):
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, temporal_extent=list(dates), bands=["B04", "B08"]
    )
    return cube.ndvi(red="B04", nir="B08")


def batch_files(backend, cube, out_format=None) -> dict[str, Path]:
    """The files a batch job of ``cube`` writes, by asset key (``out_format`` None: the cube saves itself)."""
    job = cube.create_job(out_format=out_format) if out_format else cube.create_job()
    job.start_and_wait(max_poll_interval=0.1)
    out_dir = backend.job(job.job_id).out_dir
    return {a.key: out_dir / a.key for a in job.get_results().get_assets()}


def post_result(backend, connection, graph: dict, **body) -> requests.Response:
    return requests.post(
        f"{backend.url}/result",
        json={"process": {"process_graph": graph}, **body},
        headers={"Authorization": f"Bearer basic//{connection.auth.bearer.rpartition('/')[2]}"},
        timeout=60,
    )


def assert_same_rasters(sync: Path | bytes, batch: Path) -> None:
    source = rasterio.MemoryFile(sync) if isinstance(sync, bytes) else None
    with source.open() if source else rasterio.open(sync) as a, rasterio.open(batch) as b:
        assert (a.crs, a.transform, a.shape, a.count, a.dtypes) == (b.crs, b.transform, b.shape, b.count, b.dtypes)
        assert (repr(a.nodata), a.descriptions) == (repr(b.nodata), b.descriptions)  # nodata may be NaN
        np.testing.assert_array_equal(a.read(), b.read())
    if source is not None:
        source.close()


def sync_workdir_is_empty(backend) -> bool:
    """Whether every synchronous request's files are gone (removed once its response is closed)."""
    folder = backend.workdir / "_sync"
    return until(lambda: not folder.exists() or not any(folder.iterdir()), "the request's files to go")


def test_one_date_of_gtiff_downloads_as_the_batch_jobs_file(backend, connection, tmp_path):
    cube = ndvi_cube(connection, dates=("2023-01-01", "2023-01-02"))
    target = tmp_path / "ndvi.tif"
    cube.download(target)  # the client guesses GTiff from the name and adds save_result
    (batch,) = batch_files(backend, cube, "GTiff").values()
    assert_same_rasters(target, batch)
    with rasterio.open(target) as ds:
        np.testing.assert_allclose(ds.read(1), expected_ndvi(0), rtol=1e-6, equal_nan=True)


def test_netcdf_downloads_as_the_batch_jobs_file(backend, connection, tmp_path):
    cube = ndvi_cube(connection)
    target = tmp_path / "ndvi.nc"
    cube.download(target)
    (batch,) = batch_files(backend, cube, "netCDF").values()
    with xr.open_dataset(target, engine="h5netcdf") as sync, xr.open_dataset(batch, engine="h5netcdf") as ref:
        xr.testing.assert_identical(sync, ref)
        assert sync.sizes["t"] == 3
        np.testing.assert_allclose(sync["var"].isel(t=2).values, expected_ndvi(2), rtol=1e-6, equal_nan=True)


def test_several_files_come_as_a_tar_with_a_results_document(backend, connection):
    cube = ndvi_cube(connection)
    response = post_result(backend, connection, cube.save_result("GTiff").flat_graph())
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/x-tar"
    request_id = response.headers["OpenEO-Identifier"]
    assert response.headers["Content-Disposition"] == f'attachment; filename="{request_id}.tar"'
    batch = batch_files(backend, cube, "GTiff")
    with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
        names = set(tar.getnames())
        assert set(DATES) <= names
        for key in DATES:
            assert_same_rasters(tar.extractfile(key).read(), batch[key])
        document = json.load(tar.extractfile("job-results.json"))
        assert document["type"] == "Collection" and document["id"] == request_id
        assert document["openeo:status"] == "finished"
        assert sorted(document["assets"]) == DATES
        assert {a["href"] for a in document["assets"].values()} == set(DATES)  # relative to the document
        assert "canonical" not in {link["rel"] for link in document["links"]}
        items = [link["href"] for link in document["links"] if link["rel"] == "item"]
        assert len(items) == 3 and set(items) <= names
        for href in items:
            item = json.load(tar.extractfile(href))
            (asset,) = item["assets"].values()
            # An item's hrefs are relative to the item document itself.
            assert str(PurePosixPath(href).parent / asset["href"]).replace("items/../", "") in DATES
    assert sync_workdir_is_empty(backend)


def test_the_archive_follows_the_requested_results_style(backend, connection):
    graph = ndvi_cube(connection).save_result("GTiff").flat_graph()
    response = post_result(backend, connection, graph, job_options={"stac-version": "1.1"})
    with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
        document = json.load(tar.extractfile("job-results.json"))
    assert document["stac_version"] == "1.1.0" and "item_assets" in document


def test_a_json_time_series_executes_like_the_batch_result(backend, connection):
    cube = ndvi_cube(connection).aggregate_spatial(two_polygons(), "mean")
    # No save_result: the backend saves a vector cube as JSON, as openeo-python-driver does.
    series = cube.execute()
    (batch,) = batch_files(backend, cube.save_result("JSON")).values()
    assert series == json.loads(batch.read_text())
    assert sorted(series) == ["2023-01-01T00:00:00Z", "2023-01-06T00:00:00Z", "2023-01-11T00:00:00Z"]
    assert connection.execute(cube.save_result("JSON")) == series


def test_a_raster_without_save_result_comes_as_gtiff(backend, connection):
    cube = ndvi_cube(connection, dates=("2023-01-06", "2023-01-07"))
    response = post_result(backend, connection, cube.flat_graph())
    assert response.status_code == 200 and response.headers["Content-Type"] == COG
    assert response.headers["Content-Disposition"] == 'attachment; filename="openEO_2023-01-06Z.tif"'
    with rasterio.MemoryFile(response.content) as f, f.open() as ds:
        np.testing.assert_allclose(ds.read(1), expected_ndvi(1), rtol=1e-6, equal_nan=True)


def test_a_zarr_store_comes_as_a_tar_of_its_files(backend, connection):
    graph = ndvi_cube(connection).save_result("Zarr").flat_graph()
    response = post_result(backend, connection, graph)
    with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
        document = json.load(tar.extractfile("job-results.json"))
        (key,) = document["assets"]
        assert f"{key}/.zmetadata" in tar.getnames() or f"{key}/zarr.json" in tar.getnames()


def test_the_api_1_0_root_serves_it_too(backend, tmp_path):
    connection = backend.connect(api_version="1.0")
    target = tmp_path / "ndvi.nc"
    ndvi_cube(connection).download(target)
    with xr.open_dataset(target, engine="h5netcdf") as ds:
        assert ds.sizes["t"] == 3


def test_each_request_has_its_own_identifier_and_leaves_no_files(backend, connection):
    graph = ndvi_cube(connection, dates=("2023-01-01", "2023-01-02")).save_result("GTiff").flat_graph()
    first, second = (post_result(backend, connection, graph) for _ in range(2))
    assert first.content == second.content
    ids = {r.headers["OpenEO-Identifier"] for r in (first, second)}
    assert len(ids) == 2 and all(i.startswith("r-") for i in ids)
    assert "OpenEO-Costs" not in first.headers
    assert sync_workdir_is_empty(backend)
    assert not backend.state.jobs.jobs  # no batch job was made


@pytest.mark.parametrize("costs", [0, 1.5])
def test_costs_are_sent_when_switched_on(backend, connection, costs):
    graph = ndvi_cube(connection, dates=("2023-01-01", "2023-01-02")).save_result("GTiff").flat_graph()
    response = post_result(backend, connection, graph, job_options={"faults": {"sync_costs": costs}})
    assert response.status_code == 200 and float(response.headers["OpenEO-Costs"]) == costs
