"""xr_openeo's errors and warnings: one base class each; every error says what failed, where, and what to do.

Hrefs in messages are always redacted (no signatures, no tokens); HTTP statuses are kept.
"""

from __future__ import annotations

from typing import Any


class XrOpenEOError(Exception):
    """Base class of every error xr_openeo raises."""


class XrOpenEOWarning(UserWarning):
    """Base class of every warning xr_openeo emits (filter them all with this class)."""


# -- jobs -----------------------------------------------------------------------------------------


class JobError(XrOpenEOError):
    """A batch job cannot be used as asked (unknown, not finished, failed, not yours).

    ``job_id``: the job; ``status``: the job's last known status (``"error"``, ``"running"``…) when
    known; ``http_status``: the HTTP status of the request that failed, when one did.
    """

    def __init__(
        self, message: str, *, job_id: str | None = None, status: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status
        self.http_status = http_status


class JobNotFoundError(JobError):
    """The backend does not know the job (HTTP 404 ``JobNotFound``)."""


class JobNotFinishedError(JobError):
    """The job has no results yet (HTTP 400 ``JobNotFinished``); wait, or pass ``partial=True``."""


class JobFailedError(JobError):
    """The job ended in ``error`` (or was canceled); ``logs`` holds its error log entries."""

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        status: str | None = None,
        http_status: int | None = None,
        logs: list[dict] | None = None,
    ) -> None:
        super().__init__(message, job_id=job_id, status=status, http_status=http_status)
        self.logs = logs or []


class JobTimeoutError(JobError):
    """Waiting for a job took longer than ``timeout``; the job itself keeps running."""


class ProcessingError(XrOpenEOError):
    """The backend could not run a process graph synchronously (``POST /result``, :func:`xr_openeo.execute`).

    ``code`` is the openEO error code (``ProcessGraphInvalid``, ``Internal``…) when the backend sent
    one, ``request_id`` the request's id (the error body's ``id``, else the ``OpenEO-Identifier``
    header), ``http_status`` the HTTP status of the answer.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.http_status = http_status


class SyncTimeoutError(ProcessingError):
    """A synchronous request ran into a time limit: the backend's (408 ``RequestTimeout``), a gateway's
    (504) or this client's read timeout. Run the graph as a batch job (:func:`xr_openeo.compute_batch`)."""


class NoJobError(XrOpenEOError, ValueError):
    """A Dataset names no batch job: a deferred graph that has not run, or data not from openEO."""


class AuthenticationError(XrOpenEOError):
    """The backend refused the credentials (HTTP 401/403): authenticate again."""


# -- requests and documents ----------------------------------------------------------------------


class RequestError(XrOpenEOError):
    """An HTTP request failed after its retries.

    ``what`` names the request (``"results document"``, ``"item document"``, ``"asset 'openEO.tif'"``),
    ``href`` its URL (redacted), ``host`` the host it went to, ``cause`` why it failed
    (``"name resolution"``, ``"connection refused"``, ``"timeout"``, ``"connection dropped"``,
    ``"HTTP 503"``…) and ``status`` the HTTP status when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        what: str | None = None,
        href: str | None = None,
        host: str | None = None,
        cause: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.what = what
        self.href = href
        self.host = host
        self.cause = cause
        self.status = status


class ResultsDocumentError(XrOpenEOError):
    """A results document (or item document) is malformed, or not one; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AssetReadError(RequestError):
    """An asset could not be read; carries the asset ``key``, the redacted ``href`` and the HTTP ``status``.

    Subclasses :class:`RequestError` (``what``, ``host``, ``cause``) when a request failed; an asset
    whose bytes arrived but cannot be parsed raises it too, without ``cause``.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        href: str | None = None,
        status: int | None = None,
        host: str | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(
            message,
            what=f"asset {key!r}" if key is not None else "asset",
            href=href,
            host=host,
            cause=cause,
            status=status,
        )
        self.key = key


class URLExpiredError(AssetReadError):
    """A signed URL expired and could not be renewed."""


class GridMismatchError(XrOpenEOError):
    """A file's own header disagrees with the grid the results document gave for it.

    ``key`` names the asset, ``expected`` and ``actual`` are the two grids. Never filled by
    ``on_read_error="fill"``: the data exists but would land in the wrong place.
    """

    def __init__(self, message: str, *, key: str | None = None, expected: Any = None, actual: Any = None) -> None:
        super().__init__(message)
        self.key = key
        self.expected = expected
        self.actual = actual


class UnsupportedMediaTypeError(XrOpenEOError):
    """An asset's media type (or file type) is none xr_openeo can open."""

    def __init__(self, message: str, *, key: str | None = None, media_type: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.media_type = media_type


# -- warnings -------------------------------------------------------------------------------------


class FailedReadWarning(XrOpenEOWarning):
    """Reads that failed after the retries were filled (``on_read_error="fill"``) instead of raising.

    ``keys``, ``hrefs`` (redacted) and ``statuses`` list the failed assets; ``fill`` is what the
    chunk holds instead (``nan`` or the nodata value).
    """

    def __init__(
        self,
        message: str,
        *,
        keys: tuple[str | None, ...] = (),
        hrefs: tuple[str | None, ...] = (),
        statuses: tuple[int | None, ...] = (),
        fill: float | None = None,
    ) -> None:
        super().__init__(message)
        self.keys, self.hrefs, self.statuses, self.fill = keys, hrefs, statuses, fill

    @classmethod
    def from_errors(cls, errors: list[AssetReadError], fill: float, what: str = "") -> FailedReadWarning:
        """The warning for ``errors`` (one per failed asset) whose data became ``fill``."""
        listed = "; ".join(
            f"{e.what or repr(e.key)} at {e.href}" + (f" (HTTP {e.status})" if e.status else "") for e in errors
        )
        return cls(
            f"Reading failed after retries for {listed}; {what or 'the chunk'} was filled with {fill} "
            '(on_read_error="fill"). Those values are missing, not measured.',
            keys=tuple(e.key for e in errors),
            hrefs=tuple(e.href for e in errors),
            statuses=tuple(e.status for e in errors),
            fill=fill,
        )


class SkippedAssetWarning(XrOpenEOWarning):
    """Assets the caller did not ask for by name and xr_openeo cannot open were skipped.

    ``skipped`` maps each asset key to why (``"media type application/octet-stream"``, ``"role
    metadata"``…); ``ds.openeo.assets`` lists them too. Name an asset with ``assets=[...]`` to get
    the error that says why it cannot be read.
    """

    def __init__(self, message: str, *, skipped: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.skipped = dict(skipped or {})
