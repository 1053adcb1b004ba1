"""What a job's metadata says (its status and progress, validated) and how it is written in messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..errors import JobError

#: Statuses of a job that is still on its way.
PENDING = ("created", "submitted", "queued", "running")
#: Statuses a job ends in.
TERMINAL = ("finished", "error", "canceled")


def job_status(meta: Mapping[str, Any], job_id: str) -> str:
    """The ``status`` of a job's metadata, lower case; a missing or non-string one is a :class:`JobError`."""
    status = meta.get("status")
    if not isinstance(status, str) or not status.strip():
        raise JobError(
            f"The backend described batch job {job_id!r} with no valid 'status' (got {short_repr(status)}; "
            f"expected one of {PENDING + TERMINAL})",
            job_id=job_id,
        )
    return status.strip().lower()


def job_progress(meta: Mapping[str, Any]) -> float | None:
    """The ``progress`` of a job's metadata as a percentage in [0, 100], or None when missing or malformed.

    Progress is shown, never acted on, so a malformed one is dropped rather than raised.
    """
    progress = meta.get("progress")
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        return None
    try:
        value = float(progress)
    except OverflowError:  # an int beyond float range
        return 100.0 if progress > 0 else 0.0
    if value != value:  # NaN
        return None
    return min(max(value, 0.0), 100.0)


def fmt_elapsed(seconds: float) -> str:
    """``0:01:05`` for 65 seconds."""
    return str(timedelta(seconds=round(max(seconds, 0.0))))


def fmt_progress(progress: Any) -> str:
    """``40%`` for a number, ``-`` for anything else."""
    return f"{float(progress):.0f}%" if isinstance(progress, int | float) and not isinstance(progress, bool) else "-"


def short_repr(value: Any, width: int = 80) -> str:
    """``repr(value)``, cut to ``width`` characters (backend documents can be huge)."""
    try:
        text = repr(value)
    except Exception:  # a repr that fails says nothing useful
        text = f"<{type(value).__name__}>"
    return text if len(text) <= width else text[: width - 1] + "…"


def truncate(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def clause(text: str) -> str:
    """``text`` without trailing periods and blanks, to be followed by ``". "`` or ``")"`` in a message."""
    return text.rstrip().rstrip(".").rstrip()
