"""The files of a result placed on one pixel grid and one time axis, read by window.

A :class:`RasterCube` is what the lazy graph reads from: its shape is ``(t, band, y, x)``;
each :class:`Placement` says where one file lies on that grid, which of the cube's dates its own
time steps are, and which of its bands are the cube's. A window of the cube reads every file it
touches, only the part it touches, and merges them (the first file in document order with a
valid pixel wins). Pure logic around a :class:`~xr_openeo.readers.base.Reader`: the cube itself
never talks to the network, and it pickles small (the reader holds no open file).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import AssetReadError, FailedReadWarning, GridMismatchError, URLExpiredError
from .readers.base import BandId, Block, Reader, Window
from .readers.nodata import finish, merge_first_valid
from .results import Grid


@dataclass(frozen=True)
class Placement:
    """Where one file lies in a cube.

    ``row``/``col``: the cube pixel of the file's pixel (0, 0); ``shape``: the file's
    ``(rows, cols)``; ``steps``: for each of the file's own time steps (one for a single-date
    file), the cube's date index (-1: not in the cube); ``bands``: for each cube band, the file's
    band id (None: the file lacks it); ``grid``: the grid the file's header must have, checked
    on every read (None: not checked); ``timed``: the file has a time axis of its own.
    """

    key: str
    row: int
    col: int
    shape: tuple[int, int]
    steps: tuple[int, ...]
    bands: tuple[BandId | None, ...]
    grid: Grid | None = None
    timed: bool = False


@dataclass(frozen=True, eq=False)
class RasterCube:
    """A lazy ``(t, band, y, x)`` raster made of files; :meth:`read` gives any window of it.

    ``dtype`` is the output dtype, ``fill`` what missing pixels hold (NaN for masked floats, the
    nodata value otherwise), ``masked`` whether nodata becomes ``fill``. ``on_read_error="fill"``
    turns a file whose request failed after the retries into missing pixels and a
    :class:`~xr_openeo.errors.FailedReadWarning`.
    """

    reader: Reader
    grid: Grid
    n_times: int
    n_bands: int
    placements: tuple[Placement, ...]
    dtype: str
    fill: float | int | None
    masked: bool = True
    on_read_error: str = "raise"
    _by_time: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.on_read_error not in ("raise", "fill"):
            raise ValueError(f"on_read_error must be 'raise' or 'fill', got {self.on_read_error!r}")
        if self.on_read_error == "fill" and self.fill is None:
            raise ValueError(
                f"on_read_error='fill' needs a value to fill {self.dtype} output with: pass dtype='float32' "
                "(failed reads become NaN) or a nodata value"
            )
        by_time: list[list[int]] = [[] for _ in range(self.n_times)]
        for i, p in enumerate(self.placements):
            for step in p.steps:
                if step >= 0 and (not by_time[step] or by_time[step][-1] != i):
                    by_time[step].append(i)
        object.__setattr__(self, "_by_time", tuple(tuple(v) for v in by_time))

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            RasterCube,
            (
                self.reader,
                self.grid,
                self.n_times,
                self.n_bands,
                self.placements,
                self.dtype,
                self.fill,
                self.masked,
                self.on_read_error,
            ),
        )

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        from dask.base import tokenize

        return (
            "xr_openeo.RasterCube",
            tokenize(self.reader),
            self.grid,
            self.placements,
            self.dtype,
            str(self.fill),
            self.masked,
            self.on_read_error,
        )

    @property
    def blank(self) -> float | int:
        """What a pixel no file gives holds: ``fill``, or 0 where there is none."""
        return 0 if self.fill is None else self.fill

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.n_times, self.n_bands, *self.grid.shape)

    def read(
        self, t: slice, bands: Sequence[int], y: slice, x: slice, out: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """One ``(t, y, x)`` array per cube band in ``bands``, for dates ``t`` and pixels ``y``, ``x``.

        Slices have step 1 and lie within the cube. Each array is allocated on its own (no array
        is a view into another), so a band's result does not keep the others alive. With
        ``out`` (``(bands, t, y, x)`` in the cube's dtype) the values are written there and its
        planes returned; a window that one file covers is decoded straight into it.
        """
        if out is not None and out.shape != (len(bands), t.stop - t.start, y.stop - y.start, x.stop - x.start):
            raise ValueError(f"out has shape {out.shape}, the window needs {(len(bands), t, y, x)}")
        if out is not None and out.dtype != np.dtype(self.dtype):
            raise ValueError(f"out is {out.dtype}, the cube's values are {self.dtype}")
        t0, t1 = t.start, t.stop
        region = (t1 - t0, y.stop - y.start, x.stop - x.start)
        outs: list[np.ndarray | None] = [None] * len(bands)
        missing: list[np.ndarray | None] = [None] * len(bands)
        failures: list[AssetReadError] = []
        for index in self._candidates(t0, t1):
            p = self.placements[index]
            r0, r1 = max(y.start, p.row), min(y.stop, p.row + p.shape[0])
            c0, c1 = max(x.start, p.col), min(x.stop, p.col + p.shape[1])
            pairs = [(s, c) for s, c in enumerate(p.steps) if t0 <= c < t1]
            wanted = [i for i, b in enumerate(bands) if p.bands[b] is not None and _open(outs[i], missing[i])]
            if r0 >= r1 or c0 >= c1 or not pairs or not wanted:
                continue
            s0, s1 = pairs[0][0], pairs[-1][0] + 1
            window = Window(
                slice(r0 - p.row, r1 - p.row),
                slice(c0 - p.col, c1 - p.col),
                slice(s0, s1) if p.timed else None,
                full=p.shape,
            )
            whole = (
                (r0, r1, c0, c1) == (y.start, y.stop, x.start, x.stop)
                and [c for _, c in pairs] == list(range(t0, t1))
                and s1 - s0 == len(pairs)
            )
            into = (
                out
                if whole and out is not None and wanted == list(range(len(bands))) and all(o is None for o in outs)
                else None
            )
            try:
                ids = [p.bands[bands[i]] for i in wanted]
                # ``out`` only when there is one: a reader written before it (tests' own) still reads
                block = (
                    self.reader.read(p.key, window, ids, self.dtype)  # type: ignore[arg-type]
                    if into is None
                    else self.reader.read(p.key, window, ids, self.dtype, out=into)  # type: ignore[arg-type]
                )
            except AssetReadError as exc:
                if self.on_read_error != "fill" or not _failed_request(exc):
                    raise
                failures.append(exc)
                continue
            self._check(p, block, window, s1 - s0, len(wanted))
            for i, raw in zip(wanted, block.data, strict=True):
                values, invalid = finish(
                    raw, None if block.masked else block.nodata, self.dtype, self.fill, masked=self.masked
                )
                if whole and outs[i] is None:
                    outs[i], missing[i] = values, invalid
                    continue
                merged, gap = self._writable(outs[i], missing[i], region)
                for s, c in pairs:
                    target = (c - t0, slice(r0 - y.start, r1 - y.start), slice(c0 - x.start, c1 - x.start))
                    merge_first_valid(
                        merged[target], gap[target], values[s - s0], None if invalid is None else invalid[s - s0]
                    )
                outs[i], missing[i] = merged, gap
        if failures:
            warnings.warn(FailedReadWarning.from_errors(failures, _as_float(self.fill)), stacklevel=3)
        if out is None:
            return [o if o is not None else self._empty(region) for o in outs]
        for plane, got in zip(out, outs, strict=True):
            if got is None:
                plane[...] = self.blank
            elif not _same_memory(plane, got):  # read apart (merged files, a reader that made its own)
                plane[...] = got
        return list(out)

    # -- helpers -------------------------------------------------------------------------------

    def _candidates(self, t0: int, t1: int) -> list[int]:
        if t1 - t0 == 1:
            return list(self._by_time[t0])
        return sorted({i for step in range(t0, t1) for i in self._by_time[step]})

    def _empty(self, shape: tuple[int, int, int]) -> np.ndarray:
        return np.full(shape, self.blank, dtype=self.dtype)

    def _writable(
        self, out: np.ndarray | None, gap: np.ndarray | None, shape: tuple[int, int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        if out is None:
            return self._empty(shape), np.ones(shape, dtype=bool)
        if gap is None:  # a whole read with no missing pixel: nothing left to fill
            return out, np.zeros(shape, dtype=bool)
        return out, gap

    def _check(self, p: Placement, block: Block, window: Window, steps: int, count: int) -> None:
        expected = (steps, *window.shape)
        if p.grid is not None and block.grid is not None and not same_grid(p.grid, block.grid):
            raise GridMismatchError(
                f"Asset {p.key!r} is not where the results document puts it: its header says {describe(block.grid)}, "
                f"the document {describe(p.grid)}. The document's proj:* fields are wrong for this file; open the "
                "asset on its own (assets=[...]) or report it to the backend.",
                key=p.key,
                expected=p.grid,
                actual=block.grid,
            )
        shapes = {a.shape for a in block.data}
        if len(block.data) != count or shapes != {expected}:
            raise GridMismatchError(
                f"Asset {p.key!r} gave a block of shape {sorted(shapes)} where its place in the cube needs {expected}",
                key=p.key,
                expected=expected,
                actual=sorted(shapes),
            )


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` are the same pixels of the same buffer (a reader decoded into ``out``)."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
    )


def _open(out: np.ndarray | None, missing: np.ndarray | None) -> bool:
    """Whether a band of a window still has missing pixels (or nothing yet)."""
    return out is None or missing is not None


def _failed_request(exc: AssetReadError) -> bool:
    """A failed request (what ``on_read_error="fill"`` fills), not a file that answered and does not parse."""
    return isinstance(exc, URLExpiredError) or exc.cause is not None or exc.status is not None


def _as_float(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


def same_grid(a: Grid, b: Grid, tolerance: float = 1e-6) -> bool:
    """Whether two grids are the same pixels: shape, transform (to a millionth of a pixel) and CRS."""
    if a.shape != b.shape:
        return False
    size = max(abs(a.transform[0]), abs(a.transform[4]), 1e-12)
    if any(abs(u - v) > tolerance * size for u, v in zip(a.transform, b.transform, strict=True)):
        return False
    return a.crs == b.crs or _crs_key(a.crs) == _crs_key(b.crs)


@lru_cache(maxsize=64)
def _crs_key(crs: str) -> str:
    from pyproj import CRS

    parsed = CRS.from_user_input(crs)
    code = parsed.to_epsg()
    return f"EPSG:{code}" if code is not None else parsed.to_wkt()


def describe(grid: Grid) -> str:
    """A grid in words: ``1113 x 705 pixels of 10 m at (640000, 5686130) in EPSG:32631``."""
    a, _, c, _, e, f = grid.transform
    return f"{grid.shape[0]} x {grid.shape[1]} pixels of {a:g} x {abs(e):g} from ({c:g}, {f:g}) in {grid.crs}"
