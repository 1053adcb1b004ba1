"""netCDF-4 (HDF5) assets: xarray's h5netcdf decoding over the asset's bytes, fetched by ranges.

Opening reads only the HDF5 metadata (and the small index coordinates). Files under the
``download_threshold`` option (16 MiB) are fetched whole instead (the header request, then the
rest in one GET). The options in force when the reader is made travel with it, into pickles and
dask workers.

h5py holds a global lock while it calls a Python file object, and an h5py object collected on
another thread needs that lock. So h5py never waits on the network here: it reads a
:class:`_Fetched` file that serves only bytes already in memory and fails at once, noting the
range, on any other. The bytes are then fetched outside h5py (retries and renewal of expired
links as in :func:`xr_openeo.http.fetch`, several ranges at once) and the h5py call runs again.
Errors of those fetches are raised as they are (asset key, redacted href, HTTP status), never as
h5py's "read failed".

A spatial window of chunked variables reads exactly the HDF5 chunks it touches: before the h5py read, the
chunk index gives their byte ranges (:func:`_window_chunks`; the index's own bytes are fetched in
small pieces, :data:`INDEX_GRANULE`), chunks nearer than :data:`MERGE_GAP` join one request
(:func:`plan_requests`) and all requests go out at once. Other bytes h5py misses (metadata,
contiguous variables) come in blocks of the ``block_bytes`` option, and so do windows spanning
the file's whole extent (a full read, one date): their chunks fill the blocks, which then need
few requests (a 52 MB file: 14 instead of 115).
"""

from __future__ import annotations

import bisect
import io
import itertools
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from .._options import get_option
from ..errors import AssetReadError
from ..http import RemoteFile
from ..http.files import MAX_BLOCKS
from ..urls import is_local, local_path, redact
from .base import BandId, Block, Window
from .cf import CFReader, OpenFile, _spatial_dims, check_magic

log = logging.getLogger("xr_openeo")
_T = TypeVar("_T")

#: Chunks of one window closer than this many bytes are fetched by one request (the gap too).
MERGE_GAP = 64 * 1024
#: What h5py misses while the chunk index is looked up is fetched in pieces aligned to this many
#: bytes (at most ``block_bytes``): index nodes are small and scattered over the file.
INDEX_GRANULE = 16 * 1024


class NetCDFReader(CFReader):
    """Reads netCDF-4 assets of one results document (see the module docstring).

    Parameters
    ----------
    links
        Hrefs, headers and renewal of the results' assets.
    masked
        Decode ``_FillValue`` (and scale/offset) as xarray does, so missing pixels read as NaN.
    download_threshold, block_bytes, header_bytes
        Files smaller than ``download_threshold`` bytes are downloaded whole; larger ones are read
        by ranges after a first request of ``header_bytes``: the HDF5 chunks a window touches, and
        blocks of ``block_bytes`` for other bytes. Default: the options of the same names
        (:func:`xr_openeo.set_options`) when the reader is made.
    """

    format: ClassVar[str] = "netcdf"

    def __init__(
        self,
        links: Any,
        masked: bool = True,
        download_threshold: int | None = None,
        block_bytes: int | None = None,
        header_bytes: int | None = None,
    ) -> None:
        super().__init__(links, masked)
        self.download_threshold = int(get_option("download_threshold", download_threshold))
        self.block_bytes = int(get_option("block_bytes", block_bytes))
        self.header_bytes = int(get_option("header_bytes", header_bytes))

    def _args(self) -> tuple[Any, ...]:
        return (self.links, self.masked, self.download_threshold, self.block_bytes, self.header_bytes)

    def _open(self, key: str) -> OpenFile:
        href = self.links.href(key)
        where = redact(href)
        source: Any
        if is_local(href):
            path = local_path(href)
            if not path.is_file():
                raise AssetReadError(
                    f"Cannot read netCDF asset {key!r}: no file at {where}", key=key, href=where, cause="no such file"
                )
            with path.open("rb") as f:
                check_magic(f.read(8), key, where)
            source = str(path)
        else:
            # Every byte is fetched by the Fetched file (blocks of its own): the RemoteFile caches none.
            remote = RemoteFile(key, self.links, head_bytes=self.header_bytes, block_bytes=1)
            check_magic(remote.pread(0, 8), key, where)
            if remote.size < self.download_threshold:
                source = io.BytesIO(remote.read_all())
                remote.close()
            else:
                source = _Fetched(remote, self.block_bytes)

        def open_file() -> tuple[Any, Any]:
            if not isinstance(source, str):
                source.seek(0)
            return _open_h5netcdf(source, self.masked)

        try:
            ds, h5file = source.run(open_file) if isinstance(source, _Fetched) else open_file()
        except AssetReadError:
            raise
        except Exception as exc:
            raise AssetReadError(
                f"Cannot read netCDF asset {key!r} at {where}: {type(exc).__name__}: {redact(str(exc))}",
                key=key,
                href=where,
            ) from None
        closers = (h5file.close, source.close) if isinstance(source, _Fetched) else (h5file.close,)
        return _H5File(ds, source=source, closers=closers, h5file=h5file)

    def _guarded(self, opened: OpenFile, read: Callable[[], _T]) -> _T:
        if isinstance(opened.source, _Fetched):
            return opened.source.run(read)
        return read()

    def read(
        self, key: str, window: Window, bands: Sequence[BandId], dtype: str | None = None, out: np.ndarray | None = None
    ) -> Block:
        """As :meth:`CFReader.read`; a file read by ranges first fetches the HDF5 chunks the window touches."""
        self.info(key)
        opened = self._file(key)
        if not isinstance(opened.source, _Fetched) or not isinstance(opened, _H5File):
            return super().read(key, window, bands, dtype)
        if window.full is not None and window.shape == tuple(window.full):
            # The whole spatial extent (a full read, a date): its chunks fill most of the blocks
            # that hold them, which come in few large requests, as the full read always did.
            return super().read(key, window, bands, dtype)
        with opened.source.prefetched(_window_chunks(opened, key, window, bands)):
            return super().read(key, window, bands, dtype)


