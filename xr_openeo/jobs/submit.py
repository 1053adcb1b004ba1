"""Creating batch jobs (``POST /jobs``) from a cube or a process graph."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import openeo

from .client_errors import CLIENT_ERRORS, backend_error
from .graphs import prepare_process_graph

logger = logging.getLogger("xr_openeo.jobs")


def as_batch_job(
    cube_or_graph: Any,
    *,
    connection: Any = None,
    title: str | None = None,
    description: str | None = None,
    out_format: str | None = None,
    job_options: Mapping[str, Any] | None = None,
) -> openeo.BatchJob:
    """Create (``POST /jobs``) a batch job that runs ``cube_or_graph``; it is not started.

    Parameters
    ----------
    cube_or_graph
        An ``openeo`` DataCube / VectorCube, whose connection is used, or a process graph as a dict
        (flat nodes, ``{"process_graph": …}`` or ``{"process": {"process_graph": …}}``), a JSON string or
        the path of a JSON file, which needs ``connection``.
    connection
        An authenticated ``openeo.Connection``.
    title, description
        The job's title and description on the backend.
    out_format
        Format of the ``save_result`` node added when the graph has none (default ``GTiff``; ``GeoJSON``
        for vector cubes). If the graph already saves its result, ``out_format`` must agree with it.
    job_options
        Backend-specific job options (sent as the top-level ``job_options`` of the request).

    Returns
    -------
    openeo.BatchJob
        The created job, status ``created``.

    Examples
    --------
    >>> job = as_batch_job(cube.ndvi(), title="NDVI", out_format="GTiff")  # doctest: +SKIP
    >>> job = as_batch_job({"process_graph": {...}}, connection=conn)  # doctest: +SKIP
    """
    conn, graph = prepare_process_graph(cube_or_graph, connection=connection, out_format=out_format)
    options = dict(job_options) if job_options is not None else None
    try:
        job = conn.create_job(
            process_graph={"process_graph": graph}, title=title, description=description, job_options=options
        )
    except CLIENT_ERRORS as exc:
        raise backend_error(exc, "create a batch job") from exc
    logger.info("Created batch job %r%s", job.job_id, f" ({title})" if title else "")
    return job
