"""Loading a whole result into memory at about its own size: ``ds.openeo.load()``.

``ds.load()`` (xarray on dask) holds every chunk of a variable until it concatenates them into
the result, so a full load peaks at about twice the result. Here each variable's array is made
first and every read writes its pixels into their place. Band variables as xr_openeo opened
them are read straight into it: GDAL decodes each GeoTIFF into place, all bands of a file in one
read; other formats' readers hand over arrays that are copied. Anything else (a selection,
arithmetic) goes through ``dask.array.store``, one chunk at a time. Reads run on dask's local
threads, as many at once as the ``load_in_flight_bytes`` option allows (counted as the pixels
they produce), so memory holds the result and a few files' compressed bytes. Under a
``dask.distributed`` client the chunks are computed on the cluster and copied into place as
they arrive."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import xarray as xr

from ._options import get_option
from .cube import RasterCube
from .engine_arrays import engine_band_source
from .lazy import band_source, chunk_slices

Region = tuple[slice, slice, slice]


def load(ds: xr.Dataset, *, in_flight_bytes: int | None = None) -> xr.Dataset:
    """Load every variable of ``ds`` into memory, in place, and return ``ds`` (as ``ds.load()`` does).

    Peaks at about the result's size plus ``in_flight_bytes`` (default: the
    ``load_in_flight_bytes`` option) instead of twice the result. Under a ``dask.distributed``
    client the chunks are computed on the cluster and copied into place as they arrive; under
    dask's process pool this is ``ds.load()``.
    """
    budget = get_option("load_in_flight_bytes") if in_flight_bytes is None else in_flight_bytes
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
        raise ValueError(
            f"in_flight_bytes must be a positive integer number of bytes (for example 2**30 for 1 GiB), got {budget!r}"
        )
    lazy = {name: var._data for name, var in ds.variables.items() if _is_dask(var._data)}  # .data would load
    where = _scheduler()
    loaded: dict[Hashable, np.ndarray] = {}
    if isinstance(where, int):
        # the engine's lazily indexed band arrays (no dask) are read into place too
        indexed = {name: var._data for name, var in ds.variables.items() if name not in lazy and var.chunks is None}
        lazy.update({name: data for name, data in indexed.items() if engine_band_source(data) is not None})
        loaded = _load_here(lazy, where, budget) if lazy else {}
    elif lazy and where is not None:
        loaded = _gather(lazy, where)
    for name, array in loaded.items():
        ds.variables[name].data = array
    return ds.load()  # what is left: lazily indexed variables (everything, under a process pool)


def _load_here(lazy: dict[Hashable, Any], threads: int, budget: int) -> dict[Hashable, np.ndarray]:
    """Band arrays of xr_openeo's reads decoded into place; anything else through ``dask.array.store``."""
    groups: dict[tuple[int, Any], list[tuple[Hashable, int]]] = {}
    cubes: dict[int, RasterCube] = {}
    others: list[Hashable] = []
    for name, array in lazy.items():
        source = band_source(array) or engine_band_source(array)
        if source is None:
            others.append(name)
            continue
        cube, band = source
        cubes[id(cube)] = cube
        chunks = getattr(array, "chunks", None) or ((1,) * cube.n_times, (cube.grid.shape[0],), (cube.grid.shape[1],))
        groups.setdefault((id(cube), chunks), []).append((name, band))
    loaded: dict[Hashable, np.ndarray] = {}
    reads: list[tuple[int, Callable[[], object]]] = []
    for (cube_id, chunks), members in groups.items():
        cube = cubes[cube_id]
        regions, complete = _regions(cube, chunks)
        shape = (len(members), *lazy[members[0][0]].shape)
        store = np.empty(shape, cube.dtype) if complete else np.full(shape, cube.blank, cube.dtype)
        reads.extend(_region_reads(cube, [band for _, band in members], regions, store))
        loaded.update({name: store[i] for i, (name, _) in enumerate(members)})
    _run(reads, threads, budget)
    if others:
        import dask.array as da

        targets = {name: np.empty(lazy[name].shape, dtype=lazy[name].dtype) for name in others}
        da.store([lazy[name] for name in others], list(targets.values()), lock=False)
        loaded.update(targets)
    return loaded


def _gather(lazy: dict[Hashable, Any], client: Any) -> dict[Hashable, np.ndarray]:
    """Every chunk computed on the cluster, copied into arrays made up front as it arrives, then released."""
    from distributed import as_completed

    targets = {name: np.empty(array.shape, dtype=array.dtype) for name, array in lazy.items()}
    blocks = []
    for name, array in lazy.items():
        axes = [chunk_slices(sizes) for sizes in array.chunks]
        for index in np.ndindex(*array.numblocks):
            where = tuple(slices[i] for slices, i in zip(axes, index, strict=True))
            blocks.append((array.blocks[index], name, where))
    futures = client.compute([block for block, _, _ in blocks])
    places = {future.key: (name, where) for future, (_, name, where) in zip(futures, blocks, strict=True)}
    try:
        for future in as_completed(futures):
            name, where = places[future.key]
            targets[name][where] = future.result()
            future.release()
    finally:
        client.cancel(futures)
    return targets


