"""Tabular and small JSON results: JSON time series, CSV, Parquet/GeoParquet, GeoJSON, xarray JSON rasters.

Pure functions of an asset's bytes and its :class:`~xr_openeo.results.AssetSpec`; fetching is the
caller's job. Time series come back in one shape whatever the format: a DataFrame indexed by
``(t, geometry)`` (``t`` as UTC-naive ``datetime64[ns]``, ``geometry`` the 0-based input order) with
one column per band. Every parse failure is an :class:`~xr_openeo.errors.AssetReadError` naming the
asset key and its redacted href. See ``reference/openeo-results.md`` §3 for the layouts.

geopandas and pyarrow are imported only when a GeoJSON or Parquet asset is read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from ...errors import AssetReadError, UnsupportedMediaTypeError
from ...results import AssetSpec, redact, require_format

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "geojson_to_long",
    "is_raster_json",
    "read_csv",
    "read_geojson",
    "read_json",
    "read_parquet",
    "read_raster_json",
    "read_table",
    "read_timeseries_json",
    "timeseries_to_dataset",
]

INDEX = ("t", "geometry")
DATE_COLUMNS = ("date", "t", "time")  # first present wins; geopyspark writes "date"
FEATURE_COLUMNS = ("feature_index",)
_BAND_DIMS = ("bands", "band")


# -- public functions -----------------------------------------------------------------------------


def read_timeseries_json(data: bytes, spec: AssetSpec) -> pd.DataFrame:
    """Read an ``aggregate_spatial`` JSON time series.

    Parameters
    ----------
    data
        The asset's bytes: ``{date: [per geometry: [per band value]]}``, or a dateless list of
        per-geometry lists.
    spec
        The asset; ``spec.bands`` names the columns when their count matches the values.

    Returns
    -------
    pandas.DataFrame
        Float columns per band (else ``band_0``, ``band_1``, …), indexed by ``(t, geometry)`` (only
        ``geometry`` for a dateless series) and sorted. ``null``, ``[]`` and dense ``[[]]`` days are NaN.

    Raises
    ------
    AssetReadError
        Invalid JSON, a structure that is not a time series, inconsistent geometry or band counts,
        non-numeric values or unparseable dates; the message names the date and geometry.
    """
    return _timeseries_frame(_load_json(data, spec), spec)


def timeseries_to_dataset(frame: pd.DataFrame) -> xr.Dataset:
    """A time-series frame (as the ``read_*`` functions give it) as an ``xarray.Dataset``.

    Parameters
    ----------
    frame
        Indexed by ``t`` and/or ``geometry``. Numeric columns become variables; others (such as a
        GeoParquet ``geometry`` column) are left out.

    Returns
    -------
    xarray.Dataset
        Dims ``("t", "geometry")`` (those present), one float variable per band; missing
        ``(t, geometry)`` pairs are NaN.
    """
    names = list(frame.index.names)
    if not names or any(n not in INDEX for n in names) or len(set(names)) != len(names):
        raise ValueError(
            f"timeseries_to_dataset needs a frame indexed by 't' and/or 'geometry' (as read_table gives), "
            f"got index names {names}"
        )
    if not frame.index.is_unique:
        raise ValueError("timeseries_to_dataset: the frame has duplicate (t, geometry) index entries")
    numeric = frame[[c for c in frame.columns if _is_numeric(frame[c])]]
    numeric = pd.DataFrame(numeric).astype({c: "float64" for c in numeric.columns if numeric[c].dtype.kind != "f"})
    dataset = xr.Dataset.from_dataframe(numeric)
    return dataset.transpose(*[d for d in INDEX if d in dataset.dims])


def read_csv(data: bytes, spec: AssetSpec) -> pd.DataFrame:
    """Read a CSV result (geopyspark: ``date,feature_index,<bands>``).

    Parameters
    ----------
    data
        The asset's bytes.
    spec
        The asset.

    Returns
    -------
    pandas.DataFrame
        ``date`` parsed to UTC-naive ``datetime64[ns]``. With ``date`` and ``feature_index`` they
        become the sorted ``(t, geometry)`` index (``feature_index`` alone: a ``geometry`` index);
        otherwise the columns are kept as they are.
    """
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except (ValueError, pd.errors.ParserError) as exc:  # EmptyDataError and UnicodeDecodeError are ValueErrors
        raise _error(spec, f"is not a readable CSV table: {_reason(exc)}") from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas' "implicit index" for rows longer than the header
        raise _error(
            spec, f"is not a readable CSV table: its rows have more fields than its header {list(frame.columns)}"
        )
    return _time_series_index(frame, spec)


def read_parquet(data: bytes, spec: AssetSpec) -> pd.DataFrame | gpd.GeoDataFrame:
    """Read a Parquet or GeoParquet result.

    Parameters
    ----------
    data
        The asset's bytes.
    spec
        The asset.

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        A GeoDataFrame when the file has GeoParquet ``geo`` metadata, else a DataFrame; date
        columns and the index as :func:`read_csv` does. The geometries stay a column.
    """
    pq = _import("pyarrow.parquet", "Parquet", "pyarrow")
    try:
        schema = pq.read_schema(io.BytesIO(data))
        if b"geo" in (schema.metadata or {}):
            gpd = _import("geopandas", "GeoParquet", "geopandas")
            frame = gpd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_parquet(io.BytesIO(data))
    except (OSError, ValueError, TypeError, KeyError, NotImplementedError) as exc:  # ArrowInvalid is a ValueError
        raise _error(spec, f"is not a readable Parquet file: {_reason(exc)}") from None
    return _time_series_index(frame, spec)


def read_geojson(data: bytes, spec: AssetSpec) -> gpd.GeoDataFrame:
    """Read a GeoJSON result (a vector cube): one row per feature, properties as columns.

    Parameters
    ----------
    data
        The asset's bytes: a FeatureCollection (or a single Feature).
    spec
        The asset.

    Returns
    -------
    geopandas.GeoDataFrame
        In EPSG:4326 (RFC 7946; a legacy ``crs`` member is honoured). Flattened vector-cube
        properties such as ``2023-01-03T00:00:00Z~B04`` are kept as they are; see
        :func:`geojson_to_long`.
    """
    return _geojson_frame(_load_json(data, spec), spec)


def geojson_to_long(gdf: pd.DataFrame, spec: AssetSpec | None = None) -> pd.DataFrame:
    """Turn a vector cube's flattened ``date~band`` columns into a time-series frame.

    Parameters
    ----------
    gdf
        As :func:`read_geojson` gives it.
    spec
        The asset, to name it in errors.

    Returns
    -------
    pandas.DataFrame
        Float band columns indexed by ``(t, geometry)``, sorted; ``geometry`` is the
        ``feature_index`` property when there is one, else the feature's position. Without
        ``date~band`` columns (a cube without time): the numeric properties indexed by ``geometry``.
    """
    geometry = _feature_ids(gdf)
    split = [(c, *c.split("~", 1)) for c in gdf.columns if isinstance(c, str) and "~" in c]
    prefixes = list(dict.fromkeys(date for _, date, _ in split))
    parsed = _try_datetimes(prefixes)
    if parsed is None:  # some `~` columns are not date~band: keep those that are
        each = {p: _try_datetimes([p]) for p in prefixes}
        when = {p: t[0] for p, t in each.items() if t is not None}
    else:
        when = dict(zip(prefixes, parsed, strict=True))
    cube_columns = [(column, date, band) for column, date, band in split if date in when]
    if not cube_columns:
        values = [c for c in gdf.columns if c not in FEATURE_COLUMNS and c != "geometry" and _is_numeric(gdf[c])]
        frame = pd.DataFrame(gdf[values].to_numpy(dtype="float64"), columns=values, index=geometry)
        return frame.sort_index()
    times = pd.DatetimeIndex([when[date] for _, date, _ in cube_columns])
    unique_times = times.unique().sort_values()
    bands = list(dict.fromkeys(band for _, _, band in cube_columns))
    cube = np.full((len(unique_times), len(gdf), len(bands)), np.nan)
    t_pos, b_pos = unique_times.get_indexer(times), [bands.index(band) for _, _, band in cube_columns]
    for (column, _, _), ti, bi in zip(cube_columns, t_pos, b_pos, strict=True):
        try:
            cube[ti, :, bi] = pd.to_numeric(gdf[column].to_numpy(dtype=object), errors="raise")
        except (TypeError, ValueError):
            message = f"property {column!r} holds non-numeric values"
            raise (_error(spec, message) if spec else ValueError(message)) from None
    index = pd.MultiIndex.from_product([unique_times, geometry], names=list(INDEX))
    frame = pd.DataFrame(cube.reshape(len(index), len(bands)), index=index, columns=bands)
    return frame.sort_index()


def read_raster_json(data: bytes, spec: AssetSpec) -> xr.Dataset:
    """Read a raster saved as JSON: xarray's ``to_dict()`` plus ``dtype``/``shape`` attributes.

    Parameters
    ----------
    data
        The asset's bytes.
    spec
        The asset; ``spec.bands`` names the variables when the band coordinate is missing.

    Returns
    -------
    xarray.Dataset
        One variable per band (a ``bands``/``band`` dimension is split), in the recorded dtype
        (float when ints have nulls); datetime coordinates as UTC-naive ``datetime64[ns]``.
        ``spec.nodata``, when set, is masked to NaN.
    """
    doc = _load_json(data, spec)
    if not is_raster_json(doc):
        raise _error(spec, "is not an xarray JSON raster (an object with 'dims', 'data' and 'coords')")
    try:
        if "data_vars" in doc:
            dataset = xr.Dataset.from_dict(_normalised_dataset_dict(doc))
        else:
            dataset = _bands_to_variables(xr.DataArray.from_dict(_normalised_variable(doc, is_array=True)), spec)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise _error(spec, f"is not a consistent xarray JSON raster: {_reason(exc)}") from None
    if spec.nodata is not None and not np.isnan(spec.nodata):
        for name, variable in dataset.data_vars.items():
            if variable.dtype.kind in "iuf":
                dataset[name] = variable.where(variable != spec.nodata)
    return dataset


def read_json(data: bytes, spec: AssetSpec) -> pd.DataFrame | gpd.GeoDataFrame | xr.Dataset:
    """Read a JSON result, whatever it holds (told apart by content, not by media type).

    Returns
    -------
    pandas.DataFrame, geopandas.GeoDataFrame or xarray.Dataset
        A time series as :func:`read_timeseries_json`, a FeatureCollection as :func:`read_geojson`,
        an xarray JSON raster as :func:`read_raster_json`.
    """
    doc = _load_json(data, spec)
    if is_raster_json(doc):
        return read_raster_json(data, spec)
    if _is_geojson(doc):
        return _geojson_frame(doc, spec)
    return _timeseries_frame(doc, spec)


def read_table(data: bytes, spec: AssetSpec) -> pd.DataFrame:
    """Read a tabular result by its format: JSON time series, CSV, Parquet or GeoJSON.

    Parameters
    ----------
    data
        The asset's bytes.
    spec
        The asset; ``spec.format`` chooses the reader.

    Returns
    -------
    pandas.DataFrame
        As the format's reader gives it (a GeoDataFrame for GeoJSON and GeoParquet).

    Raises
    ------
    UnsupportedMediaTypeError
        The asset is not tabular (e.g. GeoTIFF) or of an unknown media type.
    AssetReadError
        The bytes do not parse, or a JSON asset holds a raster.
    """
    fmt = require_format(spec)
    if fmt == "csv":
        return read_csv(data, spec)
    if fmt == "parquet":
        return read_parquet(data, spec)
    if fmt == "geojson":
        return read_geojson(data, spec)
    if fmt == "json":
        doc = _load_json(data, spec)
        if is_raster_json(doc):
            raise _error(spec, "holds a raster (xarray JSON), not a table: open it with xr_openeo.open_results")
        return _geojson_frame(doc, spec) if _is_geojson(doc) else _timeseries_frame(doc, spec)
    raise UnsupportedMediaTypeError(
        f"Asset {spec.key!r} ({spec.media_type}) is a {fmt} raster, not a table: open it with xr_openeo.open_results",
        key=spec.key,
        media_type=spec.media_type,
    )


def is_raster_json(doc: Any) -> bool:
    """Whether a parsed JSON document is an xarray ``to_dict()`` raster (not a time series)."""
    if not isinstance(doc, Mapping):
        return False
    if "data_vars" in doc and isinstance(doc.get("data_vars"), Mapping):
        return True
    return isinstance(doc.get("dims"), list | Mapping) and "data" in doc


# -- JSON time series ------------------------------------------------------------------------------


def _timeseries_frame(doc: Any, spec: AssetSpec) -> pd.DataFrame:
    if isinstance(doc, Mapping):
        if is_raster_json(doc):
            raise _error(spec, "holds an xarray JSON raster, not a time series: read it with read_raster_json")
        if _is_geojson(doc):
            raise _error(spec, "holds GeoJSON, not a time series: read it with read_geojson")
        dated = True
        labels: list[str | None] = list(doc)
        days = list(doc.values())
    elif isinstance(doc, list):  # a cube without time: one list per geometry
        dated, labels, days = False, [None], [doc]
    else:
        raise _error(
            spec,
            f"is not a time series: expected an object {{date: [per geometry: [per band]]}}, got {type(doc).__name__}",
        )
    values = _timeseries_values(labels, days, spec)
    n_bands = values.shape[2]
    columns = list(spec.bands) if len(spec.bands) == n_bands else [f"band_{i}" for i in range(n_bands)]
    n_geometries = values.shape[1]
    geometry = np.arange(n_geometries, dtype="int64")
    if not dated:
        return pd.DataFrame(values[0], columns=columns, index=pd.Index(geometry, name="geometry"))
    times = _datetimes([str(label) for label in labels], spec, "date")
    if times.has_duplicates:
        duplicated = [str(label) for label, dup in zip(labels, times.duplicated(keep=False), strict=True) if dup]
        raise _error(spec, f"has dates that are the same instant: {duplicated}")
    index = pd.MultiIndex.from_arrays([times.repeat(n_geometries), np.tile(geometry, len(labels))], names=list(INDEX))
    frame = pd.DataFrame(values.reshape(len(index), n_bands), columns=columns, index=index)
    return frame.sort_index()


def _timeseries_values(labels: Sequence[str | None], days: Sequence[Any], spec: AssetSpec) -> np.ndarray:
    """Check the structure and return values of shape (dates, geometries, bands); NaN where missing."""
    counts: dict[int, str | None] = {}  # geometry count -> first date with it (non-empty days only)
    bands: dict[int, tuple[str | None, int]] = {}  # band count -> first (date, geometry) with it
    longest = 0
    empty = []
    for label, day in zip(labels, days, strict=True):
        where = f"date {label!r}" if label is not None else "the dateless series"
        if day is None:
            empty.append(True)
            continue
        if not isinstance(day, list):
            raise _error(spec, f"{where}: expected a list with one entry per geometry, got {_short(day)}")
        longest = max(longest, len(day))
        has_values = False
        for g, per_band in enumerate(day):
            if per_band is None or per_band == []:
                continue
            if not isinstance(per_band, list):
                raise _error(spec, f"{where}, geometry {g}: expected a list of band values, got {_short(per_band)}")
            for value in per_band:
                if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                    raise _error(
                        spec, f"{where}, geometry {g}: band values must be numbers or null, got {_short(value)}"
                    )
            bands.setdefault(len(per_band), (label, g))
            has_values = True
        empty.append(not has_values)
        if has_values:
            counts.setdefault(len(day), label)
    if len(counts) > 1:
        detail = ", ".join(f"{n} at date {label!r}" for n, label in counts.items())
        raise _error(spec, f"has inconsistent geometry counts: {detail}")
    if len(bands) > 1:
        detail = ", ".join(f"{n} at date {label!r} geometry {g}" for n, (label, g) in bands.items())
        raise _error(spec, f"has inconsistent band counts: {detail}")
    n_geometries = next(iter(counts)) if counts else longest
    n_bands = next(iter(bands)) if bands else len(spec.bands)
    values = np.full((len(days), n_geometries, n_bands), np.nan)
    for i, (day, is_empty) in enumerate(zip(days, empty, strict=True)):
        if is_empty:
            continue
        for g, per_band in enumerate(day):
            if per_band:
                values[i, g] = [np.nan if v is None else v for v in per_band]
    return values


# -- CSV and Parquet -------------------------------------------------------------------------------


def _time_series_index(frame: pd.DataFrame, spec: AssetSpec) -> pd.DataFrame:
    """Parse the date column; ``date`` + ``feature_index`` become the ``(t, geometry)`` index."""
    date = next((c for c in DATE_COLUMNS if c in frame.columns), None)
    feature = next((c for c in FEATURE_COLUMNS if c in frame.columns), None)
    if date is not None:
        frame = frame.assign(**{date: _datetime_column(frame[date], spec, date)})
    if feature is None:
        return frame
    ids = frame[feature]
    if ids.dtype.kind not in "iu":
        numeric = pd.to_numeric(ids, errors="coerce")
        if numeric.isna().any() or (numeric % 1 != 0).any():
            row = int(np.flatnonzero(numeric.isna() | (numeric % 1 != 0))[0])
            raise _error(spec, f"column {feature!r} must hold integers; row {row} has {_short(ids.iloc[row])}")
        frame = frame.assign(**{feature: numeric.astype("int64")})
    keys = [date, feature] if date is not None else [feature]
    names = list(INDEX) if date is not None else ["geometry"]
    frame = frame.set_index(keys).rename_axis(names)
    if frame.index.has_duplicates:
        first = frame.index[frame.index.duplicated()][0]
        where = ", ".join(
            f"{n}={v}" for n, v in zip(names, first if isinstance(first, tuple) else (first,), strict=True)
        )
        raise _error(spec, f"has more than one row for {where}")
    return frame.sort_index()


def _datetime_column(column: pd.Series, spec: AssetSpec, name: str) -> pd.Series:
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        parsed = column.dt.tz_convert("UTC").dt.tz_localize(None)
    elif column.dtype.kind == "M":
        parsed = column
    else:
        if column.isna().any():
            raise _error(spec, f"column {name!r} has no value in row {int(np.flatnonzero(column.isna())[0])}")
        parsed = pd.Series(_datetimes(column.astype(str).tolist(), spec, name), index=column.index)
    return parsed.astype("datetime64[ns]")


# -- GeoJSON ---------------------------------------------------------------------------------------


def _is_geojson(doc: Any) -> bool:
    return isinstance(doc, Mapping) and doc.get("type") in ("FeatureCollection", "Feature")


def _geojson_frame(doc: Any, spec: AssetSpec) -> gpd.GeoDataFrame:
    gpd = _import("geopandas", "GeoJSON", "geopandas")
    from shapely.geometry import shape

    if not _is_geojson(doc):
        raise _error(spec, f"is not GeoJSON: expected a FeatureCollection, got {_short(doc)}")
    features = [doc] if doc["type"] == "Feature" else doc.get("features")
    if not isinstance(features, list):
        raise _error(spec, "is a FeatureCollection without a 'features' list")
    geometries, rows = [], []
    for i, feature in enumerate(features):
        if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
            raise _error(spec, f"features[{i}] is not a GeoJSON Feature: {_short(feature)}")
        properties = feature.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise _error(spec, f"features[{i}].properties must be an object, got {_short(properties)}")
        try:
            geometries.append(shape(feature["geometry"]) if feature.get("geometry") else None)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise _error(spec, f"features[{i}].geometry is not a valid GeoJSON geometry: {_reason(exc)}") from None
        rows.append(properties)
    table = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    for column in table.columns:  # an all-null vector-cube value column is still a number column
        if isinstance(column, str) and "~" in column and table[column].isna().all():
            table[column] = table[column].astype("float64")
    if "geometry" in table.columns:
        raise _error(spec, "has a property named 'geometry', which clashes with the feature geometries")
    return gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(geometries, dtype="geometry"), crs=_geojson_crs(doc, spec))


def _geojson_crs(doc: Mapping[str, Any], spec: AssetSpec) -> str:
    name = (doc.get("crs") or {}).get("properties", {}).get("name") if isinstance(doc.get("crs"), Mapping) else None
    if not isinstance(name, str):
        return "EPSG:4326"
    if name.upper().endswith(("CRS84", "CRS:84")):
        return "OGC:CRS84"
    code = name.rsplit(":", 1)[-1]
    if "EPSG" in name.upper() and code.isdigit():
        return f"EPSG:{code}"
    raise _error(spec, f"has a 'crs' member xr_openeo does not understand: {name!r}")


def _feature_ids(gdf: pd.DataFrame) -> pd.Index:
    for column in FEATURE_COLUMNS:
        if column in gdf.columns:
            ids = pd.to_numeric(gdf[column], errors="coerce")
            if not ids.isna().any() and (ids % 1 == 0).all() and ids.is_unique:
                return pd.Index(ids.astype("int64").to_numpy(), name="geometry")
    return pd.Index(np.arange(len(gdf), dtype="int64"), name="geometry")


# -- raster JSON -----------------------------------------------------------------------------------


def _normalised_variable(doc: Mapping[str, Any], *, is_array: bool = False) -> dict[str, Any]:
    """A ``to_dict()`` variable with its data as a typed array and the dtype/shape attributes consumed."""
    attrs = dict(doc.get("attrs") or {})
    dtype = attrs.pop("dtype", None)
    shape = attrs.pop("shape", None)
    out = dict(doc, attrs=attrs, data=_typed(doc["data"], dtype, doc.get("dims")))
    if shape is not None and list(out["data"].shape) != list(shape):
        raise ValueError(f"data of shape {list(out['data'].shape)} but attrs.shape says {list(shape)}")
    if is_array and isinstance(doc.get("coords"), Mapping):
        out["coords"] = {name: _normalised_variable(coord) for name, coord in doc["coords"].items()}
    return out


def _normalised_dataset_dict(doc: Mapping[str, Any]) -> dict[str, Any]:
    return dict(
        doc,
        coords={name: _normalised_variable(v) for name, v in (doc.get("coords") or {}).items()},
        data_vars={name: _normalised_variable(v) for name, v in doc["data_vars"].items()},
    )


def _typed(data: Any, dtype: Any, dims: Any) -> np.ndarray:
    kind = np.dtype(dtype).kind if isinstance(dtype, str) and _valid_dtype(dtype) else None
    if kind == "M" or (kind is None and dims in (["t"], ["time"]) and _all_strings(data)):
        flat = np.asarray(data, dtype=object).ravel().tolist()
        times = pd.to_datetime(pd.Index(flat), utc=True, format="ISO8601").tz_convert(None)
        return np.asarray(times.astype("datetime64[ns]")).reshape(np.shape(data))
    if kind in ("i", "u", "f", "b"):
        try:
            return np.asarray(data, dtype=dtype)
        except (TypeError, ValueError):  # nulls (NaN/nodata written as null) in an int array
            return np.asarray(data, dtype="float64")
    if kind in ("U", "S", "O"):
        return np.asarray(data, dtype=str if kind != "O" else object)
    array = np.asarray(data)
    return array.astype("float64") if array.dtype == object and _all_numbers(array) else array


def _bands_to_variables(array: xr.DataArray, spec: AssetSpec) -> xr.Dataset:
    band_dim = next((d for d in _BAND_DIMS if d in array.dims), None)
    if band_dim is None:
        name = array.name if array.name is not None else (spec.bands[0] if len(spec.bands) == 1 else "var")
        return array.to_dataset(name=name)
    if band_dim in array.coords:
        names = [str(v) for v in array[band_dim].values]
    else:
        n = array.sizes[band_dim]
        names = list(spec.bands) if len(spec.bands) == n else [f"band_{i}" for i in range(n)]
    array = array.assign_coords({band_dim: names})
    dataset = array.to_dataset(dim=band_dim)
    dataset.attrs.update(array.attrs)
    return dataset


# -- helpers ---------------------------------------------------------------------------------------


def _load_json(data: bytes, spec: AssetSpec) -> Any:
    if not data.strip():
        raise _error(spec, "is empty (0 bytes of JSON)")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        truncated = " (the download looks truncated)" if exc.pos >= len(exc.doc.rstrip()) else ""
        raise _error(
            spec, f"is not valid JSON{truncated}: {exc.msg} at character {exc.pos} of {len(exc.doc)}"
        ) from None
    except (UnicodeDecodeError, TypeError, ValueError) as exc:
        raise _error(spec, f"is not valid JSON: {_reason(exc)}") from None


def _datetimes(texts: list[str], spec: AssetSpec, what: str) -> pd.DatetimeIndex:
    """ISO 8601 strings as UTC-naive datetime64[ns]; an error names the first one that does not parse."""
    parsed = _try_datetimes(texts)
    if parsed is not None:
        return parsed
    for text in texts:
        if _try_datetimes([text]) is None:
            raise _error(spec, f"{what} {text!r} is not an ISO 8601 datetime")
    raise _error(spec, f"the {what} values do not parse as ISO 8601 datetimes")


def _try_datetimes(texts: list[str]) -> pd.DatetimeIndex | None:
    try:
        parsed = pd.to_datetime(pd.Index(texts, dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None
    if parsed.hasnans:
        return None
    return pd.DatetimeIndex(parsed.tz_convert(None).astype("datetime64[ns]"))


def _error(spec: AssetSpec, what: str) -> AssetReadError:
    href = redact(spec.href)
    return AssetReadError(f"Asset {spec.key!r} ({href}) {what}", key=spec.key, href=href)


def _import(module: str, what: str, package: str) -> Any:
    from importlib import import_module

    try:
        return import_module(module)
    except ImportError as exc:
        raise ImportError(f"Reading {what} results needs {package}: pip install {package} ({exc})") from exc


def _is_numeric(column: pd.Series) -> bool:
    return column.dtype.kind in "iuf"


def _valid_dtype(text: str) -> bool:
    try:
        np.dtype(text)
    except TypeError:
        return False
    return True


def _all_strings(data: Any) -> bool:
    return isinstance(data, list) and all(isinstance(v, str) for v in data)


def _all_numbers(array: np.ndarray) -> bool:
    return all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in array.ravel())


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
