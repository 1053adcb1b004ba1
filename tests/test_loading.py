"""``ds.openeo.load()``: the whole result in memory at about its own size (issue 13's peak-RSS target).

First over a fake reader (values, which reads are made, the in-flight budget, failures), then on
the local backend over real sockets: values equal ``ds.load()`` on every front and format, one GET
per GeoTIFF, and the memory Python allocates (tracemalloc: numpy arrays and downloaded bytes) stays
near the result's size where ``ds.load()`` needs about twice it.
"""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import dask
import numpy as np
import pytest
import xarray as xr

import xr_openeo
from xr_openeo.cube import Placement, RasterCube
from xr_openeo.errors import AssetReadError, FailedReadWarning
from xr_openeo.lazy import band_arrays, band_source, normalize_chunks, resolve_chunks
from xr_openeo.readers.base import FakeReader, FileInfo
from xr_openeo.results import Grid
from xr_openeo.testing import LocalBackend, SyntheticCollection

GRID = Grid("EPSG:32631", (96, 80), (10.0, 0.0, 600000.0, 0.0, -10.0, 5000960.0))


def fake_cube(
    dates: int = 4, bands: int = 3, *, tiles: bool = False, overlap: int = 0, missing: int | None = None, **kw: Any
):
    """A cube of single-date files: one per date, or (``tiles``) two per date, its top and bottom
    halves (the bottom one ``overlap`` rows taller, over the top one)."""
    info = FileInfo(grid=GRID, bands=tuple(range(bands)), names=tuple("abc"[:bands]), dtype="uint16", nodata=0)
    files, placements = {}, []
    for d in range(dates):
        if d == missing:
            continue
        if tiles:
            for half, row, height in (("top", 0, 48), ("bottom", 48 - overlap, 48 + overlap)):
                grid = Grid(GRID.crs, (height, 80), (*GRID.transform[:5], GRID.transform[5] - 10 * row))
                files[f"f{d}{half}.tif"] = FileInfo(grid, info.bands, info.names, "uint16", 0)
                placements.append(Placement(f"f{d}{half}.tif", row, 0, (height, 80), (d,), tuple(range(bands)), grid))
        else:
            files[f"f{d}.tif"] = info
            placements.append(Placement(f"f{d}.tif", 0, 0, GRID.shape, (d,), tuple(range(bands)), GRID))
    reader = kw.pop("reader", None) or FakeReader(files, failing=kw.pop("failing", frozenset()))
    cube = RasterCube(
        reader, GRID, dates, bands, tuple(placements), kw.pop("dtype", "float32"), kw.pop("fill", np.nan), **kw
    )
    return cube, reader


def dataset(cube: RasterCube, chunks: Any = None) -> xr.Dataset:
    resolved = resolve_chunks(
        normalize_chunks(chunks), (cube.n_times, *cube.grid.shape), dtype=cube.dtype, tile=(16, 16)
    )
    arrays = band_arrays(cube, resolved)
    return xr.Dataset(
        {f"b{i}": (("t", "y", "x"), a) for i, a in enumerate(arrays)}, coords={"t": np.arange(cube.n_times)}
    )


# -- over a fake reader ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [None, {"y": 32, "x": 32}, {"t": 3}])
@pytest.mark.parametrize(("tiles", "overlap"), [(False, 0), (True, 0), (True, 8)])
def test_load_equals_compute_in_place(chunks, tiles, overlap):
    cube, _ = fake_cube(5, tiles=tiles, overlap=overlap)
    expected = dataset(cube, chunks).compute()
    ds = dataset(cube, chunks)
    assert ds.openeo.load() is ds
    assert all(isinstance(v.variable._data, np.ndarray) for v in ds.data_vars.values())
    xr.testing.assert_identical(ds, expected)


def test_load_reads_every_file_whole_once_whatever_the_chunks():
    cube, reader = fake_cube(4, tiles=True)
    ds = dataset(cube, {"y": 32, "x": 32})
    ds.openeo.load()
    reads = sorted((key, (w.y.start, w.y.stop, w.x.start, w.x.stop), bands) for key, w, bands in reader.calls)
    whole = (0, 48, 0, 80)
    assert reads == sorted((f"f{d}{half}.tif", whole, (0, 1, 2)) for d in range(4) for half in ("top", "bottom"))


def test_overlapping_files_load_by_chunks_first_valid_pixel_first():
    cube, reader = fake_cube(2, tiles=True, overlap=8)
    ds = dataset(cube, {"y": 48})
    expected = dataset(cube, {"y": 48}).compute()
    reader.calls.clear()
    xr.testing.assert_identical(ds.openeo.load(), expected)
    assert len(reader.calls) == 2 * 2  # per date and chunk one file (the top one has no missing pixel to fill)


