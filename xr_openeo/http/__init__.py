"""HTTP for xr_openeo: auth scoped to the backend root, bounded retries, and renewal of expired asset URLs.

Everything here pickles by its constructor arguments, so dask tasks on other processes rebuild
sessions themselves. The bearer token goes only to URLs under the backend's root URL; signed and
foreign hrefs never get it. urllib3 and fsspec log every URL they request at DEBUG level; importing this
module adds :class:`RedactingFilter` to their loggers so that signed URLs in those records are redacted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..errors import (
    AssetReadError,
    AuthenticationError,
    JobError,
    JobNotFinishedError,
    JobNotFoundError,
    URLExpiredError,
    XrOpenEOError,
)
from ..results import parse_results
from ..urls import is_signed, member_url, redact, under_root, url_expiry  # noqa: F401  (re-exported)

log = logging.getLogger("xr_openeo")

EXPIRED_STATUSES = (400, 403, 404, 410)
RETRY_STATUSES = (429, 500, 502, 503, 504)
TIMEOUT = (10, 120)  # connect, read (seconds)
_local = threading.local()


class RedactingFilter(logging.Filter):
    """Redacts signing values (:func:`~xr_openeo.results.redact`) in the records of a third-party logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's business, not ours
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# The loggers that name requested URLs (query strings included): urllib3's (under requests and
# fsspec) and fsspec's (its HTTP files log their URL with every read).
_URL_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.util.retry",
    "urllib3.connection",
    "fsspec",
    "fsspec.http",
    "fsspec.caching",
)
for _name in _URL_LOGGERS:
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, RedactingFilter) for f in _logger.filters):
        _logger.addFilter(RedactingFilter())


