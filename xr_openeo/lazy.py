"""Dask graphs from asset specs: one task per (file or files of a time chunk, spatial window, all bands)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from xarray.backends import BackendArray

DEFAULT_TILE = 256  # COG tile size assumed when the metadata does not give one (geopyspark writes 256)
WHOLE_FILE_MAX = 2048  # files up to this many pixels a side are one chunk (one GET each)
DEFAULT_SPATIAL_CHUNK = 1024


def spatial_chunks(size: int, requested: int | None, tile: int = DEFAULT_TILE) -> tuple[int, ...]:
    """Chunk lengths along one spatial axis: whole multiples of ``tile`` (the last one takes the rest).

    ``requested`` None/-1 gives the whole axis when it is at most ``WHOLE_FILE_MAX``, else 1024.
    A requested size is rounded up to a multiple of the tile so no task reads half a tile.
    """
    if size <= 0:
        raise ValueError(f"an axis of {size} pixels cannot be chunked")
    if requested is None or requested == -1:
        step = size if size <= WHOLE_FILE_MAX else DEFAULT_SPATIAL_CHUNK
    elif requested <= 0:
        raise ValueError(f"spatial chunk sizes must be positive (or -1 for whole), got {requested}")
    else:
        step = max(tile, math.ceil(requested / tile) * tile)
    full, rest = divmod(size, step)
    return (step,) * full + ((rest,) if rest else ())


def time_chunks(n: int, requested: int | None) -> tuple[int, ...]:
    """Chunk lengths along ``t``: ``requested`` dates per task (default 1; -1 = all)."""
    if n == 0:
        return (0,)
    step = 1 if requested is None else (n if requested == -1 else requested)
    if step <= 0:
        raise ValueError(f"chunks['t'] must be a positive number of dates (or -1 for all), got {requested}")
    full, rest = divmod(n, step)
    return (step,) * full + ((rest,) if rest else ())


def normalize_chunks(chunks: Any) -> dict[str, int | None]:
    """``chunks`` as given by a user (None, "auto", int, dict with t/y/x) → {"t", "y", "x"}."""
    if chunks is None or chunks == "auto" or chunks == {}:
        return {"t": None, "y": None, "x": None}
    if isinstance(chunks, int):
        return {"t": None, "y": chunks, "x": chunks}
    if isinstance(chunks, Mapping):
        unknown = set(chunks) - {"t", "time", "y", "x", "band", "bands"}
        if unknown:
            raise ValueError(f"chunks has unknown dimension(s) {sorted(unknown)}; use t, y and x")
        t = chunks.get("t", chunks.get("time"))
        return {"t": t, "y": chunks.get("y"), "x": chunks.get("x")}
    raise TypeError(
        f"chunks must be None, 'auto', an int or a dict like {{'t': 1, 'y': 1024, 'x': 1024}}, got {chunks!r}"
    )


def _read_block(reader: Any, steps: tuple[tuple[str, ...], ...], window: tuple[slice, slice]) -> np.ndarray:
    # Filled in place rather than np.stack-ed: a task then holds one copy of its block, not two.
    first = reader.read(steps[0], window)
    if len(steps) == 1:
        return first[np.newaxis]
    out = np.empty((len(steps), *first.shape), dtype=first.dtype)
    out[0] = first
    del first
    for i, keys in enumerate(steps[1:], start=1):
        out[i] = reader.read(keys, window)
    return out


def raster_array(
    reader: Any,
    steps: Sequence[Sequence[str]],
    shape: tuple[int, int],
    chunks: Mapping[str, Any],
    tile: int = DEFAULT_TILE,
    name: str | None = None,
) -> Any:
    """A ``(t, band, y, x)`` dask array; ``steps[i]`` are the asset keys of time step i (merged).

    One task reads all bands of the files of one time chunk in one spatial window. ``reader`` is
    stored once in the graph, not once per task.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    rows, cols = shape
    t_chunks = time_chunks(len(steps), chunks.get("t"))
    y_chunks = spatial_chunks(rows, chunks.get("y"), tile)
    x_chunks = spatial_chunks(cols, chunks.get("x"), tile)
    steps_t = tuple(tuple(s) for s in steps)
    name = name or f"read-geotiff-{tokenize(reader, steps_t, shape, t_chunks, y_chunks, x_chunks)}"
    reader_key = f"reader-{name}"
    dsk: dict[Any, Any] = {reader_key: reader}
    t0 = 0
    for ti, tn in enumerate(t_chunks):
        y0 = 0
        for yi, yn in enumerate(y_chunks):
            x0 = 0
            for xi, xn in enumerate(x_chunks):
                window = (slice(y0, y0 + yn), slice(x0, x0 + xn))
                dsk[(name, ti, 0, yi, xi)] = (_read_block, reader_key, steps_t[t0 : t0 + tn], window)
                x0 += xn
            y0 += yn
        t0 += tn
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks=(t_chunks, (reader.count,), y_chunks, x_chunks), dtype=np.dtype(reader.dtype))


