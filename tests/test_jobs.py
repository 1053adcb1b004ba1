"""xr_openeo.jobs: creating jobs, the polling schedule, waiting (errors, timeout, Ctrl-C, progress) and reuse.

Schedules and retry logic run on an injected clock (no real sleeping); lifecycle tests run real jobs on
the local backend with a fast schedule.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import types
from pathlib import Path

import openeo
import pytest
import requests
from conftest import SMALL_EXTENT
from hypothesis import given, settings
from hypothesis import strategies as st
from openeo.rest import OpenEoApiError
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from xr_openeo import jobs
from xr_openeo.errors import (
    AuthenticationError,
    JobError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    XrOpenEOError,
)
from xr_openeo.http.policy import retry_after
from xr_openeo.jobs import PollSchedule, openeo_client_schedule, polls_until
from xr_openeo.jobs import progress as job_progress

FAST = PollSchedule(min_interval=0.05)  # for real jobs on the local backend


def lag_bound(finished_at: float) -> float:
    return max(1.0, 0.1 * finished_at)


# -- injected clock and a simulated job ---------------------------------------------------------------


class FakeClock:
    """A clock that only moves when slept on (or when a simulated request takes time)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class SimulatedJob:
    """A job that finishes ``duration`` seconds after it was started, on ``clock``; each call takes ``latency``."""

    def __init__(self, clock: FakeClock, duration: float, latency: float = 0.0, status: str = "created") -> None:
        self.job_id = "j-simulated"
        self.clock, self.duration, self.latency = clock, duration, latency
        self.started_at: float | None = None
        self.initial = status
        self.describes: list[float] = []  # when each status request was answered
        self.starts = 0

    def describe(self) -> dict:
        self.clock.now += self.latency
        self.describes.append(self.clock.now)
        if self.started_at is None:
            status = self.initial
        elif self.clock.now - self.started_at >= self.duration:
            status = "finished"
        else:
            status = "running"
        return {"id": self.job_id, "status": status, "progress": 100.0 if status == "finished" else 0.0}

    def start(self) -> None:
        self.starts += 1
        self.started_at = self.clock.now

    def stop(self) -> None:
        raise AssertionError("not expected")

    def logs(self, level=None) -> list:
        return []


# -- the schedule -------------------------------------------------------------------------------------


def test_poll_schedule_intervals():
    s = PollSchedule()
    assert [s.interval(t) for t in (0, 5, 10, 20, 100, 3600)] == [1, 1, 1, 2, 10, 360]
    assert PollSchedule(max_interval=60).interval(3600) == 60
    assert list(itertools.islice(s.poll_times(), 13)) == pytest.approx(list(range(11)) + [11, 12.1])
    for bad in ({"min_interval": 0}, {"lag_fraction": -1}, {"min_interval": 2, "max_interval": 1}):
        with pytest.raises(ValueError):
            PollSchedule(**bad)


def test_openeo_client_schedule_is_start_and_wait():
    # openeo 0.53 start_and_wait: poll, sleep 5 s, ×1.25 per poll, at most 60 s.
    times = list(itertools.islice(openeo_client_schedule(), 16))
    assert times[:5] == pytest.approx([0, 5, 11.25, 19.0625, 28.828125])
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert steps[:12] == pytest.approx([5 * 1.25**k for k in range(12)])
    assert steps[12:] == pytest.approx([60, 60, 60])
    assert polls_until(iter([0, 5, 11.25]), 10) == [0, 5, 11.25]
    with pytest.raises(ValueError):
        polls_until([0, 1], 5)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0.0, max_value=4 * 3600.0, allow_nan=False))
