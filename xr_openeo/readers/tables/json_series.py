"""JSON time series of ``aggregate_spatial``: ``{date: [per feature: [per band value]]}``.

That is what geopyspark and openeo-python-driver write (``AggregatePolygonResult``); a cube without
time is a plain list of per-feature lists. Gaps are ``null`` or ``[]``; some reducers give dense
``[[]]`` days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...results import AssetSpec
from ._common import asset_error, datetimes, load_json, short
from .raster_json import is_raster_json
from .shape import tidy


def read_timeseries_json(data: bytes, spec: AssetSpec) -> pd.DataFrame:
    """Read an ``aggregate_spatial`` JSON time series.

    Parameters
    ----------
    data
        The asset's bytes: ``{date: [per feature: [per band value]]}``, or a dateless list of
        per-feature lists.
    spec
        The asset; ``spec.bands`` names the columns when their count matches the values.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(t, feature)`` (only ``feature`` for a dateless series), sorted, one ``float64``
        column per band (else ``band_0``, ``band_1``, …). ``null``, ``[]`` and dense ``[[]]`` days
        are NaN.

    Raises
    ------
    AssetReadError
        Invalid JSON, a structure that is not a time series, inconsistent feature or band counts,
        non-numeric values or unparseable dates; the message names the date and feature.
    """
    return timeseries_frame(load_json(data, spec), spec)


def is_geojson(doc: Any) -> bool:
    """Whether a parsed JSON document is a GeoJSON FeatureCollection or Feature."""
    return isinstance(doc, Mapping) and doc.get("type") in ("FeatureCollection", "Feature")


def timeseries_frame(doc: Any, spec: AssetSpec) -> pd.DataFrame:
    """The tidy frame of a parsed JSON time series."""
    if isinstance(doc, Mapping):
        if is_raster_json(doc):
            raise asset_error(spec, "holds an xarray JSON raster, not a time series: read it with read_raster_json")
        if is_geojson(doc):
            raise asset_error(spec, "holds GeoJSON, not a time series: read it with read_geojson")
        labels: list[str | None] = list(doc)
        days = list(doc.values())
        dated = True
    elif isinstance(doc, list):  # a cube without time: one list per feature
        labels, days, dated = [None], [doc], False
    else:
        raise asset_error(
            spec,
            f"is not a time series: expected an object {{date: [per feature: [per band]]}}, got {type(doc).__name__}",
        )
    values = _values(labels, days, spec)
    n_dates, n_features, n_bands = values.shape
    columns = list(spec.bands) if len(spec.bands) == n_bands else [f"band_{i}" for i in range(n_bands)]
    table = pd.DataFrame(values.reshape(n_dates * n_features, n_bands), columns=columns)
    feature = np.tile(np.arange(n_features, dtype="int64"), n_dates)
    if not dated:
        return tidy(table, spec, feature=feature)
    times = datetimes([str(label) for label in labels], spec, "date")
    if times.has_duplicates:
        duplicated = [str(label) for label, dup in zip(labels, times.duplicated(keep=False), strict=True) if dup]
        raise asset_error(spec, f"has dates that are the same instant: {duplicated}")
    return tidy(table, spec, feature=feature, t=times.repeat(n_features))


def _values(labels: Sequence[str | None], days: Sequence[Any], spec: AssetSpec) -> np.ndarray:
    """Check the structure and return values of shape (dates, features, bands); NaN where missing."""
    counts: dict[int, str | None] = {}  # feature count -> first date with it (days with values only)
    bands: dict[int, tuple[str | None, int]] = {}  # band count -> first (date, feature) with it
    longest = 0
    empty = []
    for label, day in zip(labels, days, strict=True):
        where = f"date {label!r}" if label is not None else "the dateless series"
        if day is None:
            empty.append(True)
            continue
        if not isinstance(day, list):
            raise asset_error(spec, f"{where}: expected a list with one entry per feature, got {short(day)}")
        longest = max(longest, len(day))
        has_values = False
        for f, per_band in enumerate(day):
            if per_band is None or per_band == []:
                continue
            if not isinstance(per_band, list):
                raise asset_error(spec, f"{where}, feature {f}: expected a list of band values, got {short(per_band)}")
            for value in per_band:
                if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                    raise asset_error(
                        spec, f"{where}, feature {f}: band values must be numbers or null, got {short(value)}"
                    )
            bands.setdefault(len(per_band), (label, f))
            has_values = True
        empty.append(not has_values)
        if has_values:
            counts.setdefault(len(day), label)
    if len(counts) > 1:
        detail = ", ".join(f"{n} at date {label!r}" for n, label in counts.items())
        raise asset_error(spec, f"has inconsistent feature counts: {detail}")
    if len(bands) > 1:
        detail = ", ".join(f"{n} at date {label!r} feature {f}" for n, (label, f) in bands.items())
        raise asset_error(spec, f"has inconsistent band counts: {detail}")
    n_features = next(iter(counts)) if counts else longest
    n_bands = next(iter(bands)) if bands else len(spec.bands)
    values = np.full((len(days), n_features, n_bands), np.nan)
    for i, (day, is_empty) in enumerate(zip(days, empty, strict=True)):
        if is_empty:
            continue
        for f, per_band in enumerate(day):
            if per_band:
                values[i, f] = [np.nan if v is None else v for v in per_band]
    return values
