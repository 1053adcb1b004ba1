"""The local backend's HTTP API as a Flask app: openEO 1.2 (and 1.0) routes, mounted from :mod:`.routes`.

Each module of :mod:`.routes` holds the routes of one part of the API as small functions over the
shared :class:`~.state.ServerState`; this module mounts them under each API version's root, adds the
openEO error bodies, and wraps the app with latency injection and the request log.
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .asset_host import create_asset_host_app
from .compile_lock import COMPILE_LOCK
from .requestlog import RecordingMiddleware
from .routes import capabilities, catalog, jobs, local, results, sync
from .state import API_VERSIONS, ApiError, ServerState, attach_state, basic_auth_header, error_response

__all__ = ["ServerState", "create_app", "create_asset_host_app", "basic_auth_header"]

_VERSIONED = (capabilities.api, catalog.api, jobs.api, results.api, sync.api)
_UNVERSIONED = (capabilities.root, local.root)


def create_app(state: ServerState) -> Flask:
    """The WSGI app serving ``state``; wrapped with latency injection and the request log."""
    with COMPILE_LOCK:  # werkzeug compiles each URL rule with ast (see compile_lock)
        return _create_app(state)


def _create_app(state: ServerState) -> Flask:
    app = Flask("xr_openeo.testing")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    attach_state(app.extensions, state)
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(404, _not_found)
    app.register_error_handler(405, _method_not_allowed)
    app.register_error_handler(500, _internal)
    for blueprint in _UNVERSIONED:
        app.register_blueprint(blueprint)
    for version in API_VERSIONS:
        for blueprint in _VERSIONED:
            app.register_blueprint(
                blueprint, url_prefix=f"/openeo/{version}", name=f"{blueprint.name}_v{version.replace('.', '_')}"
            )
    app.wsgi_app = RecordingMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, state.log, lambda path: state.job_faults(path).latency
    )
    return app


def _not_found(err: HTTPException) -> Response:
    return error_response(ApiError(404, "NotFound", f"Unknown path {request.path}"))


def _method_not_allowed(err: HTTPException) -> Response:
    allowed = sorted(err.valid_methods or ()) if isinstance(err, MethodNotAllowed) else []
    message = f"{request.method} is not allowed on {request.path}; allowed: {', '.join(allowed) or 'none'}"
    return error_response(ApiError(405, "MethodNotAllowed", message, headers={"Allow": ", ".join(allowed)}))


def _internal(err: Exception) -> Response:
    return error_response(ApiError(500, "Internal", f"Internal server error: {err}"))
