"""Choosing the reader of a table asset: by format, and for JSON by what the document holds."""

from __future__ import annotations

import pandas as pd
import xarray as xr

from ...errors import UnsupportedMediaTypeError
from ...results import AssetSpec, require_format
from ._common import asset_error, load_json
from .csv_table import read_csv
from .geojson import geojson_frame, read_geojson
from .json_series import is_geojson, timeseries_frame
from .parquet import read_parquet
from .raster_json import is_raster_json, read_raster_json


def read_table(data: bytes, spec: AssetSpec) -> pd.DataFrame:
    """Read a tabular result by its format: JSON time series, CSV, Parquet/GeoParquet or GeoJSON.

    Parameters
    ----------
    data
        The asset's bytes.
    spec
        The asset; ``spec.format`` chooses the reader, ``spec.bands`` names the band columns
        whenever their count matches.

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        A time series in one shape whatever the format: indexed by ``(t, feature)`` (``feature``
        alone when dateless), one float column per band, the features' properties, and
        ``geometry`` (a GeoDataFrame) when the file has geometries. CSV and Parquet tables that are
        not time series come back as written.

    Raises
    ------
    UnsupportedMediaTypeError
        The asset is not tabular (e.g. GeoTIFF) or of an unknown media type.
    AssetReadError
        The bytes do not parse, or a JSON asset holds a raster; the message names the asset, its
        redacted href and, where it applies, the date and feature.
    """
    fmt = require_format(spec)
    if fmt == "csv":
        return read_csv(data, spec)
    if fmt == "parquet":
        return read_parquet(data, spec)
    if fmt == "geojson":
        return read_geojson(data, spec)
    if fmt == "json":
        doc = load_json(data, spec)
        if is_raster_json(doc):
            raise asset_error(spec, "holds a raster (xarray JSON), not a table: open it with xr_openeo.open_results")
        return geojson_frame(doc, spec) if is_geojson(doc) else timeseries_frame(doc, spec)
    raise UnsupportedMediaTypeError(
        f"Asset {spec.key!r} ({spec.media_type}) is a {fmt} raster, not a table: open it with xr_openeo.open_results",
        key=spec.key,
        media_type=spec.media_type,
    )


def read_json(data: bytes, spec: AssetSpec) -> pd.DataFrame | xr.Dataset:
    """Read a JSON result, whatever it holds (told apart by content, not by media type).

    Returns
    -------
    pandas.DataFrame, geopandas.GeoDataFrame or xarray.Dataset
        A time series as :func:`read_timeseries_json`, a FeatureCollection as :func:`read_geojson`,
        an xarray JSON raster as :func:`read_raster_json`.
    """
    doc = load_json(data, spec)
    if is_raster_json(doc):
        return read_raster_json(data, spec)
    if is_geojson(doc):
        return geojson_frame(doc, spec)
    return timeseries_frame(doc, spec)
