"""Synchronous processing: ``POST /result`` with the connection's credentials, its answer streamed, errors mapped.

The request goes through the ``openeo.Connection`` (its session, its bearer token, a refresh of an
expired OIDC token). It is sent again only where that is safe: when no connection could be made
(nothing reached the backend) or when the backend answered 429/503 (it did not run the graph),
with the retries, backoff and ``Retry-After`` of :class:`~xr_openeo.http.policy.RetryPolicy`. A
timeout or a dropped connection after sending, a 500 or a 502/504 are never retried: the graph may
have run, and cost, already.

The answer's body is streamed into a :class:`Body`: held in memory up to ``execute_memory_bytes``,
spilled to a file in a new temporary directory beyond. A body shorter than its ``Content-Length``
(or whose connection failed mid-way) raises :class:`~xr_openeo.errors.RequestError`; nothing of it
is kept.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import requests

from .._options import get_option
from ..errors import AuthenticationError, ProcessingError, RequestError, SyncTimeoutError, XrOpenEOError
from ..http.documents import ADVICE, error_code
from ..http.policy import RetryPolicy, retry_after
from ..http.session import describe
from ..urls import host, redact
from .spool import Body

#: Statuses after which sending again is safe: the backend did not run the graph (rate limit, unavailable).
RETRIED_STATUSES = frozenset({429, 503})
#: Causes of a failed request that mean nothing reached the backend, so that sending again is safe.
UNSENT_CAUSES = frozenset({"name resolution", "connection refused", "connection failed", "connect timeout"})
#: openEO error codes about the credentials (as opposed to permissions on a collection or process).
AUTH_CODES = frozenset({"TokenInvalid", "AuthenticationRequired", "AuthenticationSchemeInvalid"})
#: Bytes read from the answer at a time.
CHUNK_BYTES = 1 << 20
#: What to do instead, for errors that a batch job avoids.
BATCH_ADVICE = "Run the graph as a batch job instead: xr_openeo.compute_batch(cube), or ds.openeo.compute_batch()."
_OR_BATCH = "or run the graph as a batch job: xr_openeo.compute_batch(cube)."


@dataclass(frozen=True)
class SyncAnswer:
    """What ``POST /result`` gave back.

    Attributes
    ----------
    body
        The bytes, complete.
    media_type
        ``Content-Type`` (``application/x-tar`` for several files).
    filename
        The file name ``Content-Disposition`` gives, as sent (untrusted), or None.
    request_id
        ``OpenEO-Identifier``, when sent.
    backend
        The API root the request went to.
    costs
        ``OpenEO-Costs``, when sent (as a number).
    logs_url
        The ``Link: <…>; rel="monitor"`` of the request's logs, when sent (redacted).
    usage
        Other ``OpenEO-*`` headers (usage metrics some backends send), by name.
    """

    body: Body
    media_type: str
    filename: str | None
    request_id: str | None
    backend: str
    costs: float | None = None
    logs_url: str | None = None
    usage: Mapping[str, str] = field(default_factory=dict)


def post_result(
    connection: Any,
    process_graph: Mapping[str, Any],
    *,
    job_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    memory_bytes: int | None = None,
) -> SyncAnswer:
    """Run ``process_graph`` synchronously (``POST /result``) and read the answer completely.

    Parameters
    ----------
    connection
        An authenticated ``openeo.Connection``.
    process_graph
        Flat process-graph nodes (with the ``save_result`` that says the format).
    job_options
        Sent as the request's ``job_options``.
    timeout
        Seconds to wait for the answer and between reads of its body; default the
        ``execute_timeout`` option.
    memory_bytes
        Bodies up to this size stay in memory; default the ``execute_memory_bytes`` option.

    Returns
    -------
    SyncAnswer

    Raises
    ------
    ProcessingError
        The backend answered with an error (its code, message and request id are kept).
    SyncTimeoutError
        A time limit ran out: the backend's (408), a gateway's (504) or ``timeout``.
    AuthenticationError
        The credentials were refused.
    RequestError
        No answer (connection failures after the retries), or a body cut short.
    """
    read_timeout = float(get_option("execute_timeout", timeout))
    limit = int(get_option("execute_memory_bytes", memory_bytes))
    request: dict[str, Any] = {"process": {"process_graph": dict(process_graph)}}
    if job_options is not None:
        request["job_options"] = dict(job_options)
    url = str(connection.build_url("/result"))
    response, attempts = _send(connection, request, url, read_timeout)
    try:
        if response.status_code != 200:
            raise error_of(response, url, attempts)
        request_id = response.headers.get("OpenEO-Identifier") or None
        body = _read_body(response, url, request_id, limit, read_timeout)
    finally:
        response.close()
    return SyncAnswer(
        body=body,
        media_type=response.headers.get("Content-Type") or "application/octet-stream",
        filename=disposition_filename(response.headers.get("Content-Disposition")),
        request_id=request_id,
        backend=str(connection.root_url).rstrip("/"),
        costs=_costs(response.headers.get("OpenEO-Costs")),
        logs_url=_monitor_link(response),
        usage=_usage(response.headers),
    )


# -- sending ----------------------------------------------------------------------------------------


def _send(connection: Any, request: Mapping[str, Any], url: str, read_timeout: float) -> tuple[requests.Response, int]:
    """(answer, requests sent) of ``POST /result``, sent again only where that is safe (see the module docstring)."""
    policy = RetryPolicy.from_options()
    timeouts = (policy.connect_timeout, read_timeout)
    retries, refreshed = 0, False
    while True:
        try:
            response = connection.request(
                "post", "/result", json=request, check_error=False, stream=True, timeout=timeouts
            )
        except (requests.RequestException, OSError) as exc:
            cause = _cause(exc)
            if cause in UNSENT_CAUSES and retries < policy.retries:
                retries += 1
                time.sleep(policy.delay(retries))
                continue
            raise _transport_error(cause, url, retries + 1, read_timeout) from None
        status = response.status_code
        if status in RETRIED_STATUSES and retries < policy.retries:
            retries += 1
            wait = policy.delay(retries, retry_after(response.headers))
            response.close()
            time.sleep(wait)
            continue
        if status in (401, 403) and not refreshed and error_code(response)[0] == "TokenInvalid":
            refresh = getattr(connection, "try_access_token_refresh", None)
            if refresh is not None and refresh(reason=f"POST /result answered {status} TokenInvalid"):
                refreshed = True
                response.close()
                continue
        return response, retries + 1


def _cause(exc: BaseException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timeout"  # no connection was made: nothing was sent
    return describe(exc)[0]


def _transport_error(cause: str, url: str, attempts: int, read_timeout: float) -> XrOpenEOError:
    where = host(url) or "this machine"
    if cause == "timeout":
        return SyncTimeoutError(
            f"The backend did not answer POST /result at {redact(url)} within {read_timeout:g} s; the graph may still "
            f"be running there. {BATCH_ADVICE} Or wait longer: xr_openeo.set_options(execute_timeout=...).",
        )
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if cause in UNSENT_CAUSES:
        advice = ADVICE.get(cause, "")
    else:
        advice = (
            "The request was sent, so it was not sent again (the graph may have run, and cost, already): "
            f"retry later. {BATCH_ADVICE}"
        )
    return RequestError(
        f"POST /result to {redact(url)} failed{tries}: {cause} (host {where}). {advice}".strip(),
        what="synchronous processing request",
        href=redact(url),
        host=host(url),
        cause=cause,
    )


# -- errors ------------------------------------------------------------------------------------------


def error_of(response: requests.Response, url: str, attempts: int = 1) -> XrOpenEOError:
    """The library error for an error answer to ``POST /result``: the backend's code, message and request id."""
    status = response.status_code
    code, message = error_code(response)
    message = redact(message).strip().rstrip(".")[:2000] or response.reason or f"HTTP {status}"
    request_id = _error_id(response) or response.headers.get("OpenEO-Identifier") or None
    said = f"HTTP {status}" + (f" {code}" if code else "") + f": {message}"
    ref = f" (request {request_id})" if request_id else ""
    if status in (408, 504) or code == "RequestTimeout":
        who = "a gateway in front of the backend" if status == 504 else "the backend"
        return SyncTimeoutError(
            f"Synchronous processing ran into the time limit of {who} ({said}){ref}. {BATCH_ADVICE}",
            code=code or None,
            request_id=request_id,
            http_status=status,
        )
    if status == 401 or code in AUTH_CODES:
        return AuthenticationError(
            f"The backend refused the credentials for POST /result ({said}){ref}; authenticate the connection again"
        )
    if status in RETRIED_STATUSES:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        advice = f"The backend is busy or unavailable{tries}: retry later, {_OR_BATCH}"
    elif status == 502:
        advice = (
            "A gateway got no valid answer from the backend; for a long computation that is often a time limit. "
            + BATCH_ADVICE
        )
    elif status >= 500:
        advice = "The backend failed while running the graph (its message is above)."
    else:
        advice = "Check the process graph, its collections and options (the backend's message is above)."
    return ProcessingError(
        f"The backend could not process the graph synchronously ({said}){ref}. {advice}",
        code=code or None,
        request_id=request_id,
        http_status=status,
    )


