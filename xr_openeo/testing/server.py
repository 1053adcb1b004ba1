"""The local backend's HTTP API: openEO 1.2 (and 1.0) routes for batch work, as a Flask app."""

from __future__ import annotations

import base64
import hmac
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, jsonify, request

from .assets import WrittenAsset
from .collections import SyntheticCollection
from .faults import Faults
from .jobs import Job, JobStore
from .processes import process_specs
from .requestlog import RecordingMiddleware, RequestLog
from .signing import UrlSigner
from .stac import item_document, item_ids, results_document

API_VERSIONS = {"1.2": "1.2.0", "1.0": "1.0.1"}
USERS = {"alice": "alice123", "bob": "bob123"}  # documented test users (user: password)
CHUNK = 64 * 1024

OUTPUT_FORMATS = {
    "GTiff": ("raster", "Cloud-optimized GeoTIFF, one file per date with all bands"),
    "netCDF": ("raster", "CF netCDF, one file, one variable per band"),
    "JSON": ("raster", "Time series of aggregate_spatial, or xarray JSON of a raster"),
    "CSV": ("vector", "Time series of aggregate_spatial as a table"),
    "Parquet": ("vector", "Time series joined with their geometries (GeoParquet)"),
    "GeoJSON": ("vector", "Vector cube as a FeatureCollection in EPSG:4326"),
    "Zarr": ("raster", "Zarr v2 store (a folder), one variable per band"),
}

ENDPOINTS = [
    ("/", ["GET"]),
    ("/credentials/basic", ["GET"]),
    ("/me", ["GET"]),
    ("/collections", ["GET"]),
    ("/collections/{collection_id}", ["GET"]),
    ("/processes", ["GET"]),
    ("/file_formats", ["GET"]),
    ("/jobs", ["GET", "POST"]),
    ("/jobs/{job_id}", ["GET", "DELETE"]),
    ("/jobs/{job_id}/results", ["GET", "POST", "DELETE"]),
    ("/jobs/{job_id}/logs", ["GET"]),
]


class ApiError(Exception):
    """An openEO error response: ``{"id", "code", "message", "links"}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class ServerState:
    """Everything the routes share: users' tokens, jobs, signer, faults and the request log."""

    collections: list[SyntheticCollection]
    jobs: JobStore
    log: RequestLog
    faults: Faults
    signer: UrlSigner = field(default_factory=lambda: UrlSigner(secrets.token_bytes(32)))
    tokens: dict[str, str] = field(default_factory=dict)  # token -> user
    revoked: set[str] = field(default_factory=set)
    attempts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    asset_host: str | None = None  # root URL of the separate asset host, once it runs
    asset_log: RequestLog = field(default_factory=RequestLog)  # requests the asset host served
    host_validity: float = 300.0  # seconds a presigned asset-host URL lasts

    def issue_token(self, user: str) -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = user
        return token

    def job_faults(self, path: str) -> Faults:
        """The faults in force for ``path``: the job's own when the path names a job, else the server's."""
        parts = path.split("/")
        if "jobs" in parts:
            i = parts.index("jobs")
            if i + 1 < len(parts):
                job = self.jobs.jobs.get(parts[i + 1])
                if job is not None:
                    return job.faults
        return self.faults

    def next_attempt(self, key: str) -> int:
        with self.lock:
            self.attempts[key] += 1
            return self.attempts[key]


def create_app(state: ServerState) -> Flask:
    """The WSGI app serving ``state``; wrapped with latency injection and the request log."""
    app = Flask("xr_openeo.testing")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(404, lambda e: _api_error(ApiError(404, "NotFound", f"Unknown path {request.path}")))
    app.register_error_handler(
        405,
        lambda e: _api_error(ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}")),
    )
    app.register_error_handler(500, lambda e: _api_error(ApiError(500, "Internal", f"Internal server error: {e}")))

    @app.get("/.well-known/openeo")
    def well_known():
        root = request.host_url.rstrip("/")
        return jsonify(
            {
                "versions": [
                    {"url": f"{root}/openeo/{v}/", "api_version": full, "production": False}
                    for v, full in API_VERSIONS.items()
                ]
            }
        )

    @app.get("/_local/requests")
    def request_log():
        return jsonify([r.as_dict() for r in state.log.records(own=request.environ.get("xr_openeo.ticket"))])

    @app.delete("/_local/requests")
    def clear_request_log():
        state.log.clear(own=request.environ.get("xr_openeo.ticket"))
        return Response(status=204)

    @app.get("/_local/faults")
    def get_faults():
        return jsonify(state.faults.as_dict())

    @app.put("/_local/faults")
    def put_faults():
        try:
            state.faults = Faults().merged(request.get_json(force=True))
        except (ValueError, TypeError) as exc:
            raise ApiError(400, "FaultsInvalid", str(exc)) from None
        return jsonify(state.faults.as_dict())

    for version in API_VERSIONS:
        app.register_blueprint(
            _api_blueprint(state, version), url_prefix=f"/openeo/{version}", name=f"v{version.replace('.', '_')}"
        )

    app.wsgi_app = RecordingMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, state.log, lambda path: state.job_faults(path).latency
    )
    return app


