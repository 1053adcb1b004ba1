"""A scripted HTTP server on 127.0.0.1 (port 0) for the HTTP layer's tests, and sockets that misbehave.

``ScriptedServer`` answers each path from a list of answers, in order (the last one repeats): a
status with headers and body, a file served with Range support, or a dropped connection. It logs
every request (method, path with query, headers), so tests count retries at the server.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, doc: Any, status: int = 200, **headers: str) -> Answer:
        return cls(status, json.dumps(doc).encode(), {"Content-Type": "application/json", **headers})


@dataclass(frozen=True)
class File:
    """A file: ranged GETs get 206 with Content-Range (unless ``ranges`` is False: 200 and the whole body)."""

    data: bytes
    ranges: bool = True
    total: bool = True  # False: Content-Range says */unknown (bytes a-b/*)


@dataclass(frozen=True)
class Gate:
    """Answer ``then`` only once ``barrier`` has been reached by as many requests as it waits for.

    Proves that requests were sent at the same time: one after another, they would never meet.
    """

    barrier: threading.Barrier
    then: Any


DROP = "drop"  # close the connection without answering
CUT = "cut"  # send the headers of a 200 and half the body, then close


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    client: tuple[str, int]  # the client's address and port: one per connection


class ScriptedServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._scripts: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                server._serve(self)

            def do_HEAD(self) -> None:  # noqa: N802
                server._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()
        self.root = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.root + path

    def script(self, path: str, *answers: Any) -> str:
        """Answer ``path`` (without query) with ``answers`` in order, the last one for ever after; its URL."""
        with self._lock:
            self._scripts[path] = list(answers)
        return self.url(path)

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path.split("?")[0] == path)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        with self._lock:
            self.requests.append(Request(handler.command, handler.path, dict(handler.headers), handler.client_address))
            script = self._scripts.get(path)
            answer = (script.pop(0) if len(script) > 1 else script[0]) if script else Answer(404, b"{}")
        if isinstance(answer, Gate):
            answer.barrier.wait(timeout=10)
            answer = answer.then
        if answer == DROP:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if answer == CUT:
            handler.send_response(200)
            handler.send_header("Content-Length", "1000")
            handler.end_headers()
            handler.wfile.write(b"x" * 500)
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(answer, File):
            answer = _ranged(answer, handler.headers.get("Range"))
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(answer.body)


def _ranged(file: File, header: str | None) -> Answer:
    if not header or not file.ranges:
        return Answer(200, file.data)
    first, _, last = header.removeprefix("bytes=").partition("-")
    start, stop = int(first), min(int(last) + 1, len(file.data))
    if start >= len(file.data):
        return Answer(416, b"", {"Content-Range": f"bytes */{len(file.data)}"})
    total = str(len(file.data)) if file.total else "*"
    return Answer(206, file.data[start:stop], {"Content-Range": f"bytes {start}-{stop - 1}/{total}"})


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def refusing_address() -> Iterator[str]:
    """``http://127.0.0.1:port``: a port held by a socket that does not listen, so connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@contextmanager
def silent_address() -> Iterator[str]:
    """``http://127.0.0.1:port``: a socket that accepts connections (its backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
