"""Every request the local backend served: method, path, status, bytes sent, headers received."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RequestRecord:
    """One served request. ``fault`` names an injected fault (``drop``, ``truncate``, ``500``…)."""

    method: str
    path: str
    query: str
    status: int
    bytes_sent: int
    headers: dict[str, str]
    started: float
    duration: float
    fault: str | None = None
    json_body: Any = field(default=None, compare=False)

    @property
    def url_path(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Thread-safe list of :class:`RequestRecord`; ``keep_json`` also keeps JSON response bodies.

    A record is complete only once its response has been sent, which can be after the client has
    read it; reading or clearing the log first waits (briefly) for requests already in flight.
    """

    def __init__(self, keep_json: bool = False) -> None:
        self.keep_json = keep_json
        self._cond = threading.Condition()
        self._records: list[RequestRecord] = []
        self._inflight: set[int] = set()
        self._ids = itertools.count()

    def begin(self) -> int:
        with self._cond:
            ticket = next(self._ids)
            self._inflight.add(ticket)
            return ticket

    def add(self, ticket: int, record: RequestRecord) -> None:
        with self._cond:
            self._inflight.discard(ticket)
            self._records.append(record)
            self._cond.notify_all()

    def _settle(self, own: int | None, timeout: float = 5.0) -> None:
        pending = self._inflight - {own}
        self._cond.wait_for(lambda: not (pending & self._inflight), timeout)

    def records(self, own: int | None = None) -> list[RequestRecord]:
        """The records in the order the requests arrived (``own``: the asking request's ticket, not awaited)."""
        with self._cond:
            self._settle(own)
            return sorted(self._records, key=lambda r: r.started)

    def clear(self, own: int | None = None) -> None:
        with self._cond:
            self._settle(own)
            self._records.clear()


class RecordingMiddleware:
    """WSGI middleware: adds latency, then logs what the wrapped app answered and how many bytes went out."""

    def __init__(self, app: Callable, log: RequestLog, latency: Callable[[str], float]) -> None:
        self.app = app
        self.log = log
        self.latency = latency

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = time.time()
        ticket = self.log.begin()
        environ["xr_openeo.ticket"] = ticket
        path = environ.get("PATH_INFO", "")
        delay = self.latency(path)
        if delay > 0:
            time.sleep(delay)
        seen: dict[str, Any] = {}

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            seen["status"] = int(status.split()[0])
            seen["json"] = any(k.lower() == "content-type" and "json" in v for k, v in headers)
            return start_response(status, headers, exc_info)

        body = self.app(environ, recording_start_response)
        return _CountingIterable(
            body,
            keep=lambda: self.log.keep_json and seen.get("json", False),
            done=lambda sent, chunks: self._record(ticket, environ, started, path, seen, sent, chunks),
        )

    def _record(
        self,
        ticket: int,
        environ: dict[str, Any],
        started: float,
        path: str,
        seen: dict[str, Any],
        sent: int,
        chunks: list[bytes],
    ) -> None:
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").title()] = environ[key]
        body = None
        if chunks and environ["REQUEST_METHOD"] != "HEAD":
            try:
                body = json.loads(b"".join(chunks) or b"null")
            except ValueError:
                body = None
        self.log.add(
            ticket,
            RequestRecord(
                method=environ["REQUEST_METHOD"],
                path=path,
                query=environ.get("QUERY_STRING", ""),
                status=seen.get("status", 0),
                bytes_sent=sent if environ["REQUEST_METHOD"] != "HEAD" else 0,
                headers=headers,
                started=started,
                duration=time.time() - started,
                fault=environ.get("xr_openeo.fault"),
                json_body=body,
            ),
        )


class _CountingIterable:
    """A response body that counts what went out and records the request once, when it is done.

    Done is the body's end, or its iteration abandoned (the client went away while it was sent),
    or ``close()``, whichever comes first. Not ``close()`` alone: werkzeug drains the socket
    before it calls ``close()``, and a client that reset the connection makes that drain raise,
    so ``close()`` never comes (seen under load: a POST answered 503 and never logged).
    """

    def __init__(
        self, body: Iterable[bytes], keep: Callable[[], bool], done: Callable[[int, list[bytes]], None]
    ) -> None:
        self._body = body
        self._keep = keep
        self._done = done
        self._sent = 0
        self._chunks: list[bytes] = []
        self._finished = False
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        keep = self._keep()
        try:
            for chunk in self._body:
                self._sent += len(chunk)
                if keep:
                    self._chunks.append(chunk)
                yield chunk
        finally:  # the end of the body, or the generator dropped half way (GeneratorExit)
            self._finish()

    def close(self) -> None:
        try:
            if hasattr(self._body, "close"):
                self._body.close()
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self._done(self._sent, self._chunks)
