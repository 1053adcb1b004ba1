"""The graph builder (lazy.py) over a fake reader: values, reads made, chunks, pickling. No server."""

from __future__ import annotations

import pickle

import dask
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xr_openeo.cube import Placement, RasterCube
from xr_openeo.engine_arrays import BandArray, WindowShare, band_variables
from xr_openeo.lazy import ChunkHandle, band_arrays, normalize_chunks, resolve_chunks
from xr_openeo.readers.base import FakeReader, FileInfo, fake_value
from xr_openeo.results import Grid

GRID = Grid("EPSG:32631", (96, 80), (10.0, 0.0, 600000.0, 0.0, -10.0, 5000960.0))


def series(dates: int = 4, bands: int = 3, nodata: float | None = 0) -> tuple[RasterCube, FakeReader, np.ndarray]:
    """A cube of one single-date file per date, and its expected values (nodata as NaN)."""
    files = {
        f"f{d}.tif": FileInfo(
            grid=GRID, bands=tuple(range(bands)), names=tuple("abcde"[:bands]), dtype="uint16", nodata=nodata
        )
        for d in range(dates)
    }
    reader = FakeReader(files)
    placements = tuple(Placement(key, 0, 0, GRID.shape, (d,), tuple(range(bands)), GRID) for d, key in enumerate(files))
    cube = RasterCube(reader, GRID, dates, bands, placements, "float32", float("nan"))
    rows, cols = np.arange(GRID.shape[0])[:, None], np.arange(GRID.shape[1])[None, :]
    expected = np.stack([np.stack([fake_value(key, b, 0, rows, cols) for b in range(bands)]) for key in files]).astype(
        "float32"
    )
    if nodata is not None:
        expected[expected == nodata] = np.nan
    return cube, reader, expected


def dataset(cube: RasterCube, chunks=None) -> xr.Dataset:
    resolved = resolve_chunks(
        normalize_chunks(chunks), (cube.n_times, *cube.grid.shape), dtype=cube.dtype, tile=(16, 16)
    )
    arrays = band_arrays(cube, resolved)
    return xr.Dataset({f"b{i}": (("t", "y", "x"), a) for i, a in enumerate(arrays)})


def windows(reader: FakeReader) -> list[tuple[str, tuple[int, int, int, int], tuple]]:
    return [(key, (w.y.start, w.y.stop, w.x.start, w.x.stop), bands) for key, w, bands in reader.calls]


# -- chunks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (None, {"t": None, "y": None, "x": None}),
        ("auto", {"t": "auto", "y": "auto", "x": "auto"}),
        (64, {"t": 64, "y": 64, "x": 64}),
        ({"time": 2, "x": -1}, {"t": 2, "y": None, "x": -1}),
        ({"y": (40, 56)}, {"t": None, "y": (40, 56), "x": None}),
        ({}, {"t": None, "y": None, "x": None}),
    ],
)
def test_chunks_accept_what_xarray_accepts(chunks, expected):
    assert normalize_chunks(chunks) == expected


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ({"t": "auto!"}, r"chunks\['t'\] must be"),
        ({"t": 2.5}, r"chunks\['t'\] must be"),
        ({"y": 0}, r"chunks\['y'\] must be"),
        ({"x": (10, -1)}, r"chunks\['x'\] must be"),
        ({"band": 1}, "dimension 'band' that these results do not have"),
        ([1, 2], "chunks must be None"),
        (True, "chunks must be None"),
    ],
)
def test_bad_chunks_name_the_dimension_and_what_is_allowed(chunks, message):
    with pytest.raises(ValueError, match=message):
        normalize_chunks(chunks)


def test_default_chunks_are_a_date_and_a_file_within_dasks_chunk_size():
    assert resolve_chunks(normalize_chunks(None), (3, 512, 512), dtype="float32") == ((1, 1, 1), (512,), (512,))
    # A file too large for one chunk splits into whole tiles under array.chunk-size.
    with dask.config.set({"array.chunk-size": "1MiB"}):
        _, ys, xs = resolve_chunks(normalize_chunks(None), (1, 1000, 1000), dtype="float32", tile=(256, 256))
    assert ys[0] == xs[0] == 512 and sum(ys) == sum(xs) == 1000
    # A mosaic's default chunks follow its files.
    assert resolve_chunks(normalize_chunks(None), (1, 200, 300), dtype="uint8", extent=(100, 150))[1:] == (
        (100, 100),
        (150, 150),
    )


def test_given_chunks_round_up_to_whole_tiles_and_tuples_must_add_up():
    assert resolve_chunks({"t": 2, "y": 100, "x": -1}, (5, 512, 300), dtype="float32", tile=(128, 128)) == (
        (2, 2, 1),
        (128, 128, 128, 128),
        (300,),
    )
    with pytest.raises(ValueError, match="sums to 3, but t has 5"):
        resolve_chunks({"t": (1, 2)}, (5, 8, 8), dtype="float32")


def test_auto_chunks_follow_dask_config_in_whole_tiles():
    with dask.config.set({"array.chunk-size": "4MiB"}):
        t, ys, xs = resolve_chunks(normalize_chunks("auto"), (50, 2048, 2048), dtype="float32", tile=(256, 256))
    assert t[0] * ys[0] * xs[0] * 4 <= 4 * 2**20 and ys[0] % 256 == 0 and xs[0] % 256 == 0


# -- what is read ----------------------------------------------------------------------------------


def test_a_full_read_is_one_read_per_file_for_all_bands():
    cube, reader, expected = series()
    ds = dataset(cube)
    values = ds.compute()
    for b in range(3):
        np.testing.assert_array_equal(values[f"b{b}"].values, expected[:, b])
    assert sorted(windows(reader)) == [(f"f{d}.tif", (0, 96, 0, 80), (0, 1, 2)) for d in range(4)]


