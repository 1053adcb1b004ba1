"""Running the pieces of a split: the openeo client's ``MultiBackendJobManager``, resumable and retried.

The client's manager does the running: it creates and starts at most ``parallel_jobs`` jobs at a
time from the job database's rows, polls them, and writes their status back to the database after
every step (``download_results=False``: results are read where they are). This module adds what a
split run needs around it:

- **Retries**: a failed (or canceled) job of a piece is retried with a new job, at most
  ``retries`` times per run; its id, error logs and count stay in the row (``failed_jobs``,
  ``error``, ``failures``).
- **Resuming**: before running, rows the client cannot pick up again are set right: a job created
  but never started (the run was interrupted in between) is started, jobs that failed in an
  earlier run get a fresh set of retries, and a piece whose job could not be started is retried.
  Rows whose jobs are queued or running are polled again (re-attached); finished ones are left.
- **Progress and timeout**: every write of the database updates one display for the whole run,
  and ends it with :class:`~xr_openeo.errors.JobTimeoutError` after ``timeout`` seconds.
- **Interrupts**: Ctrl-C stops the run and leaves its jobs running on the backend; running the
  same call again re-attaches to them.
- **The user's connection stays as it was**: the client's manager mounts retrying adapters on the
  session of the connection it is given, so it gets a copy with a session of its own.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from openeo.extra.job_management import MultiBackendJobManager

from ..errors import JobNotFoundError, JobTimeoutError, XrOpenEOError
from .client_errors import CLIENT_ERRORS, backend_error, describe_error
from .handles import batch_job
from .jobdb import ACTIVE, NOT_STARTED, JobDb, row_graph, row_options, row_piece
from .run_progress import Counts, RunDisplay, make_run_display
from .split import Piece, options_for
from .status import clause, fmt_elapsed, truncate

logger = logging.getLogger("xr_openeo.jobs")

BACKEND = "backend"
FAILED = ("error", "canceled")


class _PieceManager(MultiBackendJobManager):
    """The client's manager, with retries of failed pieces and the size of finished pieces' results."""

    def __init__(
        self,
        db: JobDb,
        *,
        retries: int,
        poll_interval: float,
        dynamic_options: Callable[[Piece], Any] | None,
    ) -> None:
        super().__init__(poll_sleep=poll_interval, root_dir=None, download_results=False)  # type: ignore[arg-type]
        self.db, self.retries, self.dynamic_options = db, retries, dynamic_options
        self.failures_this_run: dict[str, int] = {}

    def _job_update_loop(self, *args: Any, **kwargs: Any) -> None:
        super()._job_update_loop(*args, **kwargs)
        # The client's run_jobs sleeps poll_sleep after every update, the last one too: with nothing
        # left to wait for, that sleep would only delay the results (10 s by default).
        pool = getattr(self, "_worker_pool", None)
        busy = pool is not None and pool.has_unprocessed_tasks()
        if not busy and not _left_to_run(self.db):
            self.poll_sleep = 0

    # -- the client's hooks --

    def start_job(self, row: Any, connection: Any, **kwargs: Any) -> Any:
        """Create the job of ``row``'s piece (the manager starts it)."""
        piece = row_piece(row)
        options = options_for(piece, row_options(row), self.dynamic_options)
        try:
            job = connection.create_job(
                process_graph={"process_graph": row_graph(row)},
                title=row.get("title"),
                description=row.get("description"),
                job_options=options,
            )
        except CLIENT_ERRORS as exc:
            raise backend_error(exc, f"create the batch job of piece {piece.name!r}") from exc
        logger.info("Created batch job %r for piece %r", job.job_id, piece.name)
        return job

    def on_job_done(self, job: Any, row: Any) -> None:
        try:
            size = results_bytes(job.connection, str(job.job_id))
        except XrOpenEOError as exc:  # the size is for the display; reading the results will say what is wrong
            logger.warning("Could not read the results document of batch job %r: %s", job.job_id, exc)
            return
        if size is not None:
            self.db.set(row.name, results_bytes=float(size))

    def on_job_error(self, job: Any, row: Any) -> None:
        self.failed(row.name, str(job.job_id), _error_text(job, "failed"))

    def on_job_cancel(self, job: Any, row: Any) -> None:
        self.failed(row.name, str(job.job_id), "it was canceled")

    def _refresh_bearer_token(self, connection: Any, *, max_age: float = 60) -> None:
        # The client tries this before every start and warns when it cannot (basic auth, a plain bearer
        # token): only a connection with an OIDC renewer can refresh, so only it is asked.
        if getattr(connection, "_oidc_auth_renewer", None) is not None:
            super()._refresh_bearer_token(connection, max_age=max_age)

    # -- failures --

    def failed(self, index: Any, job_id: str | None, why: str) -> None:
        """Count a failed job of row ``index``; the piece is queued again while retries are left."""
        row = self.db.df.loc[index]
        piece = str(row["piece"])
        count = self.failures_this_run.get(piece, 0) + 1
        self.failures_this_run[piece] = count
        ids = [i for i in str(row.get("failed_jobs") or "").split(";") if i]
        if job_id and job_id not in ids:
            ids.append(job_id)
        error = f"job {job_id}: {why}" if job_id else why
        fields: dict[str, Any] = {"failures": int(row.get("failures") or 0) + 1, "failed_jobs": ";".join(ids) or None}
        if count <= self.retries:
            logger.warning("Piece %r failed (%s); retrying it (retry %d of %d)", piece, error, count, self.retries)
            fields.update(status="not_started", id=None, error=error)
        else:
            logger.warning("Piece %r failed (%s) after %d retries; giving up on it", piece, error, self.retries)
            fields.update(status="error", error=error)
        self.db.set(index, **fields)

    def shutdown(self) -> None:
        pool = getattr(self, "_worker_pool", None)  # the client leaves it running when run_jobs raises
        if pool is not None:
            pool.shutdown()
            self._worker_pool = None


