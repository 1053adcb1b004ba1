"""What every route of the local backend shares: its state, openEO errors, the caller and their jobs."""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from flask import Response, current_app, jsonify, request

from .clock import Clock
from .collections import SyntheticCollection
from .faults import Faults, SharedLink
from .jobs import Job, JobStore
from .requestlog import RequestLog
from .signing import UrlSigner

API_VERSIONS = {"1.2": "1.2.0", "1.0": "1.0.1"}
USERS = {"alice": "alice123", "bob": "bob123"}  # documented test users (user: password)
_STATE_KEY = "xr_openeo.state"


class ApiError(Exception):
    """An openEO error response: ``{"id", "code", "message", "links"}`` with an HTTP status.

    ``error_id`` is the body's ``id`` (default a fresh random one); ``headers`` go on the response.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        error_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.error_id = error_id
        self.headers = dict(headers or {})


@dataclass
class ServerState:
    """Everything the routes share: users' tokens, jobs, signer, faults, the request log and the clock."""

    collections: list[SyntheticCollection]
    jobs: JobStore
    log: RequestLog
    faults: Faults
    clock: Clock = time.time
    signer: UrlSigner = field(init=False)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> user
    revoked: set[str] = field(default_factory=set)
    attempts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    asset_host: str | None = None  # root URL of the separate asset host, once it runs
    asset_log: RequestLog = field(default_factory=RequestLog)  # requests the asset host served
    host_validity: float = 300.0  # seconds a presigned asset-host URL lasts
    link: SharedLink = field(default_factory=SharedLink)  # the one link asset bodies share (Faults.bandwidth_mbit)

    def __post_init__(self) -> None:
        self.signer = UrlSigner(secrets.token_bytes(32), clock=self.clock)

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


def attach_state(app_extensions: dict, state: ServerState) -> None:
    """Make ``state`` what :func:`current_state` returns in requests of the app owning ``app_extensions``."""
    app_extensions[_STATE_KEY] = state


def current_state() -> ServerState:
    """The :class:`ServerState` of the app serving the current request."""
    return current_app.extensions[_STATE_KEY]


def error_response(err: ApiError) -> Response:
    response = jsonify({"id": err.error_id or uuid.uuid4().hex, "code": err.code, "message": err.message, "links": []})
    response.status_code = err.status
    response.headers.update(err.headers)
    return response


def api_version() -> str:
    """The API version of the current request's root (``"1.2"`` or ``"1.0"``)."""
    return request.path.split("/")[2]


def api_root() -> str:
    """The openEO API root URL the current request came through."""
    return f"{request.host_url.rstrip('/')}/openeo/{api_version()}"


def authenticated_user() -> str:
    """The user of ``Authorization: Bearer basic//<token>``, else 401 (no header) or 403 (bad token)."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise ApiError(
            401,
            "AuthenticationRequired",
            "Unauthorized: send 'Authorization: Bearer basic//<token>' from /credentials/basic",
        )
    scheme, _, value = header.partition(" ")
    token = value.rpartition("/")[2] if scheme.lower() == "bearer" else ""
    state = current_state()
    with state.lock:
        owner = state.tokens.get(token) if token not in state.revoked else None
    if owner is None:
        raise ApiError(403, "TokenInvalid", "Authorization token invalid or expired; authenticate again")
    return owner


def own_job(job_id: str) -> Job:
    """The caller's job ``job_id`` (404 ``JobNotFound`` for another user's job, as for none)."""
    who = authenticated_user()
    job = current_state().jobs.jobs.get(job_id)
    if job is None or job.owner != who:
        raise ApiError(404, "JobNotFound", f"The batch job {job_id!r} does not exist.")
    return job


def any_job(job_id: str) -> Job:
    """Job ``job_id`` whoever owns it (for signed URLs, which carry their own proof)."""
    job = current_state().jobs.jobs.get(job_id)
    if job is None:
        raise ApiError(404, "JobNotFound", f"The batch job {job_id!r} does not exist.")
    return job


def flag(value: str | None) -> bool:
    """A query parameter's truth (``true``, ``1``, ``yes``)."""
    return value is not None and value.lower() in ("true", "1", "yes")


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
