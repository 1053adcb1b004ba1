"""A threaded WSGI server on a background thread that stops at once, closing its keep-alive connections.

werkzeug's server (like :mod:`socketserver`'s) notices a shutdown request only when its wait for
connections times out, every 0.5 s; a test suite that starts and stops a backend per test spends most
of its teardown there. :class:`ServerThread` waits on the listening socket and on a wake-up socket
together, so stopping it takes no time.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

_log = logging.getLogger("xr_openeo.testing")


class _QuietHandler(WSGIRequestHandler):
    """Request handler that logs through ``logging`` at debug level instead of printing each request.

    Socket operations time out: werkzeug drains a request's leftover input after answering, and a
    client that keeps its connection open without sending would otherwise hold that thread forever.
    """

    timeout = 20

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        _log.debug("%s %s -> %s", self.command, self.path, code)

    def log_error(self, format: str, *args: Any) -> None:
        _log.debug(format, *args)


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server with an immediate stop and a record of its open connections."""

    timeout = 0  # handle_request() after select() said "ready": never block if the connection went away

    def __init__(self, host: str, port: int, app: Any, fd: int | None = None) -> None:
        super().__init__(host, port, app, handler=_QuietHandler, fd=fd)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_receiver, self._wake_sender = socket.socketpair()

    def track(self, connection: socket.socket, is_open: bool) -> None:
        with self._connections_lock:
            if is_open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # Tracked from the accepting thread, before the handler's thread starts: a connection accepted
    # just before stop() would otherwise be missed by close_all() and stay open.
    def process_request(self, request: Any, client_address: Any) -> None:
        self.track(request, True)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.track(request, False)
        super().shutdown_request(request)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept connections until :meth:`stop`; ``poll_interval`` is unused (a wake-up socket ends the wait)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_receiver, selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = selector.select()
                if self._stopping.is_set():
                    break
                if any(key.fileobj is self.socket for key, _ in ready):
                    self.handle_request()

    def stop(self) -> None:
        """Make :meth:`serve_forever` return at once (from another thread)."""
        self._stopping.set()
        try:
            self._wake_sender.send(b"\0")
        except OSError:
            pass

    def close_all(self) -> None:
        """Close the listening socket and shut every open connection down (after :meth:`serve_forever` ended)."""
        self.server_close()
        self._wake_sender.close()
        self._wake_receiver.close()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:  # keep-alive connections would otherwise still be served
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ServerThread:
    """``app`` served on ``host:port`` (0: a free port) from a daemon thread, until :meth:`stop`."""

    def __init__(self, host: str, port: int, app: Any, name: str, sock: socket.socket | None = None) -> None:
        # ``sock``: a bound, listening socket to serve on (its port held since a pause), instead of binding
        self._server = _Server(host, port, app, fd=sock.fileno() if sock is not None else None)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: new connections are refused and open ones closed; returns once the thread ended."""
        self._server.stop()
        self._thread.join(timeout)
        self._server.close_all()


def hold_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that does not listen: connections are refused, and no other
    program can take the port before :meth:`~xr_openeo.testing.LocalBackend.resume` serves on it again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the closed server's connections linger
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock
