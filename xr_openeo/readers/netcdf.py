"""netCDF-4 (HDF5) result assets as lazy, dask-backed Datasets: h5netcdf over an HTTP block cache.

Opening reads only HDF5 metadata and the small index coordinates; computing reads only the HDF5
chunks it needs, through :class:`xr_openeo.http.RemoteFile` (cached blocks of ``block_size``; no
read-ahead, which thrashes under dask threads). Small files are downloaded whole instead.

Design: every variable is a :class:`NetCDFArray` (an xarray ``BackendArray``) that reads through a
:class:`NetCDFFile`, a picklable opener that pickles as (spec, locator, block size, mode) and opens
the remote file lazily, once per process, holding a lock around every h5py call. The dask graph thus
holds no open file or session, and each read can renew an expired signed URL and reopen the file,
which a plain ``xr.open_dataset(fileobj, engine="h5netcdf")`` could not. xarray's own h5netcdf store
reads the metadata, so CF decoding and encodings match ``engine="h5netcdf"``.

HTTP reads are synchronous (in the thread that asks) and pause the
garbage collector: h5py holds a global lock while it calls the file object, so a collection on a
thread the read waits for would deadlock (h5py#2019, dask#7547).
"""

from __future__ import annotations

import gc
import io
import logging
import re
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint, StoreBackendEntrypoint
from xarray.backends.common import AbstractDataStore
from xarray.core import indexing

from ..errors import AssetReadError, FailedReadWarning, RequestError, URLExpiredError, XrOpenEOError
from ..http import EXPIRED_STATUSES, Auth, Links, RemoteFile, RetryPolicy, get
from ..http.session import AttemptFailed, attempt
from ..results import AssetSpec, redact, url_expiry

log = logging.getLogger("xr_openeo")

AUTO_DOWNLOAD_MAX = 16 * 2**20  # download=None downloads files smaller than this
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NETCDF3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_TRANSIENT_TRIES = 4  # tries of one read after network errors (HTTP 5xx are retried below that too)
_T = TypeVar("_T")


# -- public functions -----------------------------------------------------------------------------


def open_netcdf(
    spec: AssetSpec,
    locator: Links,
    *,
    chunks: Any = None,
    block_size: int = 4 * 2**20,
    download: bool | None = None,
    on_read_error: str = "raise",
) -> xr.Dataset:
    """Open one netCDF-4 result asset lazily as a dask-backed Dataset.

    Parameters
    ----------
    spec
        The asset; its ``key`` finds the current href in ``locator``.
    locator
        Current href, request headers (the locator decides who gets the bearer token) and renewal
        of expired signed URLs.
    chunks
        As in ``xr.open_dataset``. None (default): ``"auto"``, dask-sized chunks that are whole
        multiples of the file's HDF5 chunks (few large tasks; slicing still reads only the HDF5
        chunks it needs). ``{}``: exactly the HDF5 chunks.
    block_size
        Bytes per HTTP range request and cache block (lazy reads).
    download
        True: one GET of the whole file, then read it from memory. False: lazy range reads only.
        None: download when a HEAD says the file is smaller than 16 MiB, else read lazily.
    on_read_error
        ``"raise"`` (default): a read that fails after the retries raises. ``"fill"``: a read of a
        data variable that fails on the network (HTTP error, dropped or short download, expired URL
        that cannot be renewed) gives its ``_FillValue`` (NaN once decoded; NaN for floats without
        one) and a :class:`~xr_openeo.errors.FailedReadWarning`. Opening (the metadata) still
        raises. ``ValueError`` if a gridded integer variable has no ``_FillValue`` to fill with.

    Returns
    -------
    xarray.Dataset
        One variable per band with dims ``(..., t, y, x)``; ``_FillValue`` masked to NaN (kept in
        ``encoding``), ``t`` decoded (a ``time`` dimension is renamed ``t``), the CRS written with
        rioxarray (``spatial_ref`` coordinate) instead of the file's ``crs`` variable.

    Raises
    ------
    AssetReadError
        The asset cannot be read: message, ``key``, redacted ``href`` and HTTP ``status``.
    """
    if block_size <= 0:
        raise ValueError(f"block_size must be a positive number of bytes, got {block_size!r}")
    file = NetCDFFile(spec, locator, block_size=block_size, download=download, on_read_error=on_read_error)
    ds = xr.open_dataset(file, engine=_Engine, chunks="auto" if chunks is None else chunks, cache=False)  # type: ignore[arg-type]
    finished = _finish(ds, spec)
    finished.set_close(ds.close)  # the renames and assigns of _finish drop it: ds.close() closes the file
    return finished


