"""Batch jobs: submit, start, poll (progress, backoff, timeout, cancel on interrupt), logs and reuse.

The only module of xr_openeo that imports ``openeo``. It hands back an ``openeo.BatchJob`` whose results
the rest of the library opens; it reads no results itself.

Polling keeps the *finished-detection lag* (time between the job finishing on the backend and this
module noticing) at most ``max(1 s, 10 % of the elapsed time)``: :class:`PollSchedule`. That bound costs
more status requests than the openeo client's ``start_and_wait`` for jobs shorter than about 45 minutes
(that client waits 5 s before its second poll, so it can be 15 s late for a one-minute job);
``openeo_client_schedule`` and ``polls_until`` let tests and users compare the two offline.
"""

from __future__ import annotations

import email.utils
import hashlib
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import openeo
import requests
from openeo.rest import OpenEoClientException

from ..errors import AuthenticationError, JobError, JobFailedError, JobNotFoundError, JobTimeoutError, XrOpenEOError
from ..results import redact

__all__ = [
    "as_batch_job",
    "prepare_process_graph",
    "process_graph_key",
    "find_reusable",
    "wait",
    "PollSchedule",
    "openeo_client_schedule",
    "polls_until",
]

logger = logging.getLogger(__name__)

#: Statuses of a job that is still on its way.
PENDING = ("created", "submitted", "queued", "running")
#: Statuses a job ends in.
TERMINAL = ("finished", "error", "canceled")
#: HTTP statuses worth retrying: rate limits and gateways.
TRANSIENT_HTTP = frozenset({429, 502, 503, 504})
#: Nodes that write a graph's result somewhere (a graph with one needs no added ``save_result``).
SAVING_PROCESSES = frozenset({"save_result", "save_ml_model"})
DEFAULT_FORMAT = "GTiff"
DEFAULT_VECTOR_FORMAT = "GeoJSON"


# -- process graphs ---------------------------------------------------------------------------------


def _graph_source(graph: Any) -> dict[str, Any]:
    """A process graph given as dict, JSON string or path to a JSON file, parsed (not yet validated)."""
    if isinstance(graph, Mapping):
        return dict(graph)
    if isinstance(graph, bytes):
        graph = graph.decode()
    if isinstance(graph, str) and graph.lstrip().startswith(("{", "[")):
        try:
            parsed = json.loads(graph)
        except json.JSONDecodeError as exc:
            raise ValueError(f"The process graph is not valid JSON: {exc}") from None
    elif isinstance(graph, str | os.PathLike):
        path = Path(graph)
        if not path.is_file():
            raise ValueError(
                f"Expected an openeo DataCube/VectorCube, a process graph dict, a JSON string or the path of a "
                f"JSON file; {str(graph)[:80]!r} is neither JSON nor an existing file"
            )
        try:
            parsed = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"The process graph file {str(path)!r} is not valid JSON: {exc}") from None
    else:
        raise TypeError(
            "Expected an openeo DataCube/VectorCube, a process graph dict, a JSON string or the path of a "
            f"JSON file, got {type(graph).__name__}"
        )
    if not isinstance(parsed, dict):
        raise ValueError(f"A process graph must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _flat_nodes(graph: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The flat node dict of ``{"process": {"process_graph": …}}``, ``{"process_graph": …}`` or nodes."""
    g: Any = graph
    for key in ("process", "process_graph"):
        inner = g.get(key) if isinstance(g, Mapping) else None
        # A node may be *named* "process" or "process_graph": then it has a process_id.
        if isinstance(inner, Mapping) and "process_id" not in inner:
            g = inner
    if not isinstance(g, Mapping) or not g:
        raise ValueError("The process graph is empty")
    nodes: dict[str, dict[str, Any]] = {}
    for node_id, node in g.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("process_id"), str):
            raise ValueError(
                f"Process graph node {node_id!r} is not a node ({{'process_id': ..., 'arguments': {{...}}}}); "
                "pass a flat process graph, {'process_graph': {...}} or {'process': {'process_graph': {...}}}"
            )
        nodes[str(node_id)] = dict(node)
    return nodes


