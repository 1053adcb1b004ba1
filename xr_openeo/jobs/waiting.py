"""Waiting for a batch job: start it, poll on schedule, retry transient failures, time out, cancel on Ctrl-C."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import openeo

from .._options import get_option
from ..errors import JobError, JobFailedError, JobTimeoutError, XrOpenEOError
from ..http.policy import RetryPolicy, retry_after
from ..urls import redact
from .client_errors import CLIENT_ERRORS, describe_error, http_status, is_transient, library_error, retry_after_of
from .progress import Display, make_display
from .schedules import PollSchedule, Schedule
from .status import PENDING, TERMINAL, clause, fmt_elapsed, job_progress, job_status, short_repr, truncate

logger = logging.getLogger("xr_openeo.jobs")


class _Hint:
    """What a failed attempt learned about when to try again."""

    retry_after: float | None = None


def _describe(job: Any, hint: _Hint) -> dict[str, Any]:
    """``GET /jobs/{id}``; for a client BatchJob, keeps ``Retry-After`` of an error answer in ``hint``."""
    if isinstance(job, openeo.BatchJob):

        def capture(response: Any, *args: Any, **kwargs: Any) -> None:
            if response.status_code >= 400:
                hint.retry_after = retry_after(response.headers)

        response = job.connection.get(f"/jobs/{job.job_id}", expected_status=200, hooks={"response": capture})
        meta = response.json()
    else:
        meta = job.describe()
    if not isinstance(meta, Mapping):
        raise JobError(f"The backend described batch job {job.job_id!r} with no JSON object", job_id=job.job_id)
    return dict(meta)


class _Waiter:
    """One wait for one job: clock, deadline, retries and the display."""

    def __init__(
        self,
        job: Any,
        *,
        schedule: Schedule,
        display: Display,
        timeout: float | None,
        clock: Callable[[], float],
        sleep: Callable[[float], Any],
        policy: RetryPolicy,
    ) -> None:
        self.job, self.job_id = job, str(job.job_id)
        self.schedule, self.display = schedule, display
        self.clock, self._sleep = clock, sleep
        self.policy = policy
        self.t0 = clock()
        self.deadline = None if timeout is None else max(float(timeout), 0.0)
        self.status: str | None = None  # the last status the backend reported
        self.attempted_at = 0.0
        self.started = False

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def sleep_until(self, target: float) -> None:
        """Sleep until ``target`` seconds after the start, waking for the display on the way."""
        while (left := target - self.elapsed()) > 0:
            wake = self.display.wake_in(self.elapsed())
            self._sleep(left if wake is None else min(left, max(wake, 1e-3)))
            self.display.tick(self.elapsed())

    def call(self, fn: Callable[[_Hint], Any], action: str) -> Any:
        """``fn(hint)``, retrying transient errors (backoff, ``Retry-After``) up to ``policy.retries`` in a row."""
        failures = 0
        first_failure = 0.0
        while True:
            hint = _Hint()
            self.attempted_at = self.elapsed()
            try:
                result = fn(hint)
            except XrOpenEOError:
                raise
            except CLIENT_ERRORS as exc:
                if not is_transient(exc):
                    raise library_error(exc, action, self.job_id, self.status) from exc
                if not failures:
                    first_failure = self.attempted_at
                failures += 1
                if failures > self.policy.retries:
                    raise JobError(
                        self._unreachable(action, failures, self.elapsed() - first_failure, exc),
                        job_id=self.job_id,
                        status=self.status,
                        http_status=http_status(exc),
                    ) from exc
                after = hint.retry_after if hint.retry_after is not None else retry_after_of(exc)
                delay = self.policy.delay(failures, after)
                if self.deadline is not None:
                    left = self.deadline - self.elapsed()
                    if left <= 0:
                        why = f"transient errors while trying to {action} it (the last {describe_error(exc)})"
                        raise self._timeout(why) from exc
                    delay = min(delay, left)
                logger.warning(
                    "Transient error %d/%d while trying to %s batch job %r (%s); retrying in %.1f s",
                    failures,
                    self.policy.retries,
                    action,
                    self.job_id,
                    describe_error(exc),
                    delay,
                )
                self.sleep_until(self.elapsed() + delay)
            else:
                if failures:
                    logger.warning(
                        "The backend answered again after %d transient error(s) over %.1f s; waiting for batch job "
                        "%r goes on",
                        failures,
                        self.attempted_at - first_failure,
                        self.job_id,
                    )
                return result

    def _unreachable(self, action: str, failures: int, seconds: float, exc: BaseException) -> str:
        """The message of the error that ends a wait after ``failures`` transient errors in a row."""
        root = getattr(getattr(self.job, "connection", None), "root_url", None)
        where = f" on {redact(str(root).rstrip('/'))}" if root else ""
        job = f"connection.job({self.job_id!r})"
        if self.started or self.status not in (None, "created"):
            seen = f"it was {self.status!r} when last seen" if self.status else "it was started"
            state = f"Stopped waiting, but the job is not affected: it keeps running on the backend ({seen})"
        elif self.status == "created":
            state = "Stopped waiting; the job exists on the backend but may not have been started"
        else:
            state = (
                "Stopped waiting; the backend did not answer once during this wait, so the job's status is unknown: "
                "if it was started, it keeps running on the backend"
            )
        return (
            f"Could not {action} batch job {self.job_id!r}{where}: {failures} transient errors in a row over "
            f"{seconds:.1f} s, the last {clause(describe_error(exc))}. {state}. Once the backend answers again, "
            f"reattach to it by its id: xr_openeo.jobs.wait({job}) (which starts it if needed and waits), then "
            f"xr_openeo.open_results({job}); compute_batch(..., reuse=True) reuses it only once it finished"
        )

    def run(self) -> dict[str, Any]:
        created_after_start = 0
        while True:
            meta = self.call(lambda hint: _describe(self.job, hint), "poll the status of")
            polled_at = self.attempted_at  # when the answered request was sent: the next is spaced from it
            status = job_status(meta, self.job_id)
            if status not in PENDING + TERMINAL:
                raise JobError(
                    f"Batch job {self.job_id!r} has the unknown status {short_repr(status)} (expected one of "
                    f"{PENDING + TERMINAL})",
                    job_id=self.job_id,
                    status=self.status,
                )
            self.status = status
            self.display.update(status, job_progress(meta), polled_at)
            if status == "finished":
                logger.debug("Batch job %r finished after %s", self.job_id, fmt_elapsed(self.elapsed()))
                return meta
            if status in ("error", "canceled"):
                raise self._failed(status)
            if status == "created":
                if not self.started:
                    self.call(lambda hint: self.job.start(), "start")
                    self.started = True
                    logger.debug("Started batch job %r", self.job_id)
                else:
                    created_after_start += 1
                    if created_after_start >= 3:
                        raise JobFailedError(
                            f"Batch job {self.job_id!r} went back to 'created' after it was started: it was canceled "
                            "before it ran, or the backend refused to start it. Start it again with "
                            f"xr_openeo.jobs.wait(connection.job({self.job_id!r}))",
                            job_id=self.job_id,
                            status=status,
                        )
            else:
                created_after_start = 0
            next_poll = polled_at + self.schedule.interval(polled_at)
            if self.deadline is not None:
                if self.elapsed() >= self.deadline:
                    raise self._timeout(f"still {status}")
                next_poll = min(next_poll, self.deadline)
            self.sleep_until(next_poll)

    def _timeout(self, why: str) -> JobTimeoutError:
        return JobTimeoutError(
            f"Gave up waiting for batch job {self.job_id!r} after {fmt_elapsed(self.elapsed())} (timeout="
            f"{self.deadline:g} s): {clause(why)}. The job keeps running on the backend; reconnect to it by id, e.g. "
            f"xr_openeo.jobs.wait(connection.job({self.job_id!r})) or xr_openeo.open_results(connection.job("
            f"{self.job_id!r})) once it finished",
            job_id=self.job_id,
            status=self.status,
        )

    def _failed(self, status: str) -> JobFailedError:
        try:
            entries = self.call(lambda hint: self.job.logs(level="error"), "read the error logs of")
            logs = [dict(e) for e in entries if isinstance(e, Mapping)]
            unavailable = None
        except Exception as exc:  # the failure matters more than its logs
            logs, unavailable = [], f"{type(exc).__name__}: {clause(truncate(str(exc), 300))}"
        what = "failed" if status == "error" else "was canceled"
        message = f"Batch job {self.job_id!r} {what} after {fmt_elapsed(self.elapsed())}"
        shown = [clause(truncate(str(e.get("message", "")).strip(), 300)) or "(no message)" for e in logs[:3]]
        if shown:
            more = f" (and {len(logs) - 3} more)" if len(logs) > 3 else ""
            message += ": " + "; ".join(shown) + more
        elif unavailable:
            message += f" (its error logs could not be read: {unavailable})"
        elif status == "error":
            message += " (the backend logged no error message)"
        message += f". All logs: connection.job({self.job_id!r}).logs()"
        return JobFailedError(message, job_id=self.job_id, status=status, logs=logs)


def _cancel(job: Any, why: str) -> None:
    try:
        job.stop()
    except Exception as exc:
        logger.error(
            "%s, but canceling batch job %r failed (%s): it may still be running on the backend; cancel it "
            "with connection.job(%r).stop()",
            why,
            job.job_id,
            describe_error(exc),
            job.job_id,
        )
    else:
        logger.warning("%s: canceled batch job %r", why, job.job_id)


def wait(
    job: openeo.BatchJob,
    *,
    progress: bool | str = True,
    timeout: float | None = None,
    cancel_on_interrupt: bool = True,
    cancel_on_timeout: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] = time.sleep,
    schedule: Schedule | None = None,
    max_retries: int | None = None,
    max_backoff: float | None = None,
) -> dict[str, Any]:
    """Start ``job`` if it is ``created``, and poll its status until it finished.

    Parameters
    ----------
    job
        An ``openeo.BatchJob`` (``connection.job(id)`` reconnects to one by id).
    progress
        True: a progress bar when stderr is a terminal, a widget in Jupyter, and otherwise (output
        redirected to a file, nohup, CI, cron) plain status lines on stderr: one per change of status
        or progress and one at least every minute, with the elapsed time. ``"bar"``, ``"notebook"``
        or ``"text"`` to choose one; ``"log"``: the same lines through ``logging`` only (logger
        ``xr_openeo.jobs``, level INFO); False: nothing.
    timeout
        Seconds to wait at most; then :class:`~xr_openeo.errors.JobTimeoutError`, and the job keeps
        running (unless ``cancel_on_timeout``).
    cancel_on_interrupt
        On ``KeyboardInterrupt`` (Ctrl-C) cancel the job (``DELETE /jobs/{id}/results``) before re-raising.
    cancel_on_timeout
        Cancel the job when the timeout hits.
    clock, sleep
        Time source and sleep function (injectable for tests).
    schedule
        When to poll: anything with ``interval(elapsed) -> seconds``; default :class:`PollSchedule`.
    max_retries
        Transient errors (connection errors, HTTP 429/502/503/504) tolerated in a row per request; they
        are retried with exponential backoff (1, 2, 4… s, at most ``max_backoff``) or after the
        ``Retry-After`` the backend asked for. Other errors raise at once. Default: the option
        ``job_retries`` (:func:`xr_openeo.set_options`, 10). With the defaults a backend outage of
        about five minutes (1 + 2 + … + 32 + 4 × 60 s) is waited out. Each retry is logged (logger
        ``xr_openeo.jobs``, level WARNING), and so is the first answer after an outage.
    max_backoff
        Longest pause between two retries, in seconds; default the option ``job_max_backoff`` (60).

    Returns
    -------
    dict
        The job's last metadata (``GET /jobs/{id}``), status ``finished``.

    Raises
    ------
    JobFailedError
        The job ended in ``error`` or ``canceled`` (its ``status``); carries ``job_id`` and the error ``logs``.
    JobTimeoutError
        ``timeout`` passed first (also while retrying transient errors); the job keeps running.
        ``status`` is the last status seen (None if the backend never answered).
    JobError
        More than ``max_retries`` transient errors in a row (the backend is down or overloaded): the
        message names the backend and says how to reattach to the job, which keeps running; or any
        other failed request (``http_status`` holds its HTTP status).
    JobNotFoundError, AuthenticationError
        The backend does not know the job, or refused the credentials.

    Notes
    -----
    On ``KeyboardInterrupt`` the job is canceled (when ``cancel_on_interrupt``) unless it already ended;
    if the backend cannot be reached to cancel it, an ERROR log line says so and how to cancel it later.
    Interrupting never cancels a job twice, and ``KeyboardInterrupt`` is always re-raised.
    """
    policy = dataclasses.replace(
        RetryPolicy.for_jobs(),
        retries=get_option("job_retries", max_retries),
        max_backoff=get_option("job_max_backoff", max_backoff),
    )
    waiter = _Waiter(
        job,
        schedule=schedule or PollSchedule(),
        display=make_display(progress, str(job.job_id)),
        timeout=timeout,
        clock=clock,
        sleep=sleep,
        policy=policy,
    )
    try:
        return waiter.run()
    except KeyboardInterrupt:
        if cancel_on_interrupt and waiter.status not in TERMINAL:
            _cancel(job, "Interrupted")
        raise
    except JobTimeoutError:
        if cancel_on_timeout:
            _cancel(job, "Timed out")
        raise
    finally:
        waiter.display.close()