def _api_error(err: ApiError) -> Response:
    response = jsonify({"id": uuid.uuid4().hex, "code": err.code, "message": err.message, "links": []})
    response.status_code = err.status
    return response


def _api_blueprint(state: ServerState, version: str) -> Blueprint:
    bp = Blueprint(f"openeo_{version.replace('.', '_')}", __name__)

    def root() -> str:
        return f"{request.host_url.rstrip('/')}/openeo/{version}"

    def user() -> str:
        """The authenticated user, from ``Authorization: Bearer basic//<token>``."""
        header = request.headers.get("Authorization", "")
        if not header:
            raise ApiError(
                401,
                "AuthenticationRequired",
                "Unauthorized: send 'Authorization: Bearer basic//<token>' from /credentials/basic",
            )
        scheme, _, value = header.partition(" ")
        token = value.rpartition("/")[2] if scheme.lower() == "bearer" else ""
        with state.lock:
            owner = state.tokens.get(token) if token not in state.revoked else None
        if owner is None:
            raise ApiError(403, "TokenInvalid", "Authorization token invalid or expired; authenticate again")
        return owner

    def own_job(job_id: str) -> Job:
        who = user()
        job = state.jobs.jobs.get(job_id)
        if job is None or job.owner != who:
            raise ApiError(404, "JobNotFound", f"The batch job {job_id!r} does not exist.")
        return job

    def any_job(job_id: str) -> Job:
        job = state.jobs.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "JobNotFound", f"The batch job {job_id!r} does not exist.")
        return job

    def check_signature(job: Job, user_b64: str, signature: str, target: str) -> None:
        owner, problem = state.signer.check(job.id, user_b64, signature, target, request.args.get("expires"))
        if problem == "invalid" or owner != job.owner:
            raise ApiError(403, "CredentialsInvalid", "The signature of this URL is invalid")
        if problem == "expired":
            status = job.faults.expired_status
            code = {410: "ResultLinkExpired", 404: "NotFound", 403: "CredentialsInvalid", 400: "ResultLinkExpired"}[
                status
            ]
            raise ApiError(status, code, "This signed URL has expired; request the job results again for fresh links")

    def style_of(job: Job) -> str:
        if version == "1.0" and "results-style" not in job.job_options and "stac-version" not in job.job_options:
            return "item"
        return job.style

    @bp.get("/")
    def capabilities():
        return jsonify(
            {
                "api_version": API_VERSIONS[version],
                "backend_version": "xr_openeo-local",
                "stac_version": "1.0.0",
                "type": "Catalog",
                "id": "xr-openeo-local",
                "title": "xr_openeo local backend",
                "description": (
                    "A real openEO backend on 127.0.0.1 for tests and demos: "
                    "runs batch jobs with openeo-processes-dask over synthetic collections."
                ),
                "production": False,
                "endpoints": [{"path": p, "methods": m} for p, m in ENDPOINTS],
                "links": [
                    {"rel": "self", "href": f"{root()}/", "type": "application/json"},
                    {"rel": "data", "href": f"{root()}/collections", "type": "application/json"},
                ],
            }
        )

    @bp.get("/credentials/basic")
    def credentials_basic():
        auth = request.authorization
        if auth is None or auth.type != "basic" or USERS.get(auth.username or "") != auth.password:
            raise ApiError(
                403, "CredentialsInvalid", "Credentials are not correct (test users: alice/alice123, bob/bob123)"
            )
        return jsonify({"access_token": state.issue_token(auth.username)})

    @bp.get("/me")
    def me():
        return jsonify({"user_id": user(), "links": []})

    @bp.get("/collections")
    def collections():
        return jsonify({"collections": [c.metadata() for c in state.collections], "links": []})

    @bp.get("/collections/<cid>")
    def collection(cid: str):
        for c in state.collections:
            if c.id == cid:
                return jsonify(c.metadata())
        raise ApiError(404, "CollectionNotFound", f"Collection {cid!r} does not exist.")

    @bp.get("/processes")
    def processes():
        return jsonify({"processes": process_specs(), "links": []})

    @bp.get("/file_formats")
    def file_formats():
        output = {
            name: {"title": title, "gis_data_types": [kind], "parameters": {}}
            for name, (kind, title) in OUTPUT_FORMATS.items()
        }
        return jsonify({"input": {}, "output": output})

    @bp.post("/jobs")
    def create_job():
        owner = user()
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "The request body must be a JSON object")
        try:
            job = state.jobs.create(owner, body)
        except ValueError as exc:
            raise ApiError(400, "ProcessGraphInvalid", str(exc)) from None
        response = Response(status=201)
        response.headers["Location"] = f"{root()}/jobs/{job.id}"
        response.headers["OpenEO-Identifier"] = job.id
        return response

    @bp.get("/jobs")
    def list_jobs():
        who = user()
        with state.jobs.lock:
            jobs = [j.metadata(full=False) for j in state.jobs.jobs.values() if j.owner == who]
        return jsonify({"jobs": jobs, "links": []})

    @bp.get("/jobs/<job_id>")
    def describe_job(job_id: str):
        job = own_job(job_id)
        with state.jobs.lock:
            doc = job.metadata()
        return jsonify(doc)

    @bp.delete("/jobs/<job_id>")
    def delete_job(job_id: str):
        state.jobs.delete(own_job(job_id))
        return Response(status=204)

    @bp.post("/jobs/<job_id>/results")
    def start_job(job_id: str):
        state.jobs.start(own_job(job_id))
        return Response(status=202)

    @bp.delete("/jobs/<job_id>/results")
    def cancel_job(job_id: str):
        state.jobs.cancel(own_job(job_id))
        return Response(status=204)

    @bp.get("/jobs/<job_id>/logs")
    def job_logs(job_id: str):
        job = own_job(job_id)
        try:
            limit = int(request.args["limit"]) if "limit" in request.args else None
            entries = state.jobs.logs(job, request.args.get("offset"), request.args.get("level"), limit)
        except ValueError as exc:
            raise ApiError(400, "ParameterInvalid", str(exc)) from None
        return jsonify({"level": request.args.get("level", "debug"), "logs": entries, "links": []})

    @bp.get("/jobs/<job_id>/results")
    def job_results(job_id: str):
        return results_response(own_job(job_id), partial=_flag(request.args.get("partial")))

    @bp.get("/jobs/<job_id>/results/<user_b64>/<signature>")
    def canonical_results(job_id: str, user_b64: str, signature: str):
        job = any_job(job_id)
        check_signature(job, user_b64, signature, "results")
        return results_response(job, partial=_flag(request.args.get("partial")))

    @bp.get("/jobs/<job_id>/results/items/<user_b64>/<signature>/<item_id>")
    def signed_item(job_id: str, user_b64: str, signature: str, item_id: str):
        job = any_job(job_id)
        check_signature(job, user_b64, signature, f"items/{item_id}")
        return item_response(job, item_id)

    @bp.get("/jobs/<job_id>/results/items/<item_id>")
    def item(job_id: str, item_id: str):
        return item_response(own_job(job_id), item_id)

    @bp.route("/jobs/<job_id>/results/assets/<user_b64>/<signature>/<filename>", methods=["GET", "HEAD"])
    @bp.route("/jobs/<job_id>/results/assets/<user_b64>/<signature>/<filename>/<path:inner>", methods=["GET", "HEAD"])
    def signed_asset(job_id: str, user_b64: str, signature: str, filename: str, inner: str | None = None):
        job = any_job(job_id)
        if any(a.key == user_b64 for a in job.assets):  # an unsigned URL of a file deep inside a folder asset
            return asset(job_id, user_b64, "/".join(p for p in (signature, filename, inner) if p))
        check_signature(job, user_b64, signature, f"assets/{filename}")  # one signature covers a folder asset
        return asset_response(job, filename, inner)

    @bp.route("/jobs/<job_id>/results/assets/<filename>", methods=["GET", "HEAD"])
    @bp.route("/jobs/<job_id>/results/assets/<filename>/<path:inner>", methods=["GET", "HEAD"])
    def asset(job_id: str, filename: str, inner: str | None = None):
        return asset_response(own_job(job_id), filename, inner)

    def urls_for(job: Job) -> _Urls:
        return _Urls(root(), job, state.signer)

    def results_response(job: Job, partial: bool) -> Response:
        with state.jobs.lock:
            status, assets, summary = job.status, list(job.assets), job.summary()
        if not partial:
            if status == "error":
                entry = job.last_error() or {"id": "0", "level": "error", "message": "The job failed"}
                response = jsonify(entry)
                response.status_code = 424
                return response
            if status != "finished":
                raise ApiError(
                    400, "JobNotFinished", f"Job {job.id!r} is {status}, not finished; wait for it or pass partial=true"
                )
        doc = results_document(summary, assets, style=style_of(job), urls=urls_for(job), partial=partial)
        return jsonify(doc)

    def item_response(job: Job, item_id: str) -> Response:
        with state.jobs.lock:
            assets, summary = list(job.assets), job.summary()
        style = style_of(job)
        items = item_ids(assets, style=style, job_id=job.id)
        if item_id not in items:
            raise ApiError(404, "ItemNotFound", f"Job {job.id!r} has no result item {item_id!r}")
        return jsonify(item_document(summary, item_id, assets, style=style, urls=urls_for(job)))

    def asset_response(job: Job, filename: str, inner: str | None = None) -> Response:
        asset = _find_asset(state, job, filename, inner, "AssetNotFound")
        if job.faults.redirect_assets and state.asset_host:
            return _redirect_to_asset_host(state, job, filename, inner)
        return _serve_file(asset, job.faults, state)

    return bp