def test_a_missing_file_loads_as_fill_and_unmasked_keeps_the_files_dtype():
    cube, _ = fake_cube(3, missing=1)
    ds = dataset(cube)
    expected = dataset(cube).compute()
    xr.testing.assert_identical(ds.openeo.load(), expected)
    assert np.isnan(ds.b0.values[1]).all()
    raw, _ = fake_cube(3, dtype="uint16", fill=0, masked=False)
    loaded = dataset(raw).openeo.load()
    assert loaded.b0.dtype == "uint16"
    xr.testing.assert_identical(loaded, dataset(raw).compute())


def test_selections_and_arithmetic_load_through_dask_store():
    cube, reader = fake_cube(4)
    ds = dataset(cube)
    ds["ratio"] = ds.b0 / ds.b1
    ds = ds.isel(x=slice(5, 60), t=[0, 2])
    assert band_source(ds.b0.data) is None  # not the read itself any more
    expected = ds.compute()
    reader.calls.clear()
    xr.testing.assert_identical(ds.openeo.load(), expected)
    assert {key for key, _, _ in reader.calls} == {"f0.tif", "f2.tif"}


def test_a_subset_of_the_bands_loads_the_read_directly():
    cube, reader = fake_cube(2)
    ds = dataset(cube)[["b2", "b0"]]
    expected = ds.compute()
    reader.calls.clear()
    xr.testing.assert_identical(ds.openeo.load(), expected)
    assert sorted(bands for _, _, bands in reader.calls) == [(2, 0), (2, 0)]


def test_a_failed_read_raises_naming_the_file_and_fill_warns():
    cube, _ = fake_cube(4, failing=frozenset({"f2.tif"}))
    with pytest.raises(AssetReadError, match="f2.tif"):
        dataset(cube).openeo.load()
    filled, _ = fake_cube(4, failing=frozenset({"f2.tif"}), on_read_error="fill")
    ds = dataset(filled)
    with pytest.warns(FailedReadWarning, match="f2.tif"):
        ds.openeo.load()
    assert np.isnan(ds.b1.values[2]).all() and not np.isnan(ds.b1.values[3]).all()


class CountingReader(FakeReader):
    """A FakeReader that counts reads running at once, and can make two wait for each other."""

    def __init__(self, files, barrier: threading.Barrier | None = None) -> None:
        super().__init__(files)
        object.__setattr__(self, "barrier", barrier)
        object.__setattr__(self, "state", {"now": 0, "most": 0, "lock": threading.Lock()})

    def read(self, *args: Any, **kwargs: Any) -> Any:
        state = self.state
        with state["lock"]:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            if self.barrier is not None:
                self.barrier.wait()  # two reads at once, or a BrokenBarrierError: the budget let them both run
            return super().read(*args, **kwargs)
        finally:
            with state["lock"]:
                state["now"] -= 1


def _counting(barrier: threading.Barrier | None = None) -> tuple[RasterCube, CountingReader]:
    _, reader = fake_cube(6)
    counting = CountingReader(reader.files, barrier)
    return fake_cube(6, reader=counting)[0], counting


def test_the_in_flight_budget_bounds_reads_at_once():
    one_window = 3 * 96 * 80 * 4  # bytes of one date's three float32 bands
    cube, reader = _counting()
    with dask.config.set(scheduler="threads", num_workers=4):
        dataset(cube).openeo.load(in_flight_bytes=one_window)
    assert reader.state["most"] == 1 and len(reader.calls) == 6
    cube, reader = _counting(threading.Barrier(2, timeout=30))
    with (
        dask.config.set(scheduler="threads", num_workers=4),
        xr_openeo.set_options(load_in_flight_bytes=2 * one_window),
    ):
        dataset(cube).openeo.load()
    assert reader.state["most"] == 2


def test_sync_scheduler_reads_on_one_thread_and_bad_budgets_are_refused():
    cube, reader = _counting()
    with dask.config.set(scheduler="sync"):
        dataset(cube).openeo.load()
    assert reader.state["most"] == 1
    for bad in (0, -5, 1.5, "1GB", True):
        with pytest.raises(
            ValueError, match=rf"in_flight_bytes must be a positive integer number of bytes .*got {bad!r}"
        ):
            dataset(cube).openeo.load(in_flight_bytes=bad)
    with pytest.raises(ValueError, match=r"set_options\(load_in_flight_bytes=...\) must be an integer > 0; got -1"):
        xr_openeo.set_options(load_in_flight_bytes=-1)


