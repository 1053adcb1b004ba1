"""Synchronous processing: ``POST /result`` runs the graph in the request and answers with its result.

The graph runs as a batch job's does (same engine, writers and formats, in a thread of its own);
the answer is the result file, or a tar archive for several files (see :mod:`..synchronous`).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request

from ..assets import WrittenAsset
from ..execution import Canceled, InjectedFailure
from ..faults import Faults
from ..files import serve_file
from ..graphs import GraphError, check_graph, with_save_result
from ..jobs import SyncTimeout, rfc3339, style_option
from ..processes import process_specs
from ..stac import JobSummary
from ..state import ApiError, authenticated_user, current_state, error_response
from ..synchronous import TAR_MEDIA_TYPE, needs_archive, sync_job_options, write_archive

api = Blueprint("sync", __name__)

# What nginx answers when the backend behind it takes longer than its proxy timeout.
GATEWAY_TIMEOUT_PAGE = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@api.post("/result")
def compute_result() -> Response:
    """Run the request's process graph now and answer with its result file (see the module docstring)."""
    state = current_state()
    owner = authenticated_user()
    request_id = f"r-{uuid.uuid4().hex[:16]}"
    process, job_options, faults, style = _read_request(request_id)
    folder = state.jobs.root / "_sync" / request_id
    archive = folder.with_suffix(".tar")
    try:
        assets = state.jobs.run_sync(
            with_save_result(process["process_graph"]), job_options=job_options, faults=faults, out_dir=folder
        )
    except SyncTimeout as exc:  # the abandoned run removes its own folder
        return _timeout_response(request_id, faults, str(exc))
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise _run_error(request_id, exc) from None
    try:
        path, media_type, name = _result_file(request_id, process, owner, assets, archive, style)
        response = serve_file(
            path, media_type, name, faults, state, ranges=False, on_close=lambda: _remove(folder, archive)
        )
    except BaseException as exc:
        _remove(folder, archive)
        if isinstance(exc, ApiError):
            exc.error_id = exc.error_id or request_id
            exc.headers.setdefault("OpenEO-Identifier", request_id)
        raise
    response.headers["OpenEO-Identifier"] = request_id
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    if faults.sync_costs is not None:
        response.headers["OpenEO-Costs"] = f"{faults.sync_costs:g}"
    return response


def _result_file(
    request_id: str, process: dict[str, Any], owner: str, assets: list[WrittenAsset], archive: Path, style: str
) -> tuple[Path, str, str]:
    """(path, media type, file name) of the answer: the one result file, else the tar archive written to ``archive``."""
    if not assets:
        raise _error(request_id, 500, "Internal", "The process graph wrote no result file")
    if not needs_archive(assets):
        return assets[0].path, assets[0].media_type, assets[0].key
    now = rfc3339(current_state().clock())
    summary = JobSummary(
        id=request_id,
        title=process.get("title"),
        description=process.get("description") or f"Synchronous result {request_id}",
        process=process,
        status="finished",
        created=now,
        updated=now,
        owner=owner,
    )
    return write_archive(archive, assets, summary, style=style), TAR_MEDIA_TYPE, archive.name


def _read_request(request_id: str) -> tuple[dict[str, Any], dict[str, Any], Faults, str]:
    """(process, job options, faults in force, results style) of the request, else a 4xx openEO error."""
    state = current_state()
    body = request.get_json(silent=True)
    process = body.get("process") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(process, dict) or "process_graph" not in process:
        raise _error(
            request_id,
            400,
            "ProcessGraphMissing",
            "The request body must be a JSON object whose 'process' holds a 'process_graph'",
        )
    try:
        job_options = sync_job_options(body)
        faults = state.faults.merged(job_options.get("faults"))
        style = style_option(job_options, state.jobs.default_style)
    except (ValueError, TypeError) as exc:
        raise _error(request_id, 400, "JobOptionsInvalid", str(exc)) from None
    try:
        check_graph(
            process["process_graph"],
            processes={p["id"] for p in process_specs()},
            collections=[c.id for c in state.collections],
        )
    except GraphError as exc:
        raise _error(request_id, exc.status, exc.code, exc.message) from None
    return process, job_options, faults, style


def _error(request_id: str, status: int, code: str, message: str) -> ApiError:
    return ApiError(status, code, message, error_id=request_id, headers={"OpenEO-Identifier": request_id})


def _run_error(request_id: str, exc: Exception) -> ApiError:
    if isinstance(exc, InjectedFailure):
        return _error(request_id, 500, "Internal", str(exc))
    if isinstance(exc, Canceled):
        return _error(request_id, 503, "ServiceUnavailable", "The backend is shutting down; send the request again")
    return _error(request_id, 500, "Internal", f"Server error: {type(exc).__name__}: {exc}")


def _timeout_response(request_id: str, faults: Faults, reason: str) -> Response:
    if faults.sync_timeout_status == 504:  # a gateway in front of the backend gave up: no openEO body
        return Response(GATEWAY_TIMEOUT_PAGE, status=504, content_type="text/html")
    message = f"{reason}; run it as a batch job (POST /jobs) instead"
    return error_response(_error(request_id, 408, "RequestTimeout", message))


def _remove(folder: Path, archive: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    archive.unlink(missing_ok=True)