def combine_netcdf(datasets: Sequence[xr.Dataset]) -> xr.Dataset:
    """Combine netCDF assets that tile one grid (``tile_grid``, ``sample_by_feature``) by their coordinates.

    Raises :class:`~xr_openeo.errors.XrOpenEOError` naming the reason when the datasets do not share
    variables, CRS and pixel grid, overlap, or leave holes.
    """
    datasets = list(datasets)
    if not datasets:
        raise XrOpenEOError("combine_netcdf needs at least one dataset")
    if len(datasets) == 1:
        return datasets[0]
    _check_one_grid(datasets)
    try:
        combined = xr.combine_by_coords(
            datasets,
            data_vars="minimal",
            coords="minimal",
            compat="override",
            join="exact",
            combine_attrs="drop_conflicts",
        )
    except ValueError as exc:
        raise XrOpenEOError(
            f"The {len(datasets)} netCDF assets do not tile one grid ({exc}); they overlap or leave holes. "
            "Open them as separate datasets (one per asset) instead."
        ) from None
    assert isinstance(combined, xr.Dataset)

    def close() -> None:
        for ds in datasets:
            ds.close()

    combined.set_close(close)
    return combined


# -- the opener -----------------------------------------------------------------------------------


class _HTTPStatusError(Exception):
    """An HTTP answer that is not the file (raised inside the opener, mapped to AssetReadError)."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}")
        self.status = status


class _Expired(Exception):
    """The URL's ``expires`` time has passed (renew before asking the server)."""


class _Incomplete(ConnectionError):
    """A download ended early (retried like other network errors)."""


class _RangeIgnored(Exception):
    """The server answered a Range request with the whole file (or sent no usable length)."""


class _Handle:
    """The open state of one asset in this process: URL, file object, h5netcdf file, and their lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.url: str | None = None
        self.mode: str | None = None  # "download", "lazy" or "local", once resolved
        self.size: int | None = None
        self.h5: Any = None
        self._finalizer: weakref.finalize | None = None

    def attach(self, h5: Any, *closables: Any) -> None:
        self.h5 = h5
        # Closes h5netcdf, h5py, then the Python file object, also at interpreter exit (h5py can
        # crash if a file-object-backed file is still open when modules are torn down).
        self._finalizer = weakref.finalize(self, _close_all, h5, *closables)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self.h5, self._finalizer = None, None


def _close_all(*objects: Any) -> None:
    for obj in objects:
        try:
            if obj is not None:
                obj.close()
        except Exception:  # noqa: BLE001 - closing must not fail
            pass


class _GCPause:
    """Automatic garbage collection off while any remote h5py read runs (re-entrant, thread-safe).

    h5py holds a global lock while it calls the Python file object, and freeing an h5py object
    needs that lock: a collection started by a thread the read waits for (an in-process server, an
    IO thread) would deadlock. h5py's documentation recommends pausing the collector.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.enable()


_GC_PAUSE = _GCPause()
_HANDLES: weakref.WeakValueDictionary[str, _Handle] = weakref.WeakValueDictionary()
_HANDLES_LOCK = threading.Lock()


