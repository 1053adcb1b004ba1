"""Jobs of the local backend: batch jobs' state, lifecycle and threads, and synchronous runs with a time limit."""

from __future__ import annotations

import itertools
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .assets import WrittenAsset
from .clock import Clock, wait_until
from .collections import SyntheticCollection
from .execution import Canceled, InjectedFailure, execute_graph
from .faults import Faults
from .stac import STYLES, JobSummary

LEVELS = ("debug", "info", "warning", "error")
ACTIVE = ("queued", "running")


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


JobCanceled = Canceled  # the name this module used before the run moved to execution.py


class SyncTimeout(Exception):
    """A synchronous run did not finish within its time limit (``Faults.sync_time_limit``)."""


@dataclass
class Job:
    """One batch job. Fields change under ``JobStore.lock`` only."""

    id: str
    owner: str
    process: dict[str, Any]
    title: str | None
    description: str | None
    job_options: dict[str, Any]
    faults: Faults
    style: str
    out_dir: Path
    created: float = 0.0  # seconds since the epoch, by the store's clock
    updated: float = 0.0
    status: str = "created"
    progress: float = 0.0
    assets: list[WrittenAsset] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    run: int = 0  # bumped on every start, so a stale thread cannot touch a restarted job
    cancel: threading.Event = field(default_factory=threading.Event)

    def summary(self) -> JobSummary:
        return JobSummary(
            id=self.id,
            title=self.title,
            description=self.description,
            process=self.process,
            status=self.status,
            created=rfc3339(self.created),
            updated=rfc3339(self.updated),
            owner=self.owner,
        )

    def metadata(self, full: bool = True) -> dict[str, Any]:
        """The job as ``GET /jobs/{id}`` (full) or an entry of ``GET /jobs`` describes it."""
        doc: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "status": self.status,
            "progress": round(self.progress, 1),
            "created": rfc3339(self.created),
            "updated": rfc3339(self.updated),
        }
        if full:
            doc["process"] = self.process
            doc["job_options"] = self.job_options  # as openeo-python-driver's job registry keeps them
        return doc

    def last_error(self) -> dict[str, Any] | None:
        errors = [e for e in self.logs if e["level"] == "error"]
        return errors[-1] if errors else None


