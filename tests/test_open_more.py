"""open_results beyond one plain GeoTIFF job: tables, partial results, merging, several grids, import cost."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import requests
import xarray as xr
from conftest import SMALL_EXTENT, two_polygons

import xr_openeo
import xr_openeo.errors
from xr_openeo.errors import XrOpenEOError


def finished(job):
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


def timeseries_job(connection, out_format, **options):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    return finished(
        cube.aggregate_spatial(two_polygons(), "mean").create_job(out_format=out_format, job_options=options or None)
    )


@pytest.mark.parametrize("style", [{}, {"stac-version": "1.1"}, {"results-style": "item"}])
def test_time_series_formats_agree_with_their_downloads(backend, connection, open_results, style):
    frames = {}
    for fmt in ("JSON", "CSV", "Parquet"):
        job = timeseries_job(connection, fmt, **style)
        frame = xr_openeo.open_dataframe(job)
        assert list(frame.index.names) == ["t", "feature"] and {"B04", "B08"} <= set(frame.columns)
        frames[fmt] = frame[["B04", "B08"]].astype("float64")
        asset = job.get_results().get_assets()[0]
        raw = requests.get(asset.href, timeout=10).content
        if fmt == "CSV":
            direct = pd.read_csv(io.BytesIO(raw))
            assert np.allclose(np.sort(direct.B04.to_numpy()), np.sort(frame.B04.to_numpy()))
        ds = open_results(job)
        assert ds.B04.dims == ("feature", "t") and ds.sizes == {"feature": 2, "t": 3}
        assert ds.attrs["openeo:job_id"] == job.job_id
    pd.testing.assert_frame_equal(frames["JSON"], frames["Parquet"], check_dtype=False)
    pd.testing.assert_frame_equal(frames["JSON"], frames["CSV"], check_dtype=False, rtol=1e-6)


def test_json_time_series_uses_the_backends_own_parser_values(backend, connection):
    from openeo.rest.conversions import timeseries_json_to_pandas

    job = timeseries_job(connection, "JSON")
    ours = xr_openeo.open_dataframe(job)
    theirs = timeseries_json_to_pandas(job.get_results().get_asset().load_json())
    np.testing.assert_allclose(np.sort(ours.to_numpy().ravel()), np.sort(theirs.to_numpy().ravel()))


def test_geojson_results_are_a_geodataframe(backend, connection):
    frame = xr_openeo.open_dataframe(timeseries_job(connection, "GeoJSON"))
    assert frame.crs.to_epsg() == 4326 and frame.index.names == ["t", "feature"]
    assert frame.index.get_level_values("feature").unique().tolist() == [0, 1] and len(frame) == 3 * 2


def test_open_dataframe_refuses_rasters_with_a_way_out(backend, connection):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])
    job = finished(cube.create_job(out_format="GTiff"))
    with pytest.raises(XrOpenEOError, match="open_results"):
        xr_openeo.open_dataframe(job)


def test_partial_results_of_a_running_job(backend, connection, open_results):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])
    job = cube.create_job(out_format="GTiff", job_options={"faults": {"run_duration": 4}})
    job.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        doc = connection.get(f"/jobs/{job.job_id}/results", params={"partial": "true"}).json()
        if 0 < len(doc["assets"]) < 3:
            break
        time.sleep(0.05)
    ds = open_results(job, partial=True)
    assert ds.attrs["openeo:status"] == "running"
    assert 1 <= ds.sizes["t"] < 3
    assert np.isfinite(ds.B04.isel(t=0).values).any()
    job.stop()


def test_same_datetime_assets_merge_first_valid_pixel(backend, connection):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    job = finished(cube.create_job(out_format="GTiff"))
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    keys = sorted(doc["assets"])
    # Claim the 2nd and 3rd dates were taken at the same time as the first: three files, one date.
    for key in keys:
        doc["assets"][key]["datetime"] = "2023-01-01T00:00:00Z"
    merged = xr_openeo.open_results(doc).load()
    assert merged.sizes["t"] == 1
    separate = xr_openeo.open_results(job).load()
    expected = separate.B04.isel(t=0).fillna(separate.B04.isel(t=1)).fillna(separate.B04.isel(t=2))
    np.testing.assert_array_equal(merged.B04.isel(t=0).values, expected.values)
    assert np.isnan(separate.B04.isel(t=0).values).sum() > np.isnan(merged.B04.values).sum()


def test_assets_on_one_grid_mosaic_and_on_other_grids_come_back_as_groups(backend, connection):
    small = {"west": 640000, "south": 5689000, "east": 641000, "north": 5690000, "crs": 32631}
    jobs = [
        finished(
            connection.load_collection(
                "SENTINEL2_L2A", spatial_extent=extent, bands=["B04"], temporal_extent=["2023-01-01", "2023-01-02"]
            ).create_job(out_format="GTiff")
        )
        for extent in (SMALL_EXTENT, small)
    ]
    docs = [connection.get(f"/jobs/{j.job_id}/results").json() for j in jobs]
    combined = dict(docs[0])
    combined["links"] = []
    combined["assets"] = {
        "big.tif": next(iter(docs[0]["assets"].values())),
        "small.tif": next(iter(docs[1]["assets"].values())),
    }
    # The small file lies on the big one's pixel grid: one cube on their union (the big one's extent).
    mosaic = xr_openeo.open_results(combined)
    assert isinstance(mosaic, xr.Dataset) and mosaic.sizes == {"t": 1, "y": 256, "x": 256}
    alone = xr_openeo.open_results({**combined, "assets": {"big.tif": combined["assets"]["big.tif"]}})
    xr.testing.assert_equal(mosaic.B04, alone.B04)  # the big file comes first and has every pixel
    # Shifted by half a pixel, it cannot share that grid: a DataTree with a group per grid.
    shifted = json.loads(json.dumps(combined))
    bbox = shifted["assets"]["small.tif"]["proj:bbox"]
    shifted["assets"]["small.tif"]["proj:bbox"] = [bbox[0] + 5, bbox[1], bbox[2] + 5, bbox[3]]
    tree = xr_openeo.open_results(shifted)
    assert isinstance(tree, xr.DataTree)
    sizes = sorted(tree[group].dataset.sizes["x"] for group in tree.children)
    assert sizes == [100, 256]
    with pytest.raises(ValueError, match="different grids"):
        xr.open_dataset(shifted, engine="openeo")


def test_selecting_assets(backend, connection, open_results):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])
    job = finished(cube.create_job(out_format="GTiff"))
    ds = open_results(job, assets=["openEO_2023-01-06Z.tif"])
    assert [str(t)[:10] for t in ds.t.values] == ["2023-01-06"]
    with pytest.raises(XrOpenEOError, match="matches no asset"):
        xr_openeo.open_results(job, assets="nope.tif")


def test_importing_is_cheap():
    code = (
        "import sys, xr_openeo, xr_openeo.backend\n"
        "heavy = [m for m in ('rasterio', 'h5py', 'openeo', 'dask.array', 'requests') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("signed", [True, False])
def test_zarr_results_open_through_xarrays_zarr_engine(backend, connection, open_results, signed):
    import pickle

    def job(fmt):
        cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
        return finished(cube.create_job(out_format=fmt, job_options={"faults": {"signed_urls": signed}}))

    ds = open_results(job("Zarr"))
    assert ds.B04.dims == ("t", "y", "x") and ds.rio.crs.to_epsg() == 32631
    assert ds.B04.chunks is not None
    expected = xr_openeo.open_results(job("GTiff")).load()
    np.testing.assert_array_equal(ds.B04.values, expected.B04.values)
    if signed:
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(ds)).B08.values, expected.B08.values)
    else:  # hrefs that need the token: pickles carry it only when asked to
        with pytest.raises(xr_openeo.errors.AssetReadError, match="pickle_token=True"):
            pickle.loads(pickle.dumps(ds)).B08.load()
        allowed = xr_openeo.open_results(job("Zarr"), pickle_token=True)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(allowed)).B08.values, expected.B08.values)


def test_without_grid_metadata_one_header_is_read_per_grid(backend, connection, open_results):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    job = finished(cube.create_job(out_format="GTiff"))
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    doc["links"] = [link for link in doc["links"] if link["rel"] != "item"]
    for asset in doc["assets"].values():
        for field in ("proj:epsg", "proj:code", "proj:shape", "proj:bbox", "eo:bands", "raster:bands"):
            asset.pop(field, None)
    backend.clear_requests()
    ds = open_results(doc)
    headers = [r for r in backend.requests if "/results/assets/" in r.path]
    assert len(headers) == 1 and headers[0].headers.get("Range", "").startswith("bytes=0-")
    assert sorted(ds.data_vars) == ["B04", "B08"]  # from the file's band descriptions
    xr.testing.assert_equal(ds.load().drop_attrs(), xr_openeo.open_results(job).load().drop_attrs())