def _redirect_to_asset_host(state: ServerState, job: Job, filename: str, inner: str | None) -> Response:
    """``302 Found`` to a presigned URL of the file on the asset host (as object-store backends answer)."""
    expires = state.signer.expiry(state.host_validity)
    sig = state.signer.signature(job.id, job.owner, f"host/{filename}", expires)
    path = f"/jobs/{job.id}/{filename}" + (f"/{inner}" if inner else "")
    query = urlencode({"expires": expires, "signature": sig})
    return Response(status=302, headers={"Location": f"{state.asset_host}{path}?{query}"})


def create_asset_host_app(state: ServerState) -> Flask:
    """The separate asset host (another port): serves job files to presigned URLs only, logged in ``state.asset_log``.

    It knows nothing of users or bearer tokens, like an object store behind a backend's redirect;
    the job's download faults apply to it.
    """
    app = Flask("xr_openeo.testing.assets")
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(404, lambda e: _api_error(ApiError(404, "NotFound", f"Unknown path {request.path}")))

    @app.route("/jobs/<job_id>/<filename>", methods=["GET", "HEAD"])
    @app.route("/jobs/<job_id>/<filename>/<path:inner>", methods=["GET", "HEAD"])
    def host_file(job_id: str, filename: str, inner: str | None = None):
        job = state.jobs.jobs.get(job_id)
        expires = request.args.get("expires", "")
        signature = request.args.get("signature", "")
        if job is None or not expires.isdigit():
            raise ApiError(403, "AccessDenied", "Request has no valid signature")
        if not hmac.compare_digest(
            state.signer.signature(job.id, job.owner, f"host/{filename}", int(expires)), signature
        ):
            raise ApiError(403, "AccessDenied", "Request signature does not match")
        if time.time() > int(expires):
            raise ApiError(403, "AccessDenied", "Request has expired")
        asset = _find_asset(state, job, filename, inner, "NoSuchKey")
        return _serve_file(asset, job.faults, state)

    app.wsgi_app = RecordingMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, state.asset_log, lambda path: state.job_faults(path).latency
    )
    return app


