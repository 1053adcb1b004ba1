"""CSV results: geopyspark's long time series, and vector cubes written by ``GeoDataFrame.to_csv``."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from ...results import AssetSpec
from ._common import asset_error, datetime_column, optional_import, reason
from .long_table import date_column, feature_column, long_frame
from .shape import GEOMETRY
from .vector import cube_columns, vector_frame


def read_csv(data: bytes, spec: AssetSpec) -> pd.DataFrame:
    """Read a CSV result.

    Parameters
    ----------
    data
        The asset's bytes.
    spec
        The asset; ``spec.bands`` names the value columns when their count matches.

    Returns
    -------
    pandas.DataFrame
        A time series (geopyspark's ``date,feature_index,<bands>``, ``avg(band_0)`` and all) in the
        tidy shape: indexed by ``(t, feature)`` (``feature`` alone without ``date``), every other
        column a float band. A vector cube (``date~band`` columns, one row per feature) too, its
        other columns kept as properties and a WKT ``geometry`` column parsed (a GeoDataFrame
        without CRS). Any other table comes back as written, a ``date`` column parsed to UTC-naive
        ``datetime64[ns]``.

    Raises
    ------
    AssetReadError
        Not a CSV table, rows longer than the header, dates or feature numbers that do not parse,
        non-numeric values, or two rows for one (date, feature).
    """
    try:
        table = pd.read_csv(io.BytesIO(data))
    except (ValueError, pd.errors.ParserError) as exc:  # EmptyDataError and UnicodeDecodeError are ValueErrors
        raise asset_error(spec, f"is not a readable CSV table: {reason(exc)}") from None
    if not isinstance(table.index, pd.RangeIndex):  # pandas' "implicit index" for rows longer than the header
        raise asset_error(
            spec, f"is not a readable CSV table: its rows have more fields than its header {list(table.columns)}"
        )
    if cube_columns(table.columns):
        geometry = _wkt_geometries(table)
        return vector_frame(table.drop(columns=[GEOMETRY]) if geometry is not None else table, spec, geometry=geometry)
    if feature_column(table) is not None:
        return long_frame(table, spec, only_bands=True)
    date = date_column(table)
    if date is not None:
        table = table.assign(**{date: datetime_column(table[date], spec, date)})
    return table


def _wkt_geometries(table: pd.DataFrame) -> Any:
    """The ``geometry`` column's WKT as shapely geometries, when it has one that parses; else None."""
    if GEOMETRY not in table.columns or table[GEOMETRY].dtype != object:
        return None
    shapely = optional_import("shapely", "CSV vector cubes", "shapely")
    try:
        return shapely.from_wkt(table[GEOMETRY].to_numpy(), on_invalid="raise")
    except (shapely.errors.GEOSException, TypeError, ValueError):
        return None
