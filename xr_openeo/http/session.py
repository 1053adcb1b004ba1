"""Sessions and single attempts: one keep-alive pool for every thread, and why a request failed.

Every thread gets its own :class:`requests.Session` (sessions are not thread-safe), and all of them
share one :class:`~requests.adapters.HTTPAdapter`, so connections are reused across threads. The
adapter retries nothing: the callers (:mod:`.transfer`, :mod:`.documents`) run the one retry loop
with the counts, backoff and timeouts of :class:`~xr_openeo.http.policy.RetryPolicy`.

:func:`attempt` sends one request and turns a failure of the connection into a
:class:`AttemptFailed` that says what happened in the words of :class:`~xr_openeo.errors.RequestError`'s
``cause``, without the exception (whose text may quote a signed URL).
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Iterator, Mapping

import requests
import urllib3.exceptions as u3
from requests.adapters import HTTPAdapter

from .._options import get_option
from .logs import install_log_filters

_lock = threading.Lock()
_adapter: HTTPAdapter | None = None
_local = threading.local()
_fork_hook = False


class AttemptFailed(Exception):
    """One request got no usable answer: ``cause`` (``"connection refused"``…) and whether to retry."""

    def __init__(self, cause: str, transient: bool) -> None:
        super().__init__(cause)
        self.cause = cause
        self.transient = transient


def _pool_size() -> int:
    return max(128, int(get_option("item_concurrency")))


def adapter() -> HTTPAdapter:
    """The adapter every session of this process mounts (created on first use, without retries)."""
    global _adapter, _fork_hook
    size = _pool_size()
    with _lock:
        if _adapter is None or _adapter._pool_maxsize < size:  # type: ignore[attr-defined]
            _adapter = HTTPAdapter(pool_connections=32, pool_maxsize=size, max_retries=0)
        if not _fork_hook and hasattr(os, "register_at_fork"):
            # A forked child must not share the parent's sockets: it starts a pool of its own.
            os.register_at_fork(after_in_child=_forget)
            _fork_hook = True
        return _adapter


def _forget() -> None:
    global _adapter, _local
    _adapter, _local = None, threading.local()


def session() -> requests.Session:
    """This thread's session, mounted on the shared :func:`adapter`."""
    shared = adapter()
    current: requests.Session | None = getattr(_local, "session", None)
    if current is None or current.get_adapter("http://") is not shared:
        current = requests.Session()
        current.mount("http://", shared)
        current.mount("https://", shared)
        _local.session = current
    return current


def close() -> None:
    """Close every pooled connection (sessions reconnect on their next request)."""
    global _adapter
    with _lock:
        old, _adapter = _adapter, None
    if old is not None:
        old.close()


def attempt(
    method: str,
    url: str,
    headers: Mapping[str, str],
    timeout: tuple[float, float],
    *,
    stream: bool = False,
) -> requests.Response:
    """Send one request; the body is read unless ``stream``. Raises :class:`AttemptFailed`, never requests' errors."""
    install_log_filters()
    failure: AttemptFailed | None = None
    try:
        return session().request(method, url, headers=dict(headers), timeout=timeout, stream=stream)
    except (requests.RequestException, u3.HTTPError, OSError) as exc:
        failure = AttemptFailed(*describe(exc))
    raise failure  # outside the except block: the original (which may quote the URL) is not its context


def read_body(response: requests.Response) -> bytes:
    """The whole body of a response sent with ``stream=True``, read into one bytes object.

    (requests' ``.content`` gathers the body in 10 KiB pieces and joins them: twice the body in
    memory for a moment, which for a file read whole is a second copy of the file.) The
    connection goes back to the pool. Raises :class:`AttemptFailed` when the body is cut short.
    """
    failure: AttemptFailed | None = None
    try:
        data = response.raw.read(decode_content=True)
    except (requests.RequestException, u3.HTTPError, OSError) as exc:
        failure = AttemptFailed(*describe(exc))
    else:
        response._content, response._content_consumed = data, True
        return data
    finally:
        response.close()
    raise failure  # outside the except block, as in attempt()


def describe(exc: BaseException) -> tuple[str, bool]:
    """``(cause, transient)`` of a failed request, from the exception and everything it wraps.

    Causes: ``"name resolution"``, ``"connection refused"``, ``"timeout"``, ``"connection dropped"``
    (reset, closed, or a body cut short), ``"TLS error"``, ``"too many redirects"``, ``"invalid URL"``,
    ``"proxy error"``, ``"connection failed"``. TLS errors, redirect loops and invalid URLs are not
    worth retrying; the rest are.
    """
    chain = list(_chain(exc))
    if any(isinstance(e, u3.NameResolutionError | socket.gaierror) for e in chain):
        return "name resolution", True
    if any(isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED for e in chain):
        return "connection refused", True
    if any(isinstance(e, u3.NewConnectionError) for e in chain):  # (a subclass of urllib3's timeout error)
        return "connection failed", True
    if any(isinstance(e, requests.Timeout | u3.TimeoutError | TimeoutError) for e in chain):
        return "timeout", True
    if any(isinstance(e, requests.exceptions.SSLError | u3.SSLError) for e in chain):
        return "TLS error", False
    if any(isinstance(e, requests.TooManyRedirects) for e in chain):
        return "too many redirects", False
    invalid = (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        u3.LocationValueError,
    )
    if any(isinstance(e, invalid) for e in chain):
        return "invalid URL", False
    if any(isinstance(e, requests.exceptions.ProxyError | u3.ProxyError) for e in chain):
        return "proxy error", True
    dropped = (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
        u3.ProtocolError,
        u3.IncompleteRead,
        ConnectionResetError,
        ConnectionAbortedError,
        BrokenPipeError,
    )
    if any(isinstance(e, dropped) for e in chain):
        return "connection dropped", True
    return "connection failed", True


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts, urllib3's ``reason`` and exceptions among its args."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(e for e in nested if isinstance(e, BaseException))