def _references(value: Any) -> Iterator[str]:
    """Node ids a node's arguments refer to with ``from_node`` (not inside child process graphs)."""
    if isinstance(value, Mapping):
        if set(value) == {"from_node"}:
            yield str(value["from_node"])
            return
        for key, item in value.items():
            if key == "process_graph" and isinstance(item, Mapping):
                continue  # a callback: its from_node refer to its own nodes
            yield from _references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _references(item)


def _result_node(nodes: Mapping[str, Mapping[str, Any]]) -> str:
    flagged = [n for n, node in nodes.items() if node.get("result") is True]
    if len(flagged) == 1:
        return flagged[0]
    if len(flagged) > 1:
        raise ValueError(f"The process graph has {len(flagged)} result nodes ({flagged}); exactly one is allowed")
    referenced = {ref for node in nodes.values() for ref in _references(node.get("arguments", {}))}
    leaves = [n for n in nodes if n not in referenced]
    if len(leaves) == 1:
        return leaves[0]
    raise ValueError(f"The process graph marks no node with 'result': true, and has {len(leaves)} leaf nodes {leaves}")


def _with_save_result(
    nodes: dict[str, dict[str, Any]], out_format: str | None, connection: Any
) -> dict[str, dict[str, Any]]:
    """``nodes`` with a ``save_result`` node consuming the result node, unless a saving node exists."""
    saving = {node.get("process_id") for node in nodes.values()} & SAVING_PROCESSES
    if saving:
        _check_format(nodes, out_format)
        return nodes
    fmt = out_format or DEFAULT_FORMAT
    _check_backend_format(connection, fmt)
    result = _result_node(nodes)
    out = {n: {k: v for k, v in node.items() if k != "result"} for n, node in nodes.items()}
    save_id, i = "saveresult1", 1
    while save_id in out:
        i += 1
        save_id = f"saveresult{i}"
    out[save_id] = {
        "process_id": "save_result",
        "arguments": {"data": {"from_node": result}, "format": fmt, "options": {}},
        "result": True,
    }
    return out


def _check_format(nodes: Mapping[str, Mapping[str, Any]], out_format: str | None) -> None:
    if out_format is None:
        return
    formats = {
        str(node.get("arguments", {}).get("format", "")).lower()
        for node in nodes.values()
        if node.get("process_id") == "save_result"
    }
    if formats and out_format.lower() not in formats:
        raise ValueError(
            f"The process graph already saves its result as {sorted(formats)}, but out_format={out_format!r} was "
            "given: drop out_format, or change the graph's save_result node"
        )


def _check_backend_format(connection: Any, fmt: str) -> None:
    try:
        formats = set(connection.list_output_formats())
    except Exception:  # capabilities are a courtesy check; the backend will say it when creating the job
        return
    if formats and fmt.lower() not in {f.lower() for f in formats}:
        raise ValueError(f"The backend cannot write out_format={fmt!r}; it offers {sorted(formats)}")


def _is_cube(obj: Any) -> bool:
    return hasattr(obj, "flat_graph") and hasattr(obj, "result_node")


