"""Cubes of files (cube.py) and how files are placed on them (mosaic.py), over a fake reader. No server."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xr_openeo.cube import RasterCube, same_grid
from xr_openeo.errors import AssetReadError, FailedReadWarning, GridMismatchError, ResultsDocumentError
from xr_openeo.mosaic import Source, band_names, duplicated_grids, grid_key, plan
from xr_openeo.readers.base import Block, FakeReader, FileInfo, fake_value
from xr_openeo.results import AssetSpec, Grid


def grid(col0: int, row0: int, rows: int, cols: int, size: float = 10.0, crs: str = "EPSG:32631") -> Grid:
    """A north-up grid whose top-left pixel is (row0, col0) of a global 10 m grid at (500000, 6000000)."""
    return Grid(crs, (rows, cols), (size, 0.0, 500000.0 + col0 * size, 0.0, -size, 6000000.0 - row0 * size))


def tile_sources(layout: list[tuple[str, int, int, int, int]], date: str = "2024-01-01") -> list[Source]:
    sources = []
    for key, row0, col0, rows, cols in layout:
        info = FileInfo(grid=grid(col0, row0, rows, cols), bands=(0, 1), names=("B04", "B08"), dtype="uint16", nodata=0)
        spec = AssetSpec(key=key, href=f"fake://{key}", bands=("B04", "B08"), time=np.datetime64(date, "ns"))
        sources.append(Source(spec, info))
    return sources


def cube_of(sources: list[Source], reader: FakeReader | None = None, **kwargs) -> tuple[RasterCube, FakeReader]:
    (layout,) = plan(sources)
    reader = reader or FakeReader({s.spec.key: s.info for s in sources})
    cube = RasterCube(
        reader, layout.grid, len(layout.times), len(layout.names), layout.placements, "float32", float("nan"), **kwargs
    )
    return cube, reader


def reference(sources: list[Source], shape: tuple[int, int], band: int) -> np.ndarray:
    """The mosaic computed by hand: first file (in order) with a valid pixel wins; holes NaN."""
    (layout,) = plan(sources)
    out = np.full(shape, np.nan, dtype="float32")
    for s, p in zip(layout.sources, layout.placements, strict=True):
        rows = np.arange(p.shape[0])[:, None]
        cols = np.arange(p.shape[1])[None, :]
        values = fake_value(s.spec.key, band, 0, rows, cols).astype("float32")
        values[values == 0] = np.nan
        target = out[p.row : p.row + p.shape[0], p.col : p.col + p.shape[1]]
        np.copyto(target, values, where=np.isnan(target))
    return out


def test_tiles_of_one_grid_mosaic_into_one_cube_on_their_union():
    sources = tile_sources([("a", 0, 0, 40, 50), ("b", 0, 50, 40, 30), ("c", 40, 0, 20, 50)])
    cube, reader = cube_of(sources)
    assert cube.shape == (1, 2, 60, 80)
    (b04,) = cube.read(slice(0, 1), [0], slice(0, 60), slice(0, 80))
    np.testing.assert_array_equal(b04[0], reference(sources, (60, 80), 0))
    assert np.isnan(b04[0, 40:, 50:]).all()  # the hole no file covers
    assert sorted(key for key, _, _ in reader.calls) == ["a", "b", "c"]


def test_a_window_reads_only_the_files_and_pixels_it_touches():
    sources = tile_sources([("a", 0, 0, 40, 50), ("b", 0, 50, 40, 30), ("c", 40, 0, 20, 50)])
    cube, reader = cube_of(sources)
    (b08,) = cube.read(slice(0, 1), [1], slice(35, 45), slice(45, 48))
    np.testing.assert_array_equal(b08[0], reference(sources, (60, 80), 1)[35:45, 45:48])
    assert [(key, (w.y.start, w.y.stop, w.x.start, w.x.stop)) for key, w, _ in reader.calls] == [
        ("a", (35, 40, 45, 48)),
        ("c", (0, 5, 45, 48)),
    ]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 25), st.integers(1, 25)),
        min_size=1,
        max_size=5,
    ),
    st.integers(0, 1),
)
def test_overlapping_tiles_take_the_first_valid_pixel(boxes, band):
    sources = tile_sources([(f"k{i}", r, c, h, w) for i, (r, c, h, w) in enumerate(boxes)])
    cube, _ = cube_of(sources)
    rows, cols = cube.grid.shape
    (out,) = cube.read(slice(0, 1), [band], slice(0, rows), slice(0, cols))
    np.testing.assert_array_equal(out[0], reference(sources, (rows, cols), band))


def test_files_on_other_grids_form_other_cubes():
    same = tile_sources([("a", 0, 0, 10, 10), ("b", 0, 10, 10, 10)])
    shifted = tile_sources([("half", 0, 0, 10, 10)])
    shifted[0] = Source(
        shifted[0].spec,
        FileInfo(
            grid=Grid("EPSG:32631", (10, 10), (10.0, 0.0, 500005.0, 0.0, -10.0, 6000000.0)),
            bands=(0, 1),
            names=("B04", "B08"),
            dtype="uint16",
        ),
    )
    coarse = [
        Source(
            AssetSpec(key="coarse", href="fake://c"),
            FileInfo(grid=grid(0, 0, 5, 5, size=20.0), bands=(0,), names=("B04",), dtype="uint16"),
        )
    ]
    other_crs = [
        Source(
            AssetSpec(key="utm32", href="fake://u"),
            FileInfo(grid=grid(0, 0, 10, 10, crs="EPSG:32632"), bands=(0,), names=("B04",), dtype="uint16"),
        )
    ]
    layouts = plan(same + shifted + coarse + other_crs)
    assert sorted(len(layout.placements) for layout in layouts) == [1, 1, 1, 2]
    assert grid_key(grid(3, 7, 1, 1)) == grid_key(grid(0, 0, 100, 100))


def test_dates_stack_and_bands_are_the_union():
    a = tile_sources([("a", 0, 0, 10, 10)], "2024-01-01")
    b = tile_sources([("b", 0, 0, 10, 10)], "2024-01-11")
    ndvi = Source(
        AssetSpec(key="n", href="fake://n", bands=("NDVI",), time=np.datetime64("2024-01-01", "ns")),
        FileInfo(grid=grid(0, 0, 10, 10), bands=(0,), names=(None,), dtype="float32"),
    )
    (layout,) = plan(b + a + [ndvi])
    assert layout.times == (np.datetime64("2024-01-01", "ns"), np.datetime64("2024-01-11", "ns"))
    assert layout.names == ("B04", "B08", "NDVI")
    by_key = {p.key: p for p in layout.placements}
    assert by_key["n"].bands == (None, None, 0) and by_key["b"].steps == (1,)
    reader = FakeReader({s.spec.key: s.info for s in b + a + [ndvi]})
    cube = RasterCube(reader, layout.grid, 2, 3, layout.placements, "float32", float("nan"))
    ndvi_on_day_two, b04 = cube.read(slice(1, 2), [2, 0], slice(0, 10), slice(0, 10))
    assert np.isnan(ndvi_on_day_two).all() and not np.isnan(b04).all()


def test_dated_and_undated_files_cannot_share_a_cube():
    dated = tile_sources([("a", 0, 0, 10, 10)])
    undated = [Source(AssetSpec(key="u", href="fake://u"), dated[0].info)]
    with pytest.raises(ResultsDocumentError, match="'u'|u have no datetime"):
        plan(dated + undated)


def test_identical_document_grids_on_one_date_are_suspect():
    # geopyspark's tile_grid can give every tile the job's proj:*: they cannot all lie there.
    job_grid = [("t0", 0, 0, 20, 20), ("t1", 0, 0, 20, 20), ("other-date", 0, 0, 20, 20)]
    sources = tile_sources(job_grid[:2]) + tile_sources(job_grid[2:], "2024-02-01")
    assert duplicated_grids(sources) == ["t0", "t1"]
    assert duplicated_grids([Source(s.spec, s.info, from_header=True) for s in sources]) == []


def test_band_names_prefer_the_document_then_the_file():
    info = FileInfo(grid=grid(0, 0, 1, 1), bands=(0, 1), names=("red", None), dtype="uint8")
    assert band_names(AssetSpec(key="k", href="h", bands=("B04", "B08")), info) == ("B04", "B08")
    assert band_names(AssetSpec(key="k", href="h", bands=("only",)), info) == ("band_1", "band_2")
    full = FileInfo(grid=grid(0, 0, 1, 1), bands=(0, 1), names=("x", "x"), dtype="uint8")
    assert band_names(AssetSpec(key="k", href="h"), full) == ("x", "x_1")


# -- reading safely ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LyingReader(FakeReader):
    """A reader whose files are not where the document says (another grid in the header)."""

    def read(self, key, window, bands, dtype=None) -> Block:
        block = super().read(key, window, bands, dtype)
        block.grid = grid(1, 0, *self.files[key].grid.shape)
        return block


def test_a_file_whose_header_disagrees_with_the_document_raises_naming_both_grids():
    sources = tile_sources([("a", 0, 0, 10, 10)])
    cube, _ = cube_of(sources, LyingReader({"a": sources[0].info}))
    with pytest.raises(GridMismatchError, match="'a' is not where the results document puts it") as info:
        cube.read(slice(0, 1), [0], slice(0, 10), slice(0, 10))
    assert info.value.expected != info.value.actual
    assert same_grid(grid(0, 0, 3, 3), Grid("EPSG:32631", (3, 3), (10.0, 0, 500000.0 + 1e-9, 0, -10.0, 6000000.0)))


def test_a_block_of_the_wrong_shape_is_never_returned():
    sources = tile_sources([("a", 0, 0, 10, 10)])

    @dataclass(frozen=True)
    class Short(FakeReader):
        def read(self, key, window, bands, dtype=None) -> Block:
            block = super().read(key, window, bands, dtype)
            return Block([a[:, :-1] for a in block.data], block.nodata, None)

    cube, _ = cube_of(sources, Short({"a": sources[0].info}))
    with pytest.raises(GridMismatchError, match="needs \\(1, 10, 10\\)"):
        cube.read(slice(0, 1), [0], slice(0, 10), slice(0, 10))


def test_failed_reads_raise_or_fill_with_a_warning():
    sources = tile_sources([("a", 0, 0, 10, 10), ("b", 0, 10, 10, 10)])
    reader = FakeReader({s.spec.key: s.info for s in sources}, failing=frozenset({"b"}))
    cube, _ = cube_of(sources, reader)
    with pytest.raises(AssetReadError, match="'b'"):
        cube.read(slice(0, 1), [0], slice(0, 10), slice(0, 20))
    cube, _ = cube_of(sources, reader, on_read_error="fill")
    with pytest.warns(FailedReadWarning, match="'b'") as record:
        (out,) = cube.read(slice(0, 1), [0], slice(0, 10), slice(0, 20))
    assert np.isnan(out[0, :, 10:]).all() and not np.isnan(out[0, :, :10]).all()
    assert record[0].message.keys == ("b",) and record[0].message.statuses == (503,)


def test_bands_come_back_as_arrays_of_their_own():
    sources = tile_sources([("a", 0, 0, 10, 10)])
    cube, _ = cube_of(sources)
    first, second = cube.read(slice(0, 1), [0, 1], slice(0, 10), slice(0, 10))
    assert first.base is None or first.base is not second.base
    assert not np.shares_memory(first, second)