class NetCDFFile:
    """Picklable opener of one netCDF asset (HTTP(S) or local): opens lazily, once per process, renews expired URLs.

    Pickles as its constructor arguments (plus what the first open learnt: download or lazy, file
    size), never as an open file or session. Copies unpickled in one process share one open file.
    Every h5py call holds the file's lock (h5py is not thread-safe per file).
    """

    def __init__(
        self,
        spec: AssetSpec,
        locator: Links,
        *,
        block_size: int = 4 * 2**20,
        download: bool | None = None,
        on_read_error: str = "raise",
        _token: str | None = None,
        _resolved: tuple[str, int | None] | None = None,
    ) -> None:
        if on_read_error not in ("raise", "fill"):
            raise ValueError(f"on_read_error must be 'raise' or 'fill', got {on_read_error!r}")
        self.spec = spec
        self.locator = locator
        self.block_size = int(block_size)
        self.download = download
        self.on_read_error = on_read_error
        self._token = _token or uuid.uuid4().hex
        self._resolved = _resolved
        self._handle: _Handle | None = None

    def __reduce__(self) -> tuple[Callable[..., NetCDFFile], tuple[Any, ...]]:
        return (
            _rebuild,
            (self.spec, self.locator, self.block_size, self.download, self._token, self._state(), self.on_read_error),
        )

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (
            "xr_openeo.netcdf",
            self.spec.key,
            _without_query(self.spec.href),
            self.block_size,
            self.download,
            self.on_read_error,
        )

    def __repr__(self) -> str:
        return f"NetCDFFile(key={self.spec.key!r}, href={redact(self.spec.href)!r}, download={self.download!r})"

    def _state(self) -> tuple[str, int | None] | None:
        handle = self._handle
        if handle is not None and handle.mode is not None:
            return (handle.mode, handle.size)
        return self._resolved

    def handle(self) -> _Handle:
        if self._handle is None:
            with _HANDLES_LOCK:
                handle = _HANDLES.get(self._token)
                if handle is None:
                    handle = _HANDLES[self._token] = _Handle()
                    if self._resolved is not None:
                        handle.mode, handle.size = self._resolved
                self._handle = handle
        return self._handle

    def close(self) -> None:
        """Close the file in this process (the next read opens it again)."""
        if self._handle is not None:
            with self._handle.lock:
                self._handle.close()

    # -- reading --

    def read(self, name: str, key: tuple[Any, ...]) -> np.ndarray:
        """``variables[name][key]`` of the file, as a numpy array."""
        return self.run(lambda h5: np.asarray(h5.variables[name][key]))

    def run(self, fn: Callable[[Any], _T]) -> _T:
        """``fn(h5netcdf_file)`` under the file's lock; expired URLs are renewed once, transient errors retried."""
        handle = self.handle()
        renewed, tries = False, 0
        with handle.lock:
            while True:
                try:
                    if handle.url is None:
                        handle.url = self._current_href()
                    if _is_local(handle.url):
                        handle.mode = "local"
                        if handle.h5 is None:
                            self._open(handle)
                        return fn(handle.h5)
                    if not renewed and (handle.h5 is None or handle.mode == "lazy") and _expired(handle.url):
                        # Renew before the server refuses; after one renewal let the server judge
                        # (our clock may be off).
                        raise _Expired("the URL's 'expires' time has passed")
                    with _GC_PAUSE:
                        if handle.h5 is None:
                            self._open(handle)
                        return fn(handle.h5)
                except AssetReadError as exc:
                    handle.close()
                    if exc.key is None:
                        raise AssetReadError(
                            f"netCDF asset {self.spec.key!r}: {exc}",
                            key=self.spec.key,
                            href=exc.href,
                            status=exc.status,
                        ) from None
                    raise
                except Exception as exc:  # noqa: BLE001 - classified below, re-raised as AssetReadError
                    status = _status_of(exc)
                    url = handle.url or self.spec.href
                    if _is_transient(exc, status) and tries + 1 < _TRANSIENT_TRIES:
                        # A failed read leaves the h5py file usable and caches nothing: read again
                        # (an open that failed starts over).
                        tries += 1
                        time.sleep(0.05 * 2**tries)
                        continue
                    handle.close()
                    refused = isinstance(exc, _Expired) or status in EXPIRED_STATUSES
                    if refused and not renewed and handle.mode != "local":
                        renewed = True
                        handle.url = self._renew(url, status)
                        continue
                    if _is_range_ignored(exc) and handle.mode == "lazy" and self.download is None:
                        log.info("%s ignores Range requests; downloading %s whole", redact(url), self.spec.key)
                        handle.mode, tries = "download", tries + 1
                        continue
                    raise self._error(exc, status, url, renewed) from None

    def _current_href(self) -> str:
        try:
            return self.locator.href(self.spec.key)
        except AssetReadError:
            return self.spec.href

    def _renew(self, url: str, status: int | None) -> str:
        try:
            return self.locator.renew(self.spec.key, url)
        except URLExpiredError as exc:
            why = f" (the server answered HTTP {status})" if status else ""
            raise URLExpiredError(f"{exc}{why}", key=self.spec.key, href=redact(url), status=status or None) from None

    def _open(self, handle: _Handle) -> None:
        url = handle.url
        assert url is not None
        if handle.mode == "local":
            path = Path(_local_path(url))
            if not path.is_file():
                raise AssetReadError(
                    f"Cannot read netCDF asset {self.spec.key!r}: no file at {redact(url)}",
                    key=self.spec.key,
                    href=redact(url),
                )
            with path.open("rb") as f:
                _check_magic(f.read(8), self.spec, url)
            handle.attach(*_open_h5netcdf(str(path)))
            return
        # identity: lengths and byte ranges must be those of the file, not of a compressed stream
        headers = {**self.locator.headers(url), "Accept-Encoding": "identity"}
        body = None
        if handle.mode is None:
            handle.mode, handle.size, body = _resolve(url, headers, self.download)
        if handle.mode == "download":
            if body is None:
                body = _download(url, headers, handle.size)
            fileobj: Any = io.BytesIO(body)
            session = None
        else:
            fileobj, session = RemoteFile(self.spec.key, self.locator, block_bytes=self.block_size), None
        try:
            _check_magic(fileobj.read(8), self.spec, url)
            fileobj.seek(0)
            handle.attach(*_open_h5netcdf(fileobj), fileobj, session)
        except BaseException:
            _close_all(fileobj, session)
            raise
        log.debug("opened %s (%s, %s bytes)", redact(url), handle.mode, handle.size)

    def _error(self, exc: BaseException, status: int | None, url: str, renewed: bool) -> AssetReadError:
        where = f"netCDF asset {self.spec.key!r} at {redact(url)}"
        if _is_range_ignored(exc):
            return AssetReadError(
                f"Cannot read {where} lazily: the server ignores HTTP Range requests (it answered with the "
                "whole file) or sends no file length. Pass download=True (or None) to download it whole.",
                key=self.spec.key,
                href=redact(url),
                status=status,
            )
        if status == 401:
            advice = "The URL needs the backend's credentials: authenticate the connection and open the results again."
        elif status in EXPIRED_STATUSES:
            advice = (
                "The link was refused even after renewing it; open the results again."
                if renewed
                else "The link was refused; open the results again."
            )
        else:
            advice = "Check the connection and the job's results, then retry."
        detail = f"HTTP {status}" if status else f"{type(exc).__name__}: {redact(str(exc))}"
        return AssetReadError(
            f"Cannot read {where}: {detail}. {advice}", key=self.spec.key, href=redact(url), status=status
        )


