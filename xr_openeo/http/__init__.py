"""The only code in xr_openeo that sends HTTP requests (and the only code that imports ``requests``).

- :mod:`.policy`: the one retry policy (counts, backoff and timeouts from :func:`xr_openeo.set_options`),
  ``Retry-After`` and ``Content-Range`` parsing, which statuses are transient or mean an expired link.
- :mod:`.session`: per-thread sessions on one keep-alive pool, one attempt, why a request failed.
- :mod:`.links`: :class:`Auth` (the token only to unsigned URLs under the backend root) and
  :class:`Links` (current asset hrefs, renewed by fetching the results document again).
- :mod:`.documents`: :func:`get_json` for results and item documents, openEO errors mapped to ours.
- :mod:`.transfer`: :func:`fetch` (one range or a whole asset) and :func:`fetch_ranges` (concurrent).
- :mod:`.files`: :class:`RemoteFile`, a seekable file over an asset for GDAL and h5py.
- :mod:`.cache`: caches bounded in bytes; :func:`clear_caches` empties all of them.
- :mod:`.logs`: redaction of signed URLs in urllib3's, fsspec's and rasterio's log records,
  installed when the first request is sent.

Everything that goes into a dask graph (:class:`Links`, :class:`RemoteFile`) pickles by its
constructor arguments and holds the bearer token only when the user allowed it.
"""

from __future__ import annotations

from . import session as _session
from .documents import api_error, get, get_json, request_error
from .files import HEADS, RemoteFile
from .links import _STATES, Auth, Links, fresh_document
from .logs import RedactingFilter, install_log_filters
from .policy import EXPIRED_STATUSES, TRANSIENT_STATUSES, RetryPolicy, content_range_total, retry_after
from .transfer import fetch, fetch_ranges

__all__ = [
    "EXPIRED_STATUSES",
    "TRANSIENT_STATUSES",
    "Auth",
    "Links",
    "RedactingFilter",
    "RemoteFile",
    "RetryPolicy",
    "api_error",
    "clear_caches",
    "content_range_total",
    "fetch",
    "fetch_ranges",
    "fresh_document",
    "get",
    "get_json",
    "install_log_filters",
    "request_error",
    "retry_after",
]


def clear_caches() -> None:
    """Empty every cache of the HTTP layer: file headers, renewed links, and the pooled connections."""
    HEADS.clear()
    _STATES.clear()
    _session.close()