def _error_text(job: Any, what: str) -> str:
    try:
        entries = [e for e in job.logs(level="error") if isinstance(e, Mapping)]
    except Exception as exc:  # the failure matters more than its logs
        return f"it {what} (its error logs could not be read: {describe_error(exc)})"
    messages = [clause(truncate(str(e.get("message", "")).strip(), 300)) or "(no message)" for e in entries[:3]]
    more = f" (and {len(entries) - 3} more)" if len(entries) > 3 else ""
    return "; ".join(messages) + more if messages else f"it {what} (the backend logged no error message)"


def results_bytes(connection: Any, job_id: str) -> int | None:
    """The bytes of a finished job's results, from the ``file:size`` of its assets (None when none says)."""
    from ..http import Auth, get_json

    auth = Auth.from_connection(connection)
    doc = get_json(f"{auth.root}/jobs/{job_id}/results", auth, what="results document")
    assets = [doc.get("assets")] if isinstance(doc, Mapping) else []
    if isinstance(doc, Mapping) and not doc.get("assets"):
        for link in doc.get("links") or []:
            if isinstance(link, Mapping) and link.get("rel") == "item" and isinstance(link.get("href"), str):
                item = get_json(link["href"], auth, what="item document")
                assets.append(item.get("assets") if isinstance(item, Mapping) else None)
    sizes: list[int] = [
        int(a["file:size"])
        for group in assets
        if isinstance(group, Mapping)
        for a in group.values()
        if isinstance(a, Mapping) and isinstance(a.get("file:size"), int)
    ]
    return sum(sizes) if sizes else None


def own_connection(connection: Any) -> Any:
    """A copy of ``connection`` with a session of its own (same headers, auth, proxies and TLS settings)."""
    import requests

    clone = copy.copy(connection)
    old = getattr(connection, "session", None)
    session = requests.Session()
    if old is not None:
        session.headers.update(old.headers)
        session.auth = old.auth
        session.proxies.update(old.proxies)
        session.verify = old.verify
        session.cert = old.cert
        session.trust_env = old.trust_env
    clone.session = session
    return clone


class _Progress:
    """Listens to the database: updates the display, and ends the run when its time is up."""

    def __init__(self, display: RunDisplay, clock: Callable[[], float], timeout: float | None, name: str) -> None:
        self.display, self.clock, self.timeout, self.name = display, clock, timeout, name
        self.t0 = clock()

    def __call__(self, df: Any) -> None:
        elapsed = self.clock() - self.t0
        self.display.update(Counts.of(df), elapsed)
        if self.timeout is not None and elapsed >= self.timeout:
            counts = Counts.of(df)
            raise JobTimeoutError(
                f"Gave up waiting for split run {self.name!r} after {fmt_elapsed(elapsed)} (timeout="
                f"{self.timeout:g} s): {counts.summary()}. Its jobs keep running on the backend; run the same call "
                "again to re-attach to them (the job database records them).",
                status="running",
            )


