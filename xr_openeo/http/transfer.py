"""Asset bytes: one range or the whole file (:func:`fetch`), or several ranges at once (:func:`fetch_ranges`).

Every answer is checked complete (Content-Length, the range asked for); connection failures, cut-off
bodies and 429/5xx are retried with the backoff of the options; an expired or refused link is
renewed once through its :class:`~xr_openeo.http.links.Links`; anything else raises
:class:`~xr_openeo.errors.AssetReadError` naming the asset, the redacted href, the host, the cause
and the HTTP status. ``file://`` hrefs and paths are read from disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import AssetReadError, URLExpiredError
from ..urls import host, is_local, local_path, member_url, redact
from .documents import ADVICE, error_code
from .policy import RetryPolicy, content_range_total, is_refused_link, is_transient_status, retry_after
from .session import AttemptFailed, attempt, read_body

if TYPE_CHECKING:
    from .links import Links

#: Ranges of one call sent at the same time, at most.
MAX_CONCURRENT_RANGES = 16

Range = tuple[int, int]


def fetch(
    key: str,
    links: Links,
    byte_range: Range | None = None,
    *,
    inner: str | None = None,
    missing_ok: bool = False,
) -> tuple[bytes, int | None, bool]:
    """The bytes of asset ``key`` (all, or ``byte_range`` = [start, stop)), checked complete.

    Parameters
    ----------
    key
        The asset key; ``links`` gives its current href.
    links
        Hrefs, headers and renewal of expired links.
    byte_range
        ``(start, stop)``, stop exclusive; None for the whole file. A range past the end of the
        file gives what there is.
    inner
        A file inside a folder asset (a Zarr store), relative to the asset's href.
    missing_ok
        Answer a 404 (or a missing local file) with ``(b"", None, False)`` instead of raising.

    Returns
    -------
    tuple
        ``(data, total_size, ranged)``; ``ranged`` is False when the server ignored the Range header
        and sent the whole file (``data`` is then the whole file).

    Raises
    ------
    AssetReadError
        After the retries; with ``key``, redacted ``href``, ``host``, ``cause`` and ``status``.
    """
    base = links.href(key)
    if is_local(base):
        return _read_local(key, member_url(base, inner), byte_range, missing_ok)
    if links.sources and links.expired(base):  # renew before the server refuses (without sources, let it judge)
        base = links.renew(key, base)
    url = member_url(base, inner)
    policy = RetryPolicy.from_options()
    renewed = False
    status: int | None = None
    cause, problem = "", ""
    pause = 0.0  # before the next attempt
    attempts = 0  # requests sent; a renewed link gets its request on top of the retries
    while attempts <= policy.retries + renewed:
        attempts += 1
        if pause:
            time.sleep(pause)
        pause = policy.delay(attempts - renewed)  # unless the answer says otherwise
        headers = dict(links.headers(url))
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        try:
            response = attempt("GET", url, headers, policy.timeout, stream=True)
            data = read_body(response)
        except AttemptFailed as exc:
            status, cause, problem = None, exc.cause, f"{exc.cause}. {ADVICE.get(exc.cause, '')}".strip()
            if not exc.transient:
                break
            continue
        status = response.status_code
        if status == 404 and missing_ok:
            return b"", None, False
        refused = is_refused_link(status, error_code(response)[0] if status == 400 else None)
        if refused and links.sources and not renewed:
            try:
                base = links.renew(key, base)
            except URLExpiredError as exc:
                failure = URLExpiredError(
                    f"{exc} (the link was answered with HTTP {status})",
                    key=key,
                    href=redact(url),
                    status=status,
                    host=host(url),
                    cause=f"HTTP {status}",
                )
                raise failure from None
            url = member_url(base, inner)
            renewed = True
            pause = 0.0  # ask with the fresh link at once
            continue
        if is_transient_status(status):
            cause, problem = f"HTTP {status}", f"HTTP {status}"
            pause = policy.delay(attempts - renewed, retry_after(response.headers))
            continue
        if status not in (200, 206):
            cause, problem = f"HTTP {status}", f"HTTP {status}: {_error_text(response)}"
            if status == 401 and "Authorization" not in headers:
                problem += (
                    ". This URL needs the backend's bearer token, which this process does not have: a dask "
                    "graph carries it only when opened with pickle_token=True (see its docstring for what that means)"
                )
            break
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != len(data):
            cause, problem = (
                "connection dropped",
                f"body shorter than its Content-Length ({len(data)} of {length} bytes)",
            )
            continue
        if status == 206:
            total = content_range_total(response.headers.get("Content-Range"))
            if byte_range is not None and len(data) != byte_range[1] - byte_range[0]:
                if total is None or byte_range[1] <= total:  # not merely cut at the end of the file
                    cause = "connection dropped"
                    problem = f"range answer holds {len(data)} bytes, asked {byte_range[1] - byte_range[0]}"
                    continue
            return data, total, True
        if byte_range is not None and byte_range[0] == 0 and len(data) <= byte_range[1]:
            return data, len(data), True  # the whole file fits the range: a 200 is fine
        return data, len(data), byte_range is None
    raise AssetReadError(
        f"Reading asset {key!r} from {redact(url)} failed after {attempts} attempt(s): {problem or 'no answer'}",
        key=key,
        href=redact(url),
        status=status,
        host=host(url),
        cause=cause or None,
    )


def _read_local(key: str, url: str, byte_range: Range | None, missing_ok: bool) -> tuple[bytes, int | None, bool]:
    path = local_path(url)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if byte_range is None:
                return f.read(), size, False
            f.seek(byte_range[0])
            return f.read(max(0, byte_range[1] - byte_range[0])), size, True
    except FileNotFoundError:
        if missing_ok:
            return b"", None, False
        cause = "no such file"
    except OSError as exc:
        cause = f"cannot read the file ({type(exc).__name__})"
    raise AssetReadError(f"Reading asset {key!r} from {path} failed: {cause}", key=key, href=str(path), cause=cause)


def fetch_ranges(key: str, links: Links, ranges: Sequence[Range]) -> list[bytes]:
    """The bytes of each ``(start, stop)`` range of asset ``key``, in order; the requests go out concurrently.

    Overlapping and adjacent ranges are merged into one request; the others are sent at the same
    time (at most :data:`MAX_CONCURRENT_RANGES` at once), each with :func:`fetch`'s retries and
    renewal. A server that ignores Range answers with the whole file, which then serves every
    range. Ranges past the end of the file give what there is.
    """
    merged = merge_ranges(ranges)
    answers = fetch_merged(key, links, merged)
    return slice_ranges(ranges, merged, answers)


def merge_ranges(ranges: Sequence[Range]) -> list[Range]:
    """``ranges`` sorted, with overlapping and adjacent ones joined; empty ranges dropped."""
    merged: list[list[int]] = []
    for start, stop in sorted((int(a), int(b)) for a, b in ranges if b > a):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged]


def fetch_merged(key: str, links: Links, merged: Sequence[Range]) -> list[tuple[bytes, int | None, bool]]:
    """:func:`fetch` of each range, all at the same time (at most :data:`MAX_CONCURRENT_RANGES`)."""
    if len(merged) <= 1:
        return [fetch(key, links, r) for r in merged]
    workers = min(len(merged), MAX_CONCURRENT_RANGES)
    with ThreadPoolExecutor(workers, thread_name_prefix="xr-openeo-ranges") as pool:
        return list(pool.map(lambda r: fetch(key, links, r), merged))


def slice_ranges(
    ranges: Sequence[Range], merged: Sequence[Range], answers: Sequence[tuple[bytes, int | None, bool]]
) -> list[bytes]:
    """Each of ``ranges`` cut out of the answers to the ``merged`` ranges (or out of a whole file)."""
    out = []
    for start, stop in ranges:
        piece = b""
        for (m_start, m_stop), (data, _, ranged) in zip(merged, answers, strict=True):
            if not ranged:  # the server ignored Range: this answer is the whole file
                piece = data[start:stop]
                break
            if m_start <= start and stop <= m_stop:
                piece = data[start - m_start : stop - m_start]
                break
        out.append(piece)
    return out


def _error_text(response: object) -> str:
    code, message = error_code(response)  # type: ignore[arg-type]
    return redact(f"{code}: {message}" if code else message)[:300]
