"""The user's batch jobs, and a job's log entries, as pandas tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import JobError
from .client_errors import CLIENT_ERRORS, backend_error
from .status import PENDING, TERMINAL

if TYPE_CHECKING:
    import pandas as pd

#: Columns of :func:`list_jobs`, after its ``id`` index; ``costs`` and ``usage`` only when a job has them.
JOB_COLUMNS = ("title", "status", "created", "updated", "progress")
OPTIONAL_JOB_COLUMNS = ("costs", "usage")
#: The first columns of :func:`logs_frame`.
LOG_COLUMNS = ("time", "level", "message")
#: Pages of ``GET /jobs`` followed at most (``rel=next`` links), against a backend that links in circles.
MAX_PAGES = 1000


def _utc_naive(values: Iterable[Any]) -> pd.Series:
    """Timestamps (RFC 3339 strings) as UTC datetimes without a time zone; anything unparsable is NaT."""
    import pandas as pd

    texts = [v if isinstance(v, str) else None for v in values]
    parsed = pd.to_datetime(pd.Series(texts, dtype=object), utc=True, errors="coerce", format="ISO8601")
    return parsed.dt.tz_localize(None)


def _statuses(status: str | Iterable[str] | None) -> set[str] | None:
    """The statuses to keep, lower case; a status no job can have is a ValueError (a typo would match nothing)."""
    if status is None:
        return None
    wanted = [status] if isinstance(status, str) else list(status)
    known = PENDING + TERMINAL
    out = set()
    for value in wanted:
        if not isinstance(value, str) or value.strip().lower() not in known:
            raise ValueError(f"status must be one or several of {known}, got {value!r}")
        out.add(value.strip().lower())
    return out


def _next_link(doc: Mapping[str, Any]) -> str | None:
    links = doc.get("links")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, Mapping) and link.get("rel") == "next" and isinstance(link.get("href"), str):
            return str(link["href"])
    return None


def job_entries(connection: Any) -> list[dict[str, Any]]:
    """Every entry of ``GET /jobs``, following the backend's ``rel=next`` pagination links."""
    url: str | None = "/jobs"
    seen: set[str] = set()
    entries: list[dict[str, Any]] = []
    try:
        while url is not None and url not in seen and len(seen) < MAX_PAGES:
            seen.add(url)
            doc = connection.get(url, expected_status=200).json()
            if not isinstance(doc, Mapping) or not isinstance(doc.get("jobs"), list):
                raise JobError(f"The backend's job listing (GET {url}) has no 'jobs' list; got {type(doc).__name__}")
            entries += [dict(j) for j in doc["jobs"] if isinstance(j, Mapping) and isinstance(j.get("id"), str)]
            url = _next_link(doc)
    except CLIENT_ERRORS as exc:
        raise backend_error(exc, "list the batch jobs") from exc
    except ValueError as exc:  # a body that is no JSON
        raise JobError(f"The backend's job listing is not JSON ({exc})") from None
    return entries


def list_jobs(connection: Any, *, status: str | Iterable[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """The user's batch jobs on ``connection``'s backend, newest first, as a DataFrame.

    Parameters
    ----------
    connection
        An authenticated ``openeo.Connection``.
    status
        Keep only jobs in this status (``"finished"``, ``"error"``, ``"running"``…), or in any of
        several (``["queued", "running"]``).
    limit
        At most this many jobs (the newest).

    Returns
    -------
    pandas.DataFrame
        Indexed by job ``id``; columns ``title``, ``status`` (lower case), ``created`` and ``updated``
        (UTC datetimes without a time zone, NaT when the backend gives none), ``progress`` (percent,
        NaN when not given), and ``costs`` and ``usage`` when the backend gives them for some job.
        Sorted by ``created``, newest first (jobs without a creation time last).

    Examples
    --------
    >>> jobs = xr_openeo.list_jobs(conn, status="finished")  # doctest: +SKIP
    >>> ds = xr_openeo.open_results(jobs.index[0], connection=conn)  # doctest: +SKIP
    """
    import pandas as pd

    wanted = _statuses(status)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an integer >= 0, got {limit!r}")
    entries = job_entries(connection)
    for entry in entries:
        entry["status"] = entry["status"].strip().lower() if isinstance(entry.get("status"), str) else None
    if wanted is not None:
        entries = [e for e in entries if e["status"] in wanted]
    columns = list(JOB_COLUMNS) + [c for c in OPTIONAL_JOB_COLUMNS if any(c in e for e in entries)]
    entries.reverse()  # ties in `created` keep the later-listed job first, as find_reusable does
    frame = pd.DataFrame(
        {
            "title": pd.Series([e.get("title") for e in entries], dtype=object),
            "status": pd.Series([e["status"] for e in entries], dtype=object),
            "created": _utc_naive(e.get("created") for e in entries),
            "updated": _utc_naive(e.get("updated") for e in entries),
            "progress": pd.Series([_number(e.get("progress")) for e in entries], dtype="float64"),
            "costs": pd.Series([_number(e.get("costs")) for e in entries], dtype="float64"),
            "usage": pd.Series([e.get("usage") for e in entries], dtype=object),
        },
        columns=columns,
    )
    frame.index = pd.Index([e["id"] for e in entries], name="id", dtype=object)
    frame = frame.sort_values("created", ascending=False, na_position="last", kind="stable")
    return frame if limit is None else frame.head(limit)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    try:
        return float(value)
    except OverflowError:  # an int beyond float range
        return float("inf") if value > 0 else float("-inf")


def logs_frame(entries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A job's log entries (``GET /jobs/{id}/logs``) as a DataFrame, in the backend's order.

    Parameters
    ----------
    entries
        The log entries, as ``job.logs()`` gives them (dicts with ``id``, ``level``, ``message`` and
        optionally ``time``, ``code``, ``path``, ``data``, ``usage``, ``links``…).

    Returns
    -------
    pandas.DataFrame
        Columns ``time`` (UTC datetimes without a time zone, NaT when missing), ``level``, ``message``,
        then every other field of the entries in the order they first appear; one row per entry.
    """
    import pandas as pd

    rows = [dict(e) for e in entries if isinstance(e, Mapping)]
    others: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in LOG_COLUMNS:
                others.setdefault(str(key), None)
    data: dict[str, Any] = {"time": _utc_naive(r.get("time") for r in rows)}
    for name in [*LOG_COLUMNS[1:], *others]:
        data[name] = pd.Series([r.get(name) for r in rows], dtype=object)
    return pd.DataFrame(data, columns=[*LOG_COLUMNS, *others])
