"""The user's own feature table joined onto a time series that carries none (JSON, CSV)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .shape import FEATURE, GEOMETRY, TIME, bands_of, finish, free_name, geometry_crs, is_geodataframe


def join_features(frame: pd.DataFrame, features: Any) -> pd.DataFrame:
    """Join a table of the job's features onto a time series: row ``i`` of ``features`` is feature ``i``.

    Parameters
    ----------
    frame
        A tidy time series (as :func:`read_table` or :func:`combine_tables` gives it), indexed by
        ``feature`` (and ``t``, and maybe ``asset``).
    features
        The features in the order the job was given them: a ``DataFrame`` or ``GeoDataFrame``
        (names, ids, geometries), a ``GeoSeries``, or the GeoJSON FeatureCollection passed to
        ``aggregate_spatial``. A named index becomes a column.

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        The frame with the features' columns after the bands (they replace the frame's own columns
        of the same name; one named like an index level or a band gets a ``_property`` suffix), and
        ``geometry`` last (a GeoDataFrame in the features' CRS) when ``features`` has geometries.
        Features with no row at all in the frame get rows of NaN.

    Raises
    ------
    ValueError
        The frame has no ``feature`` level, or its feature count (highest feature number + 1)
        differs from the number of rows of ``features``; the message gives both counts.
    TypeError
        ``features`` is none of the above.
    """
    table = feature_table(features)
    if FEATURE not in (frame.index.names or ()):
        raise ValueError(
            f"join_features needs a frame indexed by {FEATURE!r} (as read_table gives), "
            f"got index levels {list(frame.index.names)}"
        )
    numbers = frame.index.get_level_values(FEATURE)
    count = int(numbers.max()) + 1 if len(numbers) else 0
    if count != len(table) or (len(numbers) and int(numbers.min()) < 0):
        raise ValueError(
            f"The results hold {count} features (numbered 0 to {count - 1} in the job's input order) but "
            f"features= has {len(table)} rows: pass the same features, in the same order, as the job was given."
        )
    bands = bands_of(frame)
    frame = _every_feature(frame, len(table))
    has_geometry = GEOMETRY in table.columns
    taken = {*(n for n in frame.index.names if n is not None), *bands}
    renamed = {c: free_name(str(c), taken) for c in table.columns if c != GEOMETRY}
    joined = table.rename(columns=renamed).iloc[frame.index.get_level_values(FEATURE).to_numpy()]
    joined = pd.DataFrame(joined).set_axis(frame.index)
    replaced = [c for c in frame.columns if c in joined.columns and c not in bands]
    base = pd.DataFrame(frame).drop(columns=replaced)
    if has_geometry and GEOMETRY in base.columns:
        base = base.drop(columns=[GEOMETRY])  # the user's geometries replace the file's
    out = pd.concat([base, joined], axis=1)
    crs = geometry_crs(table) if has_geometry else geometry_crs(frame)
    return finish(out, bands, GEOMETRY in out.columns, crs)


def feature_table(features: Any) -> pd.DataFrame:
    """``features`` as a frame with a RangeIndex and, when it has geometries, a ``geometry`` column."""
    if isinstance(features, Mapping) and features.get("type") == "FeatureCollection":
        import geopandas as gpd

        from .geojson import geojson_crs

        crs = geojson_crs(features)
        if crs is None:
            raise ValueError(f"features= has a 'crs' member xr_openeo does not understand: {features['crs']!r}")
        table = gpd.GeoDataFrame.from_features(features, crs=crs)
        return table[[*(c for c in table.columns if c != GEOMETRY), GEOMETRY]]
    gpd_module = _geopandas_if_loaded()
    if gpd_module is not None and isinstance(features, gpd_module.GeoSeries):
        features = features.to_frame(GEOMETRY)
    if not isinstance(features, pd.DataFrame):
        raise TypeError(
            "features= takes a DataFrame, GeoDataFrame, GeoSeries or GeoJSON FeatureCollection, "
            f"got {type(features).__name__}"
        )
    named = any(name is not None for name in features.index.names)
    table = features.reset_index(drop=not named)
    if is_geodataframe(features) and features.geometry.name != GEOMETRY:
        table = table.rename_geometry(GEOMETRY)  # type: ignore[operator]
    return table


def _every_feature(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    """The frame with rows (NaN) for features numbered below ``count`` that it lacks entirely."""
    names = list(frame.index.names)
    if names not in ([FEATURE], [TIME, FEATURE]):
        return frame
    present = frame.index.get_level_values(FEATURE).unique()
    if len(present) == count:
        return frame
    wanted = np.arange(count, dtype="int64")
    if names == [FEATURE]:
        return frame.reindex(pd.Index(wanted, name=FEATURE))
    times = frame.index.get_level_values(TIME).unique().sort_values()
    return frame.reindex(pd.MultiIndex.from_product([times, wanted], names=names))


def _geopandas_if_loaded() -> Any:
    import sys

    return sys.modules.get("geopandas")
