"""When to poll a job's status, and the openeo client's schedule to compare with.

Polling keeps the *finished-detection lag* (time between the job finishing on the backend and the
waiter noticing) at most ``max(1 s, 10 % of the elapsed time)``: :class:`PollSchedule`. That bound
costs more status requests than the openeo client's ``start_and_wait`` for jobs shorter than about
45 minutes (that client waits 5 s before its second poll, so it can be 15 s late for a one-minute
job); :func:`openeo_client_schedule` and :func:`polls_until` compare the two offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol


class Schedule(Protocol):
    """Anything that says when to poll next: ``interval(elapsed)`` seconds after a poll sent at ``elapsed``."""

    def interval(self, elapsed: float) -> float: ...


@dataclass(frozen=True)
class PollSchedule:
    """When to poll a job's status: the finished-detection lag stays within ``max(min_interval, lag_fraction × t)``.

    ``interval(t)`` is the time from a poll sent ``t`` seconds after waiting began to the next poll. A
    job finishing at ``T`` in ``(t, t + interval(t)]`` is seen by that next poll, ``interval(t)`` or
    less later, and ``interval(t) <= max(min_interval, lag_fraction × T)`` because ``t < T``. So the lag
    bound holds for every ``T``, with no request spent on more: taking the largest allowed step each time
    (the bound only grows with ``t``) needs fewest polls of all schedules that keep the bound.

    Parameters
    ----------
    min_interval
        Seconds between polls while ``lag_fraction × t`` is below it (1 s: the first ten seconds).
    lag_fraction
        Allowed lag as a fraction of the elapsed time (0.1: the interval grows by 10 % per poll).
    max_interval
        Optional cap on the interval (more requests for jobs longer than ``max_interval / lag_fraction``,
        a fresher status for very long ones); None: no cap.
    """

    min_interval: float = 1.0
    lag_fraction: float = 0.1
    max_interval: float | None = None

    def __post_init__(self) -> None:
        if not self.min_interval > 0:
            raise ValueError(f"min_interval must be > 0, got {self.min_interval!r}")
        if not self.lag_fraction >= 0:
            raise ValueError(f"lag_fraction must be >= 0, got {self.lag_fraction!r}")
        if self.max_interval is not None and not self.max_interval >= self.min_interval:
            raise ValueError(f"max_interval must be >= min_interval, got {self.max_interval!r}")

    def interval(self, elapsed: float) -> float:
        """Seconds from a poll sent at ``elapsed`` to the next one."""
        step = max(self.min_interval, self.lag_fraction * max(elapsed, 0.0))
        return step if self.max_interval is None else min(step, self.max_interval)

    def poll_times(self) -> Iterator[float]:
        """The (endless) poll times of a job waited for from 0: 0, 1, 2, …, 10, 11, 12.1, …"""
        t = 0.0
        while True:
            yield t
            t += self.interval(t)


def openeo_client_schedule(
    *, initial: float = 5.0, factor: float = 1.25, max_interval: float = 60.0
) -> Iterator[float]:
    """The (endless) poll times of the openeo client's ``start_and_wait`` (openeo 0.53), for comparison.

    It polls right after starting, then sleeps 5 s, multiplying the sleep by 1.25 after each poll, up
    to 60 s: 0, 5, 11.25, 19.06, 28.83, …
    """
    t, step = 0.0, min(initial, max_interval)
    while True:
        yield t
        t += step
        step = min(step * factor, max_interval)


def polls_until(poll_times: Iterable[float], finished_at: float) -> list[float]:
    """The polls sent for a job finishing at ``finished_at``: up to the first at or after it, which sees it."""
    out = []
    for t in poll_times:
        out.append(t)
        if t >= finished_at:
            return out
    raise ValueError("The poll times ended before the job finished")
