"""GeoTIFF/COG assets: windows of all bands at once, over HTTP range requests we make ourselves.

GDAL reads through rasterio's Python-opener plugin from :class:`_RemoteFile`, which gets the file
size from the first ranged GET (``Content-Range``) instead of a HEAD, keeps the first block (the
COG header) per process, and fetches tiles with ranged GETs through :func:`xr_openeo.http.fetch`
(retries, renewal of expired URLs, truncation checks). So a file touched by a window costs one
header request plus the tile requests, servers that refuse HEAD work, and a server that ignores
Range is detected (its full answer is kept and used). A window covering the whole file is one GET.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import AssetReadError, FailedReadWarning
from ..http import Links, fetch
from ..results import AssetSpec, Grid

HEADER_BYTES = 64 * 1024
# GDAL settings every read runs under (they travel with the task, no process-wide state):
# no sibling-file probing (.aux.xml, .ovr, directory listings).
GDAL_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_PAM_ENABLED": "NO", "GTIFF_REPORT_COMPD_CS": "NO"}
_CACHE_ENTRIES = 512


@dataclass(frozen=True)
class FileInfo:
    """What a GeoTIFF's header says: grid, band count and names, dtype, nodata, tile size."""

    grid: Grid
    count: int
    descriptions: tuple[str | None, ...]
    dtype: str
    nodata: float | None
    block_shape: tuple[int, int]


class _Heads:
    """Per-process cache of (size, first block, whole file if the server ignored Range) per asset key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[int, bytes, bool]] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, key: str, locator: Links) -> tuple[int, bytes, bool]:
        key_in = key
        key = f"{getattr(locator, 'scope', id(locator))}|{key}"  # asset keys repeat across jobs
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one header request per asset, however many threads want it
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            data, total, ranged = fetch(key_in, locator, (0, HEADER_BYTES))
            entry = (total if total is not None else len(data), data, not ranged or len(data) == total)
            with self._lock:
                self._entries[key] = entry
                self._loading.pop(key, None)
                while len(self._entries) > _CACHE_ENTRIES:
                    self._entries.popitem(last=False)
            return entry


_HEADS = _Heads()


class _RemoteFile(io.RawIOBase):
    """A seekable read-only file over one asset, for GDAL (through rasterio's opener plugin)."""

    def __init__(self, key: str, locator: Links, failures: list[AssetReadError] | None = None) -> None:
        super().__init__()
        self._key, self._locator = key, locator
        self._failures = failures if failures is not None else []
        try:
            self._size, self._head, self._whole = _HEADS.get(key, locator)
        except AssetReadError as exc:
            self._failures.append(exc)
            raise OSError(str(exc)) from None  # what an opener raises for a file it cannot open
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _range(self, start: int, stop: int) -> bytes:
        stop = min(stop, self._size)
        if start >= stop:
            return b""
        if stop <= len(self._head):
            return self._head[start:stop]
        try:
            data, _, ranged = fetch(self._key, self._locator, (start, stop))
        except AssetReadError as exc:
            # An exception raised into GDAL's read callback is only printed ("Exception ignored");
            # answer a short read, which fails GDAL's read, and keep ours for the reader to raise.
            self._failures.append(exc)
            return b""
        return data if ranged else data[start:stop]

    def read(self, size: int = -1) -> bytes:
        stop = self._size if size is None or size < 0 else self._pos + size
        data = self._range(self._pos, stop)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def get_byte_ranges(self, offsets: Sequence[int], sizes: Sequence[int]) -> list[bytes]:
        """GDAL's multi-range read (all tiles of a window): adjacent ranges merge into one GET."""
        spans = sorted(zip(offsets, sizes, strict=True))
        merged: list[list[int]] = []
        for start, size in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], start + size)
            else:
                merged.append([start, start + size])
        blobs = [(start, self._range(start, stop)) for start, stop in merged]
        out = []
        for start, size in zip(offsets, sizes, strict=True):
            for b_start, blob in blobs:
                if b_start <= start and start + size <= b_start + len(blob):
                    out.append(blob[start - b_start : start - b_start + size])
                    break
            else:
                out.append(b"")  # a failed fetch (recorded): one answer per range all the same
        return out