def test_other_schedulers_load_through_xarray():
    cube, _ = fake_cube(2)
    expected = dataset(cube).compute()
    with dask.config.set(scheduler="processes", num_workers=2):
        ds = dataset(cube).openeo.load()
    xr.testing.assert_identical(ds, expected)


# -- on the local backend -------------------------------------------------------------------------

DATES, SIZE = 8, 1024


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    with LocalBackend([SyntheticCollection(dates=DATES, width=SIZE, height=SIZE)], blocksize=256) as b:
        yield b


@pytest.fixture(scope="module")
def jobs(backend: LocalBackend) -> dict[str, Any]:
    conn = backend.connect()
    out = {}
    for fmt in ("GTiff", "netCDF"):
        job = conn.load_collection("SENTINEL2_L2A", bands=["B02", "B03", "B04"]).create_job(out_format=fmt)
        job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
        out[fmt] = job
    return out


@pytest.mark.parametrize("fmt", ["GTiff", "netCDF"])
@pytest.mark.parametrize("keywords", [{}, {"masked": False}, {"chunks": {"t": 2}}])
def test_load_equals_xarray_load_on_both_fronts(backend, jobs, open_results, fmt, keywords):
    expected = open_results(jobs[fmt], **keywords).load()
    ds = open_results(jobs[fmt], **keywords)
    assert ds.openeo.load() is ds
    xr.testing.assert_identical(ds, expected)
    assert ds.openeo.job_id == jobs[fmt].job_id


def test_engine_without_chunks_loads_its_lazily_indexed_arrays(backend, jobs):
    expected = xr_openeo.open_results(jobs["GTiff"]).load()
    ds = xr.open_dataset(jobs["GTiff"], engine="openeo")  # no dask: xarray's lazily indexed arrays
    assert ds.openeo.load() is ds
    assert all(isinstance(v.variable._data, np.ndarray) for v in ds.data_vars.values())
    xr.testing.assert_identical(ds, expected)


def test_load_under_a_distributed_client_copies_chunks_into_place(backend, jobs):
    import distributed  # in the test extra: this test must run, never skip

    expected = xr_openeo.open_results(jobs["GTiff"], chunks={"y": 512}).load()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        ds = xr_openeo.open_results(jobs["GTiff"], chunks={"y": 512})
        ds["ratio"] = ds.B04 / ds.B03
        ds.openeo.load()
        assert not client.futures  # every chunk released once copied
    assert all(isinstance(v.variable._data, np.ndarray) for v in ds.data_vars.values())
    xr.testing.assert_identical(ds.drop_vars("ratio"), expected)
    np.testing.assert_array_equal(ds.ratio.values, expected.B04.values / expected.B03.values)


OPENERS = {
    "open_results": lambda job: xr_openeo.open_results(job),
    "open_results, 256² chunks": lambda job: xr_openeo.open_results(job, chunks={"y": 256, "x": 256}),
    "engine, chunks={}": lambda job: xr.open_dataset(job, engine="openeo", chunks={}),
    "engine, chunks by date pair": lambda job: xr.open_dataset(job, engine="openeo", chunks={"t": 2}),
    "engine, no dask": lambda job: xr.open_dataset(job, engine="openeo"),
}


@pytest.mark.parametrize("opener", list(OPENERS))
def test_load_sends_one_get_per_geotiff_whatever_the_front_and_chunks(backend, jobs, opener):
    xr_openeo.clear_caches()
    ds = OPENERS[opener](jobs["GTiff"])
    backend.clear_requests()
    ds.openeo.load()
    assets = [r for r in backend.requests if "/results/assets/" in r.path]
    assert len(assets) == DATES and len({r.path for r in assets}) == DATES
    assert all(r.status == 200 for r in assets)  # whole files, no ranges


def _traced_peak(run: Any) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("opener", ["open_results", "engine, chunks={}", "engine, no dask"])
def test_load_allocates_about_the_result_where_xarray_allocates_twice_it(backend, jobs, opener):
    """tracemalloc sees numpy's arrays and the downloaded bytes (not GDAL's own buffers)."""
    result = DATES * 3 * SIZE * SIZE * 4  # float32
    with dask.config.set(scheduler="threads", num_workers=2):
        OPENERS[opener](jobs["GTiff"]).openeo.load()  # warm: first-use allocations are not the load's
        ds = OPENERS[opener](jobs["GTiff"])
        lean = _traced_peak(lambda: ds.openeo.load(in_flight_bytes=1))  # one file at a time: what is held is fixed
        plain = _traced_peak(OPENERS[opener](jobs["GTiff"]).load)
    # beyond the result: the bytes of the file being read (and, the backend being in this process, sent)
    assert lean < 1.3 * result, lean / result
    assert plain > 1.4 * result, plain / result  # what it saves: dask holds the chunks while it joins them
