"""What a subset costs on the wire, with default chunks, through every front (issue 13).

A 256² window of one band over 20 dates sends at most two asset requests per GeoTIFF (a header
and the ranges of its tiles), one per touched chunk of a netCDF or Zarr store, and at most 1.2×
the bytes of the tiles it touches plus the files' headers; computing the whole result still
sends one GET per file. Counted by the local backend's request log over real sockets. The last
tests cover the backend's bandwidth cap, with a clock the test drives.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr

import xr_openeo
from xr_openeo.http import Auth, Links
from xr_openeo.readers.base import Window
from xr_openeo.readers.geotiff import GeoTIFFReader
from xr_openeo.testing import LocalBackend, SyntheticCollection, synthetic_pixels
from xr_openeo.testing.faults import Faults, SharedLink

DATES = 20
SIZE = 512
TILE = 256
COLLECTION = SyntheticCollection(dates=DATES, width=SIZE, height=SIZE)
BANDS = ["B02", "B03", "B04"]
B03 = 1  # its index in the synthetic collection
ROWS, COLS = slice(256, 512), slice(0, 256)  # the window: one tile of the lower left quarter


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    with LocalBackend([COLLECTION], blocksize=TILE) as b:
        yield b


@pytest.fixture(scope="module")
def jobs(backend: LocalBackend) -> dict[str, Any]:
    """One finished job per format, shared by the tests of this module (each test clears the log)."""
    conn = backend.connect()
    out = {}
    for fmt in ("GTiff", "netCDF", "Zarr"):
        job = conn.load_collection("SENTINEL2_L2A", bands=BANDS).create_job(out_format=fmt)
        job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
        out[fmt] = job
    return out


def _cube(backend: LocalBackend) -> Any:
    return backend.connect().load_collection("SENTINEL2_L2A", bands=BANDS)


FRONTS: dict[str, Callable[[LocalBackend, Any, str], xr.Dataset]] = {
    "open_results": lambda backend, job, fmt: xr_openeo.open_results(job),
    "engine": lambda backend, job, fmt: xr.open_dataset(job, engine="openeo", chunks={}),
    "compute_batch": lambda backend, job, fmt: xr_openeo.compute_batch(_cube(backend), out_format=fmt, progress=False),
}


def _open(front: str, backend: LocalBackend, jobs: dict[str, Any], fmt: str) -> xr.Dataset:
    xr_openeo.clear_caches()  # no header kept from an earlier test: each window pays for its own
    return FRONTS[front](backend, jobs[fmt], fmt)


def _assets(backend: LocalBackend) -> dict[str, list[Any]]:
    """Asset requests since the log was cleared, by file (the path below the asset's key for Zarr)."""
    per_file: dict[str, list[Any]] = defaultdict(list)
    for r in backend.requests:
        if "/results/assets/" in r.path:
            per_file[r.path.split("/results/assets/")[1].split("/", 3)[-1]].append(r)
    return per_file


def _files(backend: LocalBackend, ds: xr.Dataset, suffix: str) -> list[Path]:
    out_dir = backend.job(ds.attrs["openeo:job_id"]).out_dir
    return sorted(p for p in out_dir.rglob(f"*{suffix}") if p.is_file())


def _expected(band: int, rows: slice, cols: slice) -> np.ndarray:
    r, c = np.arange(rows.start, rows.stop), np.arange(cols.start, cols.stop)
    values = np.stack([synthetic_pixels(COLLECTION.seed, band, d, r, c) for d in range(DATES)]).astype("float32")
    values[values == 0] = np.nan
    return values


def cog_costs(path: Path, rows: slice, cols: slice) -> tuple[int, int]:
    """Bytes of a COG's header (everything before its first tile, overviews included) and of the
    full-resolution tiles under ``rows`` × ``cols``."""
    with rasterio.open(path) as src:
        block_rows, block_cols = src.block_shapes[0]
        tiles = 0
        for row in range(rows.start // block_rows, -(-rows.stop // block_rows)):
            for col in range(cols.start // block_cols, -(-cols.stop // block_cols)):
                tiles += int(src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))
        levels = [None, *range(len(src.overviews(1)))]
        header = min(int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1, ovr=level)) for level in levels)
    return header, tiles