class JobStore:
    """All jobs of one backend, and the threads running them (batch jobs and synchronous requests).

    ``clock`` (default :func:`time.time`) stamps jobs and log entries and times the queue and run
    durations of the fault switches and the limit of synchronous runs.
    """

    def __init__(
        self,
        root: Path,
        collections: Sequence[SyntheticCollection],
        faults: Callable[[], Faults],
        default_style: str,
        blocksize: int,
        clock: Clock = time.time,
    ) -> None:
        self.root = root
        self.collections = list(collections)
        self._faults = faults
        self.default_style = default_style
        self.blocksize = blocksize
        self.clock = clock
        self.lock = threading.RLock()
        self.jobs: dict[str, Job] = {}
        self._threads: list[threading.Thread] = []
        self._sync_stops: set[threading.Event] = set()
        self._log_ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------------

    def create(self, owner: str, body: dict[str, Any]) -> Job:
        process = body.get("process")
        if not isinstance(process, dict) or not isinstance(process.get("process_graph"), dict):
            raise ValueError("The request body needs 'process' with a 'process_graph' object")
        options = body.get("job_options") or {}
        if not isinstance(options, dict):
            raise ValueError(f"'job_options' must be an object, got {options!r}")
        job_id = f"j-{uuid.uuid4().hex[:16]}"
        job = Job(
            id=job_id,
            owner=owner,
            process=process,
            title=body.get("title"),
            description=body.get("description"),
            job_options=options,
            faults=self._faults().merged(options.get("faults")),
            style=style_option(options, self.default_style),
            out_dir=self.root / job_id,
            created=self.clock(),
            updated=self.clock(),
        )
        with self.lock:
            self.jobs[job_id] = job
        self.log(job, "info", "Job created")
        return job

    def start(self, job: Job) -> None:
        """Queue ``job`` if it is created or canceled; otherwise nothing happens (as openeo-python-driver)."""
        with self.lock:
            if job.status not in ("created", "canceled"):
                return
            job.run += 1
            job.cancel = threading.Event()
            job.assets = []
            job.progress = 0.0
            self._set(job, "queued")
            run, queued_at = job.run, job.updated
        shutil.rmtree(job.out_dir, ignore_errors=True)
        self.log(job, "info", "Job queued")
        self._spawn(self._run, (job, run, queued_at), f"local-backend-{job.id}")

    def cancel(self, job: Job) -> None:
        """Stop a queued or running job: it ends ``canceled``; its assets written so far stay."""
        with self.lock:
            if job.status not in ACTIVE:
                return
            job.cancel.set()
            self._set(job, "canceled")
        self.log(job, "info", "Cancel requested: job canceled")

    def delete(self, job: Job) -> None:
        self.cancel(job)
        with self.lock:
            self.jobs.pop(job.id, None)
        shutil.rmtree(job.out_dir, ignore_errors=True)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Stop every job and synchronous run and join their threads (so no thread writes into a deleted folder)."""
        with self.lock:
            for job in self.jobs.values():
                job.cancel.set()
            for stop in self._sync_stops:
                stop.set()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # -- synchronous runs ------------------------------------------------------------------------

    def run_sync(
        self, process_graph: dict[str, Any], *, job_options: dict[str, Any], faults: Faults, out_dir: Path
    ) -> list[WrittenAsset]:
        """Run a synchronous request's graph into ``out_dir`` as a batch job would, within the time limit.

        The graph runs in a thread of its own (as a job's does) for at least ``faults.run_duration``
        seconds, while the calling request waits at most ``faults.sync_time_limit`` seconds of the
        store's clock. A run that has not finished within the limit is abandoned: it stops at its
        next file and removes ``out_dir`` itself.

        Raises
        ------
        SyncTimeout
            The run did not finish within ``faults.sync_time_limit`` (a limit of 0 always strikes).
        InjectedFailure
            The ``fail`` switch; any other exception is the graph's own failure, re-raised here.
        """
        stop, done = threading.Event(), threading.Event()
        outcome: dict[str, Any] = {}
        started = self.clock()

        def checkpoint() -> None:
            if stop.is_set():
                raise Canceled

        def work() -> None:
            try:
                assets = execute_graph(
                    process_graph,
                    collections=self.collections,
                    out_dir=out_dir,
                    job_options=job_options,
                    faults=faults,
                    blocksize=self.blocksize,
                    log=lambda level, message: None,
                    checkpoint=checkpoint,
                )
                if wait_until(self.clock, started + faults.run_duration, stop):
                    raise Canceled
                outcome["assets"] = assets
            except BaseException as exc:  # handed over to the waiting request
                outcome["error"] = exc
            finally:
                outcome["finished"] = self.clock()
                done.set()
                if stop.is_set():  # the request gave up on this run (or the backend stops): nobody reads it
                    shutil.rmtree(out_dir, ignore_errors=True)
                with self.lock:
                    self._sync_stops.discard(stop)

        with self.lock:
            self._sync_stops.add(stop)
        self._spawn(work, (), f"local-backend-sync-{out_dir.name}")
        limit = faults.sync_time_limit
        wait_until(self.clock, None if limit is None else started + limit, done)
        if limit is not None and (not done.is_set() or outcome["finished"] - started >= limit):
            stop.set()
            if done.is_set():
                shutil.rmtree(out_dir, ignore_errors=True)
            raise SyncTimeout(f"The synchronous request did not finish within its limit of {limit:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["assets"]

    # -- logs ------------------------------------------------------------------------------------

    def log(self, job: Job, level: str, message: str, **extra: Any) -> None:
        entry = {"id": str(next(self._log_ids)), "level": level, "message": message, "time": rfc3339(self.clock())}
        entry.update(extra)
        with self.lock:
            job.logs.append(entry)

    def logs(self, job: Job, offset: str | None, level: str | None, limit: int | None) -> list[dict[str, Any]]:
        if level is not None and level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        minimum = LEVELS.index(level or "debug")
        with self.lock:
            entries = list(job.logs)
        if offset is not None:
            ids = [e["id"] for e in entries]
            entries = entries[ids.index(offset) + 1 :] if offset in ids else entries
        entries = [e for e in entries if LEVELS.index(e["level"]) >= minimum]
        return entries[:limit] if limit else entries

    # -- the job's thread ------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self.lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _set(self, job: Job, status: str) -> None:
        job.status = status
        job.updated = self.clock()
        if status == "finished":
            job.progress = 100.0

    def _checkpoint(self, job: Job, run: int) -> None:
        if job.cancel.is_set() or job.run != run:
            raise JobCanceled

    def _sleep_until(self, job: Job, run: int, deadline: float) -> None:
        if wait_until(self.clock, deadline, job.cancel):
            raise JobCanceled
        self._checkpoint(job, run)

    def _run(self, job: Job, run: int, queued_at: float) -> None:
        faults = job.faults
        try:
            self._sleep_until(job, run, queued_at + faults.queue_duration)
            with self.lock:
                self._checkpoint(job, run)
                self._set(job, "running")
                running_at = job.updated
            self.log(job, "info", "Job started")
            staged = execute_graph(
                job.process["process_graph"],
                collections=self.collections,
                out_dir=job.out_dir,
                job_options=job.job_options,
                faults=faults,
                blocksize=self.blocksize,
                log=lambda level, message: self.log(job, level, message),
                checkpoint=lambda: self._checkpoint(job, run),
                on_failure=lambda written: self._publish(job, run, written, running_at, 0.0),
            )
            self._publish(job, run, staged, running_at, faults.run_duration)
            with self.lock:
                self._checkpoint(job, run)
                self._set(job, "finished")
            self.log(job, "info", f"Job finished: {len(staged)} asset(s)")
        except JobCanceled:
            pass
        except Exception as exc:  # the job's own failure, reported through its status and logs
            if isinstance(exc, InjectedFailure):
                entry: dict[str, Any] = {"message": str(exc), "code": "JobFailed"}
            else:
                entry = {
                    "message": f"{type(exc).__name__}: {exc}",
                    "code": "Internal",
                    "data": {"traceback": traceback.format_exc(limit=5)},
                }
            with self.lock:  # the error log entry exists before anyone can see the status "error"
                if job.run != run or job.status == "canceled":
                    return
                self.log(job, "error", **entry)
                self._set(job, "error")

    def _publish(self, job: Job, run: int, staged: list[WrittenAsset], since: float, duration: float) -> None:
        """Make staged assets visible one by one over the ``duration`` seconds from ``since``, moving progress along.

        File ``i`` of ``n`` appears at ``since + duration * i / n`` (or once written, if later); the job
        is done at ``since + duration``.
        """
        n = len(staged)
        for i, asset in enumerate(staged):
            if i and duration:
                self._sleep_until(job, run, since + duration * i / n)
            with self.lock:
                self._checkpoint(job, run)
                if asset not in job.assets:
                    job.assets.append(asset)
                job.progress = 100.0 * (i + 1) / (n + 1)
                job.updated = self.clock()
        if duration:
            self._sleep_until(job, run, since + duration)


def style_option(options: dict[str, Any], default: str) -> str:
    """The results-document style that job options ``results-style`` / ``stac-version`` choose, else ``default``."""
    style = options.get("results-style")
    if style is None and "stac-version" in options:
        style = {"1.0": "stac-1.0", "1.1": "stac-1.1"}.get(str(options["stac-version"]))
        if style is None:
            raise ValueError(f"job option 'stac-version' must be '1.0' or '1.1', got {options['stac-version']!r}")
    style = style or default
    if style not in STYLES:
        raise ValueError(f"job option 'results-style' must be one of {STYLES}, got {style!r}")
    return style
