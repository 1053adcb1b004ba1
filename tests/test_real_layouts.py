"""Results laid out as real backends lay them out, opened end to end through real jobs (issue 12):
tile_grid splits mosaic into one cube (with per-tile or job-level proj:*), models and gdalinfo
metadata are skipped and listed, per-feature netCDFs mosaic."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from conftest import SMALL_EXTENT

import xr_openeo
from xr_openeo.errors import SkippedAssetWarning


def job_of(connection, out_format="GTiff", **job_options):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    job = cube.create_job(out_format=out_format, job_options=job_options or None)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


def assets(backend, job) -> list:
    return [r for r in backend.requests if "/results/assets/" in r.path]


@pytest.mark.parametrize("proj", ["tile", "job"])
@pytest.mark.parametrize("fmt", ["GTiff", "netCDF"])
def test_a_tile_grid_result_is_the_same_cube_as_without_it(backend, connection, open_results, fmt, proj):
    whole = open_results(job_of(connection, fmt)).load()
    tiled_job = job_of(connection, fmt, tile_grid="utm-1km", tile_grid_proj=proj)
    files = backend.job(tiled_job.job_id).assets
    assert len(files) > 3  # several files per date (GTiff) or per tile (netCDF)
    backend.clear_requests()
    tiled = open_results(tiled_job)
    opening = assets(backend, tiled)
    if fmt == "GTiff" and proj == "tile":
        assert opening == []  # the document's grids are right: nothing read at open
    elif fmt == "GTiff":
        # Every tile carries the job's grid: they cannot all lie there, so their headers are read.
        assert len({r.path for r in opening}) == len(files) and all(r.status == 206 for r in opening)
    assert isinstance(tiled, xr.Dataset) and dict(tiled.sizes) == dict(whole.sizes)
    xr.testing.assert_equal(tiled[["B04", "B08"]].load().drop_attrs(), whole[["B04", "B08"]].drop_attrs())


def test_a_full_read_of_a_tiled_result_is_one_get_per_file(backend, connection):
    job = job_of(connection, tile_grid="utm-1km")
    ds = xr_openeo.open_results(job)
    backend.clear_requests()
    ds.load()
    reads = assets(backend, job)
    files = backend.job(job.job_id).assets
    assert len(reads) == len(files) and all(r.status == 200 and "Range" not in r.headers for r in reads)
    assert sum(r.bytes_sent for r in reads) == sum(f.path.stat().st_size for f in files)


def test_models_and_gdalinfo_files_are_skipped_and_listed(backend, connection):
    job = job_of(connection, ml_model="random-forest", attach_gdalinfo_assets=True)
    with pytest.warns(SkippedAssetWarning) as record:
        ds = xr_openeo.open_results(job)
    skipped = record[0].message.skipped
    assert any("model" in key for key in skipped) and sum(key.endswith("_gdalinfo.json") for key in skipped) == 3
    assert len(record) == 1 and ds.sizes["t"] == 3 and set(ds.data_vars) == {"B04", "B08"}
    table = ds.openeo.assets
    assert table.loc[list(skipped), "skipped"].str.len().gt(0).all() and table.opened.sum() == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # chosen by name: nothing to say about the rest
        assert xr_openeo.open_results(job, assets="geotiff").sizes["t"] == 3


def test_per_feature_netcdfs_mosaic(backend, connection, open_results):
    from conftest import two_polygons

    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])
    whole = open_results(job_of(connection, "netCDF")).B04.load()
    per_feature = cube.filter_spatial(two_polygons())
    job = per_feature.create_job(out_format="netCDF", job_options={"sample_by_feature": True})
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    assert len(backend.job(job.job_id).assets) == 2
    ds = open_results(job)
    assert isinstance(ds, xr.Dataset)
    values = ds.B04.load()
    reference = whole.sel(x=values.x, y=values.y)
    # (the local backend's filter_spatial keeps the files' nodata 0 as a value: compare valid pixels)
    both = values.notnull() & reference.notnull()
    assert both.sum() > 100
    np.testing.assert_array_equal(values.where(both).values, reference.where(both).values)
