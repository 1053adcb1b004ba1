"""``LocalBackend``: the local openEO backend as a context manager, serving from a thread."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .clock import Clock
from .collections import SyntheticCollection
from .faults import Faults
from .jobs import JobStore
from .processes import _predefined
from .requestlog import RequestLog, RequestRecord
from .server import ServerState, create_app, create_asset_host_app
from .serving import ServerThread, hold_port
from .stac import STYLES

TEST_USER = ("alice", "alice123")
OTHER_USER = ("bob", "bob123")


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
    clock
        The backend's time (default :func:`time.time`): when signed URLs expire and whether a
        presented one has, the asset host's presigned URLs, job timestamps and log times, the
        ``queue_duration``/``run_duration`` fault switches and the limit of synchronous requests.
        Tests pass a :class:`~xr_openeo.testing.ManualClock` and move it instead of sleeping
        (``clock.advance(3600)`` expires every link signed for an hour); with one, jobs with
        durations wait until the test moves the clock. Request timings in the request log and the
        ``latency`` switch stay in real time.

    Examples
    --------
    >>> with LocalBackend() as backend:                        # doctest: +SKIP
    ...     conn = backend.connect()
    ...     cube = conn.load_collection("SENTINEL2_L2A", bands=["B04", "B08"])
    ...     job = cube.ndvi().create_job(out_format="GTiff")

    Signed links that expire without sleeping:

    >>> clock = ManualClock()                                  # doctest: +SKIP
    >>> with LocalBackend(clock=clock, faults=Faults(url_validity=60)) as backend:  # doctest: +SKIP
    ...     ...                                                # run a job, read its asset URLs
    ...     clock.advance(61)                                  # now they answer 410 ResultLinkExpired
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
        clock: Clock | None = None,
    ) -> None:
        if results_style not in STYLES:
            raise ValueError(f"results_style must be one of {STYLES}, got {results_style!r}")
        self.collections = list(collections) if collections is not None else [SyntheticCollection()]
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="xr-openeo-backend-"))
        self.clock: Clock = clock if clock is not None else time.time
        log = RequestLog(keep_json=record_json)
        jobs = JobStore(
            self.workdir, self.collections, lambda: self.state.faults, results_style, blocksize, clock=self.clock
        )
        self.state = ServerState(
            collections=self.collections, jobs=jobs, log=log, faults=faults or Faults(), clock=self.clock
        )
        self._host, self._port = host, port
        self._server: ServerThread | None = None
        self._paused_port: int | None = None
        self._held: socket.socket | None = None  # the API's port while paused: bound, not listening
        self._asset_server: ServerThread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalBackend:
        if self._server is not None:
            return self
        if self._paused_port is not None:
            return self.resume()
        _predefined()  # import openeo-processes-dask now, not inside the first job
        self._serve_api(self._port)
        # The separate asset host (another port) that ``Faults(redirect_assets=True)`` redirects downloads to.
        self._asset_server = ServerThread(self._host, 0, create_asset_host_app(self.state), "local-openeo-asset-host")
        self.state.asset_host = f"http://{self._host}:{self._asset_server.port}"
        return self

    def stop(self) -> None:
        if self._server is None and self._paused_port is None:
            return
        self._close_api()
        self._paused_port = None
        if self._held is not None:
            self._held.close()
            self._held = None
        if self._asset_server is not None:
            self._asset_server.stop()
            self._asset_server = None
        self.state.asset_host = None
        self.state.jobs.wait_idle()
        # (room for processes.shutdown_workers(): end worker processes the engine started)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pause(self) -> None:
        """Take the API server down as in an outage; :meth:`resume` serves again on the same port.

        Until then new connections are refused and open (keep-alive) ones are closed. Jobs keep running,
        and every bit of state stays: jobs, issued tokens, faults, the request log, the asset host.
        """
        if self._server is None:
            raise RuntimeError("The backend is not running (or already paused)")
        port = self._server.port
        self._close_api()
        self._held = hold_port(self._host, port)
        self._paused_port = port

    def resume(self) -> LocalBackend:
        """Serve the API again on the port it had before :meth:`pause`."""
        if self._paused_port is None or self._held is None:
            raise RuntimeError("The backend is not paused")
        held, self._held = self._held, None
        try:
            held.listen()
            self._serve_api(self._paused_port, held)
        finally:
            held.close()  # the server serves on its own duplicate of the socket
        self._paused_port = None
        return self

    def _serve_api(self, port: int, sock: socket.socket | None = None) -> None:
        self._server = ServerThread(self._host, port, create_app(self.state), "local-openeo-backend", sock)

    def _close_api(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> LocalBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (``python -m xr_openeo.testing``)."""
        self.start()
        try:
            while self._server is not None and self._server.is_alive():
                self._server.join(0.5)
        finally:
            self.stop()

    # -- addresses and clients -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None and self._paused_port is not None:
            return self._paused_port
        if self._server is None:
            raise RuntimeError("The backend is not running: use `with LocalBackend() as backend:` or call start()")
        return self._server.port

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
