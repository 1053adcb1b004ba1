"""netCDF-4 (HDF5) assets: xarray's h5netcdf decoding over the asset's bytes, fetched by ranges.

Opening reads only the HDF5 metadata (and the small index coordinates); a window reads only the
HDF5 chunks it needs. Files under the ``download_threshold`` option (16 MiB) are fetched whole
instead (the header request, then the rest in one GET). The options in force when the reader is
made travel with it, into pickles and dask workers.

h5py holds a global lock while it calls a Python file object, and an h5py object collected on
another thread needs that lock. So h5py never waits on the network here: it reads a
:class:`_Fetched` file that serves only bytes already in memory and fails at once, noting the
range, on any other. The bytes are then fetched outside h5py (retries and renewal of expired
links as in :func:`xr_openeo.http.fetch`, several ranges at once) and the h5py call runs again.
Errors of those fetches are raised as they are (asset key, redacted href, HTTP status), never as
h5py's "read failed".
"""

from __future__ import annotations

import io
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from .._options import get_option
from ..errors import AssetReadError
from ..http import RemoteFile
from ..http.files import MAX_BLOCKS
from ..urls import is_local, local_path, redact
from .cf import CFReader, OpenFile, check_magic

_T = TypeVar("_T")


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
        in blocks of ``block_bytes`` after a first request of ``header_bytes``. Default: the
        options of the same names (:func:`xr_openeo.set_options`) when the reader is made.
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
        return OpenFile(ds, source=source, closers=closers)

    def _guarded(self, opened: OpenFile, read: Callable[[], _T]) -> _T:
        if isinstance(opened.source, _Fetched):
            return opened.source.run(read)
        return read()


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


class _Fetched(io.RawIOBase):
    """The asset as h5py reads it: the bytes fetched so far, from memory, never from the network.

    A read of bytes not fetched yet fails at once and notes, for the reading thread, the range
    it needed. :meth:`run` runs an h5py call until it needs nothing more: after each such failure
    it fetches the missing blocks (outside h5py) and calls again. Blocks are ``block_bytes``
    long; a file keeps at most :data:`~xr_openeo.http.files.MAX_BLOCKS` of them (and never more
    than the ``cache_bytes`` option) beyond those that calls in progress still need. Reads take
    no lock (h5py's lock is held meanwhile); only fetching and forgetting blocks do.
    """

    def __init__(self, remote: RemoteFile, block_bytes: int) -> None:
        super().__init__()
        self.remote = remote
        self.size = remote.size
        self.block_bytes = block_bytes
        self.head = remote.pread(0, remote.head_bytes)  # the header request's bytes: no request
        self._blocks: dict[int, bytes] = {}  # read by h5py without a lock; changed under _lock
        self._order: OrderedDict[int, None] = OrderedDict()
        self._pins: Counter[int] = Counter()  # blocks that calls in progress need
        self._loading: dict[int, threading.Event] = {}  # blocks being fetched, set when done
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
        while pos < stop:
            if pos < len(head):
                piece = memoryview(head)[pos : min(stop, len(head))]
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

    def run(self, call: Callable[[], _T]) -> _T:
        """``call()``, which reads this file through h5py, again after fetching what it missed, until it misses none.

        Raises the :class:`~xr_openeo.errors.AssetReadError` of a fetch that failed, or what
        ``call`` raised for any other reason.
        """
        pinned: set[int] = set()
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
                if not self._fetch(*missing, pinned):  # (it missed bytes it had: do not loop)
                    raise AssetReadError(
                        f"Reading asset {self.remote.key!r}: h5py asked again for bytes {missing[0]}-{missing[1]} "
                        "after they were fetched",
                        key=self.remote.key,
                        href=redact(self.remote.links.href(self.remote.key)),
                    )
        finally:
            self._release(pinned)

    def _take_missing(self) -> tuple[int, int] | None:
        missing: tuple[int, int] | None = getattr(self._missing, "range", None)
        self._missing.range = None
        return missing

    def _fetch(self, start: int, stop: int, pinned: set[int]) -> bool:
        """Bring the blocks of ``[start, stop)`` into memory and pin them for the call of ``pinned``.

        Blocks another thread is fetching are awaited, not fetched twice; the others are fetched
        at once (one request per run of adjacent blocks, runs concurrently). Returns whether
        anything was missing or newly pinned (False: the bytes h5py missed were there already).
        """
        block = self.block_bytes
        wanted = range(start // block, (stop - 1) // block + 1)
        done = threading.Event()
        with self._lock:
            new_pins = [i for i in wanted if i not in pinned]
            for i in new_pins:
                self._pins[i] += 1
                pinned.add(i)
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
        if len(spans) == 1:
            answers = [self.remote.pread(spans[0][0], spans[0][1] - spans[0][0])]
        else:
            answers = self.remote.read_ranges([a for a, _ in spans], [b - a for a, b in spans])
        with self._lock:
            for run, data in zip(runs, answers, strict=True):
                for n, i in enumerate(run):
                    self._blocks[i] = data[n * block : (n + 1) * block]
                    self._order[i] = None
                    self._order.move_to_end(i)

    def _release(self, pinned: set[int]) -> None:
        """Unpin a call's blocks and forget the least recently fetched unpinned ones beyond the bound."""
        limit = max(2, min(MAX_BLOCKS, int(get_option("cache_bytes")) // self.block_bytes))
        with self._lock:
            for i in pinned:
                self._pins[i] -= 1
                if self._pins[i] <= 0:
                    del self._pins[i]
            for i in list(self._order):
                if len(self._blocks) <= limit:
                    break
                if i not in self._pins:
                    del self._order[i]
                    self._blocks.pop(i, None)

    def close(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._order.clear()
        self.remote.close()
        super().close()
