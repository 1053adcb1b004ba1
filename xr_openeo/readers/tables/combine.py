"""Several table assets of one result as one frame when they hold one series, else side by side."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...results import AssetSpec
from .shape import FEATURE, GEOMETRY, bands_of, complete, finish, geometry_crs

ASSET = "asset"
# Two copies of one value agree within this relative tolerance: CSV holds float32 means as their
# shortest decimal text, Parquet as float32, JSON as float64.
RTOL = 1e-6


def combine_tables(frames: Mapping[str, pd.DataFrame], specs: Sequence[AssetSpec]) -> pd.DataFrame:
    """The tables of one result as one frame.

    Parameters
    ----------
    frames
        Tidy frames (as :func:`read_table` gives them), keyed by asset key.
    specs
        The assets, in the results document's order (which decides which frame comes first).

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        Frames of one series become one frame. Two frames are of one series when they have the same
        index levels and the same bands, and their values at the same (date, feature) agree (within
        a relative 1e-6); those values are kept once, taken from the frame with the most properties;
        other dates and features are concatenated; properties and geometries reach every row of
        their feature. Features that the frames number alike but describe differently (another
        geometry or other properties, as when each asset holds one feature) are numbered anew in
        asset order. Several series (other bands, other levels, or values that disagree) are
        concatenated under an ``asset`` index level named after the first asset of each; when their
        index levels differ, those levels become columns and the index is ``(asset, row)``.
    """
    if not frames:
        raise ValueError("combine_tables needs at least one frame")
    known = [s.key for s in specs if s.key in frames]
    keys = known + [k for k in frames if k not in known]
    if len(keys) == 1:
        return frames[keys[0]]
    groups: dict[str, pd.DataFrame] = {}  # first asset of each series -> the series so far
    for key in keys:
        for first, series in groups.items():
            combined = _one_series([series, frames[key]])
            if combined is not None:
                groups[first] = combined
                break
        else:
            groups[key] = frames[key]
    if len(groups) == 1:
        return next(iter(groups.values()))
    items = list(groups.values())
    if any(list(f.index.names) != list(items[0].index.names) for f in items):
        items = [f.reset_index() for f in items]  # indexes of other levels do not stack: their levels become columns
    return pd.concat(dict(zip(groups, items, strict=True)), names=[ASSET])


def _one_series(frames: list[pd.DataFrame]) -> pd.DataFrame | None:
    names = list(frames[0].index.names)
    if FEATURE not in names or any(list(f.index.names) != names for f in frames):
        return None
    bands = bands_of(frames[0])
    if any(set(bands_of(f)) != set(bands) for f in frames):
        return None
    identities = [_identities(f, bands) for f in frames]
    if _renumber_needed(identities):
        frames = _renumbered(frames, identities)
    ranked = sorted(frames, key=lambda f: -len(f.columns))  # stable: richest first, then asset order
    stacked = pd.concat([pd.DataFrame(f) for f in ranked])
    kept = stacked[~stacked.index.duplicated(keep="first")]
    if len(kept) < len(stacked):
        reference = kept[bands].reindex(stacked.index).to_numpy(dtype="float64")
        values = stacked[bands].to_numpy(dtype="float64")
        if not np.isclose(values, reference, rtol=RTOL, atol=0, equal_nan=True).all():
            return None
    others = [c for c in kept.columns if c not in bands]
    dtypes = {c: next(f[c].dtype for f in ranked if c in f.columns) for c in others}
    kept = kept.assign(**{c: _filled_per_feature(kept[c], dtypes[c]) for c in others})
    crs = next((c for c in map(geometry_crs, frames) if c is not None), None)
    return finish(complete(kept, bands).sort_index(), bands, GEOMETRY in kept.columns, crs)


def _identities(frame: pd.DataFrame, bands: Sequence[str]) -> dict[int, Hashable] | None:
    """Per feature number, what the frame says the feature is (geometry and properties); None if nothing."""
    others = [c for c in frame.columns if c not in bands]
    if not others:
        return None
    firsts = frame[~frame.index.get_level_values(FEATURE).duplicated()]
    numbers = firsts.index.get_level_values(FEATURE)
    rows = zip(*(_hashable(firsts[c]) for c in sorted(others)), strict=True)
    found = dict(zip(numbers.tolist(), rows, strict=True))
    return found if len(set(found.values())) == len(found) else None  # ambiguous: two features alike


def _hashable(column: pd.Series) -> list[Hashable]:
    if column.dtype.name == "geometry" or any(hasattr(v, "wkb") for v in column.head(1)):
        return [None if v is None else v.wkb for v in column]
    return [None if _missing(v) else (v if isinstance(v, Hashable) else repr(v)) for v in column]


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _renumber_needed(identities: list[dict[int, Hashable] | None]) -> bool:
    """Whether two frames describe one feature number as two different features."""
    if any(i is None for i in identities):
        return False
    seen: dict[int, Hashable] = {}
    for found in identities:
        assert found is not None
        for number, identity in found.items():
            if seen.setdefault(number, identity) != identity:
                return True
    return False


def _renumbered(frames: list[pd.DataFrame], identities: list[Any]) -> list[pd.DataFrame]:
    """Frames with features numbered 0, 1, … by first appearance (asset order); one identity, one number."""
    numbers: dict[Hashable, int] = {}
    out = []
    for frame, found in zip(frames, identities, strict=True):
        mapping = {n: numbers.setdefault(found[n], len(numbers)) for n in sorted(found)}
        index = frame.index
        arrays = [index.get_level_values(i) for i in range(index.nlevels)]
        at = list(index.names).index(FEATURE)
        arrays[at] = pd.Index([mapping[n] for n in arrays[at]], dtype="int64", name=FEATURE)
        new = pd.MultiIndex.from_arrays(arrays) if isinstance(index, pd.MultiIndex) else arrays[0]
        out.append(frame.set_axis(new))
    return out


def _filled_per_feature(column: pd.Series, dtype: Any) -> pd.Series:
    """Missing values of a property filled from the feature's first row that has one, in the property's dtype."""
    missing = column.isna().to_numpy()
    if missing.any():
        features = column.index.get_level_values(FEATURE)
        present = column[~missing]
        first = ~present.index.get_level_values(FEATURE).duplicated()
        where = present.index.get_level_values(FEATURE)[first]
        lookup = pd.Series(present.to_numpy(dtype=object)[first], index=where)
        values = column.to_numpy(dtype=object).copy()
        values[missing] = lookup.reindex(features[missing]).to_numpy()
        column = pd.Series(values, index=column.index, name=column.name)
    if column.dtype != dtype and not column.isna().any():
        try:
            return column.astype(dtype)  # the dtype the stacking of frames without this column lost
        except (TypeError, ValueError):
            return column.infer_objects()
    return column.infer_objects() if column.dtype == object else column
