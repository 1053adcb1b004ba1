"""A seekable, read-only file over one asset, for GDAL (rasterio's Python opener) and h5py/h5netcdf.

:class:`RemoteFile` learns an asset's size from its first ranged GET (``Content-Range``; never a
HEAD, which signed URLs often refuse) and keeps that first answer, the file's header, in a cache
shared by the process and bounded in bytes. Other reads go through blocks cached per file object;
reads of a block or more are fetched as asked. Ranges asked together (:meth:`RemoteFile.read_ranges`,
GDAL's multi-range read) go out concurrently. A server that ignores Range answers the first
request with the whole file, which the object then keeps. ``file://`` hrefs and paths are read
from disk. Every fetch has the retries and link renewal of :func:`~xr_openeo.http.fetch`.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._options import get_option
from ..errors import AssetReadError
from ..urls import is_local, local_path, redact
from .cache import ByteCache
from .transfer import fetch, fetch_merged, merge_ranges, slice_ranges

if TYPE_CHECKING:
    from .links import Links

#: Blocks a file object keeps at most (and never more than the ``cache_bytes`` option).
MAX_BLOCKS = 16


@dataclass(frozen=True)
class Head:
    """The first bytes of an asset and what its first answer said: total ``size``, and whether Range works."""

    size: int
    data: bytes
    ranges: bool


HEADS: ByteCache[Head] = ByteCache("file headers", lambda head: len(head.data) + 128)


class RemoteFile(io.RawIOBase):
    """A read-only, seekable binary file over asset ``key`` of ``links``.

    Parameters
    ----------
    key
        The asset key; ``links`` gives its current href (http(s), ``file://`` or a path).
    links
        Hrefs, headers and renewal of expired links.
    head_bytes
        Bytes asked by the first request (the header of a COG or HDF5 file); default the
        ``header_bytes`` option. Kept per process in a cache bounded by ``cache_bytes``.
    block_bytes
        Bytes per block of other reads (reads of a block or more are fetched as asked); default
        the ``block_bytes`` option. At most :data:`MAX_BLOCKS` blocks (and ``cache_bytes``) are
        kept per file object.

    Notes
    -----
    Thread-safe: reads may come from several threads (:meth:`pread` and :meth:`read_ranges` take
    their offsets; the caches and the position are guarded by the object's lock, never held
    while fetching). Pickles as its constructor arguments.
    Failures raise :class:`~xr_openeo.errors.AssetReadError` (asset key, redacted href, status,
    host, cause); a caller that hands this object to GDAL must catch them in its read callbacks.
    """

    def __init__(
        self, key: str, links: Links, *, head_bytes: int | None = None, block_bytes: int | None = None
    ) -> None:
        super().__init__()
        self.key = key
        self.links = links
        self.head_bytes = int(get_option("header_bytes", head_bytes))
        self.block_bytes = int(get_option("block_bytes", block_bytes))
        self._lock = threading.RLock()
        self._pos = 0
        self._head: Head | None = None
        self._whole: bytes | None = None  # the whole file, when the server sent it (Range ignored)
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._fd: int | None = None
        self._path = local_path(links.href(key)) if is_local(links.href(key)) else None

    # -- identity --

    def __reduce__(self) -> tuple[Callable[..., RemoteFile], tuple[Any, ...]]:
        return (_rebuild, (self.key, self.links, self.head_bytes, self.block_bytes))

    def __repr__(self) -> str:
        return f"RemoteFile({self.key!r}, {redact(self.links.href(self.key))!r})"

    @property
    def name(self) -> str:
        return self.key

    # -- io.RawIOBase --

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise ValueError(f"invalid whence ({whence!r}, should be 0, 1 or 2)")
        end = self.size if whence == io.SEEK_END else 0  # (may fetch the header: not under the lock)
        with self._lock:
            base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: end}[whence]
            if base + offset < 0:
                raise OSError(f"negative seek position {base + offset}")
            self._pos = base + offset
            return self._pos

    def read(self, size: int | None = -1) -> bytes:
        with self._lock:
            start = self._pos
        stop = self.size if size is None or size < 0 else start + size
        data = self.pread(start, stop - start)
        with self._lock:
            self._pos = start + len(data)
        return data

    def readall(self) -> bytes:
        data = self.read_all() if self._pos == 0 else self.read(-1)
        with self._lock:
            self._pos = self.size
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._blocks.clear()
            self._whole = None
        super().close()

    # -- reading --

    @property
    def size(self) -> int:
        """The file's size in bytes (the first request tells it)."""
        if self._path is not None:
            return self._local_size()
        return self._first().size

    def pread(self, offset: int, size: int) -> bytes:
        """``size`` bytes from ``offset`` (fewer at the end of the file), without moving the position."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if self._path is not None:
            return self._local_read(offset, size)
        stop = min(offset + max(size, 0), self.size)
        if offset >= stop:
            return b""
        head = self._first()
        if self._whole is not None:
            return self._whole[offset:stop]
        if stop <= len(head.data):
            return head.data[offset:stop]
        if offset < len(head.data):
            return head.data[offset:] + self.pread(len(head.data), stop - len(head.data))
        if stop - offset >= self.block_bytes:
            return self._fetch(offset, stop)
        return self._from_blocks(offset, stop)

    def read_ranges(self, offsets: Sequence[int], sizes: Sequence[int]) -> list[bytes]:
        """The bytes at each ``(offset, size)``, in order; what is not cached is fetched concurrently.

        Adjacent and overlapping ranges are merged into one request; the others go out at the same
        time. This is GDAL's multi-range read (rasterio calls it ``get_byte_ranges``).
        """
        spans = [(int(o), int(o) + int(s)) for o, s in zip(offsets, sizes, strict=True)]
        if self._path is not None:
            return [self._local_read(a, b - a) for a, b in spans]
        size = self.size
        clipped = [(min(a, size), min(b, size)) for a, b in spans]
        head = self._first()
        out: dict[int, bytes] = {}
        todo = []
        for i, (a, b) in enumerate(clipped):
            if b <= a:
                out[i] = b""
            elif self._whole is not None:
                out[i] = self._whole[a:b]
            elif b <= len(head.data):
                out[i] = head.data[a:b]
            else:
                todo.append(i)
        if todo:
            wanted = [clipped[i] for i in todo]
            merged = merge_ranges(wanted)
            answers = fetch_merged(self.key, self.links, merged)
            for data, _, ranged in answers:
                if not ranged:
                    self._keep_whole(data)
            for i, piece in zip(todo, slice_ranges(wanted, merged, answers), strict=True):
                out[i] = piece
        return [out[i] for i in range(len(spans))]

    get_byte_ranges = read_ranges  # the name rasterio's multi-range opener protocol uses

    def read_all(self) -> bytes:
        """The whole file in one GET: everything when its header is not known yet (the header is kept
        for later windows), else what the header request did not bring (nothing when it brought all)."""
        if self._path is not None:
            return self._local_read(0, self._local_size())
        if self._head is None and self._whole is None:
            cached = HEADS.get((self.links.scope, self.key))
            if cached is None:
                data, _, _ = fetch(self.key, self.links)
                HEADS.put((self.links.scope, self.key), Head(len(data), data[: self.head_bytes], True))
                return data
            self._head = cached
        head = self._first()
        if self._whole is not None:
            return self._whole
        if head.size <= len(head.data):
            return head.data[: head.size]
        rest = self._fetch(len(head.data), head.size)
        return rest if self._whole is not None else head.data + rest

    # -- internals --

    def _first(self) -> Head:
        if self._head is None:
            self._head = HEADS.get_or_load((self.links.scope, self.key), self._load_head)
        return self._head

    def _load_head(self) -> Head:
        data, total, ranged = fetch(self.key, self.links, (0, self.head_bytes))
        if not ranged:  # the server ignores Range: keep this whole answer here, its start in the cache
            self._keep_whole(data)
            return Head(len(data), data[: self.head_bytes], False)
        if total is None:  # no total length in Content-Range: learn it from the whole file
            whole, _, _ = fetch(self.key, self.links)
            self._keep_whole(whole)
            return Head(len(whole), whole[: self.head_bytes], True)
        return Head(total, data, True)

    def _keep_whole(self, data: bytes) -> None:
        with self._lock:
            if self._whole is None:
                self._whole = data
                self._blocks.clear()

    def _fetch(self, start: int, stop: int) -> bytes:
        data, _, ranged = fetch(self.key, self.links, (start, stop))
        if ranged:
            return data
        self._keep_whole(data)
        return data[start:stop]

    def _from_blocks(self, start: int, stop: int) -> bytes:
        block = self.block_bytes
        first, last = start // block, (stop - 1) // block  # a read shorter than a block spans at most two
        wanted = range(first, last + 1)
        with self._lock:
            have = {i: self._blocks[i] for i in wanted if i in self._blocks}
            for i in have:
                self._blocks.move_to_end(i)
        missing = [i for i in wanted if i not in have]
        if missing:
            lo, hi = missing[0] * block, min((missing[-1] + 1) * block, self.size)
            data = self._fetch(lo, hi)
            if self._whole is not None:
                return self._whole[start:stop]
            for i in missing:
                have[i] = data[i * block - lo : (i + 1) * block - lo]
            limit = max(2, min(MAX_BLOCKS, int(get_option("cache_bytes")) // block))
            with self._lock:
                for i in missing:
                    self._blocks[i] = have[i]
                while len(self._blocks) > limit:
                    self._blocks.popitem(last=False)
        joined = have[first] if first == last else b"".join(have[i] for i in wanted)
        return joined[start - first * block : stop - first * block]

    def _local_size(self) -> int:
        assert self._path is not None
        try:
            return os.stat(self._path).st_size
        except OSError as exc:
            raise self._local_error(exc) from None

    def _local_read(self, offset: int, size: int) -> bytes:
        assert self._path is not None
        if self.closed:
            raise ValueError("I/O operation on closed file")
        try:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                fd = self._fd
            if hasattr(os, "pread"):
                return os.pread(fd, max(size, 0), offset)
            with self._lock:
                os.lseek(fd, offset, os.SEEK_SET)
                return os.read(fd, max(size, 0))
        except OSError as exc:
            raise self._local_error(exc) from None

    def _local_error(self, exc: OSError) -> AssetReadError:
        cause = "no such file" if isinstance(exc, FileNotFoundError) else f"cannot read the file ({type(exc).__name__})"
        return AssetReadError(
            f"Reading asset {self.key!r} from {self._path} failed: {cause}",
            key=self.key,
            href=str(self._path),
            cause=cause,
        )


def _rebuild(key: str, links: Links, head_bytes: int, block_bytes: int) -> RemoteFile:
    return RemoteFile(key, links, head_bytes=head_bytes, block_bytes=block_bytes)
