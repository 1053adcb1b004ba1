"""Vector cubes (``aggregate_spatial`` results) to JSON, CSV, GeoParquet and GeoJSON, as geopyspark writes them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from shapely.geometry import mapping

from ..assets import WrittenAsset
from .grid import DEFAULT_BAND, band_names, compute, iso, time_range, timestamps

VECTOR_DIMS = ("geometry", "t", "bands")


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as plain JSON (NaN as null)."""
    path.write_text(json.dumps(_jsonable(document), allow_nan=False), encoding="utf-8")


def _jsonable(value: Any) -> Any:
    """Plain JSON values: NaN/inf become null, datetimes ISO strings, numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.datetime64 | datetime):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


@dataclass(frozen=True)
class _VectorCube:
    """Computed ``aggregate_spatial`` result: ``values`` has dims (geometry, t, bands), always all three.

    ``geometries`` are in EPSG:4326, the CRS of every result format that stores them.
    """

    values: np.ndarray
    dates: pd.DatetimeIndex | None
    bands: tuple[str, ...]
    geometries: gpd.GeoSeries


def _load_vector(data: xr.DataArray, crs_epsg: int) -> _VectorCube:
    if not set(data.dims) <= set(VECTOR_DIMS):
        raise ValueError(f"save_result: a vector cube has dims geometry and at most t and bands, got {data.dims}.")
    cube = data.reset_coords(drop=True)
    dates = timestamps(cube) if "t" in cube.dims else None
    if "t" not in cube.dims:
        cube = cube.expand_dims("t")
    if "bands" not in cube.dims:
        cube = cube.expand_dims(bands=[DEFAULT_BAND])
    cube = cube.transpose(*VECTOR_DIMS)
    return _VectorCube(
        values=compute(cube),
        dates=dates,
        bands=band_names(cube),
        geometries=gpd.GeoSeries(np.asarray(cube["geometry"].values), crs=crs_epsg).to_crs(4326),
    )


def write_vector(fmt: str, data: xr.DataArray, out_dir: Path, crs_epsg: int) -> Iterator[WrittenAsset]:
    """The one file of a vector cube in ``fmt`` (JSON, CSV, Parquet or GeoJSON)."""
    vc = _load_vector(data, crs_epsg)
    if fmt == "JSON":
        yield _write_timeseries_json(vc, out_dir / "timeseries.json")
    elif fmt == "CSV":
        yield _write_csv(vc, out_dir / "timeseries.csv")
    elif fmt == "Parquet":
        yield _write_parquet(vc, out_dir / "timeseries.parquet")
    else:
        yield _write_geojson(vc, out_dir / "vectorcube.geojson")


def _vector_asset(path: Path, media_type: str, vc: _VectorCube, *, with_geometry: bool = False) -> WrittenAsset:
    start, end = time_range(vc.dates)
    minx, miny, maxx, maxy = (float(v) for v in vc.geometries.total_bounds)
    return WrittenAsset(
        key=path.name,
        path=path,
        media_type=media_type,
        bands=vc.bands,
        start_datetime=start,
        end_datetime=end,
        epsg=4326 if with_geometry else None,
        bbox=(minx, miny, maxx, maxy) if with_geometry else None,
    )


def _write_timeseries_json(vc: _VectorCube, path: Path) -> WrittenAsset:
    if vc.dates is None:
        document: Any = vc.values[:, 0, :].tolist()
    else:
        by_date = vc.values.transpose(1, 0, 2)
        document = {iso(date): values.tolist() for date, values in zip(vc.dates, by_date, strict=True)}
    write_json(path, document)
    return _vector_asset(path, "application/json", vc)


def _long_table(vc: _VectorCube) -> pd.DataFrame:
    """One row per (date, feature), dates outermost; columns ``[date,] feature_index, *bands``."""
    n_features, n_dates, n_bands = vc.values.shape
    table = pd.DataFrame(vc.values.transpose(1, 0, 2).reshape(n_dates * n_features, n_bands), columns=list(vc.bands))
    table.insert(0, "feature_index", np.tile(np.arange(n_features), n_dates))
    if vc.dates is not None:
        table.insert(0, "date", vc.dates.tz_localize("UTC").repeat(n_features))
    return table


def _write_csv(vc: _VectorCube, path: Path) -> WrittenAsset:
    table = _long_table(vc)
    if "date" in table:
        table["date"] = table["date"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
    table.to_csv(path, index=False)
    return _vector_asset(path, "text/csv", vc)


def _write_parquet(vc: _VectorCube, path: Path) -> WrittenAsset:
    table = _long_table(vc)
    table.columns = [re.sub(r"[()/\\]", "_", str(c)) for c in table.columns]
    frame = gpd.GeoDataFrame(table, geometry=vc.geometries.values[table["feature_index"].to_numpy()], crs=4326)
    frame.to_parquet(path, index=False)
    return _vector_asset(path, "application/parquet; profile=geo", vc, with_geometry=True)


def _write_geojson(vc: _VectorCube, path: Path) -> WrittenAsset:
    keys = _property_keys(vc)
    features = [
        {
            "type": "Feature",
            "id": str(i),
            "geometry": mapping(geometry),
            "properties": {"feature_index": i, **dict(zip(keys, values.ravel().tolist(), strict=True))},
        }
        for i, (geometry, values) in enumerate(zip(vc.geometries, vc.values, strict=True))
    ]
    write_json(path, {"type": "FeatureCollection", "features": features})
    return _vector_asset(path, "application/geo+json", vc, with_geometry=True)


def _property_keys(vc: _VectorCube) -> list[str]:
    """``date~band`` names in (t, bands) order; just the band when the cube has no time."""
    if vc.dates is None:
        return list(vc.bands)
    return [f"{iso(date)}~{band}" for date in vc.dates for band in vc.bands]