def run_pieces(
    db: JobDb,
    connection: Any,
    *,
    parallel_jobs: int,
    retries: int,
    poll_interval: float,
    progress: bool | str = True,
    timeout: float | None = None,
    job_options: Callable[[Piece], Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run every piece of ``db`` that has not finished, until each finished or failed ``retries`` + 1 times.

    Parameters
    ----------
    db
        The job database (:func:`xr_openeo.jobs.jobdb.create_or_resume`).
    connection
        An authenticated ``openeo.Connection`` (it is not changed: the run uses a copy).
    parallel_jobs
        Jobs created, queued or running at once, at most.
    retries
        New jobs a failing piece gets in this run, after its first.
    poll_interval
        Seconds between two rounds of status requests.
    progress, timeout
        The display (as for one job) and seconds before :class:`~xr_openeo.errors.JobTimeoutError`.
    job_options
        A callable of the :class:`~xr_openeo.jobs.split.Piece` (with its ``failures``) whose dict
        updates the job options of each new job (more memory on a retry, say).
    clock
        Time source of the display and the timeout.

    Notes
    -----
    On ``KeyboardInterrupt`` the run stops and its jobs keep running on the backend; the database
    records them, so that running again re-attaches to them. Pieces that failed for good keep
    status ``error`` with their error in the ``error`` column.
    """
    if not (isinstance(parallel_jobs, int) and parallel_jobs >= 1):
        raise ValueError(f"parallel_jobs must be an integer >= 1, got {parallel_jobs!r}")
    manager = _PieceManager(db, retries=retries, poll_interval=poll_interval, dynamic_options=job_options)
    manager.add_backend(BACKEND, connection=own_connection(connection), parallel_jobs=parallel_jobs)
    name = db.path.name
    display = make_run_display(progress, name, len(db.df))
    listener = _Progress(display, clock, timeout, name)
    db.listeners.append(listener)
    try:
        first = True
        while _prepare(db, manager, connection, first):
            first = False
            manager.run_jobs(job_db=db, start_job=manager.start_job)  # type: ignore[arg-type]
        listener(db.df)
    except KeyboardInterrupt:
        active = int(db.df["status"].isin(ACTIVE).sum())
        logger.warning(
            "Interrupted: %d job(s) of split run %r keep running on the backend. Run the same call again to re-attach "
            "to them and submit only the pieces still missing (the job database %s records them).",
            active,
            name,
            db.path,
        )
        raise
    finally:
        db.listeners.remove(listener)
        display.close()
        manager.shutdown()


def _prepare(db: JobDb, manager: _PieceManager, connection: Any, first: bool) -> bool:
    """Set right the rows the client's manager would not pick up again; True when something is left to run."""
    df = db.df
    for index in list(df.index):
        row = df.loc[index]
        status, job_id = row.get("status") or "not_started", row.get("id")
        if job_id and row.get("backend_name") != BACKEND:  # the manager polls a job on the backend its row names
            db.set(index, backend_name=BACKEND)
        if status in FAILED and first:  # a new run: a fresh set of retries
            retired = [i for i in str(row.get("failed_jobs") or "").split(";") if i]
            if job_id and job_id not in retired:
                retired.append(str(job_id))
            db.set(index, status="not_started", id=None, failed_jobs=";".join(retired) or None)
        elif status in NOT_STARTED:
            manager.failed(index, job_id, "the backend did not start it")
        elif status in ACTIVE and not job_id:
            db.set(index, status="not_started")
        elif status in ("created", "queued_for_start") and job_id:
            _start_if_created(db, manager, connection, index, str(job_id))
    return _left_to_run(db)


def _left_to_run(db: JobDb) -> bool:
    """Whether a piece waits to be submitted or has a job on its way."""
    return bool(db.df["status"].isin(("not_started", *ACTIVE)).any())


def _start_if_created(db: JobDb, manager: _PieceManager, connection: Any, index: Any, job_id: str) -> None:
    """A job created but perhaps never started (a run interrupted in between): start it if so."""
    job = batch_job(connection, job_id)
    try:
        if job.status() == "created":
            job.start()
    except JobNotFoundError:
        db.set(index, status="not_started", id=None)  # deleted meanwhile: the piece gets a new job
        return
    except XrOpenEOError as exc:
        logger.warning("Could not check batch job %r of a split run (%s); polling it again", job_id, exc)
        return
    db.set(index, status="queued")  # started: the manager polls it from here (and sees it finish, if it has)
