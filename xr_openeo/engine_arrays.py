"""The xarray engine's arrays: one lazily indexed ``(t, y, x)`` array per band over a cube.

xarray builds its own dask graph per variable from what an engine returns, so the bands of one
window cannot share a chunk task as in :mod:`xr_openeo.lazy`; they share their read through a
:class:`WindowShare` instead: the first band asked for a window reads all bands, the others are
kept (bounded in bytes) until asked for.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np
from xarray.backends import BackendArray

from .cube import RasterCube
from .lazy import apply_index, index_region

_SHARES: weakref.WeakSet[WindowShare] = weakref.WeakSet()


class WindowShare:
    """Reads of one cube for the engine's band arrays: the bands of one window share one read.

    The first band asked for a window reads all bands (where the reader shares bands) and keeps
    the others until their band asks, up to ``max_bytes`` (oldest dropped first; a dropped band
    is read again when asked). :func:`xr_openeo.clear_caches` empties it.
    """

    def __init__(self, cube: RasterCube, max_bytes: int | None = None) -> None:
        from ._options import get_option

        self.cube = cube
        self.max_bytes = int(get_option("cache_bytes") if max_bytes is None else max_bytes)
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[int, tuple[int, ...]], np.ndarray] = OrderedDict()
        self._loading: dict[tuple[int, ...], threading.Lock] = {}
        self._bytes = 0
        _SHARES.add(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (WindowShare, (self.cube, self.max_bytes))

    def read(self, band: int, region: tuple[slice, slice, slice]) -> np.ndarray:
        cube = self.cube
        if not cube.reader.shares_bands or cube.n_bands == 1:
            return cube.read(region[0], [band], region[1], region[2])[0]
        key = tuple(v for s in region for v in (s.start, s.stop))
        waited = False
        while True:
            with self._lock:
                kept = self._kept.pop((band, key), None)
                if kept is not None:
                    self._bytes -= kept.nbytes
                    return kept
                loading = self._loading.get(key)
                if loading is None or waited:
                    loading = threading.Lock()
                    loading.acquire()
                    self._loading[key] = loading
                    break
            with loading:  # another band is reading this window: wait for it, then take ours
                waited = True
        try:
            arrays = cube.read(region[0], range(cube.n_bands), region[1], region[2])
            with self._lock:
                for other, array in enumerate(arrays):
                    if other != band and array.nbytes <= self.max_bytes:
                        self._kept[(other, key)] = array
                        self._bytes += array.nbytes
                while self._bytes > self.max_bytes and self._kept:
                    _, dropped = self._kept.popitem(last=False)
                    self._bytes -= dropped.nbytes
        finally:
            with self._lock:
                if self._loading.get(key) is loading:
                    del self._loading[key]
            loading.release()
        return arrays[band]

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._bytes = 0


def clear_shares() -> None:
    """Empty every :class:`WindowShare` of this process."""
    for share in list(_SHARES):
        share.clear()


class BandArray(BackendArray):
    """One band of a cube as an xarray ``BackendArray`` ``(t, y, x)``, for the engine."""

    def __init__(self, share: WindowShare, band: int) -> None:
        self.share, self.band = share, band
        n_t, _, rows, cols = share.cube.shape
        self.shape = (n_t, rows, cols)
        self.dtype = np.dtype(share.cube.dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        from xarray.core import indexing

        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._raw)

    def _raw(self, key: tuple[Any, ...]) -> np.ndarray:
        whole = tuple(slice(0, n) for n in self.shape)
        region, local = index_region((whole[0], whole[1], whole[2]), (key[0], key[1], key[2]))
        if any(s.stop == s.start for s in region):
            empty = np.empty(tuple(s.stop - s.start for s in region), dtype=self.dtype)
            return apply_index(empty, local)
        return apply_index(self.share.read(self.band, region), local)


def engine_band_source(data: Any) -> tuple[RasterCube, int] | None:
    """``(cube, band)`` of a variable's data as the engine made it, untouched; None for anything else.

    That is a :class:`BandArray` inside xarray's wrappers (copy-on-write, lazily indexed with no
    index applied yet), or the dask array ``xr.open_dataset(..., chunks=...)`` made of one: its
    graph holds that array in a layer of its own and one getter layer, nothing more.
    """
    layers = getattr(getattr(data, "dask", None), "layers", None)
    if layers is None:
        return _unwrap(data)
    if len(layers) != 2:
        return None
    for name, layer in layers.items():
        if name != data.name and len(layer) == 1:
            value = next(iter(layer.values()))
            return _unwrap(getattr(value, "value", value))  # a dask DataNode holds it in .value
    return None


def _unwrap(obj: Any) -> tuple[RasterCube, int] | None:
    from xarray.core import indexing

    for _ in range(8):  # adapter, copy-on-write, lazily indexed: a few layers at most
        if isinstance(obj, BandArray):
            return obj.share.cube, obj.band
        if isinstance(obj, indexing.LazilyIndexedArray):
            if not all(k == slice(None) for k in obj.key.tuple):
                return None  # indexed already: not the whole band
        elif not isinstance(obj, indexing.ExplicitlyIndexed | indexing.ImplicitToExplicitIndexingAdapter):
            return None
        obj = getattr(obj, "array", None)
    return None


def band_variables(cube: RasterCube) -> list[Any]:
    """Lazily indexed ``(t, y, x)`` arrays, one per band, sharing reads (for the xarray engine)."""
    from xarray.core import indexing

    share = WindowShare(cube)
    return [indexing.LazilyIndexedArray(BandArray(share, band)) for band in range(cube.n_bands)]
