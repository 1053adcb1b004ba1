"""The one tidy shape of a time series, whatever file it came from.

Every reader hands its rows to :func:`tidy`: an index ``(t, feature)`` (``t`` UTC-naive
``datetime64[ns]``, ``feature`` the input position of the feature, ``int64``), one float column per
band, then the features' own properties, then ``geometry`` (and a GeoDataFrame) when the file has
geometries. No column is named like an index level. The band columns are listed in
``frame.attrs["bands"]``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...results import AssetSpec
from ._common import asset_error, short

TIME = "t"
FEATURE = "feature"
INDEX = (TIME, FEATURE)
GEOMETRY = "geometry"
BANDS_ATTR = "bands"
FEATURE_COLUMNS = ("feature_index",)  # geopyspark and openeo-python-driver write this
# The names backends give value columns when they do not know the band names: ``band_0``,
# geopyspark's CSV ``avg(band_0)``, and the same cleaned for Parquet (``avg_band_0_``).
_GENERIC_BAND = re.compile(r"^(?:band_\d+|\w+\(band_\d+\)|\w+_band_\d+_)$")
_PROPERTY_SUFFIX = "_property"


def band_names(found: Sequence[str], spec: AssetSpec) -> list[str]:
    """What to call the band columns ``found`` in a file: the document's bands whenever their count matches.

    Same names in another order keep their own names (never swapped by position). Without usable
    band metadata, generic names (``avg(band_0)``, ``avg_band_0_``) become ``band_0``, ``band_1``…
    by position, as JSON time series have them.
    """
    found = [str(name) for name in found]
    if len(spec.bands) == len(found) and set(found) != set(spec.bands):
        return list(spec.bands)
    if len(spec.bands) != len(found) and found and all(_GENERIC_BAND.match(name) for name in found):
        return [f"band_{i}" for i in range(len(found))]
    return found


def parquet_name(name: str) -> str:
    """A name as openeo-python-driver writes it into Parquet (``()/\\`` become ``_``)."""
    return re.sub(r"[()/\\]", "_", name)


def find_bands(columns: Sequence[str], table: pd.DataFrame, spec: AssetSpec, *, after: str | None = None) -> list[str]:
    """The band columns among ``columns`` (the non-key columns of a table that may also hold properties).

    1. Every band of the document, by its name or its Parquet-cleaned name, when all are there.
    2. Else the generic value columns (``band_0``, ``avg(band_0)``, ``avg_band_0_``).
    3. Else the numeric columns right after the ``after`` column, up to the first other one (and no
       more than the document's band count): openeo-python-driver writes the bands right after
       ``feature_index``, the features' properties after them.
    4. Else every numeric column.
    """
    names = [str(c) for c in columns]
    if spec.bands:
        matched = [b if b in names else parquet_name(b) for b in spec.bands]
        if all(m in names for m in matched) and len(set(matched)) == len(matched):
            return matched
    generic = [c for c in names if _GENERIC_BAND.match(c)]
    if generic:
        return generic
    numeric = [c for c in names if is_number_column(table[c])]
    n = len(spec.bands)
    if after is not None and after in table.columns:
        order = [str(c) for c in table.columns]
        run = []
        for name in order[order.index(after) + 1 :]:
            if name not in names:  # another key column (the date)
                continue
            if name not in numeric:
                break
            run.append(name)
        if run and (not n or len(run) >= n):
            return run[:n] if n else run
    return numeric


def is_number_column(column: pd.Series) -> bool:
    """Numbers (not booleans), or nothing at all."""
    return column.dtype.kind in "iuf" or (column.dtype == object and bool(column.isna().all()))


def feature_numbers(column: pd.Series | None, n: int) -> np.ndarray:
    """The features' input positions: ``column`` when it holds unique integers, else ``0 … n-1``."""
    if column is not None:
        numbers = pd.to_numeric(column, errors="coerce")
        if len(numbers) and not numbers.isna().any() and bool((numbers % 1 == 0).all()) and numbers.is_unique:
            return numbers.to_numpy().astype("int64")
    return np.arange(n, dtype="int64")


def integer_column(column: pd.Series, spec: AssetSpec, name: str) -> np.ndarray:
    """A column of feature numbers as ``int64``, or an error naming the first row that is not an integer."""
    if column.dtype.kind in "iu":
        return column.to_numpy().astype("int64")
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() | (numbers % 1 != 0)
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise asset_error(spec, f"column {name!r} must hold integers; row {row} has {short(column.iloc[row])}")
    return numbers.to_numpy().astype("int64")


def float_bands(values: pd.DataFrame, spec: AssetSpec) -> pd.DataFrame:
    """Band columns as floats (floats as stored; integers, booleans and numeric text as ``float64``)."""
    out = {}
    for name in values.columns:
        column = values[name]
        if column.dtype.kind == "f":
            out[name] = column
            continue
        if column.dtype.kind in "iub":
            out[name] = column.astype("float64")
            continue
        numbers = pd.to_numeric(column, errors="coerce")
        bad = numbers.isna() & column.notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            value = short(column.iloc[row])
            raise asset_error(spec, f"column {name!r} holds non-numeric values; row {row} has {value}")
        out[name] = numbers.astype("float64")
    return pd.DataFrame(out, index=values.index)


def tidy(
    values: pd.DataFrame,
    spec: AssetSpec,
    *,
    feature: np.ndarray,
    t: pd.DatetimeIndex | np.ndarray | None = None,
    properties: pd.DataFrame | None = None,
    geometry: Any = None,
    crs: Any = None,
) -> pd.DataFrame:
    """Rows of a time series in the tidy shape (see the module docstring).

    Parameters
    ----------
    values
        One column per band, already named as they should be; one row per (date, feature).
    spec
        The asset, for errors.
    feature, t
        Per row: the feature's input position, and the date (None for a dateless series).
    properties
        Per row: the feature's own properties (the same on every row of a feature).
    geometry, crs
        Per row: the feature's geometry (shapely objects or None), and its CRS.

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        Sorted by its index; every (date, feature) pair present, missing values NaN.
    """
    if t is not None:
        index: pd.Index = pd.MultiIndex.from_arrays(
            [pd.DatetimeIndex(t).astype("datetime64[ns]"), np.asarray(feature, dtype="int64")], names=list(INDEX)
        )
    else:
        index = pd.Index(np.asarray(feature, dtype="int64"), name=FEATURE)
    bands = float_bands(values, spec)
    bands.columns = [str(c) for c in bands.columns]
    parts = [bands.set_axis(index)]
    taken = set(INDEX) | set(bands.columns) | {GEOMETRY}
    if properties is not None and len(properties.columns):
        renamed = {}
        for name in properties.columns:
            renamed[name] = free_name(str(name), taken)
            taken.add(renamed[name])
        parts.append(properties.rename(columns=renamed).reset_index(drop=True).set_axis(index))
    if geometry is not None:
        parts.append(pd.DataFrame({GEOMETRY: pd.Series(np.asarray(geometry, dtype=object), index=index)}))
    frame = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    if frame.index.has_duplicates:
        first = frame.index[frame.index.duplicated()][0]
        keys = first if isinstance(first, tuple) else (first,)
        where = ", ".join(f"{n}={v}" for n, v in zip(frame.index.names, keys, strict=True))
        raise asset_error(spec, f"has more than one row for {where}")
    frame = complete(frame, list(bands.columns)).sort_index()
    return finish(frame, list(bands.columns), geometry is not None, crs)


def free_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_property`` (``name_property2`` …) when an index level or a band has that name."""
    if name not in taken:
        return name
    candidate, i = name + _PROPERTY_SUFFIX, 2
    while candidate in taken:
        candidate, i = f"{name}{_PROPERTY_SUFFIX}{i}", i + 1
    return candidate


def complete(frame: pd.DataFrame, bands: Sequence[str]) -> pd.DataFrame:
    """Every (date, feature) pair of a dated frame: missing bands NaN, properties copied from the feature's rows."""
    if not isinstance(frame.index, pd.MultiIndex) or frame.empty:
        return frame
    times = frame.index.get_level_values(TIME).unique().sort_values()
    features = frame.index.get_level_values(FEATURE).unique().sort_values()
    if len(frame) == len(times) * len(features):
        return frame
    full = pd.MultiIndex.from_product([times, features], names=list(INDEX))
    position = frame.index.get_indexer(full)
    feature_of_row = frame.index.get_level_values(FEATURE)
    first_row = pd.Series(np.arange(len(frame)), index=feature_of_row).groupby(level=0).first()
    source = np.where(position >= 0, position, first_row.reindex(full.get_level_values(FEATURE)).to_numpy())
    others = [c for c in frame.columns if c not in bands]
    out = frame[list(bands)].reindex(full)
    if others:
        out = pd.concat([out, frame[others].iloc[source].set_axis(full)], axis=1)
    return out


def finish(frame: pd.DataFrame, bands: Sequence[str], has_geometry: bool, crs: Any) -> pd.DataFrame:
    """Bands first, then properties, ``geometry`` last; a GeoDataFrame when there are geometries."""
    order = [*bands, *(c for c in frame.columns if c not in bands and c != GEOMETRY)]
    if has_geometry:
        gpd = _geopandas()
        geometries = gpd.GeoSeries(frame[GEOMETRY].to_numpy(), index=frame.index)
        frame = gpd.GeoDataFrame(frame[order], geometry=geometries, crs=crs)
    else:
        frame = pd.DataFrame(frame[order])
    frame.attrs = {BANDS_ATTR: list(bands)}
    return frame


def bands_of(frame: pd.DataFrame) -> list[str]:
    """The band columns of a tidy frame: ``attrs["bands"]`` that are still columns, else the float columns."""
    listed = frame.attrs.get(BANDS_ATTR)
    if isinstance(listed, list | tuple):
        present = [b for b in listed if b in frame.columns]
        if present:
            return present
    return [str(c) for c in frame.columns if c != GEOMETRY and frame[c].dtype.kind == "f"]


def is_geodataframe(frame: Any) -> bool:
    """Whether ``frame`` is a GeoDataFrame (without importing geopandas when nothing could be one)."""
    gpd = sys.modules.get("geopandas")
    return gpd is not None and isinstance(frame, gpd.GeoDataFrame)


def geometry_crs(frame: pd.DataFrame) -> Any:
    """The CRS of a GeoDataFrame's geometries, else None."""
    return frame.crs if is_geodataframe(frame) else None  # type: ignore[attr-defined]


def _geopandas() -> Any:
    from ._common import optional_import

    return optional_import("geopandas", "results with geometries", "geopandas")
