"""What a user sees while a split run goes: one display for all its jobs, as :mod:`.progress` shows one job.

``progress=True`` picks the display as for one job (:func:`~xr_openeo.jobs.progress.display_kind`):
a tqdm bar of pieces done in a terminal, the same as a widget in Jupyter, and plain lines on
stderr otherwise; ``"log"`` sends the lines to ``logging`` (logger ``xr_openeo.jobs``, INFO). A line
says how many pieces are done, running, queued on the backend, still to submit and failed, how
many jobs were retried, the bytes of results so far and the elapsed time; the line displays write
one per change and one at least every :data:`~xr_openeo.jobs.progress.HEARTBEAT` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .progress import HEARTBEAT, _to_log, _to_stderr, display_kind, make_bar
from .status import fmt_elapsed


@dataclass(frozen=True)
class Counts:
    """Pieces of a split run by state, retried jobs and the bytes of results written so far."""

    total: int
    done: int = 0
    running: int = 0
    queued: int = 0
    waiting: int = 0
    failed: int = 0
    retried: int = 0
    results_bytes: int = 0

    @classmethod
    def of(cls, df: Any) -> Counts:
        """The counts of a job database's rows (see :mod:`xr_openeo.jobs.jobdb`)."""
        import pandas as pd

        status: Any = df["status"].fillna("not_started") if "status" in df.columns else pd.Series([], dtype=object)
        sizes: Any = df["results_bytes"] if "results_bytes" in df.columns else None
        return cls(
            total=len(df),
            done=int((status == "finished").sum()),
            running=int((status == "running").sum()),
            queued=int(status.isin(["created", "queued_for_start", "queued"]).sum()),
            waiting=int(status.isin(["not_started", "start_failed", "queued_for_start_failed", "skipped"]).sum()),
            failed=int(status.isin(["error", "canceled"]).sum()),
            retried=_retried(df, status),
            results_bytes=int(sizes.fillna(0).sum()) if sizes is not None else 0,
        )

    def summary(self) -> str:
        retried = f" ({self.retried} job{'s' if self.retried != 1 else ''} retried)" if self.retried else ""
        return (
            f"{self.done} done, {self.running} running, {self.queued} queued, {self.waiting} to submit, "
            f"{self.failed} failed{retried}; {fmt_bytes(self.results_bytes)} of results"
        )


def _retried(df: Any, status: Any) -> int:
    """Failed jobs that got a new job: every failure, but the last of a piece that failed for good."""
    if "failures" not in df.columns:
        return 0
    failures = df["failures"].fillna(0).astype(int)
    given_up = (status.isin(["error", "canceled"]) & (failures > 0)).sum()
    return int(failures.sum() - given_up)


def fmt_bytes(n: int) -> str:
    """``12.3 MB`` (powers of 1000, as file sizes are usually shown)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def run_line(name: str, counts: Counts, elapsed: float, still: bool = False) -> str:
    """``Split run 'jobs.csv' (16 pieces): 5 done, 4 running, … after 0:01:05`` (``still:`` for a heartbeat)."""
    head = f"Split run {name!r} ({counts.total} pieces):{' still' if still else ''}"
    return f"{head} {counts.summary()} after {fmt_elapsed(elapsed)}"


class RunDisplay:
    """Shows a split run's progress; this base shows nothing."""

    def update(self, counts: Counts, elapsed: float) -> None:
        pass

    def close(self) -> None:
        pass


class RunLines(RunDisplay):
    """One line per change of the counts, and one at least every ``heartbeat`` seconds (on the next update)."""

    def __init__(self, name: str, emit: Callable[[str], None], heartbeat: float = HEARTBEAT) -> None:
        if not heartbeat > 0:
            raise ValueError(f"heartbeat must be > 0 seconds, got {heartbeat!r}")
        self.name, self.emit, self.heartbeat = name, emit, heartbeat
        self._shown: Counts | None = None
        self._line_at = 0.0
        self._last: tuple[Counts, float] | None = None

    def update(self, counts: Counts, elapsed: float) -> None:
        # The bytes alone (pieces finishing one by one) need no line of their own: the next one shows them.
        self._last = (counts, elapsed)
        changed = self._shown is None or replace(counts, results_bytes=0) != replace(self._shown, results_bytes=0)
        if changed or elapsed >= self._line_at + self.heartbeat:
            self.emit(run_line(self.name, counts, elapsed, still=not changed))
            self._shown, self._line_at = counts, elapsed

    def close(self) -> None:
        # The last pieces' result sizes arrive after their status line: the run's last line shows them.
        if self._last is not None and self._last[0] != self._shown:
            counts, elapsed = self._last
            self.emit(run_line(self.name, counts, elapsed))
            self._shown = counts


class RunBar(RunDisplay):
    """A tqdm bar (or Jupyter widget) of pieces done, with the other counts after it."""

    def __init__(self, name: str, total: int, notebook: bool) -> None:
        kwargs: dict[str, Any] = {
            "total": total,
            "desc": f"Split run {name}",
            "unit": "piece",
            "bar_format": "{desc}: {n_fmt}/{total_fmt}|{bar}| [{elapsed}] {postfix}",
            "leave": True,
        }
        self.bar = make_bar(kwargs, notebook)

    def update(self, counts: Counts, elapsed: float) -> None:
        self.bar.total = counts.total
        self.bar.n = counts.done
        self.bar.set_postfix_str(counts.summary(), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def make_run_display(progress: bool | str | None, name: str, total: int, heartbeat: float = HEARTBEAT) -> RunDisplay:
    """The display a ``progress=`` argument asks for (as :func:`~xr_openeo.jobs.progress.make_display`)."""
    kind = display_kind(progress)
    if kind == "text":
        return RunLines(name, _to_stderr, heartbeat)
    if kind == "log":
        return RunLines(name, _to_log, heartbeat)
    if kind in ("bar", "notebook"):
        return RunBar(name, total, notebook=kind == "notebook")
    return RunDisplay()