def _open_h5netcdf(source: Any) -> tuple[Any, Any]:
    """(h5netcdf file, h5py file) read-only; nothing is left half-open if reading the metadata fails."""
    import h5netcdf
    import h5py

    h5file = h5py.File(source, "r")
    # h5netcdf.File.__del__ trips over a File whose __init__ failed (after a read error), so build
    # it in two steps and mark a failed one closed.
    nc = h5netcdf.File.__new__(h5netcdf.File)
    try:
        nc.__init__(h5file, "r", decode_vlen_strings=True, phony_dims="sort")
    except BaseException:
        nc._closed = True
        h5file.close()
        raise
    return nc, h5file


def _rebuild(
    spec: AssetSpec,
    locator: Links,
    block_size: int,
    download: bool | None,
    token: str,
    resolved: tuple[str, int | None] | None,
    on_read_error: str = "raise",
) -> NetCDFFile:
    return NetCDFFile(
        spec,
        locator,
        block_size=block_size,
        download=download,
        on_read_error=on_read_error,
        _token=token,
        _resolved=resolved,
    )


# -- HTTP -----------------------------------------------------------------------------------------


def _resolve(url: str, headers: dict[str, str], download: bool | None) -> tuple[str, int | None, bytes | None]:
    """(mode, size, body if already downloaded): HEAD, and a one-byte Range probe when HEAD is not enough."""
    if download is True:
        return "download", None, None
    size, ranges = _head(url, headers)
    if download is None and size is not None and size < AUTO_DOWNLOAD_MAX:
        return "download", size, None
    if size is not None and ranges:
        return "lazy", size, None
    # HEAD failed, or said nothing of the length or of Range support: ask for one byte.
    response = get(url, Auth(), headers={**headers, "Range": "bytes=0-0"}, stream=True)
    with response:
        if response.status_code == 206:
            response.raw.read(16, decode_content=False)  # the one byte, so the connection ends cleanly
            total = _content_range_total(response.headers.get("Content-Range", ""))
            if total is not None:
                small = download is None and total < AUTO_DOWNLOAD_MAX
                return ("download" if small else "lazy"), total, None
            if download is False:
                raise _RangeIgnored("the server sends no total length in Content-Range")
            return "download", None, None
        if response.status_code == 200:
            if download is False:
                raise _RangeIgnored("the server answered a Range request with the whole file")
            length = response.headers.get("Content-Length")
            return "download", int(length) if length and length.isdigit() else None, _body(response, url)
        raise _refused(response, f"GET {redact(url)}")