@dataclass
class _H5File(OpenFile):
    """An :class:`OpenFile` that also holds the h5py file its Dataset reads."""

    h5file: Any = None


def _open_h5netcdf(source: Any, masked: bool) -> tuple[Any, Any]:
    """``(Dataset, h5py file)``: the file decoded as xarray's h5netcdf engine decodes it.

    The h5py file is opened first and handed to h5netcdf, which is built in two steps: an
    h5netcdf ``File`` whose construction fails (a read that must be fetched first) would
    otherwise fail again in its ``__del__``. Nothing is left open when any step fails.
    """
    import h5netcdf
    import h5py
    import xarray as xr
    from xarray.backends import H5NetCDFStore

    h5file = h5py.File(source, "r")
    try:
        nc = h5netcdf.File.__new__(h5netcdf.File)
        try:
            nc.__init__(h5file, "r", decode_vlen_strings=True, phony_dims="sort")  # type: ignore[misc]
        except BaseException:
            nc._closed = True
            raise
        ds = xr.open_dataset(H5NetCDFStore(nc, mode="r"), engine="store", mask_and_scale=masked)
    except BaseException:
        h5file.close()
        raise
    return ds, h5file


def plan_requests(chunks: Iterable[tuple[int, int]], gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """The ``[start, stop)`` byte ranges to request for chunks at ``(offset, size)``: sorted, with
    overlapping ones and those less than ``gap`` bytes apart joined (the gap is fetched too)."""
    merged: list[list[int]] = []
    for start, stop in sorted((int(o), int(o) + int(s)) for o, s in chunks if s > 0):
        if merged and start - merged[-1][1] <= gap:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged]


