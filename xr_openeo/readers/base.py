"""What every raster reader offers (the :class:`Reader` protocol), and a fake one for graph tests.

A reader reads windows of the assets of one results document: ``info(key)`` says what a file
holds (its grid, bands, dtype, nodata, time steps, native chunks; a header read where the
document does not say), ``read(key, window, bands)`` returns the window of some bands as one
array per band. Readers are small frozen objects that pickle by their constructor arguments and
are safe to call from many threads; the files they open live in per-process caches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..results import Grid
from .nodata import exact

BandId = int | str
"""A band of a file: its 0-based index (GeoTIFF) or its variable name (netCDF, Zarr)."""


@dataclass(frozen=True)
class FileInfo:
    """What one file holds, as its header (or the results document) says.

    ``times`` are the file's own time steps (netCDF, Zarr), None for a single-date file
    (GeoTIFF: its date comes from the document). ``bands`` are the file's band ids in order and
    ``names`` their names (descriptions or variable names; None where the file has none).
    ``block`` is the native chunk (tile) shape ``(rows, cols)``. ``attrs`` holds per-band
    attributes worth keeping (units, long_name…).
    """

    grid: Grid
    bands: tuple[BandId, ...]
    names: tuple[str | None, ...]
    dtype: str
    nodata: float | None = None
    times: tuple[np.datetime64, ...] | None = None
    block: tuple[int, int] = (256, 256)
    attrs: Mapping[BandId, Mapping[str, Any]] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Window:
    """Pixels of one file: rows ``y`` and columns ``x`` (slices, step 1) and, for files with a time
    axis, the file's time steps ``t`` (a slice; None for single-date files). ``full`` is the
    file's shape as the cube expects it: a window equal to it needs the whole file."""

    y: slice
    x: slice
    t: slice | None = None
    full: tuple[int, int] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y.stop - self.y.start, self.x.stop - self.x.start)


@dataclass
class Block:
    """A read window: one ``(t, rows, cols)`` array per requested band, plus what the file said.

    ``data`` arrays are in the file's dtype, or in the ``dtype`` asked for when the reader could
    convert exactly while reading. ``nodata`` is the file's nodata (None: none; NaN: NaN), and
    ``grid`` the file's grid as its header gives it (None when the reader did not look).
    ``masked`` says the reader already replaced nodata by NaN (netCDF/Zarr CF decoding).
    """

    data: list[np.ndarray]
    nodata: float | None = None
    grid: Grid | None = None
    masked: bool = False


@runtime_checkable
class Reader(Protocol):
    """Reads windows of the raster assets of one results document (see the module docstring)."""

    format: ClassVar[str]
    #: Reading one band of a window costs as much as reading all of them (pixel-interleaved files).
    shares_bands: ClassVar[bool]

    def info(self, key: str) -> FileInfo:
        """What asset ``key`` holds (may read its header)."""
        ...

    def read(
        self, key: str, window: Window, bands: Sequence[BandId], dtype: str | None = None, out: np.ndarray | None = None
    ) -> Block:
        """The ``window`` of ``bands`` of asset ``key``; ``dtype`` is the output dtype wanted, as a hint.

        ``out``, a hint too: an array ``(bands, steps, rows, cols)`` the reader may decode into
        (then the block's arrays are its planes), so that a load writes each pixel once.
        """
        ...


@dataclass(frozen=True)
class FakeReader:
    """A reader without files, for tests of the graph code: pixel values are a formula.

    Every asset in ``files`` has ``info`` as given; the value of band ``b`` at file time step
    ``s``, row ``r``, column ``c`` is ``value(key, b, s, r, c)`` (default: a number unique to
    each), nodata where ``value`` returns ``info.nodata``. Every call is recorded in ``calls``
    (``(key, window, bands)``) so tests can check which reads a computation made; keys listed in
    ``failing`` raise :class:`~xr_openeo.errors.AssetReadError` as a failed request would.
    """

    files: Mapping[str, FileInfo]
    calls: list[tuple[str, Window, tuple[BandId, ...]]] = field(default_factory=list, compare=False, hash=False)
    failing: frozenset[str] = frozenset()
    format: ClassVar[str] = "fake"
    shares_bands: ClassVar[bool] = True

    def info(self, key: str) -> FileInfo:
        return self.files[key]

    def read(
        self, key: str, window: Window, bands: Sequence[BandId], dtype: str | None = None, out: np.ndarray | None = None
    ) -> Block:
        from ..errors import AssetReadError

        self.calls.append((key, window, tuple(bands)))
        if key in self.failing:
            raise AssetReadError(
                f"Reading asset {key!r} failed (fake)", key=key, href=f"fake://{key}", status=503, cause="HTTP 503"
            )
        info = self.files[key]
        steps = range(len(info.times))[window.t or slice(None)] if info.times is not None else range(1)
        rows = np.arange(window.y.start, window.y.stop)[:, None]
        cols = np.arange(window.x.start, window.x.stop)[None, :]
        data = []
        for band in bands:
            b = info.bands.index(band)
            planes = [fake_value(key, b, s, rows, cols) for s in steps]
            data.append(np.stack(planes).astype(info.dtype))
        if out is not None and out.shape == (len(data), *data[0].shape) and exact(info.dtype, out.dtype):
            for plane, values in zip(out, data, strict=True):  # as a decoder writing into ``out`` would
                plane[...] = values
            data = list(out)
        return Block(data, nodata=info.nodata, grid=info.grid)


def fake_value(key: str, band: int, step: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The FakeReader's pixel values: distinct per file, band, step, row and column (small ints)."""
    salt = sum(key.encode()) % 97
    return (salt * 7 + band * 13 + step * 31 + rows * 3 + cols) % 251 + 1 + 0 * rows * cols