# -- GeoTIFF: one file per date ---------------------------------------------------------------------


SELECTIONS: dict[str, Callable[[xr.Dataset], xr.DataArray]] = {
    "isel": lambda ds: ds.B03.isel(y=ROWS, x=COLS),
    "sel": lambda ds: ds.B03.sel(y=slice(ds.y[ROWS.start], ds.y[ROWS.stop - 1]), x=slice(ds.x[0], ds.x[COLS.stop - 1])),
    "clip_box": lambda ds: ds.B03.rio.clip_box(
        float(ds.x[0] - 5), float(ds.y[ROWS.stop - 1] - 5), float(ds.x[COLS.stop - 1] + 5), float(ds.y[ROWS.start] + 5)
    ),
}


@pytest.mark.parametrize("front", FRONTS)
def test_a_window_of_one_band_reads_its_tiles_and_a_header_per_file(backend, jobs, front):
    ds = _open(front, backend, jobs, "GTiff")
    assert ds.B03.chunks[1:] == ((SIZE,), (SIZE,))  # default chunks: whole files
    backend.clear_requests()
    values = SELECTIONS["isel"](ds).values
    np.testing.assert_array_equal(values, _expected(B03, ROWS, COLS))

    per_file = _assets(backend)
    files = _files(backend, ds, ".tif")
    assert sorted(per_file) == sorted(p.name for p in files)  # every date, nothing else
    assert all(len(requests) <= 2 for requests in per_file.values()), {k: len(v) for k, v in per_file.items()}
    assert all(r.status == 206 for requests in per_file.values() for r in requests)
    sent = sum(r.bytes_sent for requests in per_file.values() for r in requests)
    headers, tiles = np.sum([cog_costs(p, ROWS, COLS) for p in files], axis=0)
    assert sent <= 1.2 * (headers + tiles), (sent, headers, tiles)
    assert sent < sum(p.stat().st_size for p in files) / 3


# rioxarray's clip_box calls rasterio.windows.transform, which multiplies Affine objects with `*`
# (deprecated by affine); nothing of ours is involved.
@pytest.mark.filterwarnings("ignore:Use `@` matmul instead of `\\*` mul operator:PendingDeprecationWarning")
@pytest.mark.parametrize("selection", ["sel", "clip_box"])
def test_selections_by_coordinates_read_the_same_window(backend, jobs, selection):
    ds = _open("open_results", backend, jobs, "GTiff")
    backend.clear_requests()
    values = SELECTIONS[selection](ds).values
    np.testing.assert_array_equal(values, _expected(B03, ROWS, COLS))
    per_file = _assets(backend)
    assert len(per_file) == DATES and all(len(requests) <= 2 for requests in per_file.values())
    files = _files(backend, ds, ".tif")
    headers, tiles = np.sum([cog_costs(p, ROWS, COLS) for p in files], axis=0)
    assert sum(r.bytes_sent for rs in per_file.values() for r in rs) <= 1.2 * (headers + tiles)


@pytest.mark.parametrize("front", FRONTS)
def test_computing_everything_is_one_get_per_file(backend, jobs, front):
    ds = _open(front, backend, jobs, "GTiff")
    backend.clear_requests()
    values = ds.compute()
    np.testing.assert_array_equal(values.B03.isel(y=ROWS, x=COLS).values, _expected(B03, ROWS, COLS))
    per_file = _assets(backend)
    files = _files(backend, ds, ".tif")
    assert sorted(per_file) == sorted(p.name for p in files)
    assert all(len(rs) == 1 and rs[0].status == 200 and "Range" not in rs[0].headers for rs in per_file.values())
    assert sum(rs[0].bytes_sent for rs in per_file.values()) == sum(p.stat().st_size for p in files)


