"""Fault switches of the local backend: how jobs and downloads misbehave, server-wide or per job."""

from __future__ import annotations

import hashlib
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

ERROR_KINDS = ("500", "503", "drop", "truncate")


@dataclass(frozen=True)
class Faults:
    """What the backend does wrong, on purpose.

    Server-wide: ``LocalBackend(faults=Faults(...))`` or ``backend.set_faults(...)``; per job: the
    job option ``{"faults": {...}}`` with the same field names, overriding the server's.

    Jobs
        ``queue_duration`` / ``run_duration`` (seconds spent queued / at least running; written
        assets appear one by one over the run), ``fail`` (error message the job fails with, after
        ``fail_after_assets`` assets were written).
    Asset URLs
        ``signed_urls`` (False: hrefs need the owner's bearer token), ``url_validity`` (seconds a
        signature lasts), ``expired_status`` (HTTP status of an expired link: 410 as the spec's
        ResultLinkExpired, or 403/404 as object stores answer), ``redirect_assets`` (the backend
        answers an authorised asset GET/HEAD with ``302 Found`` to a presigned URL on the separate
        asset host, another port, as backends that keep results in an object store do; the download
        faults then apply there).
    Downloads
        ``head_refused`` (HEAD answers 403, like presigned S3 URLs), ``range_ignored`` (Range is
        ignored: 200 with the whole body, no Accept-Ranges), ``no_content_length`` (streamed,
        chunked, no Content-Length), ``error_rate`` (fraction of asset requests that fail, each
        with one of ``error_kinds``: HTTP 500, 503, a dropped connection, or a body truncated
        halfway), decided by ``seed`` so a run is reproducible.
    Synchronous processing (``POST /result``)
        ``sync_time_limit`` (seconds a synchronous request may compute, by the backend's clock; None:
        no limit), ``sync_timeout_status`` (how the limit answers: 408 with the openEO error
        ``RequestTimeout``, or 504 with the HTML page of a gateway that gave up waiting, as behind a
        proxy), ``sync_costs`` (value of the ``OpenEO-Costs`` header; None: no header). The job
        switches ``run_duration`` and ``fail`` apply too, and the download switches (``error_rate``…)
        apply to the result body.
    Every request
        ``latency`` (seconds added before answering).
    The link
        ``bandwidth_mbit`` (megabits per second of the one link that every asset body shares,
        whatever connection it goes out on, as behind a single network uplink; None: no cap).
        Headers, JSON documents and HEAD answers are not slowed down, only file bytes.
    """

    queue_duration: float = 0.0
    run_duration: float = 0.0
    fail: str | None = None
    fail_after_assets: int = 0
    signed_urls: bool = True
    url_validity: float = 7 * 24 * 3600.0
    canonical_validity: float | None = None
    expired_status: int = 410
    redirect_assets: bool = False
    head_refused: bool = False
    range_ignored: bool = False
    no_content_length: bool = False
    error_rate: float = 0.0
    error_kinds: tuple[str, ...] = ERROR_KINDS
    seed: int = 0
    latency: float = 0.0
    bandwidth_mbit: float | None = None
    sync_time_limit: float | None = None
    sync_timeout_status: int = 408
    sync_costs: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be within [0, 1], got {self.error_rate!r}")
        unknown = set(self.error_kinds) - set(ERROR_KINDS)
        if unknown or not self.error_kinds:
            raise ValueError(f"error_kinds must be a non-empty subset of {ERROR_KINDS}, got {self.error_kinds!r}")
        if self.expired_status not in (400, 403, 404, 410):
            raise ValueError(f"expired_status must be 400, 403, 404 or 410, got {self.expired_status!r}")
        if self.sync_timeout_status not in (408, 504):
            raise ValueError(f"sync_timeout_status must be 408 or 504, got {self.sync_timeout_status!r}")
        for name in (
            "queue_duration",
            "run_duration",
            "url_validity",
            "canonical_validity",
            "latency",
            "sync_time_limit",
            "sync_costs",
        ):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if self.bandwidth_mbit is not None and not 0 < self.bandwidth_mbit < float("inf"):
            raise ValueError(f"bandwidth_mbit must be a positive number of Mbit/s or None, got {self.bandwidth_mbit!r}")

    def merged(self, overrides: dict[str, Any] | None) -> Faults:
        """These faults with a job's ``{"faults": {...}}`` option applied; unknown names are refused."""
        if not overrides:
            return self
        if not isinstance(overrides, dict):
            raise ValueError(f"job option 'faults' must be an object, got {overrides!r}")
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown fault switch(es) {unknown}; known: {sorted(known)}")
        values = dict(overrides)
        if "error_kinds" in values:
            values["error_kinds"] = tuple(values["error_kinds"])
        return replace(self, **values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def download_fault(self, request_key: str, attempt: int) -> str | None:
        """The fault (one of ``error_kinds``) for the ``attempt``-th try of a request, or None.

        A pure function of (seed, request, attempt): a retried request draws again, and the same
        run reproduces the same faults whatever order threads send their requests in.
        """
        if self.error_rate <= 0:
            return None
        digest = hashlib.sha256(f"{self.seed}|{request_key}|{attempt}".encode()).digest()
        u, k = struct.unpack(">QQ", digest[:16])
        if u / 2**64 >= self.error_rate:
            return None
        return self.error_kinds[k % len(self.error_kinds)]


class SharedLink:
    """One network link of the backend: bytes cross it one after another, at the rate of their sender.

    :meth:`send` books ``nbytes`` on the link behind everything already booked (by any connection)
    and waits until they would have crossed it. Connections sending at the same time therefore
    share the rate, in the order their pieces were booked, as on one uplink. ``clock`` (seconds,
    monotonic) and ``sleep`` are injectable so that tests drive time by hand.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._free_at = 0.0  # when the link has sent everything booked so far

    def send(self, nbytes: int, mbit: float) -> float:
        """Wait until ``nbytes`` more have crossed a link of ``mbit`` Mbit/s; returns the seconds waited."""
        duration = nbytes * 8 / (mbit * 1e6)
        with self._lock:
            now = self._clock()
            self._free_at = max(now, self._free_at) + duration
            wait = self._free_at - now
        if wait > 0:
            self._sleep(wait)
        return wait