def _head(url: str, headers: dict[str, str]) -> tuple[int | None, bool]:
    """(Content-Length, whether Range is advertised) from a HEAD, or (None, False) if HEAD fails."""
    try:
        response = attempt("HEAD", url, headers, RetryPolicy.from_options().timeout)
    except AttemptFailed:
        return None, False
    if response.status_code != 200:
        if response.status_code in EXPIRED_STATUSES and _expired(url):
            raise _HTTPStatusError(response.status_code, f"HEAD {redact(url)}")
        return None, False
    length = response.headers.get("Content-Length")
    ranges = "bytes" in response.headers.get("Accept-Ranges", "").lower()
    return (int(length) if length and length.isdigit() else None), ranges


def _download(url: str, headers: dict[str, str], size: int | None) -> bytes:
    response = get(url, Auth(), headers=headers, stream=True)
    with response:
        if response.status_code != 200:
            raise _refused(response, f"GET {redact(url)}")
        body = _body(response, url)
    if size is not None and len(body) != size:
        raise _Incomplete(f"the download stopped after {len(body)} of {size} bytes")
    return body


def _refused(response: Any, what: str) -> _HTTPStatusError:
    """The error for a non-file answer; its (small) error body is read so the connection ends cleanly."""
    try:
        response.raw.read(64 * 2**10, decode_content=False)
    except Exception:  # noqa: BLE001 - the status is what matters
        pass
    return _HTTPStatusError(response.status_code, what)


def _body(response: Any, url: str) -> bytes:
    import requests

    try:
        return response.content
    except requests.RequestException as exc:
        raise _Incomplete(f"the download failed: {type(exc).__name__}: {redact(str(exc))}") from None


