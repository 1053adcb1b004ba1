"""on_read_error="fill": a failing asset becomes nodata, with a warning naming it; "raise" stays the default."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
from conftest import SMALL_EXTENT

import xr_openeo
from xr_openeo.errors import AssetReadError, FailedReadWarning
from xr_openeo.testing import Faults, LocalBackend, SyntheticCollection

# Two 256-pixel windows per file (GeoTIFF tiles of 256), so a window can fail while its header is cached.
WIDE = SyntheticCollection(dates=3, width=512, height=256)


def finished_job(connection, fmt="GTiff", temporal_extent=None, **job_options):
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, temporal_extent=temporal_extent, bands=["B04", "B08"]
    )
    job = cube.create_job(out_format=fmt, job_options=job_options or None)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


def break_asset(backend: LocalBackend, job, index: int) -> str:
    """Remove the file of asset ``index`` from the backend: every GET of it now answers HTTP 500."""
    asset = backend.job(job.job_id).assets[index]
    asset.path.rename(asset.path.with_name(asset.path.name + ".gone"))
    return asset.key


def assert_names(record, key: str, status: int) -> None:
    warnings = [w.message for w in record if isinstance(w.message, FailedReadWarning)]
    assert warnings
    for w in warnings:
        assert w.keys == (key,) and w.statuses == (status,) and np.isnan(w.fill)
        assert "expires=REDACTED" in w.hrefs[0] and key in str(w) and f"HTTP {status}" in str(w)


def test_fill_makes_the_failing_asset_nan_and_leaves_the_rest(backend, connection, open_results):
    job = finished_job(connection)
    expected = open_results(job).load()
    ds = open_results(job, on_read_error="fill")
    key = break_asset(backend, job, 1)
    with pytest.warns(FailedReadWarning) as record:
        got = ds.load()
    assert_names(record, key, 500)
    assert got.B04.isel(t=1).isnull().all() and got.B08.isel(t=1).isnull().all()
    xr.testing.assert_identical(got.isel(t=[0, 2]), expected.isel(t=[0, 2]))


def test_the_default_still_raises(backend, connection, open_results):
    job = finished_job(connection)
    ds = open_results(job)
    key = break_asset(backend, job, 0)
    with pytest.raises(AssetReadError) as info:
        ds.load()
    assert info.value.key == key and info.value.status == 500 and "expires=REDACTED" in info.value.href


@pytest.mark.parametrize("on_read_error", ["raise", "fill"])
def test_a_window_failing_inside_gdal(on_read_error):
    """Tile reads go through GDAL, which swallows our exception: the AssetReadError comes out (or is filled)."""
    with LocalBackend([WIDE]) as b:
        connection = b.connect()
        cube = connection.load_collection("SENTINEL2_L2A", bands=["B04"])
        job = cube.create_job(out_format="GTiff")
        job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
        ds = xr_openeo.open_results(job, chunks={"y": 256, "x": 256}, on_read_error=on_read_error)
        assert ds.B04.data.numblocks == (3, 1, 2)
        expected = ds.B04.isel(t=[0, 2]).load()
        ds.B04.isel(t=1, x=slice(0, 1), y=slice(0, 1)).load()  # caches the header of date 1
        key = break_asset(b, job, 1)
        if on_read_error == "raise":
            with pytest.raises(AssetReadError) as info:
                ds.B04.isel(t=1).load()
            assert info.value.key == key and info.value.status == 500
            return
        with pytest.warns(FailedReadWarning) as record:
            got = ds.B04.load()
    assert_names(record, key, 500)
    assert got.isel(t=1).isnull().all()
    xr.testing.assert_identical(got.isel(t=[0, 2]), expected)


def test_integer_output_is_filled_with_the_files_nodata(backend, connection):
    job = finished_job(connection)
    expected = xr_openeo.open_results(job, dtype="uint16").load()
    xr_openeo.clear_caches()  # reading kept the files' headers: forget them, to count the one open reads
    backend.clear_requests()
    ds = xr_openeo.open_results(job, dtype="uint16", on_read_error="fill")
    # The metadata has no nodata, so the file's was read: one header request, and only in this case.
    assert len([r for r in backend.requests if "/results/assets/" in r.path]) == 1
    key = break_asset(backend, job, 2)
    with pytest.warns(FailedReadWarning, match=key) as record:
        got = ds.load()
    assert record[0].message.fill == 0
    assert got.B04.dtype == np.uint16 and (got.B04.isel(t=2) == 0).all()
    xr.testing.assert_identical(got.isel(t=[0, 1]), expected.isel(t=[0, 1]))


@pytest.mark.parametrize("nodata", [None, float("nan")])
def test_integer_output_without_nodata_is_refused_when_opening(backend, connection, monkeypatch, nodata):
    from xr_openeo.cube import RasterCube
    from xr_openeo.readers import geotiff

    job = finished_job(connection)
    real = geotiff.GeoTIFFReader.info
    monkeypatch.setattr(geotiff.GeoTIFFReader, "info", lambda self, key: replace(real(self, key), nodata=nodata))
    with pytest.raises(ValueError, match="dtype='float32'"):
        xr_openeo.open_results(job, dtype="uint16", on_read_error="fill")
    grid = xr_openeo.results.Grid("EPSG:32631", (4, 4), (10.0, 0.0, 0.0, 0.0, -10.0, 40.0))
    with pytest.raises(ValueError, match="needs a value to fill uint16"):
        RasterCube(None, grid, 1, 1, (), "uint16", None, on_read_error="fill")  # type: ignore[arg-type]


def test_the_choice_travels_in_the_pickled_graph(backend, connection):
    job = finished_job(connection)
    ds = xr_openeo.open_results(job, on_read_error="fill")
    restored = pickle.loads(pickle.dumps(ds))
    readers = [v for v in dict(restored.B04.data.__dask_graph__()).values() if hasattr(v, "on_read_error")]
    assert readers and all(r.on_read_error == "fill" for r in readers)
    key = break_asset(backend, job, 0)
    with pytest.warns(FailedReadWarning, match=key):
        assert restored.B04.isel(t=0).isnull().all()


def test_netcdf_fill(backend, connection, open_results):
    """netCDF: opening reads the metadata (and fails loudly); reads after that are filled."""
    # One date: one chunk per variable (each failing read costs its retries, one file lock for all).
    job = finished_job(connection, "netCDF", temporal_extent=["2023-01-01", "2023-01-02"])
    ds = open_results(job, on_read_error="fill")
    assert ds.sizes["t"] == 1
    times = ds.t.values
    ds.close()  # the file was downloaded to read the metadata: forget it, so reading downloads it again
    backend.job(job.job_id).faults = Faults(error_rate=1.0, error_kinds=("503",))
    with pytest.warns(FailedReadWarning) as record:
        got = ds.load()
    assert {w.message.keys for w in record} == {("openEO.nc",)}
    assert {w.message.statuses for w in record} == {(503,)}
    assert got.B04.isnull().all() and got.B08.isnull().all() and (got.t.values == times).all()


def test_zarr_fill(backend, connection, open_results):
    """Zarr: a chunk that cannot be fetched reads as missing (its _FillValue, NaN once decoded)."""
    job = finished_job(connection, "Zarr", temporal_extent=["2023-01-01", "2023-01-02"])
    ds = open_results(job, on_read_error="fill")
    default = open_results(job)
    backend.job(job.job_id).faults = Faults(error_rate=1.0, error_kinds=("500",))
    with pytest.warns(FailedReadWarning) as record:
        got = ds.load()
    assert {w.message.keys for w in record} == {("openEO.zarr",)}
    messages = " ".join(str(w.message) for w in record)
    assert "chunk 'B04/0.0.0'" in messages and "chunk 'B08/0.0.0'" in messages
    assert got.B04.isnull().all() and got.B08.isnull().all()
    with pytest.raises(AssetReadError) as info:
        default.load()
    assert info.value.key == "openEO.zarr" and info.value.status == 500


@pytest.mark.parametrize(
    "error",
    [
        AssetReadError("Asset 'a.tif' has 3 bands where the results document says 2", key="a.tif"),  # no request
        RuntimeError("a bug"),
        AssetReadError("failed after 5 attempts", key="a.tif", href="http://h/a.tif?expires=REDACTED", status=503),
    ],
)
def test_only_failed_requests_are_filled(error):
    from xr_openeo.cube import Placement, RasterCube
    from xr_openeo.readers.base import FakeReader, FileInfo
    from xr_openeo.results import Grid

    class Failing(FakeReader):
        def read(self, key, window, bands, dtype=None):
            raise error

    grid = Grid("EPSG:32631", (4, 4), (10.0, 0.0, 0.0, 0.0, -10.0, 40.0))
    reader = Failing({"a.tif": FileInfo(grid=grid, bands=(0, 1), names=("B04", "B08"), dtype="uint16")})
    placement = Placement("a.tif", 0, 0, (4, 4), (0,), (0, 1), grid)
    cube = RasterCube(reader, grid, 1, 2, (placement,), "float32", float("nan"), on_read_error="fill")
    window = (slice(0, 1), [0, 1], slice(0, 4), slice(0, 4))
    if getattr(error, "href", None) is None:
        with pytest.raises(type(error)):
            cube.read(*window)
        return
    with pytest.warns(FailedReadWarning, match="'a.tif' at http://h/a.tif"):
        assert all(np.isnan(band).all() for band in cube.read(*window))