def _is_dask(data: Any) -> bool:
    return hasattr(data, "__dask_graph__") and data.__dask_graph__() is not None


def _scheduler() -> int | Any:
    """Where dask computes now: threads of its local scheduler (1 for ``"sync"``), a distributed
    client, or None for anything else (a process pool)."""
    import dask
    import dask.local
    import dask.threaded
    from dask.base import get_scheduler

    scheduler = get_scheduler()
    if scheduler is None or scheduler is dask.threaded.get:
        return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
    if scheduler is dask.local.get_sync:
        return 1
    owner = getattr(scheduler, "__self__", None)
    if type(owner).__module__.startswith("distributed") and hasattr(owner, "compute"):
        return owner
    return None


def _regions(cube: RasterCube, chunks: tuple[tuple[int, ...], ...]) -> tuple[list[Region], bool]:
    """What to read, and whether it covers the cube: each file whole, whatever the chunks, where
    every file holds one date and the files of a date do not overlap (one GET per file, decoded
    into place); else the chunks. Uncovered pixels (no file there) are filled up front."""
    rows, cols = cube.grid.shape
    boxes: dict[int, list[tuple[int, int, int, int]]] = {}
    for p in cube.placements:
        if p.timed or len(p.steps) != 1:
            return _chunk_regions(chunks), True
        y0, y1 = max(p.row, 0), min(p.row + p.shape[0], rows)
        x0, x1 = max(p.col, 0), min(p.col + p.shape[1], cols)
        if p.steps[0] >= 0 and y0 < y1 and x0 < x1:
            boxes.setdefault(p.steps[0], []).append((y0, y1, x0, x1))
    if any(_overlap(found) for found in boxes.values()):
        return _chunk_regions(chunks), True
    regions = [
        (slice(t, t + 1), slice(y0, y1), slice(x0, x1)) for t, found in boxes.items() for y0, y1, x0, x1 in found
    ]
    areas = [sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in found) for found in boxes.values()]
    return regions, len(boxes) == cube.n_times and all(area == rows * cols for area in areas)


def _chunk_regions(chunks: tuple[tuple[int, ...], ...]) -> list[Region]:
    ts, ys, xs = (chunk_slices(sizes) for sizes in chunks)
    return [(t, y, x) for t in ts for y in ys for x in xs]


def _overlap(boxes: list[tuple[int, int, int, int]]) -> bool:
    ordered = sorted(boxes)
    for i, (_y0, y1, x0, x1) in enumerate(ordered):
        for b0, _, c0, c1 in ordered[i + 1 :]:
            if b0 >= y1:
                break
            if c0 < x1 and x0 < c1:
                return True
    return False


def _region_reads(
    cube: RasterCube, bands: list[int], regions: list[Region], store: np.ndarray
) -> Iterator[tuple[int, Callable[[], object]]]:
    """One read per region: its size in bytes and the call that writes it into ``store``."""
    for t, y, x in regions:
        out = store[:, t, y, x]
        yield out.nbytes, partial(cube.read, t, bands, y, x, out=out)


def _run(reads: list[tuple[int, Callable[[], object]]], threads: int, budget: int) -> None:
    """Run ``reads`` on ``threads`` threads, their sizes summing to at most ``budget`` (one at least).

    The first failure stops the reads not yet started and is raised; so is an interrupt.
    """
    if not reads:
        return
    gate = _Budget(budget)

    def run(size: int, call: Callable[[], object]) -> None:
        with gate.hold(size):
            call()

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(reads))), thread_name_prefix="xr_openeo-load") as pool:
        futures = [pool.submit(run, size, call) for size, call in reads]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            gate.stop()  # nothing waiting starts any more (the reads under way finish)
            for future in futures:
                future.cancel()
    for future in futures:
        error = None if future.cancelled() else future.exception()
        if error is not None and not isinstance(error, _Stopped):
            raise error


class _Budget:
    """Bytes in flight: ``hold(n)`` waits until ``n`` more fit under the limit (or nothing else runs)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used, self.stopped = limit, 0, False
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self.stopped or self.used == 0 or self.used + size <= self.limit)
            if self.stopped:
                raise _Stopped
            self.used += size
        try:
            yield
        finally:
            with self._cond:
                self.used -= size
                self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self.stopped = True
            self._cond.notify_all()


class _Stopped(Exception):
    """A read not started because another one failed."""