def _content_range_total(value: str) -> int | None:
    match = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", value.strip())
    return int(match.group(1)) if match else None


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status behind an exception (also when h5py raised it from inside a read), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _HTTPStatusError):
            return current.status
        response = getattr(current, "response", None)  # requests.HTTPError
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status
        current = current.__cause__ or current.__context__
    return None


def _is_range_ignored(exc: BaseException) -> bool:
    return isinstance(exc, _RangeIgnored) or (isinstance(exc, ValueError) and "range requests" in str(exc))


def _is_transient(exc: BaseException, status: int | None) -> bool:
    """Whether to read again: connection errors and cut-off bodies.

    HTTP statuses are not: every request here goes through a retrying session, which has already
    retried 429/5xx with backoff (another round of tries on top made a failing read cost 20
    requests and 12 s instead of 5 requests and 3 s).
    """
    import requests

    if status is not None:
        return False
    return isinstance(exc, ConnectionError | requests.RequestException)


def _expired(url: str) -> bool:
    expires = url_expiry(url)
    return expires is not None and expires <= time.time()


def _is_local(url: str) -> bool:
    scheme = urlsplit(url).scheme
    return scheme == "file" or scheme == "" or len(scheme) == 1  # a path, or a Windows drive letter


def _local_path(url: str) -> str:
    return unquote(urlsplit(url).path) if url.startswith("file:") else url


def _check_magic(head: bytes, spec: AssetSpec, url: str) -> None:
    if head.startswith(_HDF5_MAGIC):
        return
    if head.startswith(_NETCDF3_MAGIC):
        why = "it is a netCDF-3 (classic) file, which h5netcdf cannot read; download it and open it with scipy"
    else:
        why = f"it does not start with the HDF5 signature (first bytes {head[:8]!r})"
    raise AssetReadError(
        f"Cannot read netCDF asset {spec.key!r} at {redact(url)}: {why}.", key=spec.key, href=redact(url)
    )


def _without_query(url: str) -> str:
    return urlsplit(url)._replace(query="", fragment="").geturl()


# -- xarray glue ----------------------------------------------------------------------------------


class NetCDFArray(BackendArray):
    """One variable of a :class:`NetCDFFile`; reads (orthogonal) windows on demand.

    ``fill``: the raw value a read that failed on the network gives when the file was opened with
    ``on_read_error="fill"`` (None: such a read raises).
    """

    def __init__(self, file: NetCDFFile, name: str, shape: tuple[int, ...], dtype: np.dtype, fill: Any = None) -> None:
        self.file = file
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.fill = fill

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER_1VECTOR, self._getitem
        )

    def _getitem(self, key: tuple[Any, ...]) -> np.ndarray:
        try:
            return self.file.read(self.name, key)
        except AssetReadError as exc:
            if self.fill is None or self.file.on_read_error != "fill" or not _network_failure(exc):
                raise
            shape = tuple(_length(k, n) for k, n in zip(key, self.shape, strict=True) if not isinstance(k, int))
            filled = np.full(shape, self.fill, dtype=self.dtype)
            warnings.warn(
                FailedReadWarning.from_errors([exc], float(self.fill), f"the chunk of variable {self.name!r}"),
                stacklevel=2,
            )
            return filled


def _length(key: Any, size: int) -> int:
    """How many elements ``key`` (a slice or an integer array of an outer indexer) selects along an axis."""
    if isinstance(key, slice):
        return len(range(*key.indices(size)))
    return len(np.asarray(key))