def test_lag_bound_holds_for_every_finish_time(finished_at):
    polls = polls_until(PollSchedule().poll_times(), finished_at)
    assert polls[-1] - finished_at <= lag_bound(finished_at) + 1e-9
    assert all(b - a <= lag_bound(a) + 1e-9 for a, b in itertools.pairwise(polls))


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=1.0, max_value=3600.0, allow_nan=False),
    st.lists(st.floats(min_value=0.05, max_value=1.0), min_size=1, max_size=50),
)
def test_no_schedule_keeping_the_lag_bound_needs_fewer_polls(finished_at, fractions):
    """PollSchedule takes the largest step the bound allows; any other schedule keeping it polls at least as often."""

    def other():
        t = 0.0
        for f in itertools.cycle(fractions):
            yield t
            t += f * lag_bound(t)

    assert len(polls_until(other(), finished_at)) >= len(polls_until(PollSchedule().poll_times(), finished_at))


# Status requests (GET /jobs/{id}) for a job finishing D seconds after the wait began, including the
# poll that sees it finished: this module vs the openeo client's start_and_wait. Both also send one
# POST to start. Ratios: 3.67 (10 s), 3.83 (30 s), 3.75 (1 min), 3.36 (5 min), 2.84 (10 min),
# 1.69 (30 min), 1.06 (1 h). The lag bound max(1 s, 10 %) for every finish time needs PollSchedule's
# count at least (it is the fewest-request schedule keeping it), so "≤ 1.3× the client" holds only
# from about 45 min on: a 10 s job needs polls at 0, 1, …, 10 s to be seen within 1 s, the client
# polls at 0, 5, 11.25 s.
RATIO_TABLE = {
    # D: (PollSchedule, start_and_wait, client lag in s)
    10: (11, 3, 1.25),
    30: (23, 6, 11.04),
    60: (30, 8, 15.37),
    300: (47, 14, 31.04),
    600: (54, 19, 31.04),
    1800: (66, 39, 31.04),
    3600: (73, 69, 31.04),
}


@pytest.mark.parametrize("duration", sorted(RATIO_TABLE))
def test_request_counts_against_the_openeo_client(duration):
    ours = polls_until(PollSchedule().poll_times(), duration)
    client = polls_until(openeo_client_schedule(), duration)
    expected_ours, expected_client, client_lag = RATIO_TABLE[duration]
    assert (len(ours), len(client)) == (expected_ours, expected_client)
    assert client[-1] - duration == pytest.approx(client_lag, abs=0.01)
    assert ours[-1] - duration <= lag_bound(duration)
    ratio = len(ours) / len(client)
    if duration >= 3600:
        assert ratio <= 1.3
    else:
        # Not achievable together with the lag bound: PollSchedule is the fewest-request schedule
        # keeping it for every finish time (test above).
        assert ratio > 1.3
    # The client saves its requests early: a job finishing at 5.1 s is seen at 11.25 s, one finishing
    # at 271.1 s (4.5 min) is seen 60 s late. It keeps the bound only from 10 min on (60 s = 10 %).
    client_excess = max(
        (polls_until(openeo_client_schedule(), t)[-1] - t) / lag_bound(t)
        for t in (duration * k / 400 for k in range(1, 401))
    )
    assert client_excess > 1.2


@pytest.mark.parametrize("duration", sorted(RATIO_TABLE))
def test_wait_polls_on_schedule_with_an_injected_clock(duration):
    clock = FakeClock()
    job = SimulatedJob(clock, duration)
    meta = jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    assert meta["status"] == "finished"
    assert job.starts == 1
    assert len(job.describes) == RATIO_TABLE[duration][0]
    assert job.describes[-1] - duration <= lag_bound(duration)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=0.0, max_value=2 * 3600.0, allow_nan=False),
    st.sampled_from([0.0, 0.05, 0.4]),
)
def test_wait_keeps_the_lag_bound_with_slow_requests(duration, latency):
    clock = FakeClock()
    job = SimulatedJob(clock, duration, latency=latency)
    jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    started = job.started_at
    assert started is not None
    finished = started + duration
    # Polls are spaced from their sending time, so a slow request does not delay the next one.
    assert job.describes[-1] - finished <= lag_bound(finished) + latency + 1e-9


# -- transient and other errors (stub jobs) --------------------------------------------------------------


