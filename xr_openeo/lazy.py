"""The one dask-graph builder: chunks, one read per (files, window), band variables that share it.

For every chunk ``(dates, rows, cols)`` the graph has one *chunk task*, which returns a
:class:`ChunkHandle` (no I/O yet), and one *band task* per band, ``getter(handle, index)``:
dask's own slice fusion turns a selection made later (``ds.B04.isel(x=slice(0, 256))``) into a
smaller index of that band task, so a subset reads only the tiles it touches. The bands of one
chunk share one read where the format stores them together (GeoTIFF): the first band task of a
window reads all bands, the others take theirs from the handle, which dask releases once its
band tasks are done. The cube is stored once in the graph.

The xarray engine cannot hand dask arrays to ``xr.open_dataset`` (xarray wraps whatever a
backend returns and builds its own graph per variable): it gets lazily indexed band arrays over
the same cube instead (:mod:`xr_openeo.engine_arrays`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .cube import RasterCube

DIMS = ("t", "y", "x")
ALIASES = {"time": "t"}
DEFAULT_TILE = 256  # COG tile size assumed when neither the document nor a header gives one
_ALLOWED = '"auto", -1, None, a positive int, or a tuple of positive ints that sum to the dimension\'s size'

Chunks = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


# -- chunks ---------------------------------------------------------------------------------------


def normalize_chunks(chunks: Any, dims: Sequence[str] = DIMS) -> dict[str, Any]:
    """``chunks`` as users give it (None, ``"auto"``, an int, a dict by dimension) → one value per dim.

    Each value is None (the default), ``"auto"``, -1, a positive int or a tuple of positive
    ints; anything else raises ``ValueError`` naming the dimension and what is allowed. As in
    xarray, an int or ``"auto"`` applies to every dimension.
    """
    if chunks is None:
        return dict.fromkeys(dims)
    if isinstance(chunks, str) or (isinstance(chunks, int) and not isinstance(chunks, bool)):
        return {d: _check(d, chunks) for d in dims}
    if isinstance(chunks, Mapping):
        out: dict[str, Any] = dict.fromkeys(dims)
        for key, value in chunks.items():
            dim = ALIASES.get(str(key), str(key))
            if dim not in dims:
                raise ValueError(
                    f"chunks has a dimension {key!r} that these results do not have; their dimensions are "
                    f"{', '.join(dims)} (bands are variables, read together: they need no chunks)"
                )
            out[dim] = _check(dim, value)
        return out
    raise ValueError(
        f'chunks must be None, "auto", an int or a dict by dimension ({", ".join(dims)}) like '
        f"{{'t': 1, 'y': 1024, 'x': 1024}}; got {chunks!r}"
    )


def _check(dim: str, value: Any) -> Any:
    if value is None or value == "auto" and isinstance(value, str) or value == -1 and _is_int(value):
        return value
    if _is_int(value) and value > 0:
        return int(value)
    if isinstance(value, tuple) and value and all(_is_int(v) and v > 0 for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(f"chunks[{dim!r}] must be {_ALLOWED}; got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def resolve_chunks(
    wanted: Mapping[str, Any],
    shape: tuple[int, int, int],
    *,
    dtype: str,
    tile: tuple[int, int] = (DEFAULT_TILE, DEFAULT_TILE),
    extent: tuple[int, int] | None = None,
) -> Chunks:
    """Chunk sizes along ``t``, ``y`` and ``x`` for a cube of ``shape`` (dates, rows, cols).

    Defaults: one date per chunk; along ``y``/``x`` a file's extent (``extent``, default the
    whole axis) when one date of it fits dask's ``array.chunk-size``, else the largest whole
    number of tiles that does. A size given as an int is rounded up to whole tiles; -1 is the
    whole axis; a tuple is taken as it is; ``"auto"`` follows dask's ``array.chunk-size`` in
    whole tiles, as xarray does.
    """
    limit = _chunk_bytes()
    itemsize = np.dtype(dtype).itemsize
    n_t, rows, cols = shape
    extent = extent or (rows, cols)
    out: list[tuple[int, ...]] = []
    for axis, (dim, size) in enumerate(zip(DIMS, shape, strict=True)):
        value = wanted.get(dim)
        step_tile = 1 if axis == 0 else tile[axis - 1]
        if size == 0:
            out.append((0,))
        elif isinstance(value, tuple):
            if sum(value) != size:
                raise ValueError(f"chunks[{dim!r}] = {value} sums to {sum(value)}, but {dim} has {size} elements")
            out.append(value)
        elif value == -1:
            out.append((size,))
        elif isinstance(value, int):
            step = value if axis == 0 else max(step_tile, math.ceil(value / step_tile) * step_tile)
            out.append(_regular(size, step))
        elif value == "auto":
            out.append(())  # filled below, jointly
        elif axis == 0:
            out.append(_regular(size, 1))
        else:
            out.append(())
    if any(value == "auto" for value in wanted.values()):
        out = _auto(out, wanted, shape, dtype, tile)
    if not out[1] or not out[2]:
        out[1], out[2] = _default_spatial(out[1], out[2], shape, extent, tile, itemsize, limit)
    return out[0], out[1], out[2]


def _regular(size: int, step: int) -> tuple[int, ...]:
    full, rest = divmod(size, step)
    return (step,) * full + ((rest,) if rest else ())


def _chunk_bytes() -> int:
    import dask
    from dask.utils import parse_bytes

    return int(parse_bytes(dask.config.get("array.chunk-size")))


def _auto(
    out: list[tuple[int, ...]],
    wanted: Mapping[str, Any],
    shape: tuple[int, int, int],
    dtype: str,
    tile: tuple[int, int],
) -> list[tuple[int, ...]]:
    from dask.array.core import normalize_chunks as dask_normalize

    spec: list[Any] = []
    for axis, dim in enumerate(DIMS):
        if wanted.get(dim) == "auto":
            spec.append("auto")
        elif out[axis]:
            spec.append(out[axis])
        else:  # an unset spatial axis next to an "auto" one: auto too
            spec.append("auto")
    previous = (1, min(tile[0], shape[1]) or 1, min(tile[1], shape[2]) or 1)
    result = dask_normalize(tuple(spec), shape=shape, dtype=np.dtype(dtype), previous_chunks=previous)
    return [tuple(int(v) for v in r) for r in result]


def _default_spatial(
    ys: tuple[int, ...],
    xs: tuple[int, ...],
    shape: tuple[int, int, int],
    extent: tuple[int, int],
    tile: tuple[int, int],
    itemsize: int,
    limit: int,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    rows, cols = shape[1], shape[2]
    step_y, step_x = min(extent[0], rows), min(extent[1], cols)
    if step_y * step_x * itemsize > limit:  # a whole file per chunk is too much: whole tiles under the limit
        side = max(1, int(math.sqrt(limit / itemsize)))
        step_y = min(step_y, max(tile[0], side // tile[0] * tile[0]))
        step_x = min(step_x, max(tile[1], side // tile[1] * tile[1]))
    return ys or _regular(rows, step_y), xs or _regular(cols, step_x)


# -- the graph --------------------------------------------------------------------------------------


def band_arrays(cube: RasterCube, chunks: Chunks, name: str | None = None) -> list[Any]:
    """One lazy ``(t, y, x)`` dask array per band of ``cube``, chunked as ``chunks``."""
    import dask.array as da
    from dask.array.core import getter
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    t_chunks, y_chunks, x_chunks = chunks
    token = tokenize(cube, chunks)
    name = name or f"openeo-read-{token}"
    cube_key = f"cube-{token}"
    layer: dict[Any, Any] = {cube_key: cube}
    regions = []
    for ti, t in enumerate(chunk_slices(t_chunks)):
        for yi, y in enumerate(chunk_slices(y_chunks)):
            for xi, x in enumerate(chunk_slices(x_chunks)):
                layer[(name, ti, yi, xi)] = (ChunkHandle, cube_key, t, y, x)
                regions.append(((ti, yi, xi), (t, y, x)))
    graph_chunks = (t_chunks, y_chunks, x_chunks)
    dtype = np.dtype(cube.dtype)
    arrays = []
    base = HighLevelGraph.from_collections(name, layer, dependencies=())
    for band in range(cube.n_bands):
        band_name = f"{name}-band{band}"
        tasks: dict[Any, Any] = {
            (band_name, *ids): (getter, (name, *ids), _whole(t, band, y, x)) for ids, (t, y, x) in regions
        }
        graph = HighLevelGraph({**base.layers, band_name: tasks}, {**base.dependencies, band_name: {name}})
        arrays.append(da.Array(graph, band_name, chunks=graph_chunks, dtype=dtype))
    return arrays


def band_source(array: Any) -> tuple[RasterCube, int] | None:
    """``(cube, band)`` of a dask array exactly as :func:`band_arrays` made it; None for anything else.

    An array a computation was built on (a selection, arithmetic) has more layers: None.
    """
    name = getattr(array, "name", None)
    graph = getattr(array, "dask", None)
    if not isinstance(name, str) or graph is None or not hasattr(graph, "layers"):
        return None
    base, _, band = name.rpartition("-band")
    if not base.startswith("openeo-read-") or not band.isdigit() or set(graph.layers) != {base, name}:
        return None
    cube = graph.layers[base].get(f"cube-{base.removeprefix('openeo-read-')}")
    return (cube, int(band)) if isinstance(cube, RasterCube) else None


def chunk_slices(sizes: Sequence[int]) -> list[slice]:
    """The slices of consecutive chunks of ``sizes`` along one axis."""
    out, start = [], 0
    for size in sizes:
        out.append(slice(start, start + size))
        start += size
    return out


def _whole(t: slice, band: int, y: slice, x: slice) -> tuple[slice, int, slice, slice]:
    """The index of a whole chunk of one band, relative to the chunk (what a band task asks first)."""
    return (slice(0, t.stop - t.start), band, slice(0, y.stop - y.start), slice(0, x.stop - x.start))


class ChunkHandle:
    """One chunk region of a cube; band tasks index it (``handle[t, band, y, x]``) to read.

    Indexes are relative to the chunk: ints, slices (any step) or integer arrays per axis, as
    dask's slice fusion leaves them. The region read is the bounding box of the index. Where the
    reader shares bands, the first band asked reads every band of that box and keeps the others
    for their own tasks.
    """

    def __init__(self, cube: RasterCube, t: slice, y: slice, x: slice) -> None:
        self.cube, self.t, self.y, self.x = cube, t, y, x
        self._lock = threading.Lock()
        self._kept: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (ChunkHandle, (self.cube, self.t, self.y, self.x))

    def __getitem__(self, index: Any) -> np.ndarray:
        t_index, band, y_index, x_index = _four(index)
        if not _is_int(band):
            raise IndexError(f"a chunk is read one band at a time, got band index {band!r}")
        region, local = index_region((self.t, self.y, self.x), (t_index, y_index, x_index))
        return apply_index(self._band(int(band), region), local)

    def _band(self, band: int, region: tuple[slice, slice, slice]) -> np.ndarray:
        cube = self.cube
        if not cube.reader.shares_bands or cube.n_bands == 1:
            return cube.read(region[0], [band], region[1], region[2])[0]
        key = tuple(v for s in region for v in (s.start, s.stop))
        with self._lock:
            kept = self._kept.pop((band, key), None)
            if kept is not None:
                return kept
            arrays = cube.read(region[0], range(cube.n_bands), region[1], region[2])
            for other, array in enumerate(arrays):
                if other != band:
                    self._kept[(other, key)] = array
            return arrays[band]


def _four(index: Any) -> tuple[Any, Any, Any, Any]:
    if not isinstance(index, tuple):
        index = (index,)
    if any(i is Ellipsis or i is None for i in index) or len(index) > 4:
        raise IndexError(f"unsupported index of a cube chunk: {index!r}")
    index = index + (slice(None),) * (4 - len(index))
    return index[0], index[1], index[2], index[3]


def index_region(
    chunk: tuple[slice, slice, slice], index: tuple[Any, Any, Any]
) -> tuple[tuple[slice, slice, slice], tuple[Any, Any, Any]]:
    """The absolute region (step-1 slices) an index touches, and the index to apply to that region's array."""
    region, local = [], []
    for axis_slice, ix in zip(chunk, index, strict=True):
        size = axis_slice.stop - axis_slice.start
        rel: Any
        if isinstance(ix, slice):
            positions = range(size)[ix]
            if not positions:
                lo = hi = 0
                rel = slice(0, 0, 1)
            elif positions.step > 0:
                lo, hi = positions[0], positions[-1] + 1
                rel = slice(0, hi - lo, positions.step)
            else:
                lo, hi = positions[-1], positions[0] + 1
                rel = slice(hi - 1 - lo, None, positions.step)
        elif _is_int(ix):
            i = int(ix) + (size if ix < 0 else 0)
            if not 0 <= i < size:
                raise IndexError(f"index {ix} is out of bounds for a chunk of {size}")
            lo, hi, rel = i, i + 1, 0
        else:
            positions_arr = np.asarray(ix)
            if positions_arr.dtype == bool:
                positions_arr = np.flatnonzero(positions_arr)
            positions_arr = np.where(positions_arr < 0, positions_arr + size, positions_arr)
            lo, hi = (int(positions_arr.min()), int(positions_arr.max()) + 1) if positions_arr.size else (0, 0)
            rel = positions_arr - lo
        region.append(slice(axis_slice.start + lo, axis_slice.start + hi))
        local.append(rel)
    return (region[0], region[1], region[2]), (local[0], local[1], local[2])


def apply_index(array: np.ndarray, local: tuple[Any, Any, Any]) -> np.ndarray:
    """``array[local]`` with numpy's meaning (a chunk behaves as a numpy array would), without a copy when whole."""
    if all(isinstance(ix, slice) and ix == slice(0, n, 1) for ix, n in zip(local, array.shape, strict=True)):
        return array
    return array[local]