def prepare_process_graph(
    cube_or_graph: Any, *, connection: Any = None, out_format: str | None = None
) -> tuple[openeo.Connection, dict[str, dict[str, Any]]]:
    """The connection and the flat process graph a batch job for ``cube_or_graph`` would run.

    A ``save_result`` node (format ``out_format``, default ``GTiff`` for rasters, ``GeoJSON`` for vector
    cubes) is added when the graph has none. No job is created; the backend may be asked for its output
    formats, to refuse a format it cannot write. :func:`as_batch_job` submits exactly this graph, and
    :func:`find_reusable` compares against it.

    Parameters
    ----------
    cube_or_graph
        An ``openeo`` DataCube / VectorCube (or any client object with ``flat_graph()``), or a process
        graph: a dict (flat nodes, ``{"process_graph": …}`` or ``{"process": {"process_graph": …}}``), a
        JSON string or the path of a JSON file.
    connection
        The ``openeo.Connection`` to use; required for a process graph, optional for a cube (whose own
        connection it must then be).
    out_format
        Output format of the added ``save_result``; if the graph already saves, it must agree.

    Returns
    -------
    tuple
        ``(connection, flat_graph)``.
    """
    if _is_cube(cube_or_graph):
        own = getattr(cube_or_graph, "connection", None)
        if own is not None and connection is not None and connection is not own:
            raise ValueError(
                "connection= differs from the cube's own connection; build the cube on that connection, or drop "
                "connection="
            )
        conn = own if own is not None else connection
        if conn is None:
            raise ValueError(
                f"This {type(cube_or_graph).__name__} has no connection: pass connection=openeo.connect(url)"
            )
        nodes = _flat_nodes(cube_or_graph.flat_graph())
        has_save = bool({n.get("process_id") for n in nodes.values()} & SAVING_PROCESSES)
        save_result = getattr(cube_or_graph, "save_result", None)
        if has_save or save_result is None:
            return conn, _with_save_result(nodes, out_format, conn)
        default = DEFAULT_VECTOR_FORMAT if isinstance(cube_or_graph, openeo.VectorCube) else DEFAULT_FORMAT
        # The client's own save_result checks the format against the backend's output formats.
        return conn, _flat_nodes(save_result(format=out_format or default).flat_graph())
    nodes = _flat_nodes(_graph_source(cube_or_graph))
    if connection is None:
        raise ValueError(
            "A process graph needs a connection to run on: pass connection=openeo.connect(url) (authenticated), "
            "or build the graph as an openeo DataCube on that connection"
        )
    return connection, _with_save_result(nodes, out_format, connection)


def _canonical(value: Any, node_key: Callable[[str], str]) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"from_node"}:
            return {"from_node": node_key(str(value["from_node"]))}
        out = {}
        for key, item in value.items():
            if key == "process_graph" and isinstance(item, Mapping):
                out[key] = process_graph_key(item)  # a callback, compared as a graph of its own
            else:
                out[key] = _canonical(item, node_key)
        return out
    if isinstance(value, list | tuple):
        return [_canonical(item, node_key) for item in value]
    return value


def process_graph_key(process_graph: Mapping[str, Any]) -> str:
    """A key equal for process graphs that compute the same thing, whatever their node ids.

    Node ids, node descriptions and node order do not matter; processes, namespaces, arguments and the
    way nodes feed each other (also inside callbacks) do. ``process_graph`` may be flat nodes,
    ``{"process_graph": …}`` or ``{"process": {"process_graph": …}}``.
    """
    nodes = _flat_nodes(process_graph)
    keys: dict[str, str] = {}
    visiting: set[str] = set()

    def node_key(node_id: str) -> str:
        if node_id in keys:
            return keys[node_id]
        if node_id not in nodes:
            raise ValueError(f"The process graph refers to a node {node_id!r} it does not have")
        if node_id in visiting:
            raise ValueError(f"The process graph has a cycle through node {node_id!r}")
        visiting.add(node_id)
        node = nodes[node_id]
        doc = {
            "process_id": node["process_id"],
            "namespace": node.get("namespace"),
            "arguments": _canonical(node.get("arguments", {}), node_key),
        }
        visiting.discard(node_id)
        keys[node_id] = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
        return keys[node_id]

    referenced = {ref for node in nodes.values() for ref in _references(node.get("arguments", {}))}
    leaves = sorted(node_key(n) for n in nodes if n not in referenced)
    for n in nodes:
        node_key(n)
    result = node_key(_result_node(nodes))
    return hashlib.sha256(json.dumps({"result": result, "leaves": leaves}).encode()).hexdigest()


# -- creating jobs and finding reusable ones --------------------------------------------------------

# Job options this process submitted, by (backend, job id): backends do not report a job's options back
# (GET /jobs/{id} has no field for them), so reuse checks them from here when it can.
_SUBMITTED_OPTIONS: dict[tuple[str, str], str] = {}
_SUBMITTED_LOCK = threading.Lock()
_SUBMITTED_MAX = 4096


def _options_key(job_options: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(job_options or {}), sort_keys=True, default=str)