class _Urls:
    """Result URLs of one job for the results documents: signed (``expires``) or needing bearer auth."""

    def __init__(self, root: str, job: Job, signer: UrlSigner) -> None:
        self._root, self._job, self._signer = root, job, signer
        faults = job.faults
        self._expires = signer.expiry(faults.url_validity)
        canonical = faults.canonical_validity
        self._canonical_expires = self._expires if canonical is None else signer.expiry(canonical)
        self._user_b64 = signer.encode_user(job.owner)
        self._base = f"{root}/jobs/{job.id}/results"

    def _signed(self, path: str, target: str, expires: int | None = None) -> str:
        expires = self._expires if expires is None else expires
        sig = self._signer.signature(self._job.id, self._job.owner, target, expires)
        return f"{self._base}{path.format(u=self._user_b64, s=sig)}?{urlencode({'expires': expires})}"

    def self_url(self) -> str:
        return self._base

    def canonical(self) -> str:
        return self._signed("/{u}/{s}", "results", self._canonical_expires)

    def asset(self, key: str) -> str:
        if not self._job.faults.signed_urls:
            return f"{self._base}/assets/{key}"
        return self._signed(f"/assets/{{u}}/{{s}}/{key}", f"assets/{key}")

    def item(self, item_id: str) -> str:
        if not self._job.faults.signed_urls:
            return f"{self._base}/items/{item_id}"
        return self._signed(f"/items/{{u}}/{{s}}/{item_id}", f"items/{item_id}")