@pytest.mark.parametrize(("dtype", "expected"), [("float32", "float32"), (None, "uint16"), ("uint8", "uint16")])
def test_a_geotiff_read_gives_each_band_an_array_of_its_own(backend, jobs, dtype, expected):
    """Whole files (one GDAL read of every band) and windows alike: the file's values, one array per band,
    converted while reading when the conversion is exact (else in the file's dtype)."""
    path = _files(backend, xr_openeo.open_results(jobs["GTiff"]), ".tif")[0]
    reader = GeoTIFFReader(Links({"f": str(path)}, Auth()))
    with rasterio.open(path) as src:
        stored = src.read()
    for window in (Window(slice(0, SIZE), slice(0, SIZE), full=(SIZE, SIZE)), Window(ROWS, COLS, full=(SIZE, SIZE))):
        block = reader.read("f", window, [0, 1, 2], dtype)
        assert [(a.dtype, a.shape) for a in block.data] == [(np.dtype(expected), (1, *window.shape))] * 3
        for band, array in enumerate(block.data):
            np.testing.assert_array_equal(array[0], stored[band, window.y, window.x])
        assert not any(np.shares_memory(a, b) for a, b in itertools.combinations(block.data, 2))
        assert block.nodata == 0


def test_a_window_after_a_full_read_sends_nothing_new_for_headers(backend, jobs):
    """A whole-file read keeps the file's header: a later window of the same files needs only its tiles."""
    ds = _open("open_results", backend, jobs, "GTiff")
    ds.B02.isel(t=0).load()
    backend.clear_requests()
    ds.B03.isel(t=0, y=ROWS, x=COLS).load()
    (requests,) = _assets(backend).values()
    assert len(requests) == 1 and requests[0].headers["Range"] != "bytes=0-65535"


# -- netCDF and Zarr: one file (or one object per chunk) for all dates ------------------------------


def hdf5_chunks(path: Path, variable: str, rows: slice, cols: slice) -> list[tuple[int, int]]:
    """``(offset, size)`` of ``variable``'s HDF5 chunks under the window, every date."""
    import h5py

    with h5py.File(path, "r") as f:
        dset = f[variable]
        out = []
        for i in range(dset.id.get_num_chunks()):
            info = dset.id.get_chunk_info(i)
            _, r0, c0 = info.chunk_offset
            if rows.start <= r0 < rows.stop and cols.start <= c0 < cols.stop:
                out.append((info.byte_offset, info.size))
    return out


def hdf5_costs(path: Path, variable: str, rows: slice, cols: slice) -> tuple[int, int]:
    """Bytes of an HDF5 file that are not chunk data (its metadata), and of ``variable``'s chunks under the window."""
    import h5py

    with h5py.File(path, "r") as f:
        data = 0
        for dset in f.values():
            if isinstance(dset, h5py.Dataset) and dset.chunks is not None:
                data += sum(dset.id.get_chunk_info(i).size for i in range(dset.id.get_num_chunks()))
    return path.stat().st_size - data, sum(size for _, size in hdf5_chunks(path, variable, rows, cols))


@pytest.mark.parametrize("front", ["open_results", "engine"])
def test_a_netcdf_window_fetches_each_chunk_it_touches_by_its_exact_range(backend, jobs, front):
    """What a netCDF window sends: one request per touched chunk, of exactly its bytes (the dates' tasks
    send theirs at the same time), and a few small pieces of the chunk index; 1.2x the bound in bytes.

    Not two requests per file, as for GeoTIFF: the file is written date by date, so the window's
    chunks lie 1.5 MiB apart, and one request for all of them would need a multi-range request,
    which neither the local backend nor object stores serve.
    """
    ds = _open(front, backend, jobs, "netCDF")
    backend.clear_requests()
    np.testing.assert_array_equal(ds.B03.isel(y=ROWS, x=COLS).values, _expected(B03, ROWS, COLS))
    ((path,),) = [_files(backend, ds, ".nc")]
    metadata, touched = hdf5_costs(path, "B03", ROWS, COLS)
    (requests,) = _assets(backend).values()
    asked = Counter(r.headers["Range"] for r in requests)
    chunks = {f"bytes={offset}-{offset + size - 1}" for offset, size in hdf5_chunks(path, "B03", ROWS, COLS)}
    assert len(chunks) == DATES and all(asked[r] == 1 for r in chunks), asked
    assert len(requests) <= len(chunks) + 3  # the rest: pieces of the chunk index
    assert all(r.status == 206 for r in requests)
    assert sum(r.bytes_sent for r in requests) <= 1.2 * (metadata + touched)