def _backend_id(connection: Any) -> str:
    return str(getattr(connection, "root_url", None) or id(connection))


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
    except (OpenEoClientException, requests.RequestException) as exc:
        raise _backend_error(exc, "create a batch job") from exc
    with _SUBMITTED_LOCK:
        _SUBMITTED_OPTIONS[(_backend_id(conn), job.job_id)] = _options_key(options)
        while len(_SUBMITTED_OPTIONS) > _SUBMITTED_MAX:
            del _SUBMITTED_OPTIONS[next(iter(_SUBMITTED_OPTIONS))]
    logger.info("Created batch job %r%s", job.job_id, f" ({title})" if title else "")
    return job


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
    job options, and answers ``GET /jobs/{id}/results`` with 200.

    Job options: when the backend reports a job's ``job_options`` they are compared; backends usually
    do not, so options of jobs this process created are remembered and compared; a job of unknown
    options is reused only when ``job_options`` is empty.

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
    """
    wanted = process_graph_key(process_graph)
    wanted_options = _options_key(job_options)
    try:
        listing = list(connection.list_jobs(limit=None) or [])
    except (OpenEoClientException, requests.RequestException) as exc:
        raise _backend_error(exc, "list the batch jobs (to find one to reuse)") from exc
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
        except (OpenEoClientException, requests.RequestException, ValueError, TypeError) as exc:
            if _http_status(exc) in (401, 403):
                raise _library_error(exc, "describe", job_id) from exc
            logger.debug("Not reusing job %r: %s", job_id, exc)
            continue
        if "job_options" in meta:
            options = _options_key(meta.get("job_options"))
        else:
            with _SUBMITTED_LOCK:
                options = _SUBMITTED_OPTIONS.get((_backend_id(connection), job_id), _options_key(None))
        if options != wanted_options:
            logger.debug("Not reusing job %r: other job options", job_id)
            continue
        try:
            connection.get(f"/jobs/{job_id}/results", expected_status=200)
        except OpenEoClientException as exc:
            logger.debug("Not reusing job %r: its results are gone (%s)", job_id, exc)
            continue
        logger.info("Reusing finished batch job %r (same process graph)", job_id)
        return batch_job(connection, job_id)
    return None


# -- polling schedules ------------------------------------------------------------------------------


class Schedule(Protocol):
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


# -- errors from the backend ------------------------------------------------------------------------


def _http_status(exc: BaseException) -> int | None:
    status = getattr(exc, "http_status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _is_transient(exc: BaseException) -> bool:
    if isinstance(
        exc,
        requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.RetryError
        | requests.exceptions.ChunkedEncodingError,
    ):
        return True
    return _http_status(exc) in TRANSIENT_HTTP


def _parse_retry_after(value: Any, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """Seconds of a ``Retry-After`` header (delay seconds or an HTTP date), or None."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return _parse_retry_after(headers.get("Retry-After") if hasattr(headers, "get") else None)


def _library_error(exc: BaseException, action: str, job_id: str) -> XrOpenEOError:
    status = _http_status(exc)
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    what = f"HTTP {status}" + (f" {code}" if code else "") if status else type(exc).__name__
    if status == 404 or code == "JobNotFound":
        return JobNotFoundError(
            f"The backend does not know batch job {job_id!r} ({what}: {message}); check the job id, and that the "
            "connection is authenticated as the job's owner",
            job_id=job_id,
            http_status=status,
        )
    if status in (401, 403):
        return AuthenticationError(
            f"The backend refused the credentials to {action} batch job {job_id!r} ({what}: {message}); "
            "authenticate the connection again"
        )
    return JobError(f"Could not {action} batch job {job_id!r} ({what}: {message})", job_id=job_id, http_status=status)


def _backend_error(exc: BaseException, doing: str) -> XrOpenEOError:
    """The library error for a failed request about no particular job (``doing``: what it tried)."""
    status = _http_status(exc)
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    what = f"HTTP {status}" + (f" {code}" if code else "") if status else type(exc).__name__
    if status in (401, 403):
        return AuthenticationError(
            f"The backend refused the credentials to {doing} ({what}: {message}); authenticate the connection again"
        )
    return JobError(f"Could not {doing} ({what}: {message})", http_status=status)


def _describe_error(exc: BaseException) -> str:
    """A short, redacted account of a failed request: ``HTTP 503``, or ``ConnectionError ([Errno 111] …)``."""
    status = _http_status(exc)
    if status:
        return f"HTTP {status}"
    text = redact(str(exc))
    errno = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    detail = errno.group(0).strip() if errno else _truncate(text, 200)
    return f"{type(exc).__name__} ({detail})" if detail else type(exc).__name__