class ScriptedJob:
    """A job whose describe() answers (or raises) from a script; the last answer repeats."""

    def __init__(self, *answers, logs=()) -> None:
        self.job_id = "j-scripted"
        self.answers = list(answers)
        self.calls = 0
        self.starts = 0
        self.stops = 0
        self._logs = list(logs)

    def describe(self) -> dict:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, BaseException):
            raise answer
        return {"id": self.job_id, "status": answer} if isinstance(answer, str) else answer

    def start(self) -> None:
        self.starts += 1

    def stop(self) -> None:
        self.stops += 1

    def logs(self, level=None) -> list:
        assert level == "error"
        return self._logs


def api_error(status: int, code: str = "Internal", message: str = "nope") -> OpenEoApiError:
    return OpenEoApiError(http_status_code=status, code=code, message=message)


def http_error(status: int, retry_after: str | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return requests.HTTPError(f"{status} error", response=response)


def test_transient_errors_are_retried_with_backoff(caplog):
    clock = FakeClock()
    job = ScriptedJob(
        requests.ConnectionError("reset"),
        api_error(503, "ServiceUnavailable"),
        api_error(502),
        api_error(429, "TooManyRequests"),
        requests.exceptions.RetryError("too many 503"),
        "running",
        api_error(504),  # the count restarts after a success
        "finished",
    )
    with caplog.at_level(logging.WARNING, logger="xr_openeo"):
        meta = jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    assert meta["status"] == "finished"
    # Backoff ×2; the next poll one interval after the answered one (sent at 31 s); backoff from 1 again.
    assert clock.sleeps == pytest.approx([1, 2, 4, 8, 16, 3.1, 1])
    transient = [r for r in caplog.records if "Transient error" in r.getMessage()]
    assert len(transient) == 6 and "HTTP 503" in transient[1].getMessage()


def test_retry_after_is_honoured():
    clock = FakeClock()
    job = ScriptedJob(http_error(503, retry_after="7"), http_error(429, retry_after="0.5"), "finished")
    jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [7, 0.5]


def test_retry_after_as_http_date():
    from datetime import UTC, datetime

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after({"Retry-After": "Wed, 01 Jan 2025 12:00:30 GMT"}, now=lambda: now) == 30
    assert retry_after({"Retry-After": "Wed, 01 Jan 2025 11:00:00 GMT"}, now=lambda: now) == 0
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None and retry_after(None) is None


def test_transient_errors_are_bounded():
    clock = FakeClock()
    job = ScriptedJob(api_error(503, "ServiceUnavailable"))
    with pytest.raises(JobError, match="11 transient errors in a row") as info:
        jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    assert len(clock.sleeps) == 10 and job.calls == 11
    assert clock.sleeps[-1] == 60  # backoff capped at max_backoff
    assert info.value.job_id == "j-scripted" and info.value.http_status == 503
    assert isinstance(info.value.__cause__, OpenEoApiError)


@pytest.mark.parametrize(
    "error, expected",
    [
        (api_error(404, "JobNotFound", "Unknown job"), JobNotFoundError),
        (api_error(401, "AuthenticationRequired"), AuthenticationError),
        (api_error(403, "TokenInvalid"), AuthenticationError),
        (api_error(500, "Internal"), JobError),
        (api_error(400, "BadRequest"), JobError),
        (http_error(500), JobError),
    ],
)
def test_other_errors_raise_at_once(error, expected):
    clock = FakeClock()
    job = ScriptedJob(error, "finished")
    with pytest.raises(expected) as info:
        jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    assert isinstance(info.value, XrOpenEOError)
    assert clock.sleeps == [] and job.calls == 1
    assert "j-scripted" in str(info.value)


def test_timeout_during_transient_errors():
    clock = FakeClock()
    job = ScriptedJob(requests.ConnectionError("down"))
    with pytest.raises(JobTimeoutError, match="transient errors"):
        jobs.wait(job, progress=False, timeout=5, clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(5)


def test_failed_job_shows_its_first_error_logs_concisely():
    logs = [{"id": str(i), "level": "error", "message": f"error {i}: " + "x" * 500} for i in range(5)]
    job = ScriptedJob("running", "error", logs=logs)
    clock = FakeClock()
    with pytest.raises(JobFailedError) as info:
        jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    err = info.value
    assert err.job_id == "j-scripted" and err.logs == logs
    message = str(err)
    assert "failed" in message and "error 0" in message and "error 2" in message and "error 3" not in message
    assert "(and 2 more)" in message and "…" in message and len(message) < 1300
    assert "connection.job('j-scripted').logs()" in message


def test_canceled_job_raises_job_failed_saying_so():
    job = ScriptedJob("canceled")
    with pytest.raises(JobFailedError, match="was canceled"):
        jobs.wait(job, progress=False, sleep=pytest.fail)
    assert job.starts == 0 and job.stops == 0


def test_unreadable_logs_do_not_hide_the_failure():
    job = ScriptedJob("error")
    job.logs = lambda level=None: (_ for _ in ()).throw(requests.ConnectionError("gone"))  # type: ignore[method-assign]
    clock = FakeClock()
    with pytest.raises(JobFailedError, match="could not be read"):
        jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep, max_retries=1)


def test_created_job_is_started_once_and_finished_job_not_at_all():
    clock = FakeClock()
    job = ScriptedJob("created", "queued", "running", "finished")
    jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    assert job.starts == 1
    done = ScriptedJob("finished")
    assert jobs.wait(done, progress=False, sleep=pytest.fail)["status"] == "finished"
    assert done.starts == 0


def test_job_back_to_created_after_start_is_an_error():
    clock = FakeClock()
    job = ScriptedJob("created")
    with pytest.raises(JobFailedError, match="went back to 'created'"):
        jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    assert job.starts == 1 and job.calls == 4


def test_unknown_status_is_an_error():
    with pytest.raises(JobError, match="unknown status 'paused'"):
        jobs.wait(ScriptedJob("paused"), progress=False, sleep=pytest.fail)


def test_interrupt_cancels_a_stub_job_unless_told_not_to():
    def interrupting(seconds):
        raise KeyboardInterrupt

    job = ScriptedJob("running")
    with pytest.raises(KeyboardInterrupt):
        jobs.wait(job, progress=False, sleep=interrupting)
    assert job.stops == 1
    job = ScriptedJob("running")
    with pytest.raises(KeyboardInterrupt):
        jobs.wait(job, progress=False, sleep=interrupting, cancel_on_interrupt=False)
    assert job.stops == 0


# -- progress ------------------------------------------------------------------------------------------


def test_progress_as_log_lines(caplog):
    clock = FakeClock()
    job = ScriptedJob(
        "created",
        {"status": "queued", "progress": 0},
        {"status": "running", "progress": 40},
        {"status": "running", "progress": 40},
        {"status": "finished", "progress": 100},
    )
    with caplog.at_level(logging.INFO, logger="xr_openeo"):
        jobs.wait(job, progress="log", clock=clock, sleep=clock.sleep)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("xr_openeo")]
    assert lines == [
        "Batch job 'j-scripted': created (progress -) after 0:00:00",
        "Batch job 'j-scripted': queued (progress 0%) after 0:00:01",
        "Batch job 'j-scripted': running (progress 40%) after 0:00:02",
        "Batch job 'j-scripted': finished (progress 100%) after 0:00:04",
    ]


