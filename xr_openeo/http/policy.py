"""The one retry policy and the parsing of HTTP headers it needs; pure, no I/O.

Every request xr_openeo makes (documents, assets, job polling) decides with these functions
whether to retry and how long to wait; the numbers come from :func:`xr_openeo.set_options`.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .._options import get_option

#: HTTP statuses worth retrying: rate limits, server errors and gateways.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Answers a signed URL gives once it has expired (some backends, S3, Azure, openEO's ResultLinkExpired).
EXPIRED_STATUSES = frozenset({400, 403, 404, 410})
#: Error codes that make a 400 mean "this link expired" (openEO, S3, Google Cloud Storage, Azure).
EXPIRED_CODES = frozenset(
    {"ResultLinkExpired", "CredentialsInvalid", "ExpiredToken", "AccessDenied", "AuthenticationFailed"}
)

Clock = Callable[[], float]
"""Seconds since the epoch, as :func:`time.time` gives them; injectable so tests can drive expiry."""


def wall_clock() -> float:
    """:func:`time.time`: the default clock."""
    return time.time()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried; ``from_options()`` reads the current settings."""

    retries: int = 4
    backoff: float = 0.1
    max_backoff: float = 2.0
    connect_timeout: float = 10.0
    read_timeout: float = 120.0

    @classmethod
    def from_options(cls) -> RetryPolicy:
        return cls(
            retries=get_option("retries"),
            backoff=get_option("retry_backoff"),
            max_backoff=get_option("retry_max_backoff"),
            connect_timeout=get_option("connect_timeout"),
            read_timeout=get_option("read_timeout"),
        )

    @classmethod
    def for_jobs(cls) -> RetryPolicy:
        """The policy of waiting for a batch job: more retries, longer pauses (outages of minutes)."""
        return cls(
            retries=get_option("job_retries"),
            backoff=1.0,
            max_backoff=get_option("job_max_backoff"),
            connect_timeout=get_option("connect_timeout"),
            read_timeout=get_option("read_timeout"),
        )

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` as requests takes it."""
        return (self.connect_timeout, self.read_timeout)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based); a server's ``Retry-After`` wins, capped."""
        if retry_after is not None:
            return min(retry_after, 10 * max(self.max_backoff, self.backoff))
        return min(self.backoff * 2 ** (retry - 1), self.max_backoff)

    def delays(self) -> Iterator[float]:
        """The pauses before each retry, in order."""
        for retry in range(1, self.retries + 1):
            yield self.delay(retry)


def is_transient_status(status: int | None) -> bool:
    """Whether an answer with HTTP ``status`` is worth retrying as it is (rate limits, server errors)."""
    return status in TRANSIENT_STATUSES


def is_refused_link(status: int | None, code: str | None = None) -> bool:
    """Whether an answer means the link expired or was refused, so that a fresh link may work.

    403, 404 and 410 always do (object stores answer an expired presigned URL with 403, some
    backends with 404, openEO's ``ResultLinkExpired`` is 410); 400 only with an expiry ``code``.
    """
    if status not in EXPIRED_STATUSES:
        return False
    return status != 400 or code in EXPIRED_CODES


def retry_after(
    headers: Mapping[str, str] | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay seconds or an HTTP date), or None."""
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


_CONTENT_RANGE = re.compile(r"bytes\s+(?:\d+-\d+|\*)/(\d+)")


def content_range_total(value: str | None) -> int | None:
    """The total length in a ``Content-Range`` header (``bytes 0-99/1234`` → 1234), or None."""
    match = _CONTENT_RANGE.match((value or "").strip())
    return int(match.group(1)) if match else None
