"""xr_openeo.http.policy and the classification of failed requests: pure logic, no server."""

from __future__ import annotations

import errno
import socket
from datetime import UTC, datetime

import pytest
import requests
import urllib3.exceptions as u3
from hypothesis import given
from hypothesis import strategies as st

import xr_openeo
from xr_openeo.http.policy import (
    RetryPolicy,
    content_range_total,
    is_refused_link,
    is_transient_status,
    retry_after,
)
from xr_openeo.http.session import describe


def test_the_policy_comes_from_the_options():
    with xr_openeo.set_options(retries=7, retry_backoff=0.5, retry_max_backoff=3.0, read_timeout=9.0):
        policy = RetryPolicy.from_options()
    assert (policy.retries, policy.backoff, policy.max_backoff, policy.timeout) == (7, 0.5, 3.0, (10.0, 9.0))
    assert list(policy.delays()) == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    assert RetryPolicy.from_options() == RetryPolicy()  # the defaults again outside the block


@given(
    retries=st.integers(0, 20),
    backoff=st.floats(0, 10),
    cap=st.floats(0, 60),
    after=st.none() | st.floats(0, 1e6),
)
def test_delays_are_bounded(retries, backoff, cap, after):
    policy = RetryPolicy(retries=retries, backoff=backoff, max_backoff=cap)
    delays = list(policy.delays())
    assert len(delays) == retries and all(0 <= d <= max(cap, 0) for d in delays)
    assert delays == sorted(delays)
    assert 0 <= policy.delay(1, after) <= 10 * max(cap, backoff)


def test_retry_after_seconds_and_dates():
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert retry_after({"Retry-After": "3"}) == 3.0
    assert retry_after({"Retry-After": "Mon, 01 Jan 2024 00:00:30 GMT"}, now=lambda: now) == 30.0
    assert retry_after({"Retry-After": "Sun, 31 Dec 2023 00:00:00 GMT"}, now=lambda: now) == 0.0
    assert retry_after({"Retry-After": "soon"}) is None and retry_after({}) is None and retry_after(None) is None


def test_content_range_and_statuses():
    assert content_range_total("bytes 0-99/1234") == 1234
    assert content_range_total("bytes */1234") == 1234
    assert content_range_total("bytes 0-99/*") is None and content_range_total(None) is None
    assert all(is_transient_status(s) for s in (429, 500, 502, 503, 504))
    assert not any(is_transient_status(s) for s in (200, 206, 400, 401, 403, 404, 410, None))
    assert is_refused_link(410) and is_refused_link(403) and is_refused_link(404)
    assert is_refused_link(400, "ResultLinkExpired") and not is_refused_link(400, "BadRequest")
    assert not is_refused_link(401) and not is_refused_link(500)


# -- why a request failed -----------------------------------------------------------------------------


def wrapped(reason: BaseException) -> requests.ConnectionError:
    """What requests raises: its ConnectionError around urllib3's MaxRetryError around the cause."""
    pool = None
    return requests.ConnectionError(u3.MaxRetryError(pool, "/results?X-Amz-Signature=secret", reason=reason))


@pytest.mark.parametrize(
    ("exc", "cause", "transient"),
    [
        (
            wrapped(
                u3.NameResolutionError("h.example", None, socket.gaierror(-2, "Name or service not known"))  # type: ignore[arg-type]
            ),
            "name resolution",
            True,
        ),
        (wrapped(u3.NewConnectionError(None, "[Errno 111] Connection refused")), "connection failed", True),  # type: ignore[arg-type]
        (wrapped(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")), "connection refused", True),
        (requests.ConnectTimeout("connect timed out"), "timeout", True),
        (requests.ReadTimeout("read timed out"), "timeout", True),
        (
            requests.exceptions.ChunkedEncodingError(u3.ProtocolError("Connection broken: IncompleteRead")),
            "connection dropped",
            True,
        ),
        (
            requests.ConnectionError(u3.ProtocolError("aborted", ConnectionResetError(104, "reset"))),
            "connection dropped",
            True,
        ),
        (requests.exceptions.SSLError("bad handshake"), "TLS error", False),
        (requests.TooManyRedirects("30 redirects"), "too many redirects", False),
        (requests.exceptions.InvalidURL("no host"), "invalid URL", False),
        (requests.exceptions.MissingSchema("no scheme"), "invalid URL", False),
    ],
)
def test_causes(exc, cause, transient):
    assert describe(exc) == (cause, transient)