def test_a_subset_of_one_band_reads_only_its_window():
    cube, reader, expected = series()
    ds = dataset(cube)
    out = ds.b1.isel(y=slice(10, 20), x=slice(30, 35)).values
    np.testing.assert_array_equal(out, expected[:, 1, 10:20, 30:35])
    assert sorted(windows(reader)) == [(f"f{d}.tif", (10, 20, 30, 35), (0, 1, 2)) for d in range(4)]


def test_a_subset_of_every_band_still_reads_each_file_once():
    cube, reader, expected = series()
    ds = dataset(cube)
    out = ds.isel(y=slice(0, 8), x=slice(0, 8), t=[1, 3]).compute()
    np.testing.assert_array_equal(out.b2.values, expected[[1, 3], 2, :8, :8])
    assert sorted(windows(reader)) == [(f"f{d}.tif", (0, 8, 0, 8), (0, 1, 2)) for d in (1, 3)]


def test_a_reduction_reads_each_file_once():
    cube, reader, expected = series(dates=6)
    ds = dataset(cube)
    mean = ds.mean("t").compute()
    np.testing.assert_allclose(mean.b0.values, np.nanmean(expected[:, 0], axis=0), rtol=1e-6)
    assert len(reader.calls) == 6


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunk_t=st.integers(1, 4),
    chunk_y=st.sampled_from([16, 32, 48, 96]),
    chunk_x=st.sampled_from([16, 32, 80]),
    t=st.slices(4),
    y=st.slices(96),
    x=st.slices(80),
    band=st.integers(0, 2),
)
def test_any_selection_gives_numpys_values_and_reads_inside_its_bounds(chunk_t, chunk_y, chunk_x, t, y, x, band):
    cube, reader, expected = series()
    ds = dataset(cube, {"t": chunk_t, "y": chunk_y, "x": chunk_x})
    out = ds[f"b{band}"][t, y, x].values
    np.testing.assert_array_equal(out, expected[:, band][t, y, x])
    rows, cols, dates = range(96)[y], range(80)[x], range(4)[t]
    if any(r.step < 0 for r in (rows, cols, dates)):
        return  # dask does not fuse reversed slices into the read: the chunks are read whole, then reversed
    if not (rows and cols and dates):
        assert reader.calls == []
    for _, (r0, r1, c0, c1), _ in windows(reader):
        assert min(rows) <= r0 and r1 <= max(rows) + 1 and min(cols) <= c0 and c1 <= max(cols) + 1


def test_point_and_fancy_selections():
    cube, reader, expected = series()
    ds = dataset(cube, {"y": 32, "x": 32})
    np.testing.assert_array_equal(ds.b0[:, 5, 7].values, expected[:, 0, 5, 7])
    assert {w for _, w, _ in windows(reader)} == {(5, 6, 7, 8)}
    np.testing.assert_array_equal(ds.b2.isel(y=[3, 1, 40], x=4).values, expected[:, 2][:, [3, 1, 40], 4])


def test_the_graph_holds_the_cube_once_and_one_task_per_chunk_and_band():
    cube, _, _ = series()
    arrays = band_arrays(cube, ((1, 1, 1, 1), (48, 48), (80,)))
    graph = dict(arrays[0].__dask_graph__())
    cubes = [v for v in graph.values() if getattr(v, "value", v) is cube]
    assert len(cubes) == 1
    chunk_tasks = [k for k in graph if isinstance(k, tuple) and not k[0].endswith("band0")]
    band_tasks = [k for k in graph if isinstance(k, tuple) and k[0].endswith("band0")]
    assert len(chunk_tasks) == len(band_tasks) == 8


def test_pickled_graphs_compute_the_same():
    cube, _, expected = series()
    ds = dataset(cube)
    again = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(again.b1.values, expected[:, 1])
    handle = ChunkHandle(cube, slice(0, 1), slice(0, 96), slice(0, 80))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(handle))[0, 2], expected[0, 2])


# -- the engine's band arrays ----------------------------------------------------------------------


def test_engine_bands_share_one_read_per_window():
    cube, reader, expected = series()
    variables = band_variables(cube)
    ds = xr.Dataset({f"b{i}": (("t", "y", "x"), v) for i, v in enumerate(variables)}).chunk({"t": 1})
    out = ds.compute()
    np.testing.assert_array_equal(out.b2.values, expected[:, 2])
    assert len(reader.calls) == 4
    reader.calls.clear()
    np.testing.assert_array_equal(ds.b0.isel(y=slice(0, 10), x=slice(5, 9)).values, expected[:, 0, :10, 5:9])
    assert {w for _, w, _ in windows(reader)} == {(0, 10, 5, 9)}


def test_engine_share_is_bounded_in_bytes():
    cube, reader, expected = series()
    share = WindowShare(cube, max_bytes=0)  # keeps nothing: every band reads again
    band = BandArray(share, 1)
    from xarray.core.indexing import BasicIndexer

    np.testing.assert_array_equal(band[BasicIndexer((slice(0, 4), slice(0, 96), slice(0, 80)))], expected[:, 1])
    assert share._bytes == 0
    share = WindowShare(cube, max_bytes=10**9)
    share.read(0, (slice(0, 1), slice(0, 96), slice(0, 80)))
    assert share._bytes == 2 * 96 * 80 * 4  # the two other bands, until they are asked for
    share.read(1, (slice(0, 1), slice(0, 96), slice(0, 80)))
    assert share._bytes == 96 * 80 * 4
    share.clear()
    assert share._bytes == 0
