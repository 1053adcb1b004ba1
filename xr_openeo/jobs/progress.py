"""What a user sees while a job runs: a tqdm bar on a terminal, a widget in Jupyter, plain lines otherwise.

``progress=True`` picks the display from where the process runs: a Jupyter kernel gets the widget, a
terminal on stderr the bar, and anything else (``python job.py > log 2>&1``, nohup, CI, cron) plain
status lines on stderr, which need no logging set-up. ``progress="log"`` sends the same lines to
``logging`` only (logger ``xr_openeo.jobs``, level INFO). The line displays write one line per change
of status or progress, and a line at least every :data:`HEARTBEAT` seconds while nothing changes, so
that a long job never looks hung.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from typing import Any

from .status import fmt_elapsed, fmt_progress

logger = logging.getLogger("xr_openeo.jobs")

#: Longest silence, in seconds, of the line displays while a job's status and progress stay the same.
HEARTBEAT = 60.0
#: The values ``progress=`` takes besides True and False.
KINDS = ("auto", "bar", "notebook", "text", "log", "none")


def in_jupyter() -> bool:
    """True inside a Jupyter (IPython) kernel; never imports IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    if shell is None:
        return False
    return type(shell).__name__ == "ZMQInteractiveShell" or "IPKernelApp" in (getattr(shell, "config", None) or {})


def stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr and sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def display_kind(progress: bool | str | None) -> str:
    """``none``, ``log``, ``text``, ``bar`` or ``notebook`` for a ``progress=`` argument."""
    if progress is False or progress is None:
        return "none"
    if progress is True or progress == "auto":
        if in_jupyter():
            return "notebook"
        return "bar" if stderr_is_terminal() else "text"
    if progress in KINDS:
        return str(progress)
    raise ValueError(
        f"progress must be True, False, 'auto', 'bar', 'notebook', 'text', 'log' or 'none', got {progress!r}"
    )


class Display:
    """Shows a job's status; this base shows nothing.

    The waiter calls :meth:`update` after each answered poll, and :meth:`tick` when it wakes up
    between polls, which it does at the latest :meth:`wake_in` seconds after asking (None: no need).
    """

    def update(self, status: str, progress: Any, elapsed: float) -> None:
        pass

    def wake_in(self, elapsed: float) -> float | None:
        return None

    def tick(self, elapsed: float) -> None:
        pass

    def close(self) -> None:
        pass


def status_line(job_id: str, status: str, progress: str, elapsed: float, still: bool = False) -> str:
    """``Batch job 'j-1': running (progress 40%) after 0:01:05`` (``still running`` for a heartbeat)."""
    now = f"still {status}" if still else status
    return f"Batch job {job_id!r}: {now} (progress {progress}) after {fmt_elapsed(elapsed)}"


class LineDisplay(Display):
    """One line per change of status or progress, and one at least every ``heartbeat`` seconds.

    Parameters
    ----------
    job_id
        The job, named in every line.
    emit
        Where a line goes (a function of the line).
    heartbeat
        Longest time between two lines, in seconds of the waiter's clock.
    """

    #: Slack of the heartbeat for clocks that wake up a hair early.
    _EARLY = 1e-3

    def __init__(self, job_id: str, emit: Callable[[str], None], heartbeat: float = HEARTBEAT) -> None:
        if not heartbeat > 0:
            raise ValueError(f"heartbeat must be > 0 seconds, got {heartbeat!r}")
        self.job_id, self.emit, self.heartbeat = job_id, emit, heartbeat
        self._shown: tuple[str, str] | None = None
        self._line_at = 0.0

    def _write(self, elapsed: float, still: bool) -> None:
        assert self._shown is not None
        self.emit(status_line(self.job_id, *self._shown, elapsed, still=still))
        self._line_at = elapsed

    def _due(self, elapsed: float) -> bool:
        return elapsed >= self._line_at + self.heartbeat - self._EARLY

    def update(self, status: str, progress: Any, elapsed: float) -> None:
        shown = (status, fmt_progress(progress))
        if shown != self._shown:
            self._shown = shown
            self._write(elapsed, still=False)
        elif self._due(elapsed):
            self._write(elapsed, still=True)

    def wake_in(self, elapsed: float) -> float | None:
        if self._shown is None:
            return None
        return max(self._line_at + self.heartbeat - elapsed, 0.0)

    def tick(self, elapsed: float) -> None:
        if self._shown is not None and self._due(elapsed):
            self._write(elapsed, still=True)


def _to_stderr(line: str) -> None:
    # sys.stderr is looked up on every line: it may have been replaced (pytest, notebooks, redirect_stderr).
    print(line, file=sys.stderr, flush=True)


def _to_log(line: str) -> None:
    logger.info("%s", line)


class BarDisplay(Display):
    """A tqdm bar (or Jupyter widget) with status, progress % and elapsed time."""

    def __init__(self, job_id: str, notebook: bool) -> None:
        self.job_id = job_id
        kwargs: dict[str, Any] = {
            "total": 100,
            "desc": f"Job {job_id}",
            "bar_format": "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]",
            "leave": True,
        }
        self.bar = make_bar(kwargs, notebook)

    def update(self, status: str, progress: Any, elapsed: float) -> None:
        if isinstance(progress, int | float) and not isinstance(progress, bool):
            self.bar.n = min(max(float(progress), 0.0), 100.0)
        self.bar.set_description_str(f"Job {self.job_id} {status}", refresh=False)
        self.bar.refresh()

    def wake_in(self, elapsed: float) -> float | None:
        return 1.0  # moves the elapsed time along between polls

    def tick(self, elapsed: float) -> None:
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def make_display(progress: bool | str | None, job_id: str, heartbeat: float = HEARTBEAT) -> Display:
    """The display a ``progress=`` argument asks for (see :func:`display_kind`)."""
    kind = display_kind(progress)
    if kind == "text":
        return LineDisplay(job_id, _to_stderr, heartbeat)
    if kind == "log":
        return LineDisplay(job_id, _to_log, heartbeat)
    if kind in ("bar", "notebook"):
        return BarDisplay(job_id, notebook=kind == "notebook")
    return Display()


def make_bar(kwargs: dict[str, Any], notebook: bool) -> Any:
    """A tqdm bar with ``kwargs``: Jupyter's widget in a notebook when ipywidgets works, else text on stderr."""
    if notebook and importlib.util.find_spec("ipywidgets") is not None:
        try:
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(**kwargs)
        except Exception as exc:  # an old or broken ipywidgets: the text bar works in notebooks too
            logger.debug("No notebook progress widget (%s); using a text bar", exc)
    from tqdm import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)
