"""Batch jobs: create, list, describe, delete, start, cancel, and their logs."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..state import ApiError, api_root, authenticated_user, current_state, own_job

api = Blueprint("jobs", __name__)


@api.post("/jobs")
def create_job() -> Response:
    owner = authenticated_user()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "The request body must be a JSON object")
    try:
        job = current_state().jobs.create(owner, body)
    except ValueError as exc:
        raise ApiError(400, "ProcessGraphInvalid", str(exc)) from None
    response = Response(status=201)
    response.headers["Location"] = f"{api_root()}/jobs/{job.id}"
    response.headers["OpenEO-Identifier"] = job.id
    return response


@api.get("/jobs")
def list_jobs() -> Response:
    who = authenticated_user()
    store = current_state().jobs
    with store.lock:
        jobs = [j.metadata(full=False) for j in store.jobs.values() if j.owner == who]
    return jsonify({"jobs": jobs, "links": []})


@api.get("/jobs/<job_id>")
def describe_job(job_id: str) -> Response:
    job = own_job(job_id)
    with current_state().jobs.lock:
        doc = job.metadata()
    return jsonify(doc)


@api.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Response:
    current_state().jobs.delete(own_job(job_id))
    return Response(status=204)


@api.post("/jobs/<job_id>/results")
def start_job(job_id: str) -> Response:
    current_state().jobs.start(own_job(job_id))
    return Response(status=202)


@api.delete("/jobs/<job_id>/results")
def cancel_job(job_id: str) -> Response:
    current_state().jobs.cancel(own_job(job_id))
    return Response(status=204)


@api.get("/jobs/<job_id>/logs")
def job_logs(job_id: str) -> Response:
    """Log entries after ``offset``, at ``level`` or above (an empty ``level``, which the spec allows, means all)."""
    job = own_job(job_id)
    level = request.args.get("level") or None
    try:
        limit = int(request.args["limit"]) if "limit" in request.args else None
        entries = current_state().jobs.logs(job, request.args.get("offset"), level, limit)
    except ValueError as exc:
        raise ApiError(400, "ParameterInvalid", str(exc)) from None
    return jsonify({"level": level or "debug", "logs": entries, "links": []})