def _container(key: str, locator: Links, failures: list[AssetReadError]) -> Any:
    from rasterio.abc import MultiByteRangeResourceContainer

    class Container(MultiByteRangeResourceContainer):
        """Serves exactly one file, ``asset.tif``; everything else does not exist (no sidecar probing)."""

        def open(self, path: str, mode: str = "rb", **kwds: Any) -> _RemoteFile:
            if not path.endswith("asset.tif"):
                raise FileNotFoundError(path)
            return _RemoteFile(key, locator, failures)

        def isfile(self, path: str) -> bool:
            return path.endswith("asset.tif")

        def isdir(self, path: str) -> bool:
            return False

        def ls(self, path: str) -> list[str]:
            return []

        def mtime(self, path: str) -> int:
            return 0

        def rm(self, path: str) -> None:
            raise PermissionError(path)

        def size(self, path: str) -> int:
            if not path.endswith("asset.tif"):
                raise FileNotFoundError(path)
            try:
                return _HEADS.get(key, locator)[0]
            except AssetReadError as exc:
                failures.append(exc)
                raise OSError(str(exc)) from None

    return Container()


def _open(key: str, locator: Links, failures: list[AssetReadError]) -> Any:
    """Open asset ``key`` for GDAL; closes with the ``with`` block. Failed fetches land in ``failures``.

    A dataset is opened per read and closed after: rasterio keeps its opener registry in a
    ContextVar and dask runs each task in its own context copy, so a handle cannot outlive its
    task. Opening is cheap: the header bytes come from the per-process cache, not the network.
    """
    import rasterio

    return rasterio.open(f"/xr_openeo/{threading.get_ident()}/asset.tif", opener=_container(key, locator, failures))


def _through_gdal(fn: Any) -> Any:
    """``fn(failures)``, raising the AssetReadError of a failed fetch instead of the GDAL error it caused.

    Also when GDAL swallowed the failure and carried on: a window with a failed fetch is never
    trusted.
    """
    failures: list[AssetReadError] = []
    try:
        out = fn(failures)
    except Exception:
        if failures:
            raise failures[-1] from None
        raise
    if failures:
        raise failures[-1]
    return out


def file_info(spec: AssetSpec, locator: Links) -> FileInfo:
    """Read the header of one asset (one ranged GET): for results documents that lack the grid."""
    import rasterio

    def read(failures: list[AssetReadError]) -> FileInfo:
        with rasterio.Env(**GDAL_OPTIONS), _open(spec.key, locator, failures) as ds:
            t = ds.transform
            crs = ds.crs.to_string() if ds.crs else ""
            return FileInfo(
                grid=Grid(crs, (ds.height, ds.width), (t.a, t.b, t.c, t.d, t.e, t.f)),
                count=ds.count,
                descriptions=tuple(ds.descriptions),
                dtype=ds.dtypes[0],
                nodata=ds.nodata,
                block_shape=tuple(ds.block_shapes[0]),  # type: ignore[arg-type]
            )

    result: FileInfo = _through_gdal(read)
    return result


