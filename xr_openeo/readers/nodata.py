"""The one home of nodata rules: output dtypes, fill values, masking and first-valid merging.

Every format and front goes through these functions, so a pixel is "missing" by one rule: it
equals the file's nodata value, or it is NaN in a float file. With ``masked=True`` (default)
missing pixels become NaN in a float output; with ``masked=False`` the output keeps the file's
dtype and its nodata value (which the Dataset records in ``encoding["_FillValue"]``).
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_FLOAT = "float32"


def is_float(dtype: str | np.dtype) -> bool:
    return bool(np.issubdtype(np.dtype(dtype), np.floating))


def output_dtype(requested: str | None, described: str | None, file_dtype: str | None, *, masked: bool) -> str:
    """The dtype of the variables: ``requested``, else (masked) the document's ``data_type`` or
    ``float32``, else (unmasked) the document's or the file's own dtype."""
    if requested is not None:
        return str(np.dtype(requested))
    if masked:
        return str(np.dtype(described)) if described else DEFAULT_FLOAT
    return str(np.dtype(described or file_dtype or DEFAULT_FLOAT))


def fill_value(dtype: str, nodata: float | None, *, masked: bool) -> float | int | None:
    """What a missing pixel holds in the output: NaN for masked floats, else the nodata value
    (None when there is none that the dtype can hold)."""
    if masked and is_float(dtype):
        return math.nan
    if nodata is None:
        return math.nan if is_float(dtype) else None
    if math.isnan(nodata):
        return math.nan if is_float(dtype) else None
    if not is_float(dtype):
        info = np.iinfo(np.dtype(dtype))
        if not (info.min <= nodata <= info.max) or nodata != int(nodata):
            return None
        return int(nodata)
    return float(nodata)


def exact(source: str | np.dtype, target: str | np.dtype) -> bool:
    """Whether every value of ``source`` survives conversion to ``target`` (a reader may then convert on read)."""
    return bool(np.can_cast(np.dtype(source), np.dtype(target), "safe"))


def invalid_mask(values: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Where ``values`` are missing: equal to ``nodata``, or NaN in a float array. None: nothing is."""
    floating = np.issubdtype(values.dtype, np.floating)
    if nodata is None or math.isnan(nodata):
        return np.isnan(values) if floating else None
    mask = values == nodata
    if floating:
        mask |= np.isnan(values)
    return mask


def finish(
    values: np.ndarray, nodata: float | None, dtype: str, fill: float | int | None, *, masked: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``values`` (as read, in the file's dtype or already in ``dtype``) in the output dtype with
    missing pixels set to ``fill``, and where they are (None: nowhere).

    The conversion makes at most one new array (none when the dtype is already right) and
    masks in place.
    """
    invalid = invalid_mask(values, nodata)
    out = values.astype(dtype, copy=False)
    del values
    if invalid is not None and fill is not None and (masked or (nodata is not None and nodata != fill)):
        if invalid.any():
            out[invalid] = fill
        else:
            invalid = None
    elif invalid is not None and not invalid.any():
        invalid = None
    return out, invalid


def merge_first_valid(out: np.ndarray, out_invalid: np.ndarray, values: np.ndarray, invalid: np.ndarray | None) -> None:
    """Fill the still-missing pixels of ``out`` from ``values`` (first valid pixel wins), in place.

    ``out_invalid`` marks what is still missing and is updated too.
    """
    take = out_invalid if invalid is None else out_invalid & ~invalid
    out[take] = values[take]
    out_invalid &= ~take
