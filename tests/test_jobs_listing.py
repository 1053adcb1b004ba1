"""list_jobs and logs_frame: the user's jobs and a job's logs as DataFrames (local backend and scripted answers)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_EXTENT
from openeo.rest import OpenEoApiError

from xr_openeo import jobs
from xr_openeo.errors import AuthenticationError, JobError
from xr_openeo.jobs import PollSchedule, list_jobs, logs_frame

FAST = PollSchedule(min_interval=0.05)


def small_cube(connection):
    return connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])


# -- against the local backend -----------------------------------------------------------------------------


def test_list_jobs_of_the_local_backend(backend, connection):
    assert list(list_jobs(connection).columns) == ["title", "status", "created", "updated", "progress"]
    cube = small_cube(connection)
    done = jobs.as_batch_job(cube, title="done")
    jobs.wait(done, progress=False, schedule=FAST)
    failed = jobs.as_batch_job(cube, title="failed", job_options={"faults": {"fail": "no"}})
    with pytest.raises(JobError):
        jobs.wait(failed, progress=False, schedule=FAST)
    waiting = jobs.as_batch_job(cube, title="waiting")
    other = jobs.as_batch_job(small_cube(backend.connect(user=("bob", "bob123"))), title="bob's")

    table = list_jobs(connection)
    # Newest first (jobs created within the same second: the one listed later first).
    assert list(table.index) == [waiting.job_id, failed.job_id, done.job_id] and other.job_id not in table.index
    assert table.index.name == "id"
    assert list(table.title) == ["waiting", "failed", "done"]
    assert list(table.status) == ["created", "error", "finished"]
    assert table.created.dtype == np.dtype("datetime64[ns]") and table.updated.dtype == np.dtype("datetime64[ns]")
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    assert ((now - table.created) < pd.Timedelta(minutes=5)).all() and (table.updated >= table.created).all()
    assert table.progress.dtype == np.float64 and table.loc[done.job_id, "progress"] == 100

    assert list(list_jobs(connection, status="finished").index) == [done.job_id]
    assert list(list_jobs(connection, status=["error", "Created"]).index) == [waiting.job_id, failed.job_id]
    assert list(list_jobs(connection, limit=1).index) == [waiting.job_id]
    assert list(list_jobs(connection, status="finished", limit=5).index) == [done.job_id]
    assert "<table" in table._repr_html_()


def test_logs_frame_of_a_failed_job(backend, connection):
    job = jobs.as_batch_job(small_cube(connection), job_options={"faults": {"fail": "disk full."}})
    with pytest.raises(JobError):
        jobs.wait(job, progress=False, schedule=FAST)
    entries = job.logs()
    frame = logs_frame(entries)
    assert list(frame.columns[:3]) == ["time", "level", "message"] and "id" in frame.columns
    assert list(frame.message) == [e["message"] for e in entries]  # the backend's order
    assert list(frame.id) == [e["id"] for e in entries]
    assert frame.time.dtype == np.dtype("datetime64[ns]") and frame.time.notna().all()
    assert frame[frame.level == "error"].message.tolist() == ["disk full."]
    assert logs_frame(job.logs(level="error")).message.tolist() == ["disk full."]


# -- scripted answers ------------------------------------------------------------------------------------


class Answer:
    def __init__(self, body: Any) -> None:
        self.body = body

    def json(self) -> Any:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


class Listing:
    """A connection answering ``GET`` of each URL in ``pages`` with its body (or raising it)."""

    def __init__(self, pages: dict[str, Any]) -> None:
        self.pages = pages
        self.asked: list[str] = []

    def get(self, url: str, expected_status: int = 200, **kwargs: Any) -> Answer:
        self.asked.append(url)
        body = self.pages[url]
        if isinstance(body, OpenEoApiError):
            raise body
        return Answer(body)


def page(jobs_: list[Any], next_url: str | None = None) -> dict[str, Any]:
    links = [{"rel": "self", "href": "ignored"}] + ([{"rel": "next", "href": next_url}] if next_url else [])
    return {"jobs": jobs_, "links": links}


def test_pages_are_followed_and_times_become_utc():
    second = "https://backend.example/openeo/1.2/jobs?page=2"
    connection = Listing(
        {
            "/jobs": page(
                [
                    {"id": "j-a", "status": "finished", "created": "2024-03-01T10:00:00+02:00", "costs": 1.5},
                    {"id": "j-b", "status": "Running", "created": "2024-03-01T09:00:00Z", "progress": 42},
                ],
                second,
            ),
            second: page(
                [
                    {"id": "j-c", "status": "error", "created": "2024-03-02T00:00:00.250Z", "updated": "junk"},
                    {"id": "j-d", "status": "queued", "title": "no date", "usage": {"cpu": {"value": 1, "unit": "s"}}},
                    {"status": "finished"},  # no id: not a job
                    "junk",
                ],
                "/jobs",  # a link back to the first page is not followed again
            ),
        }
    )
    table = list_jobs(connection)
    assert connection.asked == ["/jobs", second]
    assert list(table.index) == ["j-c", "j-b", "j-a", "j-d"]
    assert list(table.columns) == ["title", "status", "created", "updated", "progress", "costs", "usage"]
    assert table.loc["j-a", "created"] == pd.Timestamp("2024-03-01T08:00:00")  # UTC, without a time zone
    assert table.loc["j-c", "created"] == pd.Timestamp("2024-03-02T00:00:00.250")
    assert pd.isna(table.loc["j-d", "created"]) and pd.isna(table.loc["j-c", "updated"])
    assert table.loc["j-b", "status"] == "running" and table.loc["j-b", "progress"] == 42
    assert np.isnan(table.loc["j-a", "progress"]) and table.loc["j-a", "costs"] == 1.5
    assert np.isnan(table.loc["j-b", "costs"]) and table.loc["j-d", "usage"] == {"cpu": {"value": 1, "unit": "s"}}
    assert table.loc["j-d", "title"] == "no date" and table.loc["j-a", "title"] is None


def test_an_empty_listing_has_the_columns():
    table = list_jobs(Listing({"/jobs": page([])}))
    assert table.empty and list(table.columns) == ["title", "status", "created", "updated", "progress"]
    assert table.created.dtype == np.dtype("datetime64[ns]") and table.index.name == "id"


def test_bad_arguments_and_bad_answers():
    connection = Listing({"/jobs": page([])})
    with pytest.raises(ValueError, match="status must be one or several of"):
        list_jobs(connection, status="finised")
    with pytest.raises(ValueError, match="status must be one or several of"):
        list_jobs(connection, status=["finished", 3])  # type: ignore[list-item]
    for limit in (-1, 2.5, True):
        with pytest.raises(ValueError, match="limit must be"):
            list_jobs(connection, limit=limit)  # type: ignore[arg-type]
    with pytest.raises(JobError, match="has no 'jobs' list"):
        list_jobs(Listing({"/jobs": {"items": []}}))
    with pytest.raises(AuthenticationError, match="list the batch jobs.*HTTP 403"):
        list_jobs(Listing({"/jobs": OpenEoApiError(http_status_code=403, code="TokenInvalid", message="no")}))
    with pytest.raises(JobError, match="HTTP 500") as info:
        list_jobs(Listing({"/jobs": OpenEoApiError(http_status_code=500, code="Internal", message="oops")}))
    assert info.value.http_status == 500


def test_logs_frame_columns_and_order():
    entries = [
        {"id": "1", "level": "info", "message": "started", "time": "2024-01-01T00:00:00Z"},
        {"id": "2", "level": "error", "message": "failed", "code": "E1", "path": [{"node_id": "a"}]},
        {"id": "3", "message": "odd", "level": "warning", "time": "2024-01-01T03:00:00+01:00", "data": {"x": 1}},
    ]
    frame = logs_frame(entries)
    assert list(frame.columns) == ["time", "level", "message", "id", "code", "path", "data"]
    assert list(frame.id) == ["1", "2", "3"]
    assert frame.time.tolist()[0] == pd.Timestamp("2024-01-01T00:00:00") and pd.isna(frame.time[1])
    assert frame.time[2] == pd.Timestamp("2024-01-01T02:00:00")
    assert frame.code.tolist()[:2] == [None, "E1"] and frame.path[1] == [{"node_id": "a"}]
    empty = logs_frame([])
    assert list(empty.columns) == ["time", "level", "message"] and empty.empty