def _find_asset(state: ServerState, job: Job, filename: str, inner: str | None, code: str) -> WrittenAsset:
    """The published asset ``filename`` of ``job`` (or file ``inner`` inside a folder asset), else 404 ``code``."""
    with state.jobs.lock:
        found = [a for a in job.assets if a.key == filename]
    if not found:
        raise ApiError(404, code, f"Job {job.id!r} has no result asset {filename!r}")
    asset = found[0]
    if inner is None and not asset.path.is_dir():
        return asset
    member = asset.member(inner or "")
    if member is None:
        raise ApiError(404, code, f"Result asset {filename!r} has no file {inner!r}")
    return replace(asset, key=f"{asset.key}/{inner}", path=member, media_type="application/octet-stream")


def _serve_file(asset: WrittenAsset, faults: Faults, state: ServerState) -> Response:
    """The asset's bytes, honouring Range and HEAD, with the download faults in force."""
    method = request.method
    if method == "HEAD" and faults.head_refused:
        request.environ["xr_openeo.fault"] = "head_refused"
        raise ApiError(403, "Forbidden", "HEAD is not allowed on this URL (as on presigned object-store URLs); use GET")
    # Keyed by what the client asks for (not the random job id) so that a seed reproduces across runs.
    request_key = f"{asset.key}|{method}|{request.headers.get('Range', '')}"
    fault = faults.download_fault(request_key, state.next_attempt(request_key))
    if fault:
        request.environ["xr_openeo.fault"] = fault
    if fault in ("500", "503"):
        raise ApiError(int(fault), "Internal" if fault == "500" else "ServiceUnavailable", f"Injected fault {fault}")
    if fault == "drop":
        _drop(request.environ)
        return Response(b"", status=500)

    size = asset.path.stat().st_size
    start, stop, status = 0, size, 200
    headers: dict[str, str] = {"Content-Type": asset.media_type}
    if request.range is not None and not faults.range_ignored:
        span = request.range.range_for_length(size)
        if span is None:
            return Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        start, stop = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    if not faults.range_ignored:
        headers["Accept-Ranges"] = "bytes"
    length = stop - start
    if not faults.no_content_length:
        headers["Content-Length"] = str(length)
    if method == "HEAD":
        response = Response(None, status=status, headers=headers)
        response.automatically_set_content_length = False
        return response
    send = length // 2 if fault == "truncate" else length
    body = _read(asset.path, start, send, request.environ if fault == "truncate" else None)
    response = Response(body, status=status, headers=headers, direct_passthrough=True)
    return response


def _read(path: Path, start: int, length: int, drop_after: dict[str, Any] | None) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        while length > 0:
            chunk = f.read(min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    if drop_after is not None:
        time.sleep(0.01)  # let the partial body reach the client before the connection dies
        _drop(drop_after)


def _drop(environ: dict[str, Any]) -> None:
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "yes")


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
