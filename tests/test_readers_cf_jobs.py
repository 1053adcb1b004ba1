"""netCDF results split into several files by real jobs of the local backend: one cube, as one file gives.

``tile_grid`` (geopyspark's save_result option: one file per grid cell, with either the tile's or
the job's ``proj:*`` on each) and ``sample_by_feature`` (one file per feature of the graph's
``filter_spatial``) write files of one pixel grid; both fronts open them as one Dataset on the
union of the files, equal to the same job written as one file, NaN where no file is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr
from conftest import SMALL_EXTENT, two_polygons

import xr_openeo

BANDS = ["B04", "B08"]


def run(cube: Any, **job_options: Any) -> Any:
    job = cube.create_job(job_options=job_options or None)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


def cube_of(connection: Any, features: bool = False) -> Any:
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=BANDS)
    return cube.filter_spatial(two_polygons()) if features else cube


def whole(connection: Any, features: bool = False) -> xr.Dataset:
    """The same cube written as one netCDF, loaded."""
    return xr_openeo.open_results(run(cube_of(connection, features).save_result(format="netCDF"))).load()


@pytest.mark.parametrize("proj", ["tile", "job"])
def test_a_tile_grid_mosaics_to_the_single_file_result(
    backend: Any, connection: Any, open_results: Any, proj: str
) -> None:
    options = {"tile_grid": "utm-1km", "tile_grid_proj": proj}
    job = run(cube_of(connection).save_result(format="netCDF", options=options))
    assert len(job.get_results().get_assets()) == 9  # 3 × 3 cells of 1 km
    backend.clear_requests()
    ds = open_results(job)
    at_open = [r for r in backend.requests if "/results/assets/" in r.path]
    backend.clear_requests()
    ds = ds.load()
    assert [r for r in backend.requests if "/results/assets/" in r.path] == []
    expected = whole(connection)
    assert isinstance(ds, xr.Dataset) and ds.sizes == expected.sizes
    for name in ("t", "y", "x", *BANDS):
        np.testing.assert_array_equal(ds[name].values, expected[name].values)
    assert ds.rio.crs == expected.rio.crs and ds.rio.transform() == expected.rio.transform()
    # Each file is small: downloaded whole at open (its header, then the rest), once; computing sent nothing.
    files = {p.name: p.stat().st_size for p in backend.job(job.job_id).out_dir.iterdir() if p.suffix == ".nc"}
    assert sum(r.bytes_sent for r in at_open) == sum(files.values())
    assert {r.path.rsplit("/", 1)[1] for r in at_open} == set(files)


def test_per_feature_files_mosaic_on_their_union(connection: Any, open_results: Any) -> None:
    job = run(cube_of(connection, features=True).save_result(format="netCDF", options={"sample_by_feature": True}))
    ds = open_results(job).load()
    expected = whole(connection, features=True)
    assert isinstance(ds, xr.Dataset) and list(ds.data_vars) == BANDS
    # The union of the two features' boxes: a window of the whole grid, NaN between the features.
    window = expected.sel(x=slice(ds.x.values[0], ds.x.values[-1]), y=slice(ds.y.values[0], ds.y.values[-1]))
    np.testing.assert_array_equal(ds.x.values, window.x.values)
    np.testing.assert_array_equal(ds.y.values, window.y.values)
    for band in BANDS:
        np.testing.assert_array_equal(ds[band].values, window[band].values)  # NaN outside the features
    # a pixel between the two rectangles (x 640400..640700) lies in no file
    assert np.isnan(ds.B04.sel(x=640555.0, method="nearest").values).all()
