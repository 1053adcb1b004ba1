"""Bad input: malformed job responses (a generated corpus) and wrong ids, unfinished jobs, other users' jobs,
revoked tokens against the local backend. Every case ends in a normal outcome or in an xr_openeo error that
names the offending field or says what to do; never in an exception from deep inside a dependency.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from conftest import SMALL_EXTENT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xr_openeo
from xr_openeo import jobs
from xr_openeo.errors import (
    AuthenticationError,
    JobError,
    JobFailedError,
    JobNotFinishedError,
    JobNotFoundError,
    XrOpenEOError,
)
from xr_openeo.jobs.status import job_progress

JOB_ID = "j-corpus"
KNOWN = jobs.PENDING + jobs.TERMINAL
MISSING = object()  # a field left out of the document

# -- a corpus of malformed job responses ----------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
junk = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
# Valid statuses as backends spell them (any case, padded), and everything else a status could be.
valid_status = st.sampled_from(KNOWN).flatmap(
    lambda s: st.sampled_from([s, s.upper(), s.title(), f" {s} "]),
)
bad_status = st.one_of(
    st.just(MISSING),
    st.none(),
    st.just(""),
    st.just("   "),
    st.text(max_size=30).filter(lambda s: s.strip().lower() not in KNOWN),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.sampled_from(KNOWN), max_size=2),
    st.dictionaries(st.text(max_size=5), st.sampled_from(KNOWN), max_size=2),
    st.just("x" * 100_000),  # a huge status must not become a huge message
)
bad_progress = st.one_of(
    st.just(MISSING),
    st.none(),
    st.booleans(),
    st.text(max_size=10),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(max_value=-1e-9),
    st.floats(min_value=100.000001, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),  # beyond float range
    st.lists(st.integers(), max_size=2),
)
field = st.one_of(st.just(MISSING), junk)


@st.composite
def job_documents(draw: Any) -> Any:
    """A ``GET /jobs/{id}`` answer: a non-object body, or an object with malformed or missing fields."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(json_scalars, st.lists(junk, max_size=3)))
    doc: dict[Any, Any] = {}
    for name, values in (
        ("id", st.one_of(st.just(JOB_ID), field)),
        ("status", st.one_of(valid_status, bad_status)),
        ("progress", bad_progress),
        ("created", st.one_of(st.just("2024-01-01T00:00:00Z"), field)),
        ("updated", field),
        ("process", field),
    ):
        value = draw(values)
        if value is not MISSING:
            doc[name] = value
    doc.update(draw(st.dictionaries(st.text(max_size=12), junk, max_size=4)))  # extra junk (may overwrite)
    if draw(st.integers(0, 19)) == 0:
        doc["huge"] = ["y" * 1000] * 2000  # a 2 MB document
    return doc


class CorpusJob:
    """A stub job whose first ``describe()`` answers ``first``; later ones say it finished."""

    def __init__(self, first: Any) -> None:
        self.job_id = JOB_ID
        self.first = first
        self.calls = 0
        self.starts = 0

    def describe(self) -> Any:
        self.calls += 1
        return self.first if self.calls == 1 else {"id": JOB_ID, "status": "finished", "progress": 100}

    def start(self) -> None:
        self.starts += 1

    def stop(self) -> None:
        pass

    def logs(self, level: Any = None) -> list:
        return [{"id": "1", "level": "error", "message": "it broke"}]


def wait_for(doc: Any, progress: Any = False) -> dict:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return jobs.wait(CorpusJob(doc), progress=progress, clock=lambda: clock[0], sleep=sleep, timeout=3600)


def _status_of(doc: Any) -> str | None:
    """The status ``doc`` validly reports, lower case, or None."""
    if not isinstance(doc, dict) or not isinstance(doc.get("status"), str):
        return None
    status = doc["status"].strip().lower()
    return status if status in KNOWN else None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=job_documents(), progress=st.sampled_from([False, "log"]))