def _fill_for(name: Hashable, var: xr.Variable) -> Any:
    """The raw value a failed read of ``var`` is filled with (its ``_FillValue``, else NaN for floats).

    Raises ValueError for a gridded integer variable that has neither (nothing marks it missing).
    """
    for attr in ("_FillValue", "missing_value"):
        value = var.attrs.get(attr, var.encoding.get(attr))
        if value is not None:
            return np.asarray(value).ravel()[0]
    if np.issubdtype(var.dtype, np.floating):
        return np.nan
    if var.ndim >= 2:
        raise ValueError(
            f"on_read_error='fill' has nothing to fill failed reads of netCDF variable {name!r} ({var.dtype}) with: "
            "it has no _FillValue. Use on_read_error='raise', or have the job write a nodata value."
        )
    return None


def _network_failure(exc: BaseException) -> bool:
    """Whether an AssetReadError of :meth:`NetCDFFile.run` comes from the network (not from h5py or our code).

    ``run`` raises its errors ``from None``, which keeps the original in ``__context__``.
    """
    import requests

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            _HTTPStatusError | _Expired | _Incomplete | URLExpiredError | requests.RequestException | ConnectionError,
        ):
            return True
        if isinstance(current, TimeoutError) or (
            isinstance(current, RequestError) and (current.cause or current.status)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


class _Store(AbstractDataStore):
    """The file's variables with lazy :class:`NetCDFArray` data, metadata read by xarray's h5netcdf store."""

    def __init__(self, file: NetCDFFile) -> None:
        self.file = file
        self._encoding: dict[str, Any] = {}

    def load(self) -> tuple[dict[Hashable, xr.Variable], dict[Hashable, Any]]:
        return self.file.run(self._metadata)

    def _metadata(self, h5: Any) -> tuple[dict[Hashable, xr.Variable], dict[Hashable, Any]]:
        from xarray.backends import H5NetCDFStore

        store = H5NetCDFStore(h5, mode="r", lock=False)
        source = redact(self.file.spec.href)
        variables: dict[Hashable, xr.Variable] = {}
        for name, var in store.get_variables().items():
            encoding = {**var.encoding, "source": source}
            if var.ndim == 1 and name in var.dims:  # index coordinates: small, needed now anyway
                data: Any = np.asarray(h5.variables[name][...])
            else:
                fill = _fill_for(name, var) if self.file.on_read_error == "fill" else None
                data = indexing.LazilyIndexedArray(NetCDFArray(self.file, str(name), var.shape, var.dtype, fill))
            variables[name] = xr.Variable(var.dims, data, var.attrs, encoding)
        self._encoding = {**store.get_encoding(), "source": source}
        return variables, dict(store.get_attrs())

    def get_encoding(self) -> dict[str, Any]:
        return self._encoding

    def close(self) -> None:
        self.file.close()


class _Engine(BackendEntrypoint):
    """xarray entry point used internally (with ``xr.open_dataset``'s chunking) for a :class:`NetCDFFile`."""

    description = "netCDF asset of openEO results (internal to xr_openeo)"
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "mask_and_scale",
        "decode_times",
        "concat_characters",
        "decode_coords",
        "use_cftime",
        "decode_timedelta",
    )

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: NetCDFFile,
        *,
        drop_variables: str | Iterable[str] | None = None,
        mask_and_scale: bool = True,
        decode_times: Any = True,
        concat_characters: bool = True,
        decode_coords: Any = True,
        use_cftime: bool | None = None,
        decode_timedelta: Any = None,
    ) -> xr.Dataset:
        return StoreBackendEntrypoint().open_dataset(
            _Store(filename_or_obj),
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            drop_variables=drop_variables,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
        )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        return isinstance(filename_or_obj, NetCDFFile)


# -- CF fix-ups -----------------------------------------------------------------------------------