def test_progress_false_is_silent(caplog, capsys):
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="xr_openeo"):
        jobs.wait(ScriptedJob("created", "running", "finished"), progress=False, clock=clock, sleep=clock.sleep)
    assert [r for r in caplog.records if r.name.startswith("xr_openeo")] == []
    assert capsys.readouterr() == ("", "")


def test_progress_bar(capsys):
    clock = FakeClock()
    job = ScriptedJob({"status": "running", "progress": 50.0}, {"status": "finished", "progress": 100})
    jobs.wait(job, progress="bar", clock=clock, sleep=clock.sleep)
    out, err = capsys.readouterr()
    assert out == ""
    assert "Job j-scripted running:  50%" in err and "Job j-scripted finished: 100%" in err


def test_progress_auto_detection(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.setattr(job_progress, "stderr_is_terminal", lambda: False)
    assert job_progress.display_kind(True) == "text"  # plain lines on stderr: no logging set-up needed
    monkeypatch.setattr(job_progress, "stderr_is_terminal", lambda: True)
    assert job_progress.display_kind(True) == "bar"
    assert job_progress.display_kind(False) == "none"

    class ZMQInteractiveShell:
        config: dict = {}

    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = ZMQInteractiveShell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert job_progress.display_kind(True) == "notebook"
    fake_ipython.get_ipython = lambda: None  # type: ignore[attr-defined]  # plain python with IPython imported
    assert job_progress.display_kind(True) == "bar"
    with pytest.raises(ValueError, match="progress must be"):
        job_progress.display_kind("fancy")


def test_notebook_display_falls_back_to_a_text_bar_without_ipywidgets(monkeypatch, capsys):
    monkeypatch.setattr(job_progress.importlib.util, "find_spec", lambda name: None)
    display = job_progress.make_display("notebook", "j-x")
    display.update("running", 10, 0.0)
    display.close()
    assert "Job j-x running:  10%" in capsys.readouterr().err


# -- against the local backend ---------------------------------------------------------------------------


def ndvi_cube(connection):
    cube = connection.load_collection(
        "SENTINEL2_L2A",
        spatial_extent=SMALL_EXTENT,
        temporal_extent=["2023-01-01", "2023-01-31"],
        bands=["B04", "B08"],
    )
    return cube.ndvi(red="B04", nir="B08")


def requests_of(backend, job_id):
    return [
        (r.method, r.path.split(f"/jobs/{job_id}", 1)[1] or "/", r.status) for r in backend.requests if job_id in r.path
    ]


def test_job_finishes(backend, connection):
    job = jobs.as_batch_job(
        ndvi_cube(connection), title="ndvi", job_options={"faults": {"queue_duration": 0.2, "run_duration": 0.3}}
    )
    assert isinstance(job, openeo.BatchJob) and job.status() == "created"
    backend.clear_requests()
    meta = jobs.wait(job, progress=False, schedule=FAST)
    assert meta["status"] == "finished" and meta["id"] == job.job_id and meta["progress"] == 100
    log = requests_of(backend, job.job_id)
    assert log[:2] == [("GET", "/", 200), ("POST", "/results", 202)]
    assert log.count(("POST", "/results", 202)) == 1
    assert {m for m, _, _ in log} == {"GET", "POST"} and log[-1] == ("GET", "/", 200)
    # A second wait on the finished job sends one request, and does not restart it.
    backend.clear_requests()
    assert jobs.wait(job, progress=False, sleep=pytest.fail)["status"] == "finished"
    assert requests_of(backend, job.job_id) == [("GET", "/", 200)]


def test_failing_job_raises_with_the_backends_message(backend, connection):
    job = jobs.as_batch_job(ndvi_cube(connection), job_options={"faults": {"fail": "Simulated: worker out of memory"}})
    with pytest.raises(JobFailedError, match="Simulated: worker out of memory") as info:
        jobs.wait(job, progress=False, schedule=FAST)
    assert info.value.job_id == job.job_id
    assert [e["message"] for e in info.value.logs] == ["Simulated: worker out of memory"]
    assert ("GET", "/logs", 200) in requests_of(backend, job.job_id)


def test_timeout_leaves_the_job_running(backend, connection):
    job = jobs.as_batch_job(ndvi_cube(connection), job_options={"faults": {"run_duration": 30}})
    with pytest.raises(JobTimeoutError) as info:
        jobs.wait(job, progress=False, timeout=0.3, schedule=FAST)
    assert info.value.job_id == job.job_id
    assert job.job_id in str(info.value) and "keeps running" in str(info.value)
    assert job.status() in ("queued", "running")
    assert ("DELETE", "/results", 204) not in requests_of(backend, job.job_id)


def test_timeout_can_cancel(backend, connection):
    job = jobs.as_batch_job(ndvi_cube(connection), job_options={"faults": {"run_duration": 30}})
    with pytest.raises(JobTimeoutError):
        jobs.wait(job, progress=False, timeout=0.2, schedule=FAST, cancel_on_timeout=True)
    assert ("DELETE", "/results", 204) in requests_of(backend, job.job_id)
    assert job.status() == "canceled"


def test_keyboard_interrupt_cancels_the_job(backend, connection, caplog):
    job = jobs.as_batch_job(ndvi_cube(connection), job_options={"faults": {"run_duration": 30}})
    calls = []

    def sleep(seconds):
        calls.append(seconds)
        if len(calls) == 2:
            raise KeyboardInterrupt
        import time

        time.sleep(seconds)

    with caplog.at_level(logging.WARNING, logger="xr_openeo"), pytest.raises(KeyboardInterrupt):
        jobs.wait(job, progress=False, schedule=FAST, sleep=sleep)
    assert len(calls) == 2
    assert requests_of(backend, job.job_id)[-1] == ("DELETE", "/results", 204)
    assert job.status() == "canceled"
    assert any("Interrupted: canceled batch job" in r.getMessage() for r in caplog.records)


def test_canceled_by_someone_else(backend, connection):
    job = jobs.as_batch_job(ndvi_cube(connection), job_options={"faults": {"run_duration": 30}})
    job.start()
    job.stop()
    with pytest.raises(JobFailedError, match="was canceled"):
        jobs.wait(job, progress=False, schedule=FAST)


def test_unknown_job_and_refused_credentials(backend, connection):
    with pytest.raises(JobNotFoundError, match="j-nope"):
        jobs.wait(connection.job("j-nope"), progress=False)
    job = jobs.as_batch_job(ndvi_cube(connection))
    backend.revoke_tokens()
    with pytest.raises(AuthenticationError, match="authenticate"):
        jobs.wait(job, progress=False)


class FlakyAdapter(HTTPAdapter):
    """Answers the first ``failures`` status requests with 503 and a Retry-After, then passes through."""

    def __init__(self, failures: int, retry_after: str) -> None:
        super().__init__()
        self.failures, self.retry_after = failures, retry_after

    def send(self, request, **kwargs):
        if self.failures and request.method == "GET" and "/jobs/j-" in request.url and "/results" not in request.url:
            self.failures -= 1
            response = requests.Response()
            response.status_code = 503
            response.headers = CaseInsensitiveDict(
                {"Retry-After": self.retry_after, "Content-Type": "application/json"}
            )
            response._content = json.dumps({"code": "ServiceUnavailable", "message": "Try again later"}).encode()
            response.url, response.request, response.encoding = request.url, request, "utf-8"
            return response
        return super().send(request, **kwargs)


def test_retry_after_of_a_real_connection(backend, connection):
    job = jobs.as_batch_job(ndvi_cube(connection))
    jobs.wait(job, progress=False, schedule=FAST)
    connection.session.mount(backend.root_url, FlakyAdapter(failures=2, retry_after="7"))
    clock = FakeClock()
    meta = jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    assert meta["status"] == "finished" and clock.sleeps == [7, 7]


# -- as_batch_job ----------------------------------------------------------------------------------------


def saved_graph(job) -> dict:
    return job.describe()["process"]["process_graph"]


def save_node(graph: dict) -> dict:
    (node,) = [n for n in graph.values() if n["process_id"] == "save_result"]
    return node


def test_as_batch_job_from_a_datacube(backend, connection):
    cube = ndvi_cube(connection)
    job = jobs.as_batch_job(cube, title="t", description="d", out_format="netCDF")
    meta = job.describe()
    assert (meta["title"], meta["description"], meta["status"]) == ("t", "d", "created")
    node = save_node(meta["process"]["process_graph"])
    assert node["arguments"]["format"] == "netCDF" and node["result"] is True
    assert save_node(saved_graph(jobs.as_batch_job(cube)))["arguments"]["format"] == "GTiff"
    # Already saved: nothing added; a different out_format is refused.
    saved = cube.save_result(format="netCDF")
    assert save_node(saved_graph(jobs.as_batch_job(saved)))["arguments"]["format"] == "netCDF"
    assert save_node(saved_graph(jobs.as_batch_job(saved, out_format="netcdf")))["arguments"]["format"] == "netCDF"
    with pytest.raises(ValueError, match="already saves"):
        jobs.as_batch_job(saved, out_format="GTiff")
    with pytest.raises(ValueError, match="Invalid format"):
        jobs.as_batch_job(cube, out_format="BMP")
    with pytest.raises(ValueError, match="differs from the cube's own connection"):
        jobs.as_batch_job(cube, connection=backend.connect())


@pytest.mark.parametrize("form", ["flat", "process_graph", "process", "json", "path", "str-path"])
def test_as_batch_job_from_a_process_graph(backend, connection, tmp_path, form):
    flat = ndvi_cube(connection).flat_graph()
    assert "saveresult1" not in flat and flat["ndvi1"]["result"] is True
    graph = {
        "flat": flat,
        "process_graph": {"process_graph": flat},
        "process": {"process": {"process_graph": flat}, "title": "ignored"},
        "json": json.dumps({"process_graph": flat}),
    }.get(form)
    if form in ("path", "str-path"):
        path = tmp_path / "graph.json"
        path.write_text(json.dumps({"process_graph": flat}))
        graph = path if form == "path" else str(path)
    job = jobs.as_batch_job(graph, connection=connection, out_format="GTiff", job_options={"x": 1})
    stored = saved_graph(job)
    assert stored["saveresult1"] == {
        "process_id": "save_result",
        "arguments": {"data": {"from_node": "ndvi1"}, "format": "GTiff", "options": {}},
        "result": True,
    }
    assert "result" not in stored["ndvi1"] and stored["loadcollection1"] == flat["loadcollection1"]
    assert backend.job(job.job_id).job_options == {"x": 1}


def test_as_batch_job_keeps_a_graphs_save_result(connection):
    graph = ndvi_cube(connection).save_result(format="netCDF").flat_graph()
    stored = saved_graph(jobs.as_batch_job(graph, connection=connection))
    assert stored == graph


def test_as_batch_job_runs_the_job(backend, connection):
    graph = json.dumps(ndvi_cube(connection).flat_graph())
    job = jobs.as_batch_job(graph, connection=connection)
    assert jobs.wait(job, progress=False, schedule=FAST)["status"] == "finished"
    assert len(job.get_results().get_assets()) == 3


def test_as_batch_job_errors(connection, tmp_path):
    flat = ndvi_cube(connection).flat_graph()
    with pytest.raises(ValueError, match="needs a connection"):
        jobs.as_batch_job(flat)
    with pytest.raises(ValueError, match="not valid JSON"):
        jobs.as_batch_job("{nope", connection=connection)
    with pytest.raises(ValueError, match="neither JSON nor an existing file"):
        jobs.as_batch_job(str(tmp_path / "missing.json"), connection=connection)
    with pytest.raises(TypeError, match="got int"):
        jobs.as_batch_job(42, connection=connection)
    with pytest.raises(ValueError, match="is not a node"):
        jobs.as_batch_job({"a": 1}, connection=connection)
    with pytest.raises(ValueError, match="empty"):
        jobs.as_batch_job({}, connection=connection)
    two = {k: {**v, "result": True} for k, v in flat.items()}
    with pytest.raises(ValueError, match="2 result nodes"):
        jobs.as_batch_job(two, connection=connection)
    unconnected = openeo.DataCube.load_collection("SENTINEL2_L2A", connection=None, fetch_metadata=False)
    with pytest.raises(ValueError, match="has no connection"):
        jobs.as_batch_job(unconnected)
    assert jobs.prepare_process_graph(unconnected, connection=connection)[0] is connection


# -- reuse ------------------------------------------------------------------------------------------------


def test_process_graph_key_ignores_node_ids():
    a = {
        "lc": {"process_id": "load_collection", "arguments": {"id": "S2"}},
        "r": {
            "process_id": "reduce_dimension",
            "arguments": {
                "data": {"from_node": "lc"},
                "dimension": "t",
                "reducer": {
                    "process_graph": {
                        "m": {"process_id": "mean", "arguments": {"data": {"from_parameter": "data"}}, "result": True}
                    }
                },
            },
        },
        "s": {
            "process_id": "save_result",
            "arguments": {"data": {"from_node": "r"}, "format": "GTiff"},
            "result": True,
        },
    }
    renamed = json.loads(json.dumps(a).replace('"lc"', '"loadcollection1"').replace('"m"', '"mean1"'))
    assert renamed != a
    assert jobs.process_graph_key(a) == jobs.process_graph_key({"process_graph": renamed})
    other = json.loads(json.dumps(a).replace('"mean"', '"median"'))
    assert jobs.process_graph_key(a) != jobs.process_graph_key(other)
    with pytest.raises(ValueError, match="cycle"):
        jobs.process_graph_key({"a": {"process_id": "x", "arguments": {"d": {"from_node": "a"}}, "result": True}})


def test_find_reusable(backend, connection):
    cube = ndvi_cube(connection)
    _, graph = jobs.prepare_process_graph(cube)
    assert jobs.find_reusable(connection, graph, None) is None
    first = jobs.as_batch_job(cube)
    jobs.wait(first, progress=False, schedule=FAST)
    second = jobs.as_batch_job(cube)  # identical, never started
    backend.clear_requests()
    found = jobs.find_reusable(connection, graph, None)
    assert isinstance(found, openeo.BatchJob) and found.job_id == first.job_id
    assert [r.method for r in backend.requests if "/jobs" in r.path] == ["GET", "GET", "GET"]  # list, describe, results
    assert not any(second.job_id in r.path for r in backend.requests)  # not finished: not even described
    # Another graph, other job options, or another format: nothing to reuse.
    _, other = jobs.prepare_process_graph(cube, out_format="netCDF")
    assert jobs.find_reusable(connection, other, None) is None
    assert jobs.find_reusable(connection, graph, {"faults": {"run_duration": 1}}) is None
    opts = {"faults": {"queue_duration": 0.01}}
    third = jobs.as_batch_job(cube, job_options=opts)
    jobs.wait(third, progress=False, schedule=FAST)
    if "job_options" in third.describe():
        # The backend reports job options: same graph with the same (non-empty) options as submitted is
        # reused, and a job with options is not reused for a request without them.
        assert jobs.find_reusable(connection, graph, opts).job_id == third.job_id
        assert jobs.find_reusable(connection, graph, None).job_id == first.job_id
    else:
        # It does not: a job's options are unknown, so nothing is reused when options are asked for, and
        # the newest job with the graph is reused when none are (whatever this process submitted).
        assert jobs.find_reusable(connection, graph, opts) is None
        assert jobs.find_reusable(connection, graph, None).job_id == third.job_id
    # Results gone: not reusable.
    first.delete()
    third.delete()
    assert jobs.find_reusable(connection, graph, None) is None


def test_find_reusable_newest_first(connection):
    cube = ndvi_cube(connection)
    _, graph = jobs.prepare_process_graph(cube)
    ids = []
    for _ in range(2):
        job = jobs.as_batch_job(cube)
        jobs.wait(job, progress=False, schedule=FAST)
        ids.append(job.job_id)
    assert jobs.find_reusable(connection, graph).job_id == ids[-1]


def test_reuse_of_a_graph_file_matches_the_cube(connection, tmp_path):
    cube = ndvi_cube(connection)
    job = jobs.as_batch_job(cube)
    jobs.wait(job, progress=False, schedule=FAST)
    path = Path(tmp_path / "g.json")
    path.write_text(json.dumps(cube.flat_graph()))
    _, graph = jobs.prepare_process_graph(path, connection=connection)
    assert jobs.find_reusable(connection, graph).job_id == job.job_id