def retrying_adapter(attempts: int) -> HTTPAdapter:
    """An adapter retrying connection errors and 429/5xx (``attempts`` times, backoff, Retry-After honoured)."""
    retry = Retry(
        total=attempts,
        connect=attempts,
        read=2,
        status=attempts,
        backoff_factor=0.2,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    return HTTPAdapter(max_retries=retry, pool_maxsize=32)


def _thread_session(name: str, adapter: HTTPAdapter) -> requests.Session:
    """This thread's session ``name``, created on first use with ``adapter`` for http and https."""
    session = getattr(_local, name, None)
    if session is None:
        session = requests.Session()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        setattr(_local, name, session)
    return session


def _session() -> requests.Session:
    """A per-thread session with bounded, backed-off retries on transient errors (Retry-After honoured)."""
    return _thread_session("session", retrying_adapter(4))


@dataclass(frozen=True)
class Auth:
    """The backend root and its bearer token (``basic//…`` or ``oidc/…``), or none.

    The token is sent only to URLs :func:`under_root` that are not signed (a signed URL authorises
    itself; sending the token along would hand it to whoever the URL is shared with).
    """

    root: str | None = None
    token: str | None = field(default=None, repr=False)

    def headers(self, url: str) -> dict[str, str]:
        """The Authorization header for ``url``: only under the root, and never for signed URLs."""
        if self.token and under_root(url, self.root) and not is_signed(url):
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    @classmethod
    def from_connection(cls, connection: Any) -> Auth:
        """Root URL and bearer token of an ``openeo.Connection``."""
        root = connection.root_url.rstrip("/")
        auth = getattr(connection, "auth", None)
        token = getattr(auth, "bearer", None)
        return cls(root=root, token=token)


def get(url: str, auth: Auth, *, headers: Mapping[str, str] | None = None, stream: bool = False) -> requests.Response:
    """GET with retries; raises nothing on HTTP errors (callers map statuses to their errors)."""
    all_headers = {**auth.headers(url), **(headers or {})}
    try:
        # requests drops the Authorization header itself when a redirect leaves the host.
        return _session().get(url, headers=all_headers, timeout=TIMEOUT, stream=stream)
    except requests.RequestException as exc:
        raise AssetReadError(
            f"GET {redact(url)} failed: {type(exc).__name__}: {redact(str(exc))}", href=redact(url)
        ) from None


def get_json(url: str, auth: Auth, *, what: str = "document") -> Any:
    """Fetch a JSON document from the backend; openEO errors become library errors."""
    response = get(url, auth)
    if response.status_code == 200:
        try:
            return response.json()
        except ValueError:
            raise XrOpenEOError(
                f"{what} at {redact(url)} is not JSON ({response.headers.get('Content-Type')})"
            ) from None
    raise api_error(response, what)


def api_error(response: requests.Response, what: str) -> XrOpenEOError:
    """The library error for an openEO error response."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code, message = body.get("code", ""), body.get("message", response.reason)
    url, status = redact(response.url), response.status_code
    text = f"{what} at {url}: HTTP {status} {code}: {redact(str(message))}"
    if status == 404 and code == "JobNotFound":
        return JobNotFoundError(f"{text}. Check the job id and that it belongs to this user.", http_status=status)
    if status == 400 and code == "JobNotFinished":
        return JobNotFinishedError(f"{text}. Wait for the job to finish, or pass partial=True.", http_status=status)
    if status == 424:
        return JobError(f"{what} at {url}: the job failed: {redact(str(message))}", http_status=status)
    if status in (401, 403) and code != "CredentialsInvalid" or code in ("TokenInvalid", "AuthenticationRequired"):
        return AuthenticationError(f"{text}. Authenticate again (connection.authenticate_*) and retry.")
    return XrOpenEOError(text)


class AssetLocator(Protocol):
    """Where an asset is now: its current href, the headers to send, and renewal after expiry."""

    def href(self, key: str) -> str: ...

    def headers(self, url: str) -> dict[str, str]: ...

    def renew(self, key: str, stale: str) -> str: ...


class ResultsLocator:
    """Asset hrefs of one results document, renewed by re-fetching the document when they expire.

    ``sources`` are the URLs that serve the document (the results URL, which needs the token, and
    the signed canonical link, which does not); renewal tries them in order. Re-fetching happens
    once per expiry per process, however many tasks notice it. Pickles by constructor arguments;
    the token is pickled only if ``pickle_token`` (otherwise workers renew through the canonical
    link alone).
    """

    def __init__(
        self, hrefs: Mapping[str, str], auth: Auth, sources: tuple[str, ...] = (), pickle_token: bool = False
    ) -> None:
        self._hrefs = dict(hrefs)
        self.auth = auth
        self.sources = tuple(s for s in sources if s)
        self.pickle_token = pickle_token
        self._lock = threading.Lock()
        self.refreshes = 0
        self._issued = time.time()  # when the current hrefs were received (at the latest)

    def __copy__(self) -> ResultsLocator:
        return self  # a locator is a shared handle (hrefs, renewal lock), not data to duplicate

    def __deepcopy__(self, memo: dict[int, Any]) -> ResultsLocator:
        return self

    @property
    def scope(self) -> str:
        """What makes asset keys unique across results (the results URL, else the first href's path)."""
        if self.sources:
            return urlsplit(self.sources[0]).path
        first = min(self._hrefs.values(), default="")
        return urlsplit(first).netloc + urlsplit(first).path

    def __reduce__(self) -> tuple[Callable[..., ResultsLocator], tuple[Any, ...]]:
        auth = self.auth if self.pickle_token else Auth(self.auth.root, None)
        return (ResultsLocator, (self._hrefs, auth, self.sources, self.pickle_token))

    def href(self, key: str) -> str:
        try:
            return self._hrefs[key]
        except KeyError:
            raise AssetReadError(f"Asset {key!r} is not in the results document", key=key) from None

    def headers(self, url: str) -> dict[str, str]:
        return self.auth.headers(url)

    def expired(self, url: str, margin: float = 5.0) -> bool:
        """Whether ``url`` expires within ``margin`` seconds (no margin for URLs that live under 10 margins).

        Without that limit a URL valid for 2 s would count as expired when issued, and every read
        would re-fetch the results document instead of once per expiry.
        """
        expires = url_expiry(url)
        if expires is None:
            return False
        if expires - self._issued < 10 * margin:
            margin = 0.0
        return expires - margin < time.time()

    def renew(self, key: str, stale: str) -> str:
        """A fresh href for ``key`` (``stale`` was refused or expired), re-fetching the document if needed."""
        with self._lock:
            current = self.href(key)
            if current != stale and not self.expired(current):
                return current  # another task renewed it already
            errors = []
            for source in self.sources:
                if source.startswith("file:") or self.expired(source, 0):
                    continue
                try:
                    doc = get_json(source, self.auth, what="results document")
                    info = parse_results(doc, base_url=source)
                except XrOpenEOError as exc:
                    errors.append(str(exc))
                    continue
                fresh = {a.key: a.href for a in info.assets}
                if key in fresh:
                    self._hrefs.update(fresh)
                    self._issued = time.time()
                    self.refreshes += 1
                    log.info("renewed %d asset URLs from %s", len(fresh), redact(source))
                    return fresh[key]
                errors.append(f"the document at {redact(source)} has no asset {key!r}")
            detail = "; ".join(errors) or "no results URL to re-fetch it from"
            raise URLExpiredError(
                f"The URL of asset {key!r} ({redact(stale)}) expired or was refused and could not be renewed: "
                f"{detail}. Open the results again (xr_openeo.open_results) to get fresh links.",
                key=key,
                href=redact(stale),
            )


# -- asset bytes ----------------------------------------------------------------------------------

ATTEMPTS = 5
_stats_lock = threading.Lock()
stats = {"retries": 0, "renewals": 0}  # per process: retries made and URLs renewed, for tests and logs


def _count(name: str) -> None:
    with _stats_lock:
        stats[name] += 1


def fetch(
    key: str,
    locator: AssetLocator,
    byte_range: tuple[int, int] | None = None,
    *,
    inner: str | None = None,
    missing_ok: bool = False,
) -> tuple[bytes, int | None, bool]:
    """The bytes of asset ``key`` (all, or ``byte_range`` = [start, stop)), checked complete.

    Returns ``(data, total_size, ranged)``; ``ranged`` is False when the server ignored the Range
    header and sent the whole file (``data`` is then the whole file). Transient failures (connection
    errors, dropped or truncated bodies, 429/5xx) are retried with backoff; an expired or refused
    signed URL is renewed once through the locator. Anything else raises :class:`AssetReadError`
    naming the asset, the redacted href and the HTTP status. ``inner`` reads a file inside a folder
    asset (a Zarr store); ``missing_ok`` answers a 404 with ``(b"", None, False)`` instead of raising.
    """
    base = locator.href(key)
    if isinstance(locator, ResultsLocator) and locator.expired(base):
        base = locator.renew(key, base)
        _count("renewals")
    url = member_url(base, inner)
    renewed = False
    status: int | None = None
    problem = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            _count("retries")
            time.sleep(min(2.0, 0.1 * 2 ** (attempt - 1)))
        headers = dict(locator.headers(url))
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        try:
            response = _session_no_retry().get(url, headers=headers, timeout=TIMEOUT)
            data = response.content
        except requests.RequestException as exc:
            status, problem = None, f"{type(exc).__name__} (connection dropped or body cut short)"
            log.debug("retrying %s of %s: %s", key, redact(url), problem)
            continue
        status = response.status_code
        if status == 404 and missing_ok:
            return b"", None, False
        if status in EXPIRED_STATUSES and (status != 400 or _expired_body(response)):
            if renewed:  # refused again with a fresh URL: not an expiry
                problem = f"HTTP {status}: {_error_text(response)}"
                break
            base = locator.renew(key, base)
            url = member_url(base, inner)
            renewed = True
            _count("renewals")
            continue
        if status in RETRY_STATUSES:
            problem = f"HTTP {status}"
            delay = _retry_after(response)
            if delay:
                time.sleep(delay)
            continue
        if status not in (200, 206):
            problem = f"HTTP {status}: {_error_text(response)}"
            if status == 401 and "Authorization" not in headers:
                problem += (
                    ". This URL needs the backend's bearer token, which this process does not have: a dask "
                    "graph carries it only when opened with pickle_token=True (see its docstring for what that means)"
                )
            break
        length = response.headers.get("Content-Length")
        if length is not None and int(length) != len(data):
            problem = f"body shorter than its Content-Length ({len(data)} of {length} bytes)"
            continue
        if status == 206:
            total = _content_range_total(response)
            if (
                byte_range is not None
                and len(data) != byte_range[1] - byte_range[0]
                and (total is None or byte_range[1] <= total)
            ):
                problem = f"range answer holds {len(data)} bytes, asked {byte_range[1] - byte_range[0]}"
                continue
            return data, total, True
        if byte_range is not None and byte_range[0] == 0 and len(data) <= byte_range[1] - byte_range[0]:
            return data, len(data), True  # the whole file fits the range: a 200 is fine
        return data, len(data), byte_range is None
    raise AssetReadError(
        f"Reading asset {key!r} from {redact(url)} failed after {attempt + 1} attempt(s): {problem or 'no answer'}",
        key=key,
        href=redact(url),
        status=status,
    )


def _session_no_retry() -> requests.Session:
    """A per-thread session without urllib3 retries: :func:`fetch` retries itself (and counts it)."""
    return _thread_session("plain", HTTPAdapter(max_retries=0, pool_maxsize=32))


def _expired_body(response: requests.Response) -> bool:
    try:
        code = response.json().get("code", "")
    except (ValueError, AttributeError):
        return False
    return code in ("ResultLinkExpired", "CredentialsInvalid")


def _retry_after(response: requests.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return min(30.0, max(0.0, float(value)))
    except ValueError:
        return 0.0


def _content_range_total(response: requests.Response) -> int | None:
    total = response.headers.get("Content-Range", "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
        return redact(str(body.get("message", body)))[:300]
    except (ValueError, AttributeError):
        return response.reason or ""
