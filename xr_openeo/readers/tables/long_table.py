"""Long tables, one row per (date, feature): geopyspark's CSV and the GeoParquet of openeo-python-driver.

geopyspark writes ``date,feature_index,avg(band_0),…`` (rows in no particular order, features without
values possibly absent); openeo-python-driver's GeoParquet is ``date, feature_index, <bands>`` joined
with the input features (their properties and geometry), its band columns named after the cube's
labels (``()/\\`` replaced by ``_``), or ``feature_index, avg_band_0_…`` without time.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ...results import AssetSpec
from ._common import datetime_column
from .shape import FEATURE_COLUMNS, band_names, find_bands, integer_column, tidy

DATE_COLUMNS = ("date", "t", "time")  # the first present is the date; geopyspark writes "date"


def date_column(table: pd.DataFrame) -> str | None:
    """The name of the table's date column, if it has one."""
    return next((c for c in DATE_COLUMNS if c in table.columns), None)


def feature_column(table: pd.DataFrame) -> str | None:
    """The name of the table's feature number column, if it has one."""
    return next((c for c in FEATURE_COLUMNS if c in table.columns), None)


def long_frame(
    table: pd.DataFrame,
    spec: AssetSpec,
    *,
    geometry: Any = None,
    crs: Any = None,
    only_bands: bool = False,
) -> pd.DataFrame:
    """The tidy frame of a long table with a ``feature_index`` column (and usually ``date``).

    Parameters
    ----------
    table
        The rows, without the geometry column.
    spec
        The asset: its bands name the value columns, it is named in errors.
    geometry, crs
        One geometry per row (or None), and their CRS.
    only_bands
        Every column but the date and feature number is a band (CSV, which carries no properties);
        otherwise the bands are found as :func:`.shape.find_bands` says and the rest are properties.
    """
    feature = feature_column(table)
    if feature is None:
        raise ValueError("long_frame needs a feature_index column")
    date = date_column(table)
    t = pd.DatetimeIndex(datetime_column(table[date], spec, date)) if date is not None else None
    numbers = integer_column(table[feature], spec, feature)
    others = [str(c) for c in table.columns if c not in (date, feature)]
    bands = others if only_bands else find_bands(others, table, spec, after=feature)
    properties = table[[c for c in others if c not in bands]]
    values = table[bands].set_axis(band_names(bands, spec), axis=1)
    return tidy(values, spec, feature=numbers, t=t, properties=properties, geometry=geometry, crs=crs)
