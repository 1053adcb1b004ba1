"""The local backend's sense of time: a clock callable, a clock tests move by hand, and waiting on either."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds since the epoch, like :func:`time.time`."""

# How often a wait re-reads a clock that is not the wall clock (a ManualClock moves in jumps).
_POLL = 0.01


class ManualClock:
    """A clock that stands still until a test moves it: ``LocalBackend(clock=ManualClock())``.

    Calling it gives the current time in seconds since the epoch. It starts at ``start`` (default
    the wall-clock time when it is made, in whole seconds, so signed URLs look ordinary to clients
    and a link valid for 60 s is still valid 60 s later) and moves only with :meth:`advance` or
    :meth:`set`. Safe to use from several threads.

    Examples
    --------
    >>> clock = ManualClock(start=1_700_000_000.0)
    >>> clock()
    1700000000.0
    >>> clock.advance(61)
    1700000061.0
    """

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._now = float(int(time.time())) if start is None else float(start)

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0) and return the new time."""
        if not seconds >= 0:
            raise ValueError(f"a clock only moves forward: advance(seconds >= 0), got {seconds!r}")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        """Put the clock at ``now`` (seconds since the epoch), forward or back."""
        with self._lock:
            self._now = float(now)

    def __repr__(self) -> str:
        return f"ManualClock({self():.3f})"


def wait_until(clock: Clock, deadline: float | None, stop: threading.Event) -> bool:
    """Wait until ``clock`` reads ``deadline`` or later, or ``stop`` is set; True when ``stop`` ended the wait.

    ``deadline`` None waits for ``stop`` alone. Deadlines are absolute, so a clock moved before the
    wait begins counts: a test that moves a :class:`ManualClock` after seeing a job queued cannot
    lose that move to a race with the job's thread. The wall clock is waited on directly; any other
    clock is read again every 10 ms of real time.
    """
    if deadline is None:
        stop.wait()
        return True
    if clock is time.time:
        return stop.wait(max(0.0, deadline - time.time()))
    while clock() < deadline:
        if stop.wait(_POLL):
            return True
    return stop.is_set()