@dataclass(frozen=True)
class GeoTIFFReader:
    """Reads windows (all bands) of GeoTIFF assets into an output dtype, masking nodata for floats.

    Holds only the locator and options, so it pickles small; headers are cached per process.
    ``on_read_error="fill"``: an asset whose fetch fails after the retries (HTTP error, dropped or
    truncated body, expired URL that cannot be renewed) counts as nodata in that window (NaN for
    float output, else ``nodata``) and a :class:`~xr_openeo.errors.FailedReadWarning` names it;
    any other error still raises. The choice travels with the reader into pickled graphs.
    """

    locator: Links
    dtype: str
    count: int
    nodata: float | None = None  # fill for integer output where a file has no data
    shape: tuple[int, int] | None = None
    on_read_error: str = "raise"

    def __post_init__(self) -> None:
        if self.on_read_error not in ("raise", "fill"):
            raise ValueError(f"on_read_error must be 'raise' or 'fill', got {self.on_read_error!r}")
        if self.on_read_error == "fill" and self.fill_value is None:
            raise ValueError(
                f"on_read_error='fill' needs a value to fill {self.dtype} output with: pass dtype='float32' "
                "(failed reads become NaN) or a nodata value"
            )

    @property
    def fill_value(self) -> float | None:
        """What a failed read is filled with: NaN for float output, else ``nodata`` (None: nothing)."""
        if np.issubdtype(np.dtype(self.dtype), np.floating):
            return float("nan")
        return None if self.nodata is None or np.isnan(self.nodata) else self.nodata

    def read(self, keys: Sequence[str], window: tuple[slice, slice]) -> np.ndarray:
        """``(count, h, w)`` of the first valid pixel among ``keys`` (same-datetime assets)."""
        out: np.ndarray | None = None
        missing: np.ndarray | None = None
        failed: list[AssetReadError] = []
        for key in keys:
            try:
                data, invalid = self._read_one(key, window)
            except AssetReadError as exc:
                # Only failed requests to the asset's URL (they carry its href) are filled; an
                # asset that does not match the results document is not a read failure.
                if self.on_read_error != "fill" or exc.href is None:
                    raise
                failed.append(exc)
                data, invalid = self._filled(window)
            if out is None:
                out, missing = data, invalid
            else:
                assert missing is not None
                fill = missing & ~invalid
                out[fill] = data[fill]
                missing &= invalid
            if missing is not None and not missing.any():
                break
        assert out is not None
        if failed:
            assert self.fill_value is not None
            warnings.warn(FailedReadWarning.from_errors(failed, self.fill_value), stacklevel=2)
        return out

    def _filled(self, window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.count, window[0].stop - window[0].start, window[1].stop - window[1].start)
        return np.full(shape, self.fill_value, dtype=self.dtype), np.ones(shape, dtype=bool)

    def _read_one(self, key: str, window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        import rasterio
        from rasterio.windows import Window

        (r0, r1), (c0, c1) = (window[0].start, window[0].stop), (window[1].start, window[1].stop)
        with rasterio.Env(**GDAL_OPTIONS):
            if self.shape is not None and (r0, r1, c0, c1) == (0, self.shape[0], 0, self.shape[1]):
                raw, nodata = self._read_whole(key)
            else:

                def read(failures: list[AssetReadError]) -> tuple[np.ndarray, float | None]:
                    with _open(key, self.locator, failures) as ds:
                        return ds.read(window=Window(c0, r0, c1 - c0, r1 - r0)), ds.nodata

                raw, nodata = _through_gdal(read)
        if raw.shape[0] != self.count:
            raise AssetReadError(
                f"Asset {key!r} has {raw.shape[0]} bands where the results document says {self.count}; "
                "open it with assets=[...] on its own",
                key=key,
            )
        invalid = _invalid(raw, nodata)
        # raw is a fresh array from rasterio, so the output may be it (same dtype) and is written in place
        data = raw.astype(self.dtype, copy=False)
        del raw  # drop the file's dtype copy as soon as the output exists
        if np.issubdtype(data.dtype, np.floating):
            if invalid.any():
                data[invalid] = np.nan
        elif self.nodata is not None and nodata is not None and nodata != self.nodata:
            data[invalid] = self.nodata
        return data, invalid

    def _read_whole(self, key: str) -> tuple[np.ndarray, float | None]:
        """One GET of the whole file (a task that needs all of it), read from memory."""
        from rasterio.io import MemoryFile

        data, _, _ = fetch(key, self.locator)
        memfile = MemoryFile(data)
        del data  # GDAL holds its own copy now; keep one copy of the file per task, not two
        with memfile, memfile.open() as ds:
            raw, nodata = ds.read(), ds.nodata
        return raw, nodata


def _invalid(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    if nodata is None:
        return np.isnan(raw) if np.issubdtype(raw.dtype, np.floating) else np.zeros(raw.shape, dtype=bool)
    if np.isnan(nodata):
        return np.isnan(raw)
    return raw == nodata
