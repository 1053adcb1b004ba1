"""JSON documents (results and item documents) over HTTP or from disk, with openEO errors mapped to ours.

:func:`get` is the one retry loop for requests whose answer the caller interprets itself: connection
failures and transient statuses (429, 5xx) are retried with the backoff of the options, and a
``Retry-After`` is honoured. When no answer comes, it raises :class:`~xr_openeo.errors.RequestError`
naming the request (``what``), the host and the cause.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import requests

from ..errors import (
    AssetReadError,
    AuthenticationError,
    JobError,
    JobNotFinishedError,
    JobNotFoundError,
    RequestError,
    ResultsDocumentError,
    XrOpenEOError,
)
from ..urls import host, is_local, is_signed, local_path, redact
from .policy import RetryPolicy, is_refused_link, is_transient_status, retry_after
from .session import AttemptFailed, attempt

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .links import Auth

#: What to do about each cause of a failed connection.
ADVICE = {
    "name resolution": "Check the host name in the URL and this machine's network and DNS.",
    "connection refused": "Nothing answers at that address: check the URL and port, and that the server is up.",
    "timeout": "The server did not answer in time: retry later, or raise xr_openeo.set_options(read_timeout=...).",
    "connection dropped": "The connection was closed before the answer was complete: retry later.",
    "TLS error": "The TLS handshake failed: check the URL's scheme and the server's certificate.",
    "too many redirects": "The server redirects in a loop: check the URL.",
    "invalid URL": "Check the URL.",
    "proxy error": "The proxy refused or failed: check the proxy settings (HTTP(S)_PROXY).",
}


def get(
    url: str,
    auth: Auth,
    *,
    headers: Mapping[str, str] | None = None,
    stream: bool = False,
    what: str = "request",
    key: str | None = None,
    policy: RetryPolicy | None = None,
) -> requests.Response:
    """GET ``url`` with the one retry loop; returns the last answer, whatever its status.

    Parameters
    ----------
    url, auth
        Where, and the credentials (sent only where :meth:`Auth.headers` allows).
    headers
        More request headers.
    stream
        Leave the body unread (the caller reads or closes the response).
    what
        What the request is for, in messages: ``"results document"``, ``"item document"``…
    key
        An asset key: failures then raise :class:`~xr_openeo.errors.AssetReadError` for it.
    policy
        Retries, backoff and timeouts; default :meth:`RetryPolicy.from_options`.

    Raises
    ------
    RequestError
        No answer after the retries (``cause``: name resolution, connection refused, timeout…).
    """
    policy = policy or RetryPolicy.from_options()
    all_headers = {**auth.headers(url), **(headers or {})}
    failure: AttemptFailed | None = None
    for retry in range(policy.retries + 1):
        try:
            # requests drops the Authorization header itself when a redirect leaves the host.
            response = attempt("GET", url, all_headers, policy.timeout, stream=stream)
        except AttemptFailed as exc:
            failure = exc
            if not exc.transient or retry == policy.retries:
                break
            time.sleep(policy.delay(retry + 1))
            continue
        if not is_transient_status(response.status_code) or retry == policy.retries:
            return response
        wait = policy.delay(retry + 1, retry_after(response.headers))
        response.close()
        time.sleep(wait)
    assert failure is not None
    raise request_error(what, url, failure.cause, attempts=retry + 1, key=key)


def request_error(
    what: str, url: str, cause: str, *, attempts: int = 1, status: int | None = None, key: str | None = None
) -> RequestError:
    """The error for a request that failed: which request, which host, why, and what to do."""
    where = host(url) or "this machine"
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    advice = ADVICE.get(cause, "")
    message = f"Fetching the {what} from {redact(url)} failed{tries}: {cause} (host {where}). {advice}".rstrip()
    if key is not None:
        return AssetReadError(message, key=key, href=redact(url), status=status, host=host(url), cause=cause)
    return RequestError(message, what=what, href=redact(url), host=host(url), cause=cause, status=status)


def get_json(url: str, auth: Auth, *, what: str = "document") -> Any:
    """The JSON document at ``url`` (http(s), or a ``file://`` URL or path read from disk).

    An openEO error answer becomes :class:`~xr_openeo.errors.JobNotFoundError` (404
    ``JobNotFound``), :class:`~xr_openeo.errors.JobNotFinishedError` (400 ``JobNotFinished``),
    :class:`~xr_openeo.errors.JobError` (424, a failed job), :class:`~xr_openeo.errors.AuthenticationError`
    (401/403 about the credentials), else :class:`~xr_openeo.errors.RequestError` with the HTTP
    ``status`` (a refused or expired signed link among them). A body that is not JSON raises
    :class:`~xr_openeo.errors.ResultsDocumentError`.
    """
    if is_local(url):
        return _read_json_file(url, what)
    response = get(url, auth, what=what)
    if response.status_code == 200:
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type") or "no Content-Type"
            raise ResultsDocumentError(f"The {what} at {redact(url)} is not JSON ({kind})") from None
    raise api_error(response, what)


def _read_json_file(url: str, what: str) -> Any:
    path = local_path(url)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsDocumentError(f"The {what} {path} does not exist (no such file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsDocumentError(f"The {what} {path} cannot be read: {type(exc).__name__}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ResultsDocumentError(f"The {what} {path} is not JSON: {exc}") from None


def error_code(response: requests.Response) -> tuple[str, str]:
    """``(code, message)`` of an error answer: openEO's JSON body, an object store's XML, else the reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return str(body.get("code", "")), str(body.get("message", response.reason or ""))
    try:
        text = response.text[:2000]
    except (requests.RequestException, ValueError):
        text = ""
    code = _xml_field(text, "Code")
    return code, _xml_field(text, "Message") or response.reason or ""


def _xml_field(text: str, name: str) -> str:
    start = text.find(f"<{name}>")
    end = text.find(f"</{name}>", start + 1)
    return text[start + len(name) + 2 : end] if 0 <= start < end else ""


def api_error(response: requests.Response, what: str) -> XrOpenEOError:
    """The library error for an openEO (or object store) error answer to a request for ``what``."""
    code, message = error_code(response)
    url, status = response.url, response.status_code
    message = redact(message).strip().rstrip(".")
    text = f"{what} at {redact(url)}: HTTP {status} {code}: {message}".replace("  ", " ")
    if status == 404 and code == "JobNotFound":
        return JobNotFoundError(f"{text}. Check the job id and that it belongs to this user.", http_status=status)
    if status == 400 and code == "JobNotFinished":
        return JobNotFinishedError(f"{text}. Wait for the job to finish, or pass partial=True.", http_status=status)
    if status == 424:
        return JobError(f"{what} at {redact(url)}: the job failed: {message}", http_status=status)
    credentials = code in ("TokenInvalid", "AuthenticationRequired", "AuthenticationSchemeInvalid")
    if credentials or (status in (401, 403) and code != "CredentialsInvalid" and not _signed_refusal(url, status)):
        return AuthenticationError(f"{text}. Authenticate again (connection.authenticate_*) and retry.")
    cause = f"HTTP {status}" + (f" {code}" if code else "")
    advice = (
        "The link expired or was refused: fetch the results document again for fresh links."
        if is_refused_link(status, code)
        else ""
    )
    return RequestError(
        f"{text}. {advice}".strip(),
        what=what,
        href=redact(url),
        host=host(url),
        cause=cause,
        status=status,
    )


def _signed_refusal(url: str, status: int) -> bool:
    """A 403 to a signed URL is the link's refusal (an object store's AccessDenied), not the token's."""
    return status == 403 and is_signed(url)
