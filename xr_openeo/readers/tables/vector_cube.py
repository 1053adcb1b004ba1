"""A tidy time series as an xarray vector cube: dims ``(feature, t)``, geometries as an xvec index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .shape import FEATURE, GEOMETRY, TIME, bands_of, geometry_crs


def to_vector_cube(frame: pd.DataFrame, *, bands: Sequence[str] | None = None) -> xr.Dataset:
    """The vector cube of a time series.

    Parameters
    ----------
    frame
        A tidy time series (as :func:`read_table`, :func:`combine_tables` or :func:`join_features`
        give it): indexed by ``(t, feature)`` or ``feature`` alone.
    bands
        The columns that hold values; default ``frame.attrs["bands"]`` (set by the readers), else
        every float column.

    Returns
    -------
    xarray.Dataset
        Dims ``(feature, t)`` (``feature`` alone when dateless): one ``float`` variable per band,
        NaN where a (feature, date) has no row. The other columns are coordinates along
        ``feature`` when they are the same on every row of a feature (properties), else variables
        of their own. ``geometry`` is a coordinate along ``feature`` with an xvec
        ``GeometryIndex`` (in the frame's CRS) when xvec is installed and every feature has a
        geometry, else a plain object coordinate.

    Raises
    ------
    ValueError
        The frame is not indexed by ``feature`` (and ``t``), or has duplicate index entries.
    """
    names = list(frame.index.names)
    if names not in ([FEATURE], [TIME, FEATURE], [FEATURE, TIME]):
        raise ValueError(
            f"to_vector_cube needs a frame indexed by ({TIME!r}, {FEATURE!r}) or {FEATURE!r} (as read_table "
            f"gives; an 'asset' level means the tables could not be combined), got index levels {names}"
        )
    if not frame.index.is_unique:
        raise ValueError(f"to_vector_cube: the frame has duplicate {tuple(names)} index entries")
    values = list(bands) if bands is not None else bands_of(frame)
    missing = [b for b in values if b not in frame.columns]
    if missing:
        raise ValueError(f"to_vector_cube: no column {missing[0]!r} in the frame (columns: {list(frame.columns)})")
    others = [c for c in frame.columns if c not in values and c != GEOMETRY]
    per_feature = [c for c in others if _constant_per_feature(frame[c])]
    variables = pd.DataFrame(frame[values + [c for c in others if c not in per_feature]])
    for name in values:
        variables[name] = variables[name].astype("float64") if variables[name].dtype.kind != "f" else variables[name]
    dataset = xr.Dataset.from_dataframe(variables)
    dataset = dataset.transpose(*[d for d in (FEATURE, TIME) if d in dataset.dims])
    firsts = frame[~frame.index.get_level_values(FEATURE).duplicated()]
    firsts = firsts.set_axis(firsts.index.get_level_values(FEATURE)).reindex(dataset[FEATURE].to_numpy())
    coords = {c: (FEATURE, firsts[c].to_numpy()) for c in per_feature}
    if GEOMETRY in frame.columns:
        coords[GEOMETRY] = (FEATURE, np.asarray(firsts[GEOMETRY].to_numpy(), dtype=object))
    dataset = dataset.assign_coords(coords)
    if GEOMETRY in frame.columns:
        dataset = _geometry_index(dataset, geometry_crs(frame))
    return dataset


def _constant_per_feature(column: pd.Series) -> bool:
    features = column.index.get_level_values(FEATURE)
    if features.is_unique:
        return True
    keys = column.map(lambda v: v.wkb if hasattr(v, "wkb") else v) if column.dtype == object else column
    try:
        return bool((keys.groupby(features, dropna=False).nunique(dropna=False) <= 1).all())
    except TypeError:  # unhashable values (lists, dicts)
        return False


def _geometry_index(dataset: xr.Dataset, crs: object) -> xr.Dataset:
    """``geometry`` indexed by xvec's ``GeometryIndex`` when xvec is installed and every feature has one."""
    try:
        from xvec import GeometryIndex
    except ImportError:
        return dataset
    import shapely

    if not all(isinstance(g, shapely.Geometry) for g in dataset[GEOMETRY].values):
        return dataset  # xvec indexes only geometries; a feature without one keeps the plain coordinate
    return dataset.set_xindex(GEOMETRY, GeometryIndex, crs=crs)