def _short_repr(value: Any, width: int = 80) -> str:
    """``repr(value)``, cut to ``width`` characters (backend documents can be huge)."""
    try:
        text = repr(value)
    except Exception:  # a repr that fails says nothing useful
        text = f"<{type(value).__name__}>"
    return text if len(text) <= width else text[: width - 1] + "…"


# -- progress display -------------------------------------------------------------------------------


def _in_jupyter() -> bool:
    """True inside a Jupyter (IPython) kernel; never imports IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    if shell is None:
        return False
    return type(shell).__name__ == "ZMQInteractiveShell" or "IPKernelApp" in (getattr(shell, "config", None) or {})


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr and sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def _display_kind(progress: bool | str) -> str:
    """``none``, ``log``, ``bar`` or ``notebook`` for a ``progress=`` argument."""
    if progress is False or progress is None:
        return "none"
    if progress is True or progress == "auto":
        if _in_jupyter():
            return "notebook"
        return "bar" if _stderr_is_terminal() else "log"
    if progress in ("none", "log", "bar", "notebook"):
        return str(progress)
    raise ValueError(f"progress must be True, False, 'auto', 'bar', 'notebook', 'log' or 'none', got {progress!r}")


def _fmt_elapsed(seconds: float) -> str:
    return str(timedelta(seconds=round(max(seconds, 0.0))))


def _fmt_progress(progress: Any) -> str:
    return f"{float(progress):.0f}%" if isinstance(progress, int | float) and not isinstance(progress, bool) else "-"


class _Display:
    """Shows a job's status; this base shows nothing."""

    tick_every: float | None = None  # seconds between refreshes while sleeping (bars), None: no refresh

    def update(self, status: str, progress: Any, elapsed: float) -> None:
        pass

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


class _LogDisplay(_Display):
    """One ``logging`` line per change of status or progress."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._last: tuple[str, str] | None = None

    def update(self, status: str, progress: Any, elapsed: float) -> None:
        shown = (status, _fmt_progress(progress))
        if shown != self._last:
            self._last = shown
            logger.info(
                "Batch job %r: %s (progress %s) after %s", self.job_id, shown[0], shown[1], _fmt_elapsed(elapsed)
            )


class _BarDisplay(_Display):
    """A tqdm bar (or Jupyter widget) with status, progress % and elapsed time."""

    tick_every = 1.0

    def __init__(self, job_id: str, notebook: bool) -> None:
        self.job_id = job_id
        kwargs: dict[str, Any] = {
            "total": 100,
            "desc": f"Job {job_id}",
            "bar_format": "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]",
            "leave": True,
        }
        self.bar: Any = None
        if notebook and importlib.util.find_spec("ipywidgets") is not None:
            try:
                from tqdm.notebook import tqdm as notebook_tqdm

                self.bar = notebook_tqdm(**kwargs)
            except Exception as exc:  # an old or broken ipywidgets: the text bar works in notebooks too
                logger.debug("No notebook progress widget (%s); using a text bar", exc)
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)

    def update(self, status: str, progress: Any, elapsed: float) -> None:
        if isinstance(progress, int | float) and not isinstance(progress, bool):
            self.bar.n = min(max(float(progress), 0.0), 100.0)
        self.bar.set_description_str(f"Job {self.job_id} {status}", refresh=False)
        self.bar.refresh()

    def tick(self) -> None:
        self.bar.refresh()  # moves the elapsed time along between polls

    def close(self) -> None:
        self.bar.close()


def _make_display(progress: bool | str, job_id: str) -> _Display:
    kind = _display_kind(progress)
    if kind == "log":
        return _LogDisplay(job_id)
    if kind in ("bar", "notebook"):
        return _BarDisplay(job_id, notebook=kind == "notebook")
    return _Display()


# -- waiting ----------------------------------------------------------------------------------------


class _Hint:
    """What a failed attempt learned about when to try again."""

    retry_after: float | None = None


def _describe(job: Any, hint: _Hint) -> dict[str, Any]:
    """``GET /jobs/{id}``; for a client BatchJob, keeps ``Retry-After`` of an error answer in ``hint``."""
    if isinstance(job, openeo.BatchJob):

        def capture(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            if response.status_code >= 400:
                hint.retry_after = _parse_retry_after(response.headers.get("Retry-After"))

        response = job.connection.get(f"/jobs/{job.job_id}", expected_status=200, hooks={"response": capture})
        meta = response.json()
    else:
        meta = job.describe()
    if not isinstance(meta, Mapping):
        raise JobError(f"The backend described batch job {job.job_id!r} with no JSON object", job_id=job.job_id)
    return dict(meta)


def _job_status(meta: Mapping[str, Any], job_id: str) -> str:
    """The ``status`` of a job's metadata, lower case; a missing or non-string one is a :class:`JobError`."""
    status = meta.get("status")
    if not isinstance(status, str) or not status.strip():
        raise JobError(
            f"The backend described batch job {job_id!r} with no valid 'status' (got {_short_repr(status)}; "
            f"expected one of {PENDING + TERMINAL})",
            job_id=job_id,
        )
    return status.strip().lower()


