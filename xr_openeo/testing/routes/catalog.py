"""What the backend offers: ``/collections`` and ``/processes``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..processes import process_specs
from ..state import ApiError, current_state

api = Blueprint("catalog", __name__)


@api.get("/collections")
def collections() -> Response:
    return jsonify({"collections": [c.metadata() for c in current_state().collections], "links": []})


@api.get("/collections/<cid>")
def collection(cid: str) -> Response:
    for c in current_state().collections:
        if c.id == cid:
            return jsonify(c.metadata())
    raise ApiError(404, "CollectionNotFound", f"Collection {cid!r} does not exist.")


@api.get("/processes")
def processes() -> Response:
    return jsonify({"processes": process_specs(), "links": []})
