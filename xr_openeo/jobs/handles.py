"""Client objects for jobs and results that already exist, whose requests raise xr_openeo's errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import openeo

from ..errors import JobError
from .client_errors import CLIENT_ERRORS, library_error
from .status import short_repr


class LibraryErrorsBatchJob(openeo.BatchJob):
    """An ``openeo.BatchJob`` whose ``describe``, ``status``, ``logs``, ``start`` and ``stop`` raise
    xr_openeo's errors (:class:`~xr_openeo.errors.JobNotFoundError`, :class:`~xr_openeo.errors.AuthenticationError`,
    :class:`~xr_openeo.errors.JobError`) instead of the client's exceptions."""

    def _mapped(self, action: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except CLIENT_ERRORS as exc:
            raise library_error(exc, action, str(self.job_id)) from exc

    def describe(self) -> dict:
        meta = self._mapped("describe", super().describe)
        if not isinstance(meta, Mapping):
            raise JobError(
                f"The backend described batch job {self.job_id!r} with no JSON object", job_id=str(self.job_id)
            )
        return dict(meta)

    def status(self) -> str:
        status = self.describe().get("status")
        if not isinstance(status, str):
            raise JobError(
                f"The backend reported no valid 'status' for batch job {self.job_id!r} (got {short_repr(status)})",
                job_id=str(self.job_id),
            )
        return status

    def logs(self, offset: str | None = None, level: str | int | None = None) -> Any:
        return self._mapped("read the logs of", lambda: super(LibraryErrorsBatchJob, self).logs(offset, level))

    def start(self) -> Any:
        return self._mapped("start", super().start)

    def stop(self) -> Any:
        return self._mapped("cancel", super().stop)


def batch_job(connection: openeo.Connection, job_id: str) -> openeo.BatchJob:
    """The ``BatchJob`` of ``job_id`` on ``connection`` (no request); its requests raise xr_openeo's errors."""
    return LibraryErrorsBatchJob(job_id=job_id, connection=connection)


def load_results_cube(connection: openeo.Connection, url: str) -> Any:
    """An ``openeo`` DataCube that loads these results on the backend (``load_stac`` of ``url``)."""
    return connection.load_stac(url)