def _error_id(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("id") if isinstance(body, dict) else None
    return str(value) if value else None


# -- reading ---------------------------------------------------------------------------------------


def _read_body(
    response: requests.Response, url: str, request_id: str | None, memory_bytes: int, read_timeout: float
) -> Body:
    """The complete body of ``response``: in memory, or spilled when larger than ``memory_bytes``."""
    length = _content_length(response.headers.get("Content-Length"))
    body = Body(memory_bytes)
    failure: str | None = None
    try:
        if length is not None and length > memory_bytes:
            body.spill()
        chunks = response.iter_content(CHUNK_BYTES)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except (requests.RequestException, OSError, ValueError) as exc:  # the connection's (wrapped by requests)
                failure = _cause(exc)
                break
            body.write(chunk)  # a full disk raises as it is
        body.finish()
    except BaseException:
        body.discard()
        raise
    received = _wire_bytes(response, body)
    if failure is None and (length is None or received == length):
        return body
    body.discard()
    ref = f" (request {request_id})" if request_id else ""
    if failure == "timeout":
        raise SyncTimeoutError(
            f"The answer of POST /result{ref} stalled: no bytes for {read_timeout:g} s after {received} bytes. "
            f"Nothing was opened from it. {BATCH_ADVICE}",
            request_id=request_id,
            http_status=response.status_code,
        )
    of = f" of {length}" if length is not None else ""
    raise RequestError(
        f"The answer of POST /result{ref} was cut short: {received}{of} bytes arrived before the connection "
        f"failed ({failure or 'shorter than its Content-Length'}). Nothing was opened from it. Send it again, "
        + _OR_BATCH,
        what="synchronous result",
        href=redact(url),
        host=host(url),
        cause="connection dropped",
        status=response.status_code,
    )


def _content_length(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isdigit() else None


def _wire_bytes(response: requests.Response, body: Body) -> int:
    """Bytes received of the body as sent (before any ``Content-Encoding`` was undone)."""
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    tell = getattr(response.raw, "tell", None)
    if encoding != "identity" and callable(tell):
        return int(tell())
    return body.size


# -- headers ---------------------------------------------------------------------------------------


def disposition_filename(value: str | None) -> str | None:
    """The file name of a ``Content-Disposition`` header (``filename*`` of RFC 6266 too), as sent, or None."""
    if not value:
        return None
    message = Message()
    message["Content-Disposition"] = value
    name = message.get_filename()
    return str(name) if name else None


def _costs(value: str | None) -> float | None:
    try:
        return float(value) if value is not None and value.strip() else None
    except ValueError:
        return None


def _monitor_link(response: requests.Response) -> str | None:
    link = response.links.get("monitor") if response.headers.get("Link") else None
    url = link.get("url") if link else None
    return redact(url) if url else None


def _usage(headers: Mapping[str, str]) -> dict[str, str]:
    known = {"openeo-identifier", "openeo-costs"}
    return {
        name: redact(str(value))
        for name, value in headers.items()
        if name.lower().startswith("openeo-") and name.lower() not in known
    }
