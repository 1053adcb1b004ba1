"""Batch jobs of the local backend: state, lifecycle and the thread that runs each one."""

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

import numpy as np

from .assets import WrittenAsset
from .collections import SyntheticCollection
from .faults import Faults
from .processes import run_graph
from .stac import STYLES, JobSummary

LEVELS = ("debug", "info", "warning", "error")
ACTIVE = ("queued", "running")


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class JobCanceled(Exception):
    """Raised inside a job's thread when the job was canceled."""


class InjectedFailure(Exception):
    """The failure a job was told to have (fault switch ``fail``)."""


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
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
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
        return doc

    def last_error(self) -> dict[str, Any] | None:
        errors = [e for e in self.logs if e["level"] == "error"]
        return errors[-1] if errors else None


class JobStore:
    """All jobs of one backend, and the threads running them."""

    def __init__(
        self,
        root: Path,
        collections: Sequence[SyntheticCollection],
        faults: Callable[[], Faults],
        default_style: str,
        blocksize: int,
    ) -> None:
        self.root = root
        self.collections = list(collections)
        self._faults = faults
        self.default_style = default_style
        self.blocksize = blocksize
        self.lock = threading.RLock()
        self.jobs: dict[str, Job] = {}
        self._threads: list[threading.Thread] = []
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
            style=_style(options, self.default_style),
            out_dir=self.root / job_id,
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
            run = job.run
        shutil.rmtree(job.out_dir, ignore_errors=True)
        self.log(job, "info", "Job queued")
        thread = threading.Thread(target=self._run, args=(job, run), name=f"local-backend-{job.id}", daemon=True)
        with self.lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

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
        """Join the job threads (used on shutdown so no thread writes into a deleted folder)."""
        with self.lock:
            for job in self.jobs.values():
                job.cancel.set()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # -- logs ------------------------------------------------------------------------------------

    def log(self, job: Job, level: str, message: str, **extra: Any) -> None:
        entry = {"id": str(next(self._log_ids)), "level": level, "message": message, "time": rfc3339(time.time())}
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

    def _set(self, job: Job, status: str) -> None:
        job.status = status
        job.updated = time.time()
        if status == "finished":
            job.progress = 100.0

    def _checkpoint(self, job: Job, run: int) -> None:
        if job.cancel.is_set() or job.run != run:
            raise JobCanceled

    def _sleep(self, job: Job, run: int, seconds: float) -> None:
        if seconds > 0 and job.cancel.wait(seconds):
            raise JobCanceled
        self._checkpoint(job, run)

    def _run(self, job: Job, run: int) -> None:
        faults = job.faults
        try:
            self._sleep(job, run, faults.queue_duration)
            with self.lock:
                self._checkpoint(job, run)
                self._set(job, "running")
            self.log(job, "info", "Job started")
            staged: list[WrittenAsset] = []

            def save(data, format, options, *, crs_epsg, nodata):
                from .writers import save_result

                def on_asset(asset: WrittenAsset) -> None:
                    self._checkpoint(job, run)
                    staged.append(asset)
                    if faults.fail is not None and len(staged) >= max(faults.fail_after_assets, 1):
                        self._publish(job, run, staged[: faults.fail_after_assets], 0.0)
                        raise InjectedFailure(faults.fail)

                job.out_dir.mkdir(parents=True, exist_ok=True)
                self.log(job, "info", f"save_result: format {format}")
                save_result(
                    data,
                    format,
                    options,
                    job.out_dir,
                    crs_epsg=crs_epsg,
                    nodata=nodata,
                    blocksize=self.blocksize,
                    on_asset=on_asset,
                    job_options=job.job_options,
                )

            if faults.fail is not None and faults.fail_after_assets == 0:
                raise InjectedFailure(faults.fail)
            # Floating-point warnings (0/0 on nodata pixels) are a job's business, not the host process's:
            # without this, a test session running with -W error would fail every NDVI job.
            # dask runs its threaded tasks in a copy of this context, so the setting reaches every task.
            with np.errstate(all="ignore"):
                run_graph(
                    job.process["process_graph"], self.collections, save, lambda lvl, msg: self.log(job, lvl, msg)
                )
            self._publish(job, run, staged, faults.run_duration)
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

    def _publish(self, job: Job, run: int, staged: list[WrittenAsset], duration: float) -> None:
        """Make staged assets visible one by one over ``duration`` seconds, moving progress along."""
        n = len(staged)
        for i, asset in enumerate(staged):
            if i and duration:
                self._sleep(job, run, duration / n)
            with self.lock:
                self._checkpoint(job, run)
                if asset not in job.assets:
                    job.assets.append(asset)
                job.progress = 100.0 * (i + 1) / (n + 1)
                job.updated = time.time()
        if duration and n:
            self._sleep(job, run, duration / n)
        elif duration:
            self._sleep(job, run, duration)


def _style(options: dict[str, Any], default: str) -> str:
    style = options.get("results-style")
    if style is None and "stac-version" in options:
        style = {"1.0": "stac-1.0", "1.1": "stac-1.1"}.get(str(options["stac-version"]))
        if style is None:
            raise ValueError(f"job option 'stac-version' must be '1.0' or '1.1', got {options['stac-version']!r}")
    style = style or default
    if style not in STYLES:
        raise ValueError(f"job option 'results-style' must be one of {STYLES}, got {style!r}")
    return style
