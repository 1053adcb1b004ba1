"""``LocalBackend``: the local openEO backend as a context manager, serving from a thread."""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .collections import SyntheticCollection
from .faults import Faults
from .jobs import JobStore
from .processes import _predefined
from .requestlog import RequestLog, RequestRecord
from .server import ServerState, create_app, create_asset_host_app
from .stac import STYLES

TEST_USER = ("alice", "alice123")
OTHER_USER = ("bob", "bob123")


_OPEN_LOCK = threading.Lock()  # guards the open_connections set of each API server


class _QuietHandler(WSGIRequestHandler):
    """Request handler that logs through ``logging`` at debug level instead of printing each request.

    Socket operations time out: werkzeug drains a request's leftover input after answering, and a
    client that keeps its connection open without sending would otherwise hold that thread forever.
    """

    timeout = 20

    def setup(self) -> None:
        super().setup()
        with _OPEN_LOCK:
            getattr(self.server, "open_connections", set()).add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with _OPEN_LOCK:
                getattr(self.server, "open_connections", set()).discard(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logging.getLogger("xr_openeo.testing").debug("%s %s -> %s", self.command, self.path, code)

    def log_error(self, format: str, *args: Any) -> None:
        logging.getLogger("xr_openeo.testing").debug(format, *args)


class LocalBackend:
    """A real openEO backend on 127.0.0.1 that runs batch jobs, for tests, demos and benchmarks.

    Parameters
    ----------
    collections
        The collections it serves; default one :class:`SyntheticCollection` (``SENTINEL2_L2A``,
        3 dates, 256 × 256 pixels, 10 m UTM 31N). Pass ``SyntheticCollection(dates=365, width=512,
        height=512)`` for a benchmark cube.
    faults
        Server-wide :class:`Faults`; a job overrides them with the job option ``{"faults": {...}}``.
    results_style
        Default results-document style: ``"stac-1.0"`` (geopyspark's default), ``"stac-1.1"`` or
        ``"item"`` (API 1.0). Jobs choose with the options ``"stac-version"`` or ``"results-style"``.
    port
        0 (default) picks a free port.
    blocksize
        Tile size of the COGs it writes.
    record_json
        Keep the JSON body of every response in the request log (for schema checks).
    workdir
        Where job results are written; default a temporary folder removed on exit.

    Examples
    --------
    >>> with LocalBackend() as backend:                        # doctest: +SKIP
    ...     conn = backend.connect()
    ...     cube = conn.load_collection("SENTINEL2_L2A", bands=["B04", "B08"])
    ...     job = cube.ndvi().create_job(out_format="GTiff")
    """

    def __init__(
        self,
        collections: Sequence[SyntheticCollection] | None = None,
        *,
        faults: Faults | None = None,
        results_style: str = "stac-1.0",
        port: int = 0,
        host: str = "127.0.0.1",
        blocksize: int = 256,
        record_json: bool = False,
        workdir: str | Path | None = None,
    ) -> None:
        if results_style not in STYLES:
            raise ValueError(f"results_style must be one of {STYLES}, got {results_style!r}")
        self.collections = list(collections) if collections is not None else [SyntheticCollection()]
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="xr-openeo-backend-"))
        log = RequestLog(keep_json=record_json)
        self.state = ServerState(
            collections=self.collections,
            jobs=JobStore(self.workdir, self.collections, lambda: self.state.faults, results_style, blocksize),
            log=log,
            faults=faults or Faults(),
        )
        self._host, self._port = host, port
        self._server: BaseWSGIServer | None = None
        self._paused_port: int | None = None
        self._thread: threading.Thread | None = None
        self._asset_server: BaseWSGIServer | None = None
        self._asset_thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalBackend:
        if self._server is not None:
            return self
        if self._paused_port is not None:
            return self.resume()
        _predefined()  # import openeo-processes-dask now, not inside the first job
        self._serve_api(self._port)
        # The separate asset host (another port) that ``Faults(redirect_assets=True)`` redirects downloads to.
        self._asset_server = make_server(
            self._host, 0, create_asset_host_app(self.state), threaded=True, request_handler=_QuietHandler
        )
        self._asset_thread = threading.Thread(
            target=self._asset_server.serve_forever, name="local-openeo-asset-host", daemon=True
        )
        self._asset_thread.start()
        self.state.asset_host = f"http://{self._host}:{self._asset_server.server_port}"
        return self

    def stop(self) -> None:
        if self._server is None and self._paused_port is None:
            return
        self._close_api()
        self._paused_port = None
        if self._asset_server is not None:
            self._asset_server.shutdown()
            self._asset_server.server_close()
            if self._asset_thread is not None:
                self._asset_thread.join(10)
            self._asset_server = None
        self.state.asset_host = None
        self.state.jobs.wait_idle()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pause(self) -> None:
        """Take the API server down as in an outage; :meth:`resume` serves again on the same port.

        Until then new connections are refused and open (keep-alive) ones are closed. Jobs keep running,
        and every bit of state stays: jobs, issued tokens, faults, the request log, the asset host.
        """
        if self._server is None:
            raise RuntimeError("The backend is not running (or already paused)")
        self._paused_port = self._server.server_port
        self._close_api()

    def resume(self) -> LocalBackend:
        """Serve the API again on the port it had before :meth:`pause`."""
        if self._paused_port is None:
            raise RuntimeError("The backend is not paused")
        self._serve_api(self._paused_port)
        self._paused_port = None
        return self

    def _serve_api(self, port: int) -> None:
        server = make_server(self._host, port, create_app(self.state), threaded=True, request_handler=_QuietHandler)
        server.open_connections = set()  # type: ignore[attr-defined]  # kept by _QuietHandler; pause() closes them
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="local-openeo-backend", daemon=True)
        self._thread.start()

    def _close_api(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with _OPEN_LOCK:
            connections = list(getattr(server, "open_connections", ()))
        for conn in connections:  # keep-alive connections would otherwise still be served
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> LocalBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (``python -m xr_openeo.testing``)."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    # -- addresses and clients -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None and self._paused_port is not None:
            return self._paused_port
        if self._server is None:
            raise RuntimeError("The backend is not running: use `with LocalBackend() as backend:` or call start()")
        return self._server.server_port

    @property
    def root_url(self) -> str:
        """The server root (where ``/.well-known/openeo`` is)."""
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """The openEO API root, version 1.2."""
        return f"{self.root_url}/openeo/1.2"

    def connect(self, user: tuple[str, str] = TEST_USER, api_version: str = "1.2"):
        """An ``openeo.Connection`` authenticated as the test user (basic auth)."""
        import openeo

        return openeo.connect(f"{self.root_url}/openeo/{api_version}").authenticate_basic(*user)

    # -- fault switches and the request log ------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self.state.faults

    def set_faults(self, faults: Faults | None = None, **changes: Any) -> Faults:
        """Replace the server-wide faults (``faults``), or change some of their fields (``**changes``)."""
        self.state.faults = (
            (faults or Faults()).merged(changes) if faults is not None else self.state.faults.merged(changes)
        )
        return self.state.faults

    def revoke_tokens(self, user: str | None = None) -> None:
        """Invalidate the issued bearer tokens (of ``user``, or all): later requests get 403 TokenInvalid."""
        with self.state.lock:
            self.state.revoked.update(t for t, u in self.state.tokens.items() if user is None or u == user)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served so far, oldest first."""
        return self.state.log.records()

    def clear_requests(self) -> None:
        self.state.log.clear()
        self.state.asset_log.clear()

    @property
    def asset_host_url(self) -> str:
        """Root URL of the separate asset host (another port) that ``redirect_assets`` sends downloads to."""
        if self.state.asset_host is None:
            raise RuntimeError("The backend is not running: use `with LocalBackend() as backend:` or call start()")
        return self.state.asset_host

    @property
    def asset_host_requests(self) -> list[RequestRecord]:
        """Every request the asset host served so far, oldest first."""
        return self.state.asset_log.records()

    def job(self, job_id: str):
        """The backend's own record of a job (status, assets, logs, output folder)."""
        return self.state.jobs.jobs[job_id]
