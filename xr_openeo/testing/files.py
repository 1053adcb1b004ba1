"""Serving a result file's bytes: Range, HEAD, the download faults (errors, drops, truncation) and the bandwidth cap."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from flask import Response, request

from .assets import WrittenAsset
from .faults import Faults
from .jobs import Job
from .state import ApiError, ServerState

CHUNK = 64 * 1024


def find_asset(state: ServerState, job: Job, filename: str, inner: str | None, code: str) -> WrittenAsset:
    """The published asset ``filename`` of ``job`` (or file ``inner`` inside a folder asset), else 404 ``code``."""
    with state.jobs.lock:
        found = [a for a in job.assets if a.key == filename]
    if not found:
        raise ApiError(404, code, f"Job {job.id!r} has no result asset {filename!r}")
    asset = found[0]
    if inner is None and not asset.path.is_dir():
        return asset
    member = asset.member(inner or "")
    if member is None:
        raise ApiError(404, code, f"Result asset {filename!r} has no file {inner!r}")
    return replace(asset, key=f"{asset.key}/{inner}", path=member, media_type="application/octet-stream")


def serve_file(
    path: Path,
    media_type: str,
    key: str,
    faults: Faults,
    state: ServerState,
    *,
    ranges: bool = True,
    on_close: Callable[[], None] | None = None,
) -> Response:
    """The bytes of ``path`` as ``media_type``, honouring Range (when ``ranges``) and HEAD, with the download faults.

    ``key`` names the file in the fault draws: a seed reproduces the same faults across runs.
    ``on_close`` is called once the response is done with (sent, cut short or dropped), also when
    an injected fault answers instead; then the file may go.
    """
    try:
        response = _file_response(path, media_type, key, faults, state, ranges)
    except BaseException:
        if on_close is not None:
            on_close()
        raise
    if on_close is not None:
        response.response = _ClosingBody(response.response, on_close)
    return response


class _ClosingBody:
    """A response body that calls ``on_close`` when the server closes it (werkzeug skips the
    response's own close callbacks for a ``direct_passthrough`` body)."""

    def __init__(self, body: Iterable[Any], on_close: Callable[[], None]) -> None:
        self._body, self._on_close = body, on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()


def _file_response(path: Path, media_type: str, key: str, faults: Faults, state: ServerState, ranges: bool) -> Response:
    method = request.method
    if method == "HEAD" and faults.head_refused:
        request.environ["xr_openeo.fault"] = "head_refused"
        raise ApiError(403, "Forbidden", "HEAD is not allowed on this URL (as on presigned object-store URLs); use GET")
    # Keyed by what the client asks for (not the random job id) so that a seed reproduces across runs.
    request_key = f"{key}|{method}|{request.headers.get('Range', '')}"
    fault = faults.download_fault(request_key, state.next_attempt(request_key))
    if fault:
        request.environ["xr_openeo.fault"] = fault
    if fault in ("500", "503"):
        raise ApiError(int(fault), "Internal" if fault == "500" else "ServiceUnavailable", f"Injected fault {fault}")
    if fault == "drop":
        _drop(request.environ)
        return Response(b"", status=500)

    size = path.stat().st_size
    start, stop, status = 0, size, 200
    headers: dict[str, str] = {"Content-Type": media_type}
    honour_range = ranges and not faults.range_ignored
    if request.range is not None and honour_range:
        span = request.range.range_for_length(size)
        if span is None:
            return Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        start, stop = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    if honour_range:
        headers["Accept-Ranges"] = "bytes"
    length = stop - start
    if not faults.no_content_length:
        headers["Content-Length"] = str(length)
    if method == "HEAD":
        response = Response(None, status=status, headers=headers)
        response.automatically_set_content_length = False
        return response
    send = length // 2 if fault == "truncate" else length
    mbit = faults.bandwidth_mbit
    pace = None if mbit is None else (lambda n: state.link.send(n, mbit))
    body = _read(path, start, send, request.environ if fault == "truncate" else None, pace)
    return Response(body, status=status, headers=headers, direct_passthrough=True)


def _read(
    path: Path,
    start: int,
    length: int,
    drop_after: dict[str, Any] | None,
    pace: Callable[[int], object] | None = None,
) -> Iterator[bytes]:
    """The bytes of ``path`` from ``start``, in pieces; ``pace(n)`` waits for each piece's turn on the link."""
    with path.open("rb") as f:
        f.seek(start)
        while length > 0:
            chunk = f.read(min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            if pace is not None:
                pace(len(chunk))
            yield chunk
    if drop_after is not None:
        time.sleep(0.01)  # let the partial body reach the client before the connection dies
        _drop(drop_after)


def _drop(environ: dict[str, Any]) -> None:
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