def _finish(ds: xr.Dataset, spec: AssetSpec) -> xr.Dataset:
    """``time``→``t``, dims ``(..., t, y, x)``, the ``crs`` variable replaced by a rioxarray CRS."""
    if "time" in ds.dims and "t" not in ds.dims and "t" not in ds.variables:
        ds = ds.rename({"time": "t"})
        for variable in ds.variables.values():
            preferred = variable.encoding.get("preferred_chunks")
            if isinstance(preferred, dict) and "time" in preferred:
                variable.encoding["preferred_chunks"] = {("t" if k == "time" else k): v for k, v in preferred.items()}
    order = ("t", "y", "x")
    ds = ds.assign(
        {
            name: var.transpose(*[d for d in var.dims if d not in order], *[d for d in order if d in var.dims])
            for name, var in ds.data_vars.items()
            if [d for d in var.dims if d in order] != [d for d in order if d in var.dims]
        }
    )
    crs, grid_mappings = _crs_of(ds)
    if grid_mappings:
        ds = ds.drop_vars(grid_mappings)
        for var in ds.data_vars.values():
            if var.attrs.get("grid_mapping") in grid_mappings:
                var.attrs.pop("grid_mapping")
    if crs is not None:
        import rioxarray  # noqa: F401 - registers the .rio accessor

        ds = ds.rio.write_crs(crs, grid_mapping_name="spatial_ref")
    ds.encoding["source"] = redact(spec.href)
    return ds


def _crs_of(ds: xr.Dataset) -> tuple[Any, list[Hashable]]:
    """The CRS of the file's grid-mapping variable(s) (``crs_wkt``, ``spatial_ref`` or CF parameters), and their names.

    (None, []) when no CRS can be read: the variables then stay as they are.
    """
    import pyproj

    names = {var.attrs.get("grid_mapping") for var in ds.data_vars.values()} - {None}
    names |= {n for n in ("crs", "spatial_ref") if n in ds.variables and ds[n].ndim == 0}
    names = {n for n in names if n in ds.variables}
    for name in sorted(names, key=str):
        attrs = ds[name].attrs
        for source in ("crs_wkt", "spatial_ref", "cf"):
            try:
                crs = pyproj.CRS.from_cf(attrs) if source == "cf" else pyproj.CRS.from_user_input(attrs[source])
            except (KeyError, pyproj.exceptions.CRSError):
                continue
            return crs, sorted(names, key=str)
    if names:
        log.info("no readable CRS in grid-mapping variable(s) %s; kept as they are", sorted(map(str, names)))
    return None, []


# -- combining ------------------------------------------------------------------------------------


def _check_one_grid(datasets: Sequence[xr.Dataset]) -> None:
    first = datasets[0]
    names = set(first.data_vars)
    crs = _crs_text(first)
    steps = {d: _step(first, d) for d in ("x", "y") if d in first.dims}
    for i, ds in enumerate(datasets[1:], start=1):
        if set(ds.data_vars) != names:
            raise XrOpenEOError(
                f"netCDF assets 0 and {i} have different variables ({sorted(map(str, names))} vs "
                f"{sorted(map(str, ds.data_vars))}); open them as separate datasets instead."
            )
        if _crs_text(ds) != crs:
            raise XrOpenEOError(
                f"netCDF assets 0 and {i} have different CRSs; they cannot form one grid. "
                "Open them as separate datasets instead."
            )
        for dim, step in steps.items():
            other = _step(ds, dim)
            offset = (float(ds[dim][0]) - float(first[dim][0])) / step if step else 0.0
            if (
                other is not None
                and step is not None
                and (not np.isclose(other, step, rtol=1e-9) or not np.isclose(offset, round(offset), atol=1e-6))
            ):
                raise XrOpenEOError(
                    f"netCDF assets 0 and {i} are on different {dim} grids (pixel size {step} vs {other}, or "
                    "shifted by a fraction of a pixel); open them as separate datasets instead."
                )


def _crs_text(ds: xr.Dataset) -> str | None:
    if "spatial_ref" not in ds.coords:
        return None
    return ds["spatial_ref"].attrs.get("crs_wkt")


def _step(ds: xr.Dataset, dim: str) -> float | None:
    values = ds[dim].values
    return float(values[1] - values[0]) if values.size > 1 else None