def _job_progress(meta: Mapping[str, Any]) -> float | None:
    """The ``progress`` of a job's metadata as a percentage in [0, 100], or None when it is missing or malformed.

    Progress is shown, never acted on, so a malformed one is dropped rather than raised.
    """
    progress = meta.get("progress")
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        return None
    try:
        value = float(progress)
    except OverflowError:  # an int beyond float range
        return 100.0 if progress > 0 else 0.0
    if value != value:  # NaN
        return None
    return min(max(value, 0.0), 100.0)


class _Waiter:
    """One wait for one job: clock, deadline, retries and the display."""

    def __init__(
        self,
        job: Any,
        *,
        schedule: Schedule,
        display: _Display,
        timeout: float | None,
        clock: Callable[[], float],
        sleep: Callable[[float], Any],
        max_retries: int,
        max_backoff: float,
    ) -> None:
        self.job, self.job_id = job, str(job.job_id)
        self.schedule, self.display = schedule, display
        self.clock, self._sleep = clock, sleep
        self.max_retries, self.max_backoff = max_retries, max_backoff
        self.t0 = clock()
        self.deadline = None if timeout is None else max(float(timeout), 0.0)
        self.status: str | None = None
        self.attempted_at = 0.0
        self.started = False

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def sleep_until(self, target: float) -> None:
        """Sleep until ``target`` seconds after the start, refreshing a bar on the way."""
        while (left := target - self.elapsed()) > 0:
            step = left if self.display.tick_every is None else min(left, self.display.tick_every)
            self._sleep(step)
            self.display.tick()

    def call(self, fn: Callable[[_Hint], Any], action: str) -> Any:
        """``fn(hint)``, retrying transient errors (backoff, ``Retry-After``) up to ``max_retries`` in a row."""
        failures = 0
        first_failure = 0.0
        while True:
            hint = _Hint()
            self.attempted_at = self.elapsed()
            try:
                result = fn(hint)
            except XrOpenEOError:
                raise
            except (OpenEoClientException, requests.RequestException) as exc:
                if not _is_transient(exc):
                    raise _library_error(exc, action, self.job_id) from exc
                if not failures:
                    first_failure = self.attempted_at
                failures += 1
                status = _http_status(exc)
                if failures > self.max_retries:
                    raise JobError(
                        self._unreachable(action, failures, self.elapsed() - first_failure, exc),
                        job_id=self.job_id,
                        status=self.status,
                        http_status=status,
                    ) from exc
                after = hint.retry_after if hint.retry_after is not None else _retry_after(exc)
                delay = after if after is not None else min(2.0 ** (failures - 1), self.max_backoff)
                delay = min(delay, 10 * self.max_backoff)  # a Retry-After of hours is not worth blocking on
                if self.deadline is not None:
                    left = self.deadline - self.elapsed()
                    if left <= 0:
                        raise self._timeout(f"transient errors while trying to {action} it ({exc})") from exc
                    delay = min(delay, left)
                logger.warning(
                    "Transient error %d/%d while trying to %s batch job %r (%s); retrying in %.1f s",
                    failures,
                    self.max_retries,
                    action,
                    self.job_id,
                    _describe_error(exc),
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
            f"{seconds:.1f} s, the last {_describe_error(exc)}. {state}. Once the backend answers again, reattach "
            f"to it by its id: xr_openeo.jobs.wait({job}) (which starts it if needed and waits), then "
            f"xr_openeo.open_results({job}); compute_batch(..., reuse=True) reuses it only once it finished"
        )

    def run(self) -> dict[str, Any]:
        created_after_start = 0
        while True:
            meta = self.call(lambda hint: _describe(self.job, hint), "poll the status of")
            polled_at = self.attempted_at  # when the answered request was sent: the next is spaced from it
            status = _job_status(meta, self.job_id)
            self.status = status
            self.display.update(status, _job_progress(meta), polled_at)
            if status == "finished":
                logger.debug("Batch job %r finished after %s", self.job_id, _fmt_elapsed(self.elapsed()))
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
                        )
            elif status in PENDING:
                created_after_start = 0
            else:
                raise JobError(
                    f"Batch job {self.job_id!r} has the unknown status {_short_repr(status)} (expected one of "
                    f"{PENDING + TERMINAL})",
                    job_id=self.job_id,
                )
            next_poll = polled_at + self.schedule.interval(polled_at)
            if self.deadline is not None:
                if self.elapsed() >= self.deadline:
                    raise self._timeout(f"still {status}")
                next_poll = min(next_poll, self.deadline)
            self.sleep_until(next_poll)

    def _timeout(self, why: str) -> JobTimeoutError:
        return JobTimeoutError(
            f"Gave up waiting for batch job {self.job_id!r} after {_fmt_elapsed(self.elapsed())} (timeout="
            f"{self.deadline:g} s): {why}. The job keeps running on the backend; reconnect to it by id, e.g. "
            f"xr_openeo.jobs.wait(connection.job({self.job_id!r})) or xr_openeo.open_results(connection.job("
            f"{self.job_id!r})) once it finished",
            job_id=self.job_id,
        )

    def _failed(self, status: str) -> JobFailedError:
        try:
            entries = self.call(lambda hint: self.job.logs(level="error"), "read the error logs of")
            logs = [dict(e) for e in entries if isinstance(e, Mapping)]
            unavailable = None
        except Exception as exc:  # the failure matters more than its logs
            logs, unavailable = [], f"{type(exc).__name__}: {exc}"
        what = "failed" if status == "error" else "was canceled"
        message = f"Batch job {self.job_id!r} {what} after {_fmt_elapsed(self.elapsed())}"
        shown = [_truncate(str(e.get("message", "")).strip() or "(no message)", 300) for e in logs[:3]]
        if shown:
            more = f" (and {len(logs) - 3} more)" if len(logs) > 3 else ""
            message += ": " + "; ".join(shown) + more
        elif unavailable:
            message += f" (its error logs could not be read: {unavailable})"
        elif status == "error":
            message += " (the backend logged no error message)"
        message += f". All logs: connection.job({self.job_id!r}).logs()"
        return JobFailedError(message, job_id=self.job_id, logs=logs)


