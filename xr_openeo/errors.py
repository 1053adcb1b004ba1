"""xr_openeo's errors: one base class; each says what failed, where, and what to do.

Hrefs in messages are always redacted (no signatures, no tokens); HTTP statuses are kept.
"""

from __future__ import annotations


class XrOpenEOError(Exception):
    """Base class of every error xr_openeo raises."""


class JobError(XrOpenEOError):
    """A batch job cannot be used as asked (unknown, not finished, failed, not yours)."""

    def __init__(self, message: str, *, job_id: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status


class JobNotFoundError(JobError):
    """The backend does not know the job (HTTP 404 ``JobNotFound``)."""


class JobNotFinishedError(JobError):
    """The job has no results yet (HTTP 400 ``JobNotFinished``); wait, or pass ``partial=True``."""


class JobFailedError(JobError):
    """The job ended in ``error``; ``logs`` holds its error log entries."""

    def __init__(
        self, message: str, *, job_id: str | None = None, status: int | None = None, logs: list[dict] | None = None
    ) -> None:
        super().__init__(message, job_id=job_id, status=status)
        self.logs = logs or []


class AuthenticationError(XrOpenEOError):
    """The backend refused the credentials (HTTP 401/403): authenticate again."""


class ResultsDocumentError(XrOpenEOError):
    """A results document (or item document) is malformed; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AssetReadError(XrOpenEOError):
    """An asset could not be read; carries the asset key, the redacted href and the HTTP status."""

    def __init__(
        self, message: str, *, key: str | None = None, href: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.key = key
        self.href = href
        self.status = status


class FailedReadWarning(UserWarning):
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
            f"{e.key!r} at {e.href} (HTTP {e.status})" if e.status else f"{e.key!r} at {e.href}" for e in errors
        )
        return cls(
            f"Reading failed after retries for {listed}; {what or 'the chunk'} was filled with {fill} "
            '(on_read_error="fill"). Those values are missing, not measured.',
            keys=tuple(e.key for e in errors),
            hrefs=tuple(e.href for e in errors),
            statuses=tuple(e.status for e in errors),
            fill=fill,
        )


class URLExpiredError(AssetReadError):
    """A signed asset URL expired and could not be renewed."""


class UnsupportedMediaTypeError(XrOpenEOError):
    """An asset's media type (or file type) is none xr_openeo can open."""

    def __init__(self, message: str, *, key: str | None = None, media_type: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.media_type = media_type


class JobTimeoutError(JobError):
    """Waiting for a job took longer than ``timeout``; the job itself keeps running."""