def _window_chunks(
    opened: _H5File, key: str, window: Window, bands: Sequence[BandId]
) -> Callable[[], list[tuple[int, int]]]:
    """A call (for :meth:`_Fetched.run`) giving ``(offset, size)`` of the HDF5 chunks of ``bands`` in
    ``window``. Chunks it looked up before a miss are not looked up again when it is called again."""
    import h5py

    ds, h5file = opened.ds, opened.h5file
    y_dim, x_dim = _spatial_dims(ds, key)
    found: dict[tuple[str, tuple[int, ...]], tuple[int, int] | None] = {}

    def chunks() -> list[tuple[int, int]]:
        for band in bands:
            var = ds[band].variable
            dset = h5file.get(str(band))
            if not isinstance(dset, h5py.Dataset) or dset.chunks is None or dset.shape != var.shape:
                continue  # contiguous (or not where expected): read through blocks
            index = {y_dim: window.y, x_dim: window.x, "t": window.t}
            axes: list[Sequence[int]] = []  # the chunks' first element on each axis
            for dim, size, chunk in zip(var.dims, var.shape, dset.chunks, strict=True):
                steps = range(size)[index.get(dim) or slice(None)]
                if steps.step == 1 or not steps:
                    axes.append(range(steps.start // chunk * chunk, steps.stop, chunk) if steps else ())
                else:
                    axes.append(sorted({i // chunk * chunk for i in steps}))
            for coord in itertools.product(*axes):
                if (dset.name, coord) not in found:
                    info = dset.id.get_chunk_info_by_coord(coord)
                    found[dset.name, coord] = None if info.byte_offset is None else (info.byte_offset, info.size)
        return [extent for extent in found.values() if extent is not None]

    return chunks


_Key = tuple[str, int]  # ("b", block index) or ("e", extent start)


class _Fetched(io.RawIOBase):
    """The asset as h5py reads it: the bytes fetched so far, from memory, never from the network.

    A read of bytes not fetched yet fails at once and notes, for the reading thread, the range
    it needed. :meth:`run` runs an h5py call until it needs nothing more: after each such failure
    it fetches the missing bytes (outside h5py) and calls again. The bytes are held as blocks of
    ``block_bytes`` (what h5py missed, rounded out to blocks) and as extents (the chunks of a
    window, :meth:`prefetched`, and the chunk index: exact ranges, never overlapping each other).
    A file keeps at most :data:`~xr_openeo.http.files.MAX_BLOCKS` blocks and, blocks and extents
    together, the ``cache_bytes`` option (at least two blocks' worth), beyond those that calls in
    progress still need; the least recently fetched go first. Reads take no lock (h5py's lock is
    held meanwhile; extents are replaced, never changed in place); fetching and forgetting do.
    """

    def __init__(self, remote: RemoteFile, block_bytes: int) -> None:
        super().__init__()
        self.remote = remote
        self.size = remote.size
        self.block_bytes = block_bytes
        self.head = remote.pread(0, remote.head_bytes)  # the header request's bytes: no request
        self._blocks: dict[int, bytes] = {}  # read by h5py without a lock; changed under _lock
        # extents as (starts, datas), sorted by start: read by h5py without a lock, replaced under _lock
        self._extents: tuple[tuple[int, ...], tuple[bytes, ...]] = ((), ())
        self._order: OrderedDict[_Key, int] = OrderedDict()  # what is held, oldest first: its size
        self._held = 0  # bytes in blocks and extents
        self._pins: Counter[_Key] = Counter()  # what calls in progress need
        self._loading: dict[int, threading.Event] = {}  # blocks being fetched, set when done
        self._incoming: dict[int, tuple[int, threading.Event]] = {}  # extents being fetched: start -> stop, done
        self._lock = threading.Lock()
        self._missing = threading.local()
        self._pos = 0

    # -- what h5py calls (under its global lock: memory only, no lock) --

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        start = self._pos
        stop = min(start + len(view), self.size)
        pos, head, block = start, self.head, self.block_bytes
        starts, datas = self._extents
        while pos < stop:
            k = bisect.bisect_right(starts, pos) - 1
            if pos < len(head):
                piece = memoryview(head)[pos : min(stop, len(head))]
            elif k >= 0 and pos < starts[k] + len(datas[k]):
                piece = memoryview(datas[k])[pos - starts[k] : min(len(datas[k]), stop - starts[k])]
            else:
                index = pos // block
                data = self._blocks.get(index)
                if data is None:
                    self._missing.range = (pos, stop)
                    raise OSError(f"bytes {pos}-{stop} of asset {self.remote.key!r} are not fetched yet")
                piece = memoryview(data)[pos - index * block : min(len(data), stop - index * block)]
            view[pos - start : pos - start + len(piece)] = piece
            pos += len(piece)
        self._pos = pos
        return pos - start

    # -- around h5py calls --

    def run(self, call: Callable[[], _T], *, exact: bool = False, pinned: set[_Key] | None = None) -> _T:
        """``call()``, which reads this file through h5py, again after fetching what it missed, until it misses none.

        With ``exact``, what it misses is fetched as extents of :data:`INDEX_GRANULE` (the chunk
        index), else as blocks. What it needed stays pinned in ``pinned`` (for the caller to
        release), else until it returns. Raises the :class:`~xr_openeo.errors.AssetReadError` of
        a fetch that failed, or what ``call`` raised for any other reason.
        """
        own = pinned is None
        held: set[_Key] = set() if pinned is None else pinned
        try:
            while True:
                self._missing.range = None
                try:
                    result = call()
                except Exception:
                    missing = self._take_missing()
                    if missing is None:
                        raise
                else:
                    missing = self._take_missing()
                    if missing is None:
                        return result
                # What h5py made of a failed read is never trusted: fetch, then call again.
                if exact:
                    granule = max(1, min(INDEX_GRANULE, self.block_bytes))
                    lo, hi = missing[0] // granule * granule, -(-missing[1] // granule) * granule
                    fetched = self._fetch_extents([(lo, min(hi, self.size))], held)
                else:
                    fetched = self._fetch(*missing, held)
                if not fetched:  # (it missed bytes it had: do not loop)
                    raise AssetReadError(
                        f"Reading asset {self.remote.key!r}: h5py asked again for bytes {missing[0]}-{missing[1]} "
                        "after they were fetched",
                        key=self.remote.key,
                        href=redact(self.remote.links.href(self.remote.key)),
                    )
        finally:
            if own:
                self._release(held)

    @contextmanager
    def prefetched(self, plan: Callable[[], list[tuple[int, int]]]) -> Iterator[None]:
        """Within: the ``(offset, size)`` extents ``plan`` gives (an h5py call, run as by :meth:`run`
        with ``exact``) are in memory, fetched at once by the ranges of :func:`plan_requests`.

        A plan that fails for another reason than a fetch is logged and skipped: h5py then misses
        the chunks and they come in blocks.
        """
        pinned: set[_Key] = set()
        try:
            try:
                extents = self.run(plan, exact=True, pinned=pinned)
            except AssetReadError:
                raise
            except Exception as exc:  # noqa: BLE001 - the chunks are still read, through blocks
                log.debug("asset %r: no chunk plan for a window (%s: %s)", self.remote.key, type(exc).__name__, exc)
                extents = []
            self._fetch_extents(plan_requests(extents), pinned)
            yield
        finally:
            self._release(pinned)

    def _take_missing(self) -> tuple[int, int] | None:
        missing: tuple[int, int] | None = getattr(self._missing, "range", None)
        self._missing.range = None
        return missing

    def _fetch(self, start: int, stop: int, pinned: set[_Key]) -> bool:
        """Bring the blocks of ``[start, stop)`` into memory and pin them for the call of ``pinned``.

        Blocks another thread is fetching are awaited, not fetched twice; the others are fetched
        at once (one request per run of adjacent blocks, runs concurrently). Returns whether
        anything was missing or newly pinned (False: the bytes h5py missed were there already).
        """
        block = self.block_bytes
        wanted = range(start // block, (stop - 1) // block + 1)
        done = threading.Event()
        with self._lock:
            new_pins = [("b", i) for i in wanted if ("b", i) not in pinned]
            for key in new_pins:
                self._pins[key] += 1
                pinned.add(key)
            absent = [i for i in wanted if i not in self._blocks]
            theirs = {self._loading[i] for i in absent if i in self._loading}
            mine = [i for i in absent if i not in self._loading]
            for i in mine:
                self._loading[i] = done
        try:
            if mine:
                self._load(mine)
        finally:
            with self._lock:
                for i in mine:
                    if self._loading.get(i) is done:
                        del self._loading[i]
            done.set()
        for other in theirs:  # (a fetch that failed there is made again here, at the next miss)
            other.wait()
        return bool(new_pins or absent)

    def _load(self, indexes: list[int]) -> None:
        block = self.block_bytes
        runs: list[list[int]] = []
        for i in indexes:
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
        spans = [(run[0] * block, min((run[-1] + 1) * block, self.size)) for run in runs]
        answers = self._get(spans)
        with self._lock:
            for run, data in zip(runs, answers, strict=True):
                for n, i in enumerate(run):
                    piece = data[n * block : (n + 1) * block]
                    self._blocks[i] = piece
                    self._hold(("b", i), len(piece))

    def _fetch_extents(self, ranges: Sequence[tuple[int, int]], pinned: set[_Key]) -> bool:
        """Bring ``ranges`` (``[start, stop)``) into memory as extents and pin them for the call of ``pinned``.

        Parts held already are pinned, parts another thread is fetching are awaited, the rest is
        fetched at once (one request per part, all concurrently). Returns whether anything was
        missing or newly pinned.
        """
        done = threading.Event()
        mine: list[tuple[int, int]] = []
        theirs: set[threading.Event] = set()
        changed = False
        with self._lock:
            starts, datas = self._extents
            for start, stop in ranges:
                start, stop = max(start, len(self.head)), min(stop, self.size)
                if start >= stop:
                    continue
                covered: list[tuple[int, int]] = []
                k = max(0, bisect.bisect_right(starts, start) - 1)
                while k < len(starts) and starts[k] < stop:
                    if starts[k] + len(datas[k]) > start:
                        covered.append((starts[k], starts[k] + len(datas[k])))
                        changed |= self._pin(("e", starts[k]), pinned)
                    k += 1
                for a, (b, event) in self._incoming.items():
                    if a < stop and b > start:
                        covered.append((a, b))
                        theirs.add(event)
                        changed |= self._pin(("e", a), pinned)
                for a, b in _uncovered(start, stop, covered):
                    mine.append((a, b))
                    self._incoming[a] = (b, done)
                    self._pin(("e", a), pinned)
        try:
            if mine:
                answers = self._get(mine)
                with self._lock:
                    entries = dict(zip(self._extents[0], self._extents[1], strict=True))
                    for (a, _), data in zip(mine, answers, strict=True):
                        entries[a] = data
                        self._hold(("e", a), len(data))
                    order = sorted(entries)
                    self._extents = (tuple(order), tuple(entries[a] for a in order))
        finally:
            with self._lock:
                for a, _ in mine:
                    if self._incoming.get(a, (0, None))[1] is done:
                        del self._incoming[a]
            done.set()
        for other in theirs:  # (a fetch that failed there is made again at the next miss)
            other.wait()
        return bool(changed or mine or theirs)

    def _get(self, spans: list[tuple[int, int]]) -> list[bytes]:
        """The bytes of each ``[start, stop)``: one request each, concurrently."""
        if len(spans) == 1:
            return [self.remote.pread(spans[0][0], spans[0][1] - spans[0][0])]
        return self.remote.read_ranges([a for a, _ in spans], [b - a for a, b in spans])

    def _pin(self, key: _Key, pinned: set[_Key]) -> bool:
        """Pin ``key`` for the call of ``pinned`` (under the lock); whether it was not pinned by it yet."""
        if key in pinned:
            return False
        self._pins[key] += 1
        pinned.add(key)
        return True

    def _hold(self, key: _Key, size: int) -> None:
        """Note ``key`` as held, newest (under the lock)."""
        self._held += size - self._order.get(key, 0)
        self._order[key] = size
        self._order.move_to_end(key)

    def _release(self, pinned: set[_Key]) -> None:
        """Unpin a call's blocks and extents and forget the least recently fetched unpinned ones beyond the bounds."""
        cache = int(get_option("cache_bytes"))
        limit = max(2, min(MAX_BLOCKS, cache // self.block_bytes))
        budget = max(cache, 2 * self.block_bytes)
        with self._lock:
            for key in pinned:
                self._pins[key] -= 1
                if self._pins[key] <= 0:
                    del self._pins[key]
            pinned.clear()
            blocks = len(self._blocks)
            dropped: set[int] = set()
            for key, size in list(self._order.items()):
                over_blocks, over_bytes = blocks > limit, self._held > budget
                if not (over_blocks or over_bytes):
                    break
                kind, at = key
                if key in self._pins or (kind == "e" and not over_bytes):
                    continue
                del self._order[key]
                self._held -= size
                if kind == "b":
                    self._blocks.pop(at, None)
                    blocks -= 1
                else:
                    dropped.add(at)
            if dropped:
                starts, datas = self._extents
                kept = [(a, d) for a, d in zip(starts, datas, strict=True) if a not in dropped]
                self._extents = (tuple(a for a, _ in kept), tuple(d for _, d in kept))

    def close(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._extents = ((), ())
            self._order.clear()
            self._held = 0
        self.remote.close()
        super().close()


def _uncovered(start: int, stop: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[start, stop)`` outside the ``covered`` ranges."""
    out = []
    pos = start
    for a, b in sorted(covered):
        if a > pos:
            out.append((pos, min(a, stop)))
        pos = max(pos, b)
        if pos >= stop:
            break
    if pos < stop:
        out.append((pos, stop))
    return [(a, b) for a, b in out if b > a]
