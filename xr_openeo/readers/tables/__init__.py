"""Tabular and small JSON results: JSON time series, CSV, Parquet/GeoParquet, GeoJSON, xarray JSON rasters.

Pure functions of an asset's bytes and its :class:`~xr_openeo.results.AssetSpec`; fetching is the
caller's job. Time series come back in one tidy shape whatever the format (:mod:`.shape`): a
DataFrame indexed by ``(t, feature)`` (``t`` UTC-naive ``datetime64[ns]``, ``feature`` the
features' 0-based input order), one float column per band named after the document's bands
whenever their count matches, then the features' own properties, then ``geometry`` (a
GeoDataFrame) when the file carries geometries. Every parse failure is an
:class:`~xr_openeo.errors.AssetReadError` naming the asset key and its redacted href.

geopandas and pyarrow are imported only when a GeoJSON or Parquet asset is read.
"""

from __future__ import annotations

from .combine import combine_tables
from .csv_table import read_csv
from .dispatch import read_json, read_table
from .features import join_features
from .geojson import read_geojson
from .json_series import read_timeseries_json
from .parquet import read_parquet
from .raster_json import is_raster_json, read_raster_json
from .shape import FEATURE, INDEX, TIME
from .vector_cube import to_vector_cube

__all__ = [
    "FEATURE",
    "INDEX",
    "TIME",
    "combine_tables",
    "is_raster_json",
    "join_features",
    "read_csv",
    "read_geojson",
    "read_json",
    "read_parquet",
    "read_raster_json",
    "read_table",
    "read_timeseries_json",
    "to_vector_cube",
]
