"""The openeo client's and requests' exceptions, classified (transient or not) and mapped to xr_openeo's errors.

The job API goes through the openeo client's own session, so its failures arrive as
``OpenEoClientException`` / ``requests.RequestException``; which of them are worth retrying is decided
with :mod:`xr_openeo.http.policy`, like every other request of the library.
"""

from __future__ import annotations

import re

import requests
from openeo.rest import OpenEoClientException

from ..errors import AuthenticationError, JobError, JobNotFoundError, XrOpenEOError
from ..http.policy import TRANSIENT_STATUSES, retry_after
from ..urls import redact
from .status import clause, truncate

#: What a request of the openeo client raises when it fails.
CLIENT_ERRORS: tuple[type[BaseException], ...] = (OpenEoClientException, requests.RequestException)

#: HTTP statuses retried while waiting for a job: the library's transient statuses except 500, which the
#: job API answers for an error of the backend about this job (openEO's ``Internal``): retrying it for
#: minutes would only hide that error.
JOB_TRANSIENT_STATUSES = TRANSIENT_STATUSES - {500}

_TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.RetryError,
    requests.exceptions.ChunkedEncodingError,
)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request of the client, or None (no answer)."""
    status = getattr(exc, "http_status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: no answer (refused, reset, timed out, cut short) or a transient status."""
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return True
    return http_status(exc) in JOB_TRANSIENT_STATUSES


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the ``Retry-After`` of the answer behind ``exc`` asks for, or None."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return retry_after(headers) if hasattr(headers, "get") else None


def _what(exc: BaseException) -> tuple[int | None, str, str]:
    status = http_status(exc)
    code = getattr(exc, "code", None)
    message = clause(redact(str(getattr(exc, "message", None) or exc)))
    what = f"HTTP {status}" + (f" {code}" if code else "") if status else type(exc).__name__
    return status, what, message


def library_error(exc: BaseException, action: str, job_id: str, status: str | None = None) -> XrOpenEOError:
    """The xr_openeo error for a failed request about batch job ``job_id`` (``action``: what it tried).

    ``status`` is the job's last known status, kept on the error.
    """
    http, what, message = _what(exc)
    code = getattr(exc, "code", None)
    if http == 404 or code == "JobNotFound":
        return JobNotFoundError(
            f"The backend does not know batch job {job_id!r} ({what}: {message}); check the job id, and that the "
            "connection is authenticated as the job's owner",
            job_id=job_id,
            http_status=http,
        )
    if http in (401, 403):
        return AuthenticationError(
            f"The backend refused the credentials to {action} batch job {job_id!r} ({what}: {message}); "
            "authenticate the connection again"
        )
    return JobError(
        f"Could not {action} batch job {job_id!r} ({what}: {message})", job_id=job_id, status=status, http_status=http
    )


def backend_error(exc: BaseException, doing: str) -> XrOpenEOError:
    """The xr_openeo error for a failed request about no particular job (``doing``: what it tried)."""
    http, what, message = _what(exc)
    if http in (401, 403):
        return AuthenticationError(
            f"The backend refused the credentials to {doing} ({what}: {message}); authenticate the connection again"
        )
    return JobError(f"Could not {doing} ({what}: {message})", http_status=http)


def describe_error(exc: BaseException) -> str:
    """A short, redacted account of a failed request: ``HTTP 503``, or ``ConnectionError ([Errno 111] …)``."""
    status = http_status(exc)
    if status:
        return f"HTTP {status}"
    text = redact(str(exc))
    errno = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    detail = errno.group(0).strip() if errno else truncate(text, 200)
    return f"{type(exc).__name__} ({detail})" if detail else type(exc).__name__