# -- the xarray-engine path -----------------------------------------------------------------------
#
# xarray's open_dataset wraps whatever a backend returns in its own lazy adapters and builds one
# dask task per chunk *per variable*; a dask array handed to it would be computed once per
# variable. So the engine gets lazily indexed arrays (one per band) over the same reader, and
# the bands of one (files, window) share a single read through a small per-process cache.


class _WindowCache:
    """(files, window) -> all bands, kept until every band has been taken (or memory runs short)."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        import threading
        from collections import OrderedDict

        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Any, tuple[np.ndarray, set[int]]] = OrderedDict()
        self._pending: dict[Any, Any] = {}
        self._bytes = 0

    def band(self, reader: Any, keys: tuple[str, ...], window: tuple[slice, slice], band: int) -> np.ndarray:
        import threading

        scope = getattr(reader.locator, "scope", id(reader.locator))
        entry_key = (scope, keys, (window[0].start, window[0].stop, window[1].start, window[1].stop))
        with self._lock:
            hit = self._entries.get(entry_key)
            if hit is None:
                loading = self._pending.setdefault(entry_key, threading.Lock())
        if hit is None:
            with loading:  # one read per (files, window), however many band tasks want it
                with self._lock:
                    hit = self._entries.get(entry_key)
                if hit is None:
                    data = reader.read(keys, window)
                    hit = (data, set(range(data.shape[0])))
                    with self._lock:
                        self._entries[entry_key] = hit
                        self._bytes += data.nbytes
                        self._pending.pop(entry_key, None)
                        while self._bytes > self.max_bytes and len(self._entries) > 1:
                            _, (old, _) = self._entries.popitem(last=False)
                            self._bytes -= old.nbytes
        data, waiting = hit
        with self._lock:
            waiting.discard(band)
            if not waiting and self._entries.pop(entry_key, None) is not None:
                self._bytes -= data.nbytes
        return data[band]


_WINDOWS = _WindowCache()


def band_variable(reader: Any, steps: Sequence[Sequence[str]], shape: tuple[int, int], band: int) -> Any:
    """A lazily indexed ``(t, y, x)`` array of one band, for the xarray engine."""
    from xarray.core import indexing

    return indexing.LazilyIndexedArray(RasterBandArray(reader, steps, shape, band))


class RasterBandArray(BackendArray):
    """One band of a GeoTIFF time series as an xarray ``BackendArray`` (``t, y, x``), read by window."""

    def __init__(self, reader: Any, steps: Sequence[Sequence[str]], shape: tuple[int, int], band: int) -> None:
        self.reader = reader
        self.steps = tuple(tuple(s) for s in steps)
        self.band = band
        self.shape = (len(self.steps), *shape)
        self.dtype = np.dtype(reader.dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        from xarray.core import indexing

        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._raw)

    def _raw(self, key: tuple[Any, ...]) -> np.ndarray:
        t_key, y_key, x_key = key
        dates = range(self.shape[0])[t_key]
        ys = range(self.shape[1])[y_key] if isinstance(y_key, slice) else range(y_key, y_key + 1)
        xs = range(self.shape[2])[x_key] if isinstance(x_key, slice) else range(x_key, x_key + 1)
        window = (
            slice(ys.start, ys.stop) if len(ys) else slice(0, 0),
            slice(xs.start, xs.stop) if len(xs) else slice(0, 0),
        )
        if isinstance(dates, int):
            dates = range(dates, dates + 1)
        if not len(dates) or not len(ys) or not len(xs):
            out = np.empty((len(dates), len(ys), len(xs)), dtype=self.dtype)
        else:
            out = np.stack([_WINDOWS.band(self.reader, self.steps[i], window, self.band) for i in dates])
        if isinstance(t_key, int):
            out = out[0]
        if not isinstance(y_key, slice):
            out = out[..., 0, :]
        if not isinstance(x_key, slice):
            out = out[..., 0]
        return out