@pytest.mark.parametrize("front", ["open_results", "engine"])
def test_a_zarr_window_reads_only_the_chunks_it_touches(backend, jobs, front):
    ds = _open(front, backend, jobs, "Zarr")
    backend.clear_requests()
    np.testing.assert_array_equal(ds.B03.isel(y=ROWS, x=COLS).values, _expected(B03, ROWS, COLS))
    per_file = _assets(backend)
    store = _files(backend, ds, ".zarray")[0].parent.parent
    chunks = {f"B03/{t}.1.0": store / "B03" / f"{t}.1.0" for t in range(DATES)}  # 256² chunks: row 1, column 0
    assert sorted(per_file) == sorted(chunks)
    assert all(len(rs) == 1 for rs in per_file.values())
    assert sum(r.bytes_sent for rs in per_file.values() for r in rs) <= 1.2 * sum(
        p.stat().st_size for p in chunks.values()
    )


def test_computing_a_zarr_result_gets_each_chunk_once(backend, jobs):
    ds = _open("open_results", backend, jobs, "Zarr")
    backend.clear_requests()
    ds.compute()
    per_file = _assets(backend)
    store = _files(backend, ds, ".zarray")[0].parent.parent
    chunk_files = [p for p in store.rglob("*") if p.is_file() and not p.name.startswith(".") and p.parent != store]
    data = {str(p.relative_to(store)) for p in chunk_files if p.parent.name in BANDS}
    assert data <= set(per_file) and all(len(per_file[name]) == 1 for name in data)


# -- the bandwidth cap --------------------------------------------------------------------------------


class FakeTime:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_shared_link_sends_at_its_rate_whoever_sends():
    clock = FakeTime()
    link = SharedLink(clock=clock, sleep=clock.sleep)
    # 1 MB at 8 Mbit/s takes one second, in pieces from two senders taking turns
    waits = [link.send(250_000, 8) for _ in range(4)]
    assert clock.now == pytest.approx(1.0) and waits == pytest.approx([0.25] * 4)
    # idle time is not saved up: after a pause the next piece still takes its own time
    clock.now += 10
    assert link.send(125_000, 8) == pytest.approx(0.125)


def test_a_shared_link_queues_pieces_of_concurrent_connections():
    clock = FakeTime()
    link = SharedLink(clock=clock, sleep=lambda s: None)  # two senders book before either has waited
    first = link.send(1_000_000, 80)
    second = link.send(1_000_000, 80)
    assert (first, second) == pytest.approx((0.1, 0.2))  # the second waits for the first: one link


@pytest.mark.parametrize("value", [0, -1, float("inf")])
def test_bandwidth_must_be_positive(value):
    with pytest.raises(ValueError, match="bandwidth_mbit"):
        Faults(bandwidth_mbit=value)


class CountingLink(SharedLink):
    """A link on a fake clock that also counts the bytes booked on it."""

    def __init__(self) -> None:
        self.clock = FakeTime()
        super().__init__(clock=self.clock, sleep=self.clock.sleep)
        self.booked: list[tuple[int, float]] = []

    def send(self, nbytes: int, mbit: float) -> float:
        self.booked.append((nbytes, mbit))
        return super().send(nbytes, mbit)


def test_a_capped_job_books_every_asset_byte_on_the_backends_link(backend):
    """A job's cap applies to its file bytes only (not to documents), on the link every connection shares."""
    cube = backend.connect().load_collection("SENTINEL2_L2A", bands=BANDS, temporal_extent=["2023-01-01", "2023-01-11"])
    job = cube.create_job(out_format="GTiff", job_options={"faults": {"bandwidth_mbit": 100}})
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    link, backend.state.link = backend.state.link, CountingLink()
    try:
        xr_openeo.clear_caches()
        backend.clear_requests()
        ds = xr_openeo.open_results(job)
        values = ds.B04.values
        counted = backend.state.link
    finally:
        backend.state.link = link
    assert values.shape == (2, SIZE, SIZE)
    assert isinstance(counted, CountingLink)
    sent = sum(r.bytes_sent for rs in _assets(backend).values() for r in rs)
    assert sum(n for n, _ in counted.booked) == sent > 0 and {m for _, m in counted.booked} == {100}
    assert counted.clock.now == pytest.approx(sent * 8 / 100e6)
