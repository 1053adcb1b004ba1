"""Finding a finished job of this user that ran the same process graph, to open its results instead of paying again."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import openeo
from openeo.rest import OpenEoClientException

from .client_errors import CLIENT_ERRORS, backend_error, http_status, library_error
from .graphs import process_graph_key
from .handles import batch_job

logger = logging.getLogger("xr_openeo.jobs")

#: Failures of one candidate that only make it not reusable (its document is junk, or unreadable).
_CANDIDATE_ERRORS: tuple[type[BaseException], ...] = (*CLIENT_ERRORS, ValueError, TypeError)


def options_key(job_options: Any) -> str | None:
    """A key equal for equal job options (None and ``{}`` alike); None for options that cannot be compared."""
    if job_options is None:
        job_options = {}
    if not isinstance(job_options, Mapping):
        return None
    try:
        return json.dumps(dict(job_options), sort_keys=True, default=str)
    except (TypeError, ValueError):  # keys of mixed types, circular values
        return None


def _same_options(meta: Mapping[str, Any], wanted: str | None) -> bool:
    """Whether a job described by ``meta`` ran with the wanted options (key ``wanted``).

    A backend that reports a job's ``job_options`` gets them compared; one that does not (the openEO
    API has no such field) has its jobs reused only when no job options are asked for.
    """
    if "job_options" in meta:
        return options_key(meta["job_options"]) == wanted
    return wanted == options_key(None)


def find_reusable(
    connection: Any,
    process_graph: Mapping[str, Any],
    job_options: Mapping[str, Any] | None = None,
    *,
    max_candidates: int = 100,
) -> openeo.BatchJob | None:
    """A finished job of this user that ran ``process_graph`` and whose results are still there, or None.

    Lists the user's jobs (``GET /jobs``), then, newest first, describes each finished one
    (``GET /jobs/{id}``) until one has the same process graph (:func:`process_graph_key`) and the same
    job options, and answers ``GET /jobs/{id}/results`` with 200. Nothing depends on what this process
    did before: everything comes from the backend.

    Job options: when the backend reports a job's ``job_options`` in its metadata they are compared
    (``None`` and ``{}`` alike); a job whose options are not reported is reused only when
    ``job_options`` is empty, as its own options are unknown.

    Parameters
    ----------
    connection
        An authenticated ``openeo.Connection``.
    process_graph
        The graph as it would be submitted, with its ``save_result``: see :func:`prepare_process_graph`.
    job_options
        The job options it would be submitted with.
    max_candidates
        At most this many finished jobs (the newest) are described.

    Returns
    -------
    openeo.BatchJob or None
        The job (its requests raise xr_openeo's errors), or None when no job can be reused.
    """
    wanted = process_graph_key(process_graph)
    wanted_options = options_key(job_options)
    if wanted_options is None:
        raise TypeError(f"job_options must be a dict of JSON values, got {type(job_options).__name__}")
    try:
        listing = list(connection.list_jobs(limit=None) or [])
    except CLIENT_ERRORS as exc:
        raise backend_error(exc, "list the batch jobs (to find one to reuse)") from exc
    finished = [
        j
        for j in reversed(listing)
        if isinstance(j, Mapping) and j.get("status") == "finished" and isinstance(j.get("id"), str) and j["id"]
    ]
    # stable: later-listed first on ties; a `created` that is no string sorts last
    finished.sort(key=lambda j: j["created"] if isinstance(j.get("created"), str) else "", reverse=True)
    for entry in finished[:max_candidates]:
        job_id = entry["id"]
        try:
            meta = connection.get(f"/jobs/{job_id}", expected_status=200).json()
            if not isinstance(meta, Mapping):
                raise ValueError(f"GET /jobs/{job_id} answered no JSON object")
            if process_graph_key(meta.get("process") or {}) != wanted:
                continue
        except _CANDIDATE_ERRORS as exc:
            if http_status(exc) in (401, 403):
                raise library_error(exc, "describe", job_id) from exc
            logger.debug("Not reusing job %r: %s", job_id, exc)
            continue
        if not _same_options(meta, wanted_options):
            logger.debug("Not reusing job %r: other (or unreported) job options", job_id)
            continue
        try:
            connection.get(f"/jobs/{job_id}/results", expected_status=200)
        except CLIENT_ERRORS as exc:
            if not isinstance(exc, OpenEoClientException) or http_status(exc) in (401, 403):
                raise library_error(exc, "read the results of", job_id) from exc
            logger.debug("Not reusing job %r: its results are gone (%s)", job_id, exc)
            continue
        logger.info("Reusing finished batch job %r (same process graph)", job_id)
        return batch_job(connection, job_id)
    return None