def test_malformed_job_responses_end_in_a_result_or_a_library_error(doc, progress):
    status = _status_of(doc)
    try:
        meta = wait_for(doc, progress=progress)
    except XrOpenEOError as exc:
        message = str(exc)
        assert len(message) < 2000, "a huge document must not make a huge message"
        assert getattr(exc, "job_id", JOB_ID) == JOB_ID
        if not isinstance(doc, dict):
            assert type(exc) is JobError and "JSON object" in message
        elif status is None:
            assert type(exc) is JobError and "status" in message, message
        else:
            assert status in ("error", "canceled"), f"a valid status {status!r} must not fail: {message}"
            assert isinstance(exc, JobFailedError) and "it broke" in message
        return
    # A normal outcome: only for a document with a valid status that is not a failure.
    assert status is not None and status not in ("error", "canceled"), doc
    assert meta["status"].strip().lower() == "finished"
    if status == "finished":
        assert meta == doc


@pytest.mark.parametrize(
    "progress",
    [float("nan"), float("inf"), -float("inf"), -5, 250, 10**400, -(10**400), "50%", None, True, [1], {"a": 1}],
    ids=["nan", "inf", "-inf", "-5", "250", "1e400", "-1e400", "text", "None", "True", "list", "dict"],
)
@pytest.mark.parametrize("display", ["log", "bar"])
def test_malformed_progress_is_shown_as_unknown_or_clamped(progress, display):
    meta = wait_for({"id": JOB_ID, "status": "running", "progress": progress}, progress=display)
    assert meta["status"] == "finished"


@pytest.mark.parametrize(
    ("progress", "shown"),
    [(float("nan"), None), (-5, 0.0), (250, 100.0), (10**400, 100.0), (-(10**400), 0.0), ("50", None), (True, None)],
)
def test_progress_is_a_clamped_percentage_or_none(progress, shown):
    assert job_progress({"progress": progress}) == shown
    assert not math.isnan(job_progress({"progress": 42.5}) or math.nan)


# -- malformed job listings and documents while looking for a job to reuse -----------------------------


class Answer:
    def __init__(self, body: Any) -> None:
        self.body = body

    def json(self) -> Any:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


class JunkConnection:
    """A connection whose job listing and job documents are generated junk; results always there."""

    root_url = "https://junk.example/openeo/1.2"

    def __init__(self, listing: Any, documents: list[Any]) -> None:
        self.listing, self.documents = listing, documents
        self.gets = 0

    def list_jobs(self, limit: Any = None) -> Any:
        return self.listing

    def get(self, path: str, expected_status: int = 200, **kwargs: Any) -> Answer:
        if path.endswith("/results"):
            return Answer({})
        self.gets += 1
        return Answer(self.documents[(self.gets - 1) % len(self.documents)])

    def job(self, job_id: str) -> Any:
        return ("job", job_id)


GRAPH = {
    "lc": {"process_id": "load_collection", "arguments": {"id": "S2"}},
    "save": {
        "process_id": "save_result",
        "arguments": {"data": {"from_node": "lc"}, "format": "GTiff"},
        "result": True,
    },
}
listing_entries = st.one_of(
    junk,
    st.fixed_dictionaries(
        {"id": st.one_of(st.text(max_size=8), junk), "status": st.sampled_from(["finished", "error", 3, None])},
        optional={"created": junk},
    ),
)
job_bodies = st.one_of(
    junk,
    st.just(ValueError("not JSON")),
    st.fixed_dictionaries({"process": st.one_of(junk, st.just({"process_graph": GRAPH}))}),
)


@settings(max_examples=150, deadline=None)
@given(listing=st.one_of(st.none(), st.lists(listing_entries, max_size=6)), documents=st.lists(job_bodies, min_size=1))
def test_reuse_survives_malformed_listings_and_documents(listing, documents):
    connection = JunkConnection(listing, documents)
    found = jobs.find_reusable(connection, GRAPH)
    if found is not None:
        assert isinstance(found, jobs.LibraryErrorsBatchJob)
        assert isinstance(found.job_id, str) and found.job_id


# -- wrong ids, unfinished jobs, other users' jobs, revoked tokens on the local backend --------------------


def small_cube(connection):
    return connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])


@pytest.fixture
def finished(connection):
    job = small_cube(connection).create_job(out_format="GTiff")
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


