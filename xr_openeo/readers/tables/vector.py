"""Vector cubes: one row per feature, its properties, and values flattened into ``date~band`` columns.

openeo-python-driver's ``DriverVectorCube`` writes GeoJSON, GeoParquet and CSV this way (extra
dimensions joined with ``~``, an optional ``flatten_prefix~`` in front; a cube without bands gives
bare ``date`` columns, one without time bare band columns). Rows become the tidy ``(t, feature)``
shape of :mod:`.shape`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...results import AssetSpec
from ._common import asset_error, try_datetimes
from .shape import FEATURE_COLUMNS, band_names, feature_numbers, find_bands, tidy

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+)?(?:Z|[+-]\d{2}:?\d{2})?$")
_UNNAMED_INDEX = "Unnamed: 0"  # how pandas reads the index column that GeoDataFrame.to_csv writes


def cube_columns(columns: Sequence[Any]) -> list[tuple[str, pd.Timestamp, str | None]]:
    """The ``[prefix~]date[~band]`` columns as ``(column, date, band or None)``, in column order."""
    found = []
    for column in columns:
        if not isinstance(column, str):
            continue
        parts = column.split("~")
        at = next((i for i, part in enumerate(parts) if _DATE.match(part)), None)
        if at is None:
            continue
        when = try_datetimes([parts[at]])
        if when is None:
            continue
        band = "~".join(parts[at + 1 :]) or None
        found.append((column, when[0], band))
    return found


def vector_frame(
    table: pd.DataFrame,
    spec: AssetSpec,
    *,
    geometry: Any = None,
    crs: Any = None,
) -> pd.DataFrame:
    """The tidy frame of a vector cube table with one row per feature.

    Parameters
    ----------
    table
        Properties and values, one row per feature in input order (geometries apart).
    spec
        The asset: its bands name the value columns, it is named in errors.
    geometry, crs
        One geometry per row (or None), and their CRS.

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        As :func:`.shape.tidy` gives it; the feature numbers come from a ``feature_index`` column
        when it holds unique integers, else from the row order.
    """
    table = table.reset_index(drop=True)
    feature, id_column = _features(table)
    used = {id_column} if id_column is not None else set()
    cube = cube_columns(table.columns)
    if cube:
        return _long(table, spec, cube, feature, used, geometry, crs)
    others = [str(c) for c in table.columns if c not in used]
    bands = find_bands(others, table, spec, after=id_column)
    properties = table[[c for c in others if c not in bands]]
    values = table[bands].set_axis(band_names(bands, spec), axis=1)
    return tidy(values, spec, feature=feature, properties=properties, geometry=geometry, crs=crs)


def _features(table: pd.DataFrame) -> tuple[np.ndarray, str | None]:
    """Feature numbers from ``feature_index`` (unique integers), or from an unnamed CSV index column
    that numbers the rows 0 … n-1; else the row order. Also the column used, if any."""
    n = len(table)
    if FEATURE_COLUMNS[0] in table.columns:
        numbers = feature_numbers(table[FEATURE_COLUMNS[0]], n)
        if _holds(table[FEATURE_COLUMNS[0]], numbers):
            return numbers, FEATURE_COLUMNS[0]
    if _UNNAMED_INDEX in table.columns:
        numbers = feature_numbers(table[_UNNAMED_INDEX], n)
        if _holds(table[_UNNAMED_INDEX], numbers) and sorted(numbers.tolist()) == list(range(n)):
            return numbers, _UNNAMED_INDEX
    return np.arange(n, dtype="int64"), None


def _holds(column: pd.Series, numbers: np.ndarray) -> bool:
    """Whether ``numbers`` came from ``column`` (not the row-order fallback)."""
    values = pd.to_numeric(column, errors="coerce").to_numpy()
    return len(values) == len(numbers) and bool(np.array_equal(values, numbers))


def _long(
    table: pd.DataFrame,
    spec: AssetSpec,
    cube: list[tuple[str, pd.Timestamp, str | None]],
    feature: np.ndarray,
    used: set[str],
    geometry: Any,
    crs: Any,
) -> pd.DataFrame:
    times = pd.DatetimeIndex([when for _, when, _ in cube])
    unique_times = times.unique().sort_values()
    labels = list(dict.fromkeys(band for _, _, band in cube))
    found = [label if label is not None else f"band_{i}" for i, label in enumerate(labels)]
    n_t, n_f, n_b = len(unique_times), len(table), len(labels)
    values = np.full((n_t, n_f, n_b), np.nan)
    t_at, b_at = unique_times.get_indexer(times), [labels.index(band) for _, _, band in cube]
    for (column, _, _), ti, bi in zip(cube, t_at, b_at, strict=True):
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = numbers.isna() & table[column].notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise asset_error(spec, f"property {column!r} of feature {feature[row]} holds a non-numeric value")
        values[ti, :, bi] = numbers.to_numpy(dtype="float64")
    rows = np.tile(np.arange(n_f), n_t)
    consumed = used | {column for column, _, _ in cube}
    properties = table[[c for c in table.columns if c not in consumed]].iloc[rows]
    geometries = None if geometry is None else np.asarray(geometry, dtype=object)[rows]
    frame = pd.DataFrame(values.reshape(n_t * n_f, n_b), columns=band_names(found, spec))
    return tidy(
        frame,
        spec,
        feature=feature[rows],
        t=unique_times.repeat(n_f),
        properties=properties,
        geometry=geometries,
        crs=crs,
    )
