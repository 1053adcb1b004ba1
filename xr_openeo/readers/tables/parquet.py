"""Parquet and GeoParquet results: long time series joined with their features, and vector cubes."""

from __future__ import annotations

import io

import pandas as pd

from ...results import AssetSpec
from ._common import asset_error, datetime_column, optional_import, reason
from .long_table import date_column, feature_column, long_frame
from .vector import cube_columns, vector_frame


def read_parquet(data: bytes, spec: AssetSpec) -> pd.DataFrame:
    """Read a Parquet or GeoParquet result.

    Parameters
    ----------
    data
        The asset's bytes.
    spec
        The asset; ``spec.bands`` names the value columns when their count matches.

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        A time series (``date, feature_index, <bands>`` plus the features' properties) or a
        vector cube (``date~band`` columns, or any GeoParquet: one row per feature) in the tidy
        shape: indexed by ``(t, feature)`` (``feature`` alone without time), one float column per
        band (floats as stored), the properties, and ``geometry`` for GeoParquet (a GeoDataFrame
        in the file's CRS). Any other table comes back as written, a ``date`` column parsed to
        UTC-naive ``datetime64[ns]``.

    Raises
    ------
    AssetReadError
        Not a Parquet file, dates or feature numbers that do not parse, non-numeric band values,
        or two rows for one (date, feature).
    """
    pq = optional_import("pyarrow.parquet", "Parquet", "pyarrow")
    try:
        schema = pq.read_schema(io.BytesIO(data))
        geo = b"geo" in (schema.metadata or {})
        if geo:
            gpd = optional_import("geopandas", "GeoParquet", "geopandas")
            table = gpd.read_parquet(io.BytesIO(data))
        else:
            table = pd.read_parquet(io.BytesIO(data))
    except (OSError, ValueError, TypeError, KeyError, NotImplementedError) as exc:  # ArrowInvalid is a ValueError
        raise asset_error(spec, f"is not a readable Parquet file: {reason(exc)}") from None
    geometry = crs = None
    if geo:
        geometry, crs = table.geometry.to_numpy(), table.crs
        table = pd.DataFrame(table.drop(columns=[table.geometry.name]))
    if not isinstance(table.index, pd.RangeIndex) or table.index.name is not None:
        table = table.reset_index()  # an index of ids written with the features is one of their properties
    if cube_columns(table.columns):
        return vector_frame(table, spec, geometry=geometry, crs=crs)
    if feature_column(table) is not None:
        return long_frame(table, spec, geometry=geometry, crs=crs)
    if geo:
        return vector_frame(table, spec, geometry=geometry, crs=crs)
    date = date_column(table)
    if date is not None:
        table = table.assign(**{date: datetime_column(table[date], spec, date)})
    return table