def test_wrong_job_ids(backend, connection, finished):
    for source, kwargs in [("j-doesnotexist", {"connection": connection}), (connection.job("j-doesnotexist"), {})]:
        with pytest.raises(JobNotFoundError, match="Check the job id") as info:
            xr_openeo.open_results(source, **kwargs)
        assert (info.value.job_id, info.value.http_status) == ("j-doesnotexist", 404)
    with pytest.raises(JobNotFoundError, match="check the job id") as info:
        jobs.wait(connection.job("j-doesnotexist"), progress=False)
    assert (info.value.job_id, info.value.http_status) == ("j-doesnotexist", 404)
    ds = xr_openeo.open_results(finished)
    assert ds.openeo.status() == "finished"
    gone = ds.copy()
    gone.attrs["openeo:job_id"] = "j-doesnotexist"
    for call in (gone.openeo.status, gone.openeo.logs):
        with pytest.raises(JobNotFoundError, match="check the job id") as info:
            call()
        assert (info.value.job_id, info.value.http_status) == ("j-doesnotexist", 404)


def test_unfinished_jobs(backend, connection):
    unstarted = small_cube(connection).create_job(out_format="GTiff")
    for source, kwargs in [(unstarted, {}), (unstarted.job_id, {"connection": connection})]:
        with pytest.raises(JobNotFinishedError, match="pass partial=True") as info:
            xr_openeo.open_results(source, **kwargs)
        assert (info.value.job_id, info.value.http_status) == (unstarted.job_id, 400)


def test_a_job_of_another_user_is_not_found(backend, connection, finished):
    bob = backend.connect(user=("bob", "bob123"))
    for source, kwargs in [(finished.job_id, {"connection": bob}), (bob.job(finished.job_id), {})]:
        with pytest.raises(JobNotFoundError, match="belongs to this user") as info:
            xr_openeo.open_results(source, **kwargs)
        assert (info.value.job_id, info.value.http_status) == (finished.job_id, 404)
    with pytest.raises(JobNotFoundError, match="authenticated as the job's owner"):
        jobs.wait(bob.job(finished.job_id), progress=False)
    with pytest.raises(JobNotFoundError, match="authenticated as the job's owner"):
        jobs.batch_job(bob, finished.job_id).status()
    # The owner still sees it.
    assert xr_openeo.open_results(finished.job_id, connection=connection).openeo.status() == "finished"


def test_revoked_tokens_say_authenticate_again(backend, connection, finished):
    ds = xr_openeo.open_results(finished)
    bob = backend.connect(user=("bob", "bob123"))
    backend.revoke_tokens("alice")
    cube = small_cube(connection)
    calls = {
        "open_results(BatchJob)": lambda: xr_openeo.open_results(finished),
        "open_results(job id)": lambda: xr_openeo.open_results(finished.job_id, connection=connection),
        "compute_batch": lambda: xr_openeo.compute_batch(cube, progress=False),
        "compute_batch(reuse=True)": lambda: xr_openeo.compute_batch(cube, progress=False, reuse=True),
        "wait": lambda: jobs.wait(finished, progress=False),
        "ds.openeo.status()": ds.openeo.status,
        "ds.openeo.logs()": ds.openeo.logs,
    }
    for name, call in calls.items():
        with pytest.raises(AuthenticationError, match="(?i)authenticate (the connection )?again") as info:
            call()
        assert "403" in str(info.value), name
    # Only alice's tokens were revoked.
    assert jobs.wait(bob.job(small_cube(bob).create_job(out_format="GTiff").job_id), progress=False)["status"] == (
        "finished"
    )


def test_failed_job_results_are_a_job_failed_error(backend, connection):
    job = small_cube(connection).create_job(out_format="GTiff", job_options={"faults": {"fail": "disk full"}})
    with pytest.raises(JobFailedError, match="disk full"):
        jobs.wait(job, progress=False)
    with pytest.raises(JobFailedError) as info:
        xr_openeo.open_results(job)
    assert (info.value.job_id, info.value.http_status) == (job.job_id, 424)
