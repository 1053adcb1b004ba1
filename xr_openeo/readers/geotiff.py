"""GeoTIFF / COG assets: headers and windows, all bands of a window from one set of requests.

GDAL reads through rasterio's Python-opener plugin from an :class:`~xr_openeo.http.RemoteFile`,
which learns the size from the first ranged GET (never a HEAD), keeps the header per process,
sends the tile ranges of a window concurrently, and retries, renews expired signed URLs and
checks every answer. So a window costs one header request plus its tiles; a window covering the
whole file is one GET of the whole file, read from memory. GDAL never sees a URL.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..errors import AssetReadError
from ..http import Links, RemoteFile
from ..results import Grid
from .base import BandId, Block, FileInfo, Window
from .nodata import exact

# GDAL settings every read runs under (they travel with the task, no process-wide state):
# no sibling-file probing (.aux.xml, .ovr, directory listings); and the tiles of a window asked
# for in one multi-range read however many bytes they hold. GDAL's default stops at 10 MB and
# reads the tiles of a larger window one request at a time (measured on a 6144² 3-band file: a
# 5632² window made 457 sequential requests, 21 concurrent ranges with this setting). GDAL then
# holds the window's compressed tiles while it decodes them: bytes the window needs anyway.
GDAL_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_PAM_ENABLED": "NO",
    "GTIFF_REPORT_COMPD_CS": "NO",
    "GDAL_MAX_RAW_BLOCK_CACHE_SIZE": str(2**31 - 1),
}
# And for a whole file read from memory: with more than one thread, GDAL decodes the tiles of a
# read of every band of the whole raster straight into the output (its multi-threaded GTiff read)
# instead of through its block cache, which would hold a second, decoded copy of the file while
# it is read (measured: 200 MiB less peak RSS reading three 4096² 3-band files at once).
WHOLE_FILE_OPTIONS = {"GDAL_NUM_THREADS": str(max(2, os.cpu_count() or 1))}
_T = TypeVar("_T")


@dataclass(frozen=True)
class GeoTIFFReader:
    """Reads GeoTIFF assets of one results document (see the module docstring)."""

    links: Links
    format: ClassVar[str] = "geotiff"
    shares_bands: ClassVar[bool] = True

    def info(self, key: str) -> FileInfo:
        """The header of asset ``key``: one ranged GET (cached per process)."""
        return _through_gdal(key, self.links, lambda ds: file_info(ds))

    def read(
        self, key: str, window: Window, bands: Sequence[BandId], dtype: str | None = None, out: np.ndarray | None = None
    ) -> Block:
        """``bands`` (0-based) of ``window``, each into an array of its own, in ``dtype`` when that is exact.

        With ``out`` (``(bands, 1, rows, cols)``, of a dtype every file value fits) GDAL decodes
        straight into it, converting as it goes: no buffer of the file's dtype, no copy.
        """
        indexes = [int(b) + 1 for b in bands]
        if window.t not in (None, slice(0, 1)):
            raise ValueError(f"a GeoTIFF has one time step, got {window.t}")

        def read(ds: Any) -> Block:
            out_dtype = dtype if dtype is not None and exact(ds.dtypes[0], dtype) else ds.dtypes[0]
            grid = _grid(ds)
            (r0, r1), (c0, c1) = (window.y.start, window.y.stop), (window.x.start, window.x.stop)
            if r1 > ds.height or c1 > ds.width:
                return Block([], nodata=ds.nodata, grid=grid)  # the cube reports the mismatch with both grids
            whole = (r0, c0, r1, c1) == (0, 0, ds.height, ds.width)
            from rasterio.windows import Window as RioWindow

            box = None if whole else RioWindow(c0, r0, c1 - c0, r1 - r0)
            if out is not None and out.shape == (len(indexes), 1, r1 - r0, c1 - c0) and exact(ds.dtypes[0], out.dtype):
                ds.read(indexes, window=box, out=out[:, 0])  # GDAL honours out's strides: the planes may lie apart
                return Block(list(out), nodata=ds.nodata, grid=grid)
            if whole and indexes == list(range(1, ds.count + 1)):
                # Every band of the whole raster in one read, decoded straight into one buffer (see
                # WHOLE_FILE_OPTIONS), then each band into an array of its own, in the output dtype.
                raw = np.empty((ds.count, ds.height, ds.width), dtype=ds.dtypes[0])
                ds.read(out=raw)
                return Block([raw[i : i + 1].astype(out_dtype) for i in range(ds.count)], nodata=ds.nodata, grid=grid)
            data = []
            for index in indexes:
                buffer = np.empty((1, r1 - r0, c1 - c0), dtype=out_dtype)
                ds.read(index, window=box, out=buffer[0])
                data.append(buffer)
            return Block(data, nodata=ds.nodata, grid=grid)

        whole = window.full is not None and (window.y.start, window.x.start) == (0, 0) and window.shape == window.full
        return _through_gdal(key, self.links, read, whole=whole)

    @property
    def token(self) -> str:
        return f"geotiff:{self.links.scope}"


def file_info(ds: Any) -> FileInfo:
    """What an open rasterio dataset says of itself."""
    return FileInfo(
        grid=_grid(ds),
        bands=tuple(range(ds.count)),
        names=tuple(ds.descriptions),
        dtype=ds.dtypes[0],
        nodata=ds.nodata,
        block=tuple(ds.block_shapes[0]),  # type: ignore[arg-type]
    )


def _grid(ds: Any) -> Grid:
    t = ds.transform
    return Grid(ds.crs.to_string() if ds.crs else "", (ds.height, ds.width), (t.a, t.b, t.c, t.d, t.e, t.f))


def _through_gdal(key: str, links: Links, fn: Callable[[Any], _T], *, whole: bool = False) -> _T:
    """``fn(rasterio dataset)`` of asset ``key``; a failed fetch raises its AssetReadError, not the GDAL error.

    ``whole``: the caller needs every byte, so the file is fetched in one GET and read from
    memory. Otherwise GDAL reads through the opener: the header from the per-process cache, the
    tiles with ranged requests. A dataset lives for one call: rasterio keeps its opener registry
    in a ContextVar, and dask runs each task in a context copy of its own.
    """
    import rasterio
    from rasterio.io import MemoryFile

    remote = RemoteFile(key, links)
    failures: list[AssetReadError] = []
    try:
        if whole:
            with rasterio.Env(**GDAL_OPTIONS, **WHOLE_FILE_OPTIONS):
                memfile = MemoryFile(remote.read_all())
                with memfile, memfile.open() as ds:
                    return fn(ds)
        with rasterio.Env(**GDAL_OPTIONS):
            opener = _container(remote, failures)
            with rasterio.open(f"/xr_openeo/{threading.get_ident()}/asset.tif", opener=opener) as ds:
                out = fn(ds)
            if failures:  # GDAL may carry on after a failed read: a window with a failed fetch is never trusted
                raise failures[-1]
            return out
    except AssetReadError:
        raise
    except Exception as exc:
        if failures:  # GDAL failed because a fetch did: say which, with its status
            raise failures[-1] from None
        raise AssetReadError(f"Asset {key!r} is not a readable GeoTIFF: {type(exc).__name__}: {exc}", key=key) from None
    finally:
        remote.close()


def _container(remote: RemoteFile, failures: list[AssetReadError]) -> Any:
    from rasterio.abc import MultiByteRangeResourceContainer

    class Container(MultiByteRangeResourceContainer):
        """Serves exactly one file, ``asset.tif``; everything else does not exist (no sidecar probing)."""

        def open(self, path: str, mode: str = "rb", **kwds: Any) -> Any:
            if not path.endswith("asset.tif"):
                raise FileNotFoundError(path)
            return _Handle(remote, failures)

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
                return remote.size
            except AssetReadError as exc:
                failures.append(exc)
                raise OSError(str(exc)) from None

    return Container()


class _Handle:
    """GDAL's view of a :class:`RemoteFile`: its own position, shared bytes; failures answer short reads.

    An exception raised into GDAL's read callback is only printed ("Exception ignored"); a short
    read fails GDAL's read, and the RemoteFile keeps the real error for the caller to raise.
    """

    def __init__(self, remote: RemoteFile, failures: list[AssetReadError]) -> None:
        self._remote, self._failures, self._pos = remote, failures, 0

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._remote.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        try:
            total = self._remote.size
            stop = total if size is None or size < 0 else min(self._pos + size, total)
            data = self._remote.read_ranges([self._pos], [max(0, stop - self._pos)])[0] if stop > self._pos else b""
        except AssetReadError as exc:
            self._failures.append(exc)
            return b""
        self._pos += len(data)
        return data

    def get_byte_ranges(self, offsets: Sequence[int], sizes: Sequence[int]) -> list[bytes]:
        """GDAL's multi-range read (the tiles of a window): sent concurrently by the RemoteFile."""
        try:
            return self._remote.read_ranges(list(offsets), list(sizes))
        except AssetReadError as exc:
            self._failures.append(exc)
            return [b""] * len(offsets)

    def close(self) -> None:
        pass

    def __enter__(self) -> _Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
