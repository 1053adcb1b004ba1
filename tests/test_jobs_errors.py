"""Job errors carry the job's status (and the HTTP status apart); retries follow xr_openeo's options; reuse
depends only on what the backend reports, never on what this process did before."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from test_jobs import FakeClock, ScriptedJob, api_error

import xr_openeo
from xr_openeo import jobs
from xr_openeo.errors import JobError, JobFailedError, JobNotFoundError, JobTimeoutError

# -- the job's status on the error ---------------------------------------------------------------------


@pytest.mark.parametrize("status", ["error", "canceled"])
def test_a_failed_job_error_carries_the_jobs_status(status):
    job = ScriptedJob("queued", "running", status, logs=[{"id": "1", "level": "error", "message": "boom"}])
    clock = FakeClock()
    with pytest.raises(JobFailedError) as info:
        jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    assert (info.value.status, info.value.http_status, info.value.job_id) == (status, None, "j-scripted")


def test_a_job_back_to_created_is_a_failure_with_that_status():
    clock = FakeClock()
    with pytest.raises(JobFailedError) as info:
        jobs.wait(ScriptedJob("created"), progress=False, clock=clock, sleep=clock.sleep)
    assert info.value.status == "created"


@pytest.mark.parametrize("last", ["queued", "running"])
def test_a_timeout_carries_the_last_status_seen(last):
    clock = FakeClock()
    with pytest.raises(JobTimeoutError) as info:
        jobs.wait(ScriptedJob("created", last), progress=False, timeout=30, clock=clock, sleep=clock.sleep)
    assert info.value.status == last and info.value.http_status is None
    assert f"still {last}." in str(info.value)


def test_a_timeout_before_any_answer_has_no_status():
    clock = FakeClock()
    job = ScriptedJob(requests.ConnectionError("[Errno 111] Connection refused"))
    with pytest.raises(JobTimeoutError) as info:
        jobs.wait(job, progress=False, timeout=5, clock=clock, sleep=clock.sleep)
    assert info.value.status is None
    assert "the last ConnectionError ([Errno 111] Connection refused))." in str(info.value)


def test_a_timeout_during_an_outage_keeps_the_status_seen_before():
    clock = FakeClock()
    job = ScriptedJob("running", requests.ConnectionError("down"))
    with pytest.raises(JobTimeoutError) as info:
        jobs.wait(job, progress=False, timeout=20, clock=clock, sleep=clock.sleep)
    assert info.value.status == "running"


def test_other_failed_requests_carry_the_http_status_and_the_last_job_status():
    clock = FakeClock()
    job = ScriptedJob("running", api_error(400, "BadRequest", "Nope."))
    with pytest.raises(JobError) as info:
        jobs.wait(job, progress=False, clock=clock, sleep=clock.sleep)
    assert (type(info.value), info.value.status, info.value.http_status) == (JobError, "running", 400)
    assert "(HTTP 400 BadRequest: Nope)" in str(info.value)
    with pytest.raises(JobNotFoundError) as info:
        jobs.wait(ScriptedJob(api_error(404, "JobNotFound", "Unknown job.")), progress=False, sleep=pytest.fail)
    assert info.value.http_status == 404 and "Unknown job)" in str(info.value)


ending = st.sampled_from(["", ".", "..", "...", ". ", ".\n", "!", "…"])
plain = st.text(st.characters(blacklist_characters=".", blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(st.tuples(plain, ending), max_size=5), status=st.sampled_from(["error", "canceled"]))
def test_failure_messages_have_no_doubled_periods(messages, status):
    logs = [{"id": str(i), "level": "error", "message": text + end} for i, (text, end) in enumerate(messages)]
    job = ScriptedJob(status, logs=logs)
    with pytest.raises(JobFailedError) as info:
        jobs.wait(job, progress=False, sleep=pytest.fail)
    message = str(info.value)
    assert ".." not in message and ". ." not in message and message.endswith("connection.job('j-scripted').logs()")


# -- retries follow the options ------------------------------------------------------------------------


def test_retries_default_to_the_job_options(monkeypatch):
    clock = FakeClock()
    with xr_openeo.set_options(job_retries=2, job_max_backoff=1.5):
        with pytest.raises(JobError, match="3 transient errors in a row"):
            jobs.wait(ScriptedJob(api_error(503)), progress=False, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [1, 1.5]
    monkeypatch.setenv("XR_OPENEO_JOB_RETRIES", "1")
    clock = FakeClock()
    with pytest.raises(JobError, match="2 transient errors in a row"):
        jobs.wait(ScriptedJob(api_error(502)), progress=False, clock=clock, sleep=clock.sleep)
    # An explicit keyword beats the option; a bad one is refused before any request.
    clock = FakeClock()
    with pytest.raises(JobError, match="4 transient errors in a row"):
        jobs.wait(ScriptedJob(api_error(504)), progress=False, clock=clock, sleep=clock.sleep, max_retries=3)
    with pytest.raises(ValueError, match="job_retries must be an integer >= 0"):
        jobs.wait(ScriptedJob("finished"), progress=False, max_retries=-1)


def test_transient_statuses_come_from_the_http_policy():
    from xr_openeo.http.policy import TRANSIENT_STATUSES
    from xr_openeo.jobs.client_errors import JOB_TRANSIENT_STATUSES, is_transient

    assert JOB_TRANSIENT_STATUSES == TRANSIENT_STATUSES - {500}
    for status in range(400, 600):
        assert is_transient(api_error(status)) == (status in JOB_TRANSIENT_STATUSES)


# -- reuse: only what the backend reports ----------------------------------------------------------------

GRAPH = {
    "lc": {"process_id": "load_collection", "arguments": {"id": "S2"}},
    "save": {
        "process_id": "save_result",
        "arguments": {"data": {"from_node": "lc"}, "format": "GTiff"},
        "result": True,
    },
}


class Answer:
    def __init__(self, body: Any) -> None:
        self.body = body

    def json(self) -> Any:
        return self.body


class ScriptedBackend:
    """A connection to a backend holding finished ``jobs`` ({id: metadata}), listed oldest first."""

    root_url = "https://scripted.example/openeo/1.2"

    def __init__(self, jobs: dict[str, dict[str, Any]]) -> None:
        self.jobs = jobs

    def list_jobs(self, limit: Any = None) -> list[dict[str, Any]]:
        return [
            {"id": i, "status": "finished", "created": f"2024-01-0{n + 1}T00:00:00Z"} for n, i in enumerate(self.jobs)
        ]

    def get(self, path: str, expected_status: int = 200, **kwargs: Any) -> Answer:
        job_id = path.split("/")[2]
        return Answer({} if path.endswith("/results") else {"id": job_id, **self.jobs[job_id]})


def reused(backend: ScriptedBackend, options: Any) -> str | None:
    found = jobs.find_reusable(backend, GRAPH, options)
    return None if found is None else found.job_id


def test_reuse_compares_job_options_the_backend_reports():
    process = {"process_graph": GRAPH}
    backend = ScriptedBackend(
        {
            "j-plain": {"process": process, "job_options": None},
            "j-empty": {"process": process, "job_options": {}},
            "j-memory": {"process": process, "job_options": {"driver-memory": "4g", "nested": {"b": 1, "a": 2}}},
            "j-other": {"process": process, "job_options": {"driver-memory": "8g"}},
        }
    )
    assert reused(backend, None) == "j-empty"  # newest without options; None and {} alike
    assert reused(backend, {}) == "j-empty"
    assert reused(backend, {"nested": {"a": 2, "b": 1}, "driver-memory": "4g"}) == "j-memory"  # key order aside
    assert reused(backend, {"driver-memory": "8g"}) == "j-other"
    assert reused(backend, {"driver-memory": "16g"}) is None


def test_without_reported_options_reuse_only_when_none_are_asked_for():
    """A job whose options the backend does not report has unknown options: reused only when none are asked for."""
    scripted = ScriptedBackend({"j-unknown": {"process": {"process_graph": GRAPH}}})
    assert reused(scripted, None) == "j-unknown" and reused(scripted, {}) == "j-unknown"
    assert reused(scripted, {"driver-memory": "4g"}) is None
    with pytest.raises(TypeError, match="job_options must be a dict"):
        jobs.find_reusable(scripted, GRAPH, ["driver-memory"])  # type: ignore[arg-type]


def test_reuse_survives_job_options_that_are_not_an_object():
    process = {"process_graph": GRAPH}
    backend = ScriptedBackend(
        {"j-list": {"process": process, "job_options": ["x"]}, "j-str": {"process": process, "job_options": "x"}}
    )
    assert reused(backend, None) is None and reused(backend, {"x": 1}) is None
