"""The separate asset host (another port): job files for presigned URLs only, like an object store."""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from flask import Flask, Response, request

from .compile_lock import COMPILE_LOCK
from .files import find_asset, serve_file
from .jobs import Job
from .requestlog import RecordingMiddleware
from .state import ApiError, ServerState, attach_state, current_state, error_response


def redirect_to_asset_host(state: ServerState, job: Job, filename: str, inner: str | None) -> Response:
    """``302 Found`` to a presigned URL of the file on the asset host (as object-store backends answer)."""
    expires = state.signer.expiry(state.host_validity)
    sig = state.signer.signature(job.id, job.owner, f"host/{filename}", expires)
    path = f"/jobs/{job.id}/{filename}" + (f"/{inner}" if inner else "")
    query = urlencode({"expires": expires, "signature": sig})
    return Response(status=302, headers={"Location": f"{state.asset_host}{path}?{query}"})


def create_asset_host_app(state: ServerState) -> Flask:
    """The asset host's WSGI app: serves job files to presigned URLs only, logged in ``state.asset_log``.

    It knows nothing of users or bearer tokens, like an object store behind a backend's redirect;
    the job's download faults apply to it.
    """
    with COMPILE_LOCK:  # werkzeug compiles each URL rule with ast (see compile_lock)
        return _create_asset_host_app(state)


def _create_asset_host_app(state: ServerState) -> Flask:
    app = Flask("xr_openeo.testing.assets")
    attach_state(app.extensions, state)
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(404, lambda e: error_response(ApiError(404, "NotFound", f"Unknown path {request.path}")))
    app.add_url_rule("/jobs/<job_id>/<filename>", view_func=host_file, methods=["GET", "HEAD"])
    app.add_url_rule("/jobs/<job_id>/<filename>/<path:inner>", view_func=host_file, methods=["GET", "HEAD"])
    app.wsgi_app = RecordingMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, state.asset_log, lambda path: state.job_faults(path).latency
    )
    return app


def host_file(job_id: str, filename: str, inner: str | None = None) -> Response:
    state = current_state()
    job = state.jobs.jobs.get(job_id)
    expires = request.args.get("expires", "")
    signature = request.args.get("signature", "")
    if job is None or not expires.isdigit():
        raise ApiError(403, "AccessDenied", "Request has no valid signature")
    if not hmac.compare_digest(state.signer.signature(job.id, job.owner, f"host/{filename}", int(expires)), signature):
        raise ApiError(403, "AccessDenied", "Request signature does not match")
    if state.signer.expired(int(expires)):
        raise ApiError(403, "AccessDenied", "Request has expired")
    found = find_asset(state, job, filename, inner, "NoSuchKey")
    return serve_file(found.path, found.media_type, found.key, job.faults, state)