def _truncate(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _cancel(job: Any, why: str) -> None:
    try:
        job.stop()
    except Exception as exc:
        logger.error(
            "%s, but canceling batch job %r failed (%s): it may still be running on the backend; cancel it "
            "with connection.job(%r).stop()",
            why,
            job.job_id,
            _describe_error(exc),
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
    max_retries: int = 10,
    max_backoff: float = 60.0,
) -> dict[str, Any]:
    """Start ``job`` if it is ``created``, and poll its status until it finished.

    Parameters
    ----------
    job
        An ``openeo.BatchJob`` (``connection.job(id)`` reconnects to one by id).
    progress
        True: a progress bar on a terminal, a widget in Jupyter, ``logging`` lines (logger
        ``xr_openeo.jobs``, level INFO) otherwise; ``"bar"``, ``"notebook"`` or ``"log"`` to choose;
        False: nothing.
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
        ``Retry-After`` the backend asked for. Other errors raise at once. With the defaults a backend
        outage of about five minutes (1 + 2 + … + 32 + 4 × 60 s) is waited out. Each retry is logged
        (logger ``xr_openeo.jobs``, level WARNING), and so is the first answer after an outage.
    max_backoff
        Longest pause between two retries, in seconds.

    Returns
    -------
    dict
        The job's last metadata (``GET /jobs/{id}``), status ``finished``.

    Raises
    ------
    JobFailedError
        The job ended in ``error`` or ``canceled``; carries ``job_id`` and the error ``logs``.
    JobTimeoutError
        ``timeout`` passed first (also while retrying transient errors); the job keeps running.
    JobError
        More than ``max_retries`` transient errors in a row (the backend is down or overloaded): the
        message names the backend and says how to reattach to the job, which keeps running; or any
        other failed request.
    JobNotFoundError, AuthenticationError
        The backend does not know the job, or refused the credentials.

    Notes
    -----
    On ``KeyboardInterrupt`` the job is canceled (when ``cancel_on_interrupt``) unless it already ended;
    if the backend cannot be reached to cancel it, an ERROR log line says so and how to cancel it later.
    Interrupting never cancels a job twice, and ``KeyboardInterrupt`` is always re-raised.
    """
    waiter = _Waiter(
        job,
        schedule=schedule or PollSchedule(),
        display=_make_display(progress, str(job.job_id)),
        timeout=timeout,
        clock=clock,
        sleep=sleep,
        max_retries=max_retries,
        max_backoff=max_backoff,
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


# -- connections for datasets that came from openEO ----------------------------------------------

_CONNECTIONS: dict[str, openeo.Connection] = {}


def remember_connection(connection: openeo.Connection) -> None:
    """Keep ``connection`` (in this process only) so that datasets from its backend can reach their jobs."""
    _CONNECTIONS[connection.root_url.rstrip("/")] = connection


def connection_for(root: str | None) -> openeo.Connection:
    """The connection remembered for backend ``root``, or an error that says how to provide one."""
    if root and root.rstrip("/") in _CONNECTIONS:
        return _CONNECTIONS[root.rstrip("/")]
    raise XrOpenEOError(
        f"No connection to {root or 'the backend'} in this process: open the results with connection= "
        "(or from a BatchJob), or call xr_openeo.jobs.remember_connection(openeo.connect(url).authenticate_…())"
    )


class LibraryErrorsBatchJob(openeo.BatchJob):
    """An ``openeo.BatchJob`` whose ``describe``, ``status``, ``logs``, ``start`` and ``stop`` raise
    xr_openeo's errors (:class:`~xr_openeo.errors.JobNotFoundError`, :class:`~xr_openeo.errors.AuthenticationError`,
    :class:`~xr_openeo.errors.JobError`) instead of the client's exceptions."""

    def _mapped(self, action: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (OpenEoClientException, requests.RequestException) as exc:
            raise _library_error(exc, action, str(self.job_id)) from exc

    def describe(self) -> dict:
        meta = self._mapped("describe", super().describe)
        if not isinstance(meta, Mapping):
            raise JobError(
                f"The backend described batch job {self.job_id!r} with no JSON object", job_id=str(self.job_id)
            )
        return dict(meta)

    def status(self) -> str:
        status = self.describe().get("status")
        if not isinstance(status, str):
            raise JobError(
                f"The backend reported no valid 'status' for batch job {self.job_id!r} (got {_short_repr(status)})",
                job_id=str(self.job_id),
            )
        return status

    def logs(self, offset: str | None = None, level: str | int | None = None) -> Any:
        return self._mapped("read the logs of", lambda: super(LibraryErrorsBatchJob, self).logs(offset, level))

    def start(self) -> Any:
        return self._mapped("start", super().start)

    def stop(self) -> Any:
        return self._mapped("cancel", super().stop)


def batch_job(connection: openeo.Connection, job_id: str) -> openeo.BatchJob:
    """The ``BatchJob`` of ``job_id`` on ``connection`` (no request); its requests raise xr_openeo's errors."""
    return LibraryErrorsBatchJob(job_id=job_id, connection=connection)


def load_results_cube(connection: openeo.Connection, url: str) -> Any:
    """An ``openeo`` DataCube that loads these results on the backend (``load_stac`` of ``url``)."""
    return connection.load_stac(url)
