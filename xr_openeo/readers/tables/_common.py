"""Helpers every table reader shares: errors naming the asset, JSON loading, ISO 8601 parsing, lazy imports."""

from __future__ import annotations

import json
from importlib import import_module
from typing import Any

import pandas as pd

from ...errors import AssetReadError
from ...results import AssetSpec
from ...urls import redact


def asset_error(spec: AssetSpec, what: str) -> AssetReadError:
    """An :class:`AssetReadError` saying ``Asset 'key' (redacted href) <what>``."""
    href = redact(spec.href)
    return AssetReadError(f"Asset {spec.key!r} ({href}) {what}", key=spec.key, href=href)


def load_json(data: bytes, spec: AssetSpec) -> Any:
    """The parsed document, or an :class:`AssetReadError` saying why (empty, truncated, not JSON)."""
    if not data.strip():
        raise asset_error(spec, "is empty (0 bytes of JSON)")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        truncated = " (the download looks truncated)" if exc.pos >= len(exc.doc.rstrip()) else ""
        raise asset_error(
            spec, f"is not valid JSON{truncated}: {exc.msg} at character {exc.pos} of {len(exc.doc)}"
        ) from None
    except (UnicodeDecodeError, TypeError, ValueError) as exc:
        raise asset_error(spec, f"is not valid JSON: {reason(exc)}") from None


def datetimes(texts: list[str], spec: AssetSpec, what: str) -> pd.DatetimeIndex:
    """ISO 8601 strings as UTC-naive ``datetime64[ns]``; an error names the first one that does not parse."""
    parsed = try_datetimes(texts)
    if parsed is not None:
        return parsed
    for text in texts:
        if try_datetimes([text]) is None:
            raise asset_error(spec, f"{what} {text!r} is not an ISO 8601 datetime")
    raise asset_error(spec, f"the {what} values do not parse as ISO 8601 datetimes")


def try_datetimes(texts: list[str]) -> pd.DatetimeIndex | None:
    """ISO 8601 strings (any offset; a space for ``T`` too) as UTC-naive ``datetime64[ns]``, else None."""
    try:
        parsed = pd.to_datetime(pd.Index(texts, dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None
    if parsed.hasnans:
        return None
    return pd.DatetimeIndex(parsed.tz_convert(None).astype("datetime64[ns]"))


def datetime_column(column: pd.Series, spec: AssetSpec, name: str) -> pd.Series:
    """A date column (text, tz-aware or naive datetimes) as UTC-naive ``datetime64[ns]``."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        parsed = column.dt.tz_convert("UTC").dt.tz_localize(None)
    elif column.dtype.kind == "M":
        parsed = column
    else:
        if column.isna().any():
            raise asset_error(spec, f"column {name!r} has no value in row {int(column.isna().to_numpy().argmax())}")
        parsed = pd.Series(datetimes(column.astype(str).tolist(), spec, name), index=column.index)
    return parsed.astype("datetime64[ns]")


def optional_import(module: str, what: str, package: str) -> Any:
    """``module``, or an ImportError saying which package reading ``what`` needs."""
    try:
        return import_module(module)
    except ImportError as exc:
        raise ImportError(f"Reading {what} results needs {package}: pip install {package} ({exc})") from exc


def reason(exc: BaseException) -> str:
    """``ExceptionType: first line of its message``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def short(value: Any) -> str:
    """A JSON-ish rendering of a value for messages, at most 60 characters."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
