"""Where an executed result lives: in memory when small; else in a temporary directory that goes with it."""

from __future__ import annotations

import gc
import glob
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import SMALL_EXTENT, expected_ndvi, two_polygons

import xr_openeo
from xr_openeo.errors import AssetReadError


def ndvi_cube(connection):
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, temporal_extent=["2023-01-01", "2023-01-31"], bands=["B04", "B08"]
    )
    return cube.ndvi(red="B04", nir="B08", target_band="NDVI")


def spill_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "xr-openeo-execute-*")))


def execute_spilled(cube, **kwargs) -> tuple[xr.Dataset, Path]:
    """``execute`` with every answer spilled to disk; the Dataset and the one directory it made."""
    before = spill_dirs()
    with xr_openeo.set_options(execute_memory_bytes=0):
        ds = xr_openeo.execute(cube, **kwargs)
    (made,) = spill_dirs() - before
    return ds, Path(made)


@pytest.mark.parametrize("fmt", ["GTiff", "netCDF"])
def test_a_large_answer_is_read_lazily_until_closed(backend, connection, fmt):
    ds, directory = execute_spilled(ndvi_cube(connection), format=fmt)
    assert ds.NDVI.chunks is not None and directory.is_dir()
    assert not list(directory.glob(".answer.part"))  # the spilled body became the result's files
    np.testing.assert_allclose(ds.NDVI.isel(t=2).values, expected_ndvi(2), rtol=1e-6, equal_nan=True)
    ds.close()
    assert not directory.exists()
    with pytest.raises(AssetReadError, match="no (such )?file"):
        ds.NDVI.isel(t=1).values  # noqa: B018  (read after close: the files are gone)


def test_the_directory_goes_when_nothing_references_the_data(backend, connection):
    ds, directory = execute_spilled(ndvi_cube(connection))
    ndvi = ds.NDVI
    del ds
    gc.collect()
    assert directory.is_dir()  # ds.NDVI still reads from it
    doubled = ndvi.isel(t=2) * 2
    del ndvi
    gc.collect()
    assert directory.is_dir()  # so does an array computed lazily from it
    np.testing.assert_allclose(doubled.values, 2 * expected_ndvi(2), rtol=1e-6, equal_nan=True)
    del doubled
    gc.collect()
    assert not directory.exists()


def test_with_closes_and_pickled_copies_borrow_the_files(backend, connection):
    ds, directory = execute_spilled(ndvi_cube(connection))
    with ds:
        copy = pickle.loads(pickle.dumps(ds))
        del copy
        gc.collect()
        assert directory.is_dir()  # a copy (as a dask worker holds) never removes the files
        again = pickle.loads(pickle.dumps(ds))
        xr.testing.assert_identical(again.load(), ds.load())
    assert not directory.exists()


def test_a_small_answer_comes_back_loaded_and_leaves_no_files(backend, connection):
    before = spill_dirs()
    ds = xr_openeo.execute(ndvi_cube(connection))
    assert ds.NDVI.chunks is None and spill_dirs() == before
    np.testing.assert_allclose(ds.NDVI.isel(t=1).values, expected_ndvi(1), rtol=1e-6, equal_nan=True)


def test_tables_are_read_whole_and_leave_no_files(backend, connection):
    series = ndvi_cube(connection).aggregate_spatial(two_polygons(), "mean")
    before = spill_dirs()
    with xr_openeo.set_options(execute_memory_bytes=0):
        cube = xr_openeo.execute(series, format="JSON")
        frame = xr_openeo.execute(series, format="JSON", as_frame=True)
    assert spill_dirs() == before
    assert cube.NDVI.shape == (2, 3) and frame.shape == (6, 3)


def test_a_zarr_store_arrives_as_a_tar_and_opens_like_the_batch_result(backend, connection):
    cube = ndvi_cube(connection)
    ds, directory = execute_spilled(cube, format="Zarr")
    assert any(p.name in (".zmetadata", "zarr.json") for p in directory.rglob("*"))
    batch = xr_openeo.compute_batch(cube, out_format="Zarr", progress=False)
    np.testing.assert_array_equal(ds.NDVI.values, batch.NDVI.values)
    assert ds.NDVI.dims == batch.NDVI.dims and ds.NDVI.dtype == batch.NDVI.dtype
    ds.close()
    assert not directory.exists()


@pytest.mark.slow
def test_the_timing_script_runs_at_tiny_size(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "timings.json"
    args = ["--dates", "2", "--size", "64", "--repeat", "1", "--json", str(out)]
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "asv_benchmarks.execute_vs_batch", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())["methods"]
    assert set(report) == {"execute", "execute, lazy", "compute_batch", "client download"}
    assert report["execute"]["requests"] == report["client download"]["requests"] == 1
    assert report["compute_batch"]["requests"] > 1
