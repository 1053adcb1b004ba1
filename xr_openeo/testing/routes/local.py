"""Test-only endpoints under ``/_local``: the request log and the server-wide faults of a backend in another process."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..faults import Faults
from ..state import ApiError, current_state

root = Blueprint("local", __name__)


@root.get("/_local/requests")
def request_log() -> Response:
    return jsonify([r.as_dict() for r in current_state().log.records(own=request.environ.get("xr_openeo.ticket"))])


@root.delete("/_local/requests")
def clear_request_log() -> Response:
    current_state().log.clear(own=request.environ.get("xr_openeo.ticket"))
    return Response(status=204)


@root.get("/_local/faults")
def get_faults() -> Response:
    return jsonify(current_state().faults.as_dict())


@root.put("/_local/faults")
def put_faults() -> Response:
    state = current_state()
    try:
        state.faults = Faults().merged(request.get_json(force=True))
    except (ValueError, TypeError) as exc:
        raise ApiError(400, "FaultsInvalid", str(exc)) from None
    return jsonify(state.faults.as_dict())
