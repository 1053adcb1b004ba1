"""Time-series files written the way real backends write them, for the table tests (and checks that they do).

Each writer follows a backend's own code, cited in its docstring; the tests at the end compare them
with the upstream tests' expectations and with files copied from upstream (``data/tables/NOTES.md``).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import Polygon

DATA = Path(__file__).parent / "data" / "tables"


def feature_collection() -> dict:
    """openeo-python-driver's ``tests/data/geojson/FeatureCollection02.json``: two polygons with ``id`` and ``pop``."""
    return json.loads((DATA / "FeatureCollection02.json").read_text())


def features_frame(collection: dict) -> gpd.GeoDataFrame:
    """The features as openeo-python-driver holds them (``gpd.read_file``: properties, then ``geometry``)."""
    frame = gpd.GeoDataFrame.from_features(collection, crs=4326)
    return frame[[*(c for c in frame.columns if c != "geometry"), "geometry"]]


def clean_parquet_column_name(name: str) -> str:
    """openeo_driver/save_result.py ``clean_parquet_column_name``."""
    return re.sub(r"[()/\\]", "_", name)


def iso(date: pd.Timestamp) -> str:
    return date.strftime("%Y-%m-%dT%H:%M:%SZ")


def timeseries_json(values: np.ndarray, dates: pd.DatetimeIndex, empty: str = "[]") -> bytes:
    """``{date: [per feature: [per band]]}`` (openeo_driver ``AggregatePolygonResult``); all-NaN entries as
    ``[]`` (``empty="[]"``), the whole day as ``null`` (``"null"``) or dense ``[[]]`` (``"[[]]"``)."""
    doc: dict = {}
    for i, date in enumerate(dates):
        day = values[i]
        if np.isnan(day).all() and empty in ("null", "[[]]"):
            doc[iso(date)] = None if empty == "null" else [[]]
            continue
        doc[iso(date)] = [[] if np.isnan(f).all() else [None if np.isnan(v) else float(v) for v in f] for f in day]
    return json.dumps(doc).encode()


def geopyspark_csv(values: np.ndarray, dates: pd.DatetimeIndex, order: list[int] | None = None) -> bytes:
    """geopyspark's ``aggregate_spatial`` CSV: ``date,feature_index,avg(band_0),…``, no row for a (date,
    feature) without values, rows in any order (as in openeo-python-driver's
    ``tests/data/aggregate_spatial_spacetime_cube/1.csv``)."""
    n_t, n_f, n_b = values.shape
    header = ["date", "feature_index", *(f"avg(band_{b})" for b in range(n_b))]
    rows = []
    for t in range(n_t):
        for f in range(n_f):
            if np.isnan(values[t, f]).all():
                continue
            stamp = dates[t].strftime("%Y-%m-%dT%H:%M:%S.000Z")
            rows.append([stamp, str(f), *("" if np.isnan(v) else repr(float(v)) for v in values[t, f])])
    if order is not None:
        rows = [rows[i] for i in order if i < len(rows)] + [r for i, r in enumerate(rows) if i not in set(order)]
    return ("\n".join(",".join(r) for r in [header, *rows]) + "\n").encode()


def python_driver_geoparquet(
    values: np.ndarray, dates: pd.DatetimeIndex, features: gpd.GeoDataFrame, band_names: list[str] | None
) -> bytes:
    """openeo_driver/save_result.py ``AggregatePolygonResult.to_geoparquet``: the statistics (``date`` as the
    JSON's text, ``feature_index``, one column per band named after the cube's labels, else ``band_i``)
    joined with the input features on ``feature_index``, column names cleaned."""
    n_t, n_f, n_b = values.shape
    flattened = [(iso(dates[t]), f, *values[t, f].tolist()) for t in range(n_t) for f in range(n_f)]
    names = band_names if band_names is not None and len(band_names) == n_b else [f"band_{i}" for i in range(n_b)]
    stats = pd.DataFrame.from_records(flattened, columns=["date", "feature_index", *names])
    buffer = io.BytesIO()
    gpd.GeoDataFrame(stats.join(features, on="feature_index")).rename(columns=clean_parquet_column_name).to_parquet(
        buffer
    )
    return buffer.getvalue()


def python_driver_spatial_geoparquet(csv: bytes, features: gpd.GeoDataFrame) -> bytes:
    """openeo_driver/save_result.py ``AggregatePolygonSpatialResult.to_geoparquet`` (a cube without time)."""
    gdf = features.copy()
    gdf["feature_index"] = gdf.index
    stats = pd.read_csv(io.BytesIO(csv))
    joined = gdf.join(stats.set_index("feature_index"), on="feature_index").rename(columns=clean_parquet_column_name)
    buffer = io.BytesIO()
    joined.to_parquet(buffer)
    return buffer.getvalue()


def vector_cube(
    values: np.ndarray, dates: pd.DatetimeIndex, bands: list[str], features: gpd.GeoDataFrame, prefix: str | None = None
) -> gpd.GeoDataFrame:
    """openeo_driver/datacube.py ``DriverVectorCube._as_geopandas_df``: the features' properties, then one
    ``[prefix~]date~band`` column per value, dates as ``%Y-%m-%dT%H:%M:%SZ``."""
    frame = features.copy()
    for t, date in enumerate(dates):
        for b, band in enumerate(bands):
            frame["~".join([*([prefix] if prefix else []), iso(date), band])] = values[t, :, b]
    return frame


def vector_cube_geojson(frame: gpd.GeoDataFrame) -> bytes:
    """``DriverVectorCube.to_geojson``: ``shapely.geometry.mapping`` of the frame (NaN as null)."""
    return json.dumps(frame.__geo_interface__).encode()


def vector_cube_parquet(frame: gpd.GeoDataFrame) -> bytes:
    """``DriverVectorCube.write_assets(format="Parquet")``: ``gdf.to_parquet``."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def vector_cube_csv(frame: gpd.GeoDataFrame) -> bytes:
    """``DriverVectorCube.write_assets(format="CSV")``: ``gdf.to_csv`` (index column, WKT geometries)."""
    return frame.to_csv().encode()


# -- the writers write what upstream writes ---------------------------------------------------------


def test_the_spatial_geoparquet_writer_gives_what_openeo_python_drivers_own_test_expects():
    # tests/test_save_result_parquet.py::test_save_aggregate_polygon_spatial_result of openeo-python-driver
    data = python_driver_spatial_geoparquet(
        (DATA / "geopyspark_spatial.csv").read_bytes(), features_frame(feature_collection())
    )
    assert gpd.read_parquet(io.BytesIO(data)).to_dict("list") == {
        "geometry": [Polygon([(1, 1), (3, 1), (2, 3), (1, 1)]), Polygon([(4, 2), (5, 4), (3, 4), (4, 2)])],
        "feature_index": [0, 1],
        "id": ["first", "second"],
        "pop": [1234, 5678],
        "avg_band_0_": [4646.262612301313, 4645.719597475695],
        "avg_band_1_": [4865.926572218383, 4865.467252259935],
        "avg_band_2_": [5178.517363510712, 5177.803342998465],
    }


def test_the_csv_writer_writes_geopysparks_layout():
    upstream = pd.read_csv(DATA / "geopyspark_spacetime.csv")
    dates = pd.DatetimeIndex(["2017-09-05", "2017-09-06"])
    values = np.full((2, 3, 3), np.nan)
    for row in upstream.itertuples(index=False):
        values[dates.get_loc(pd.Timestamp(row.date[:10])), row.feature_index] = row[2:]
    ours = pd.read_csv(io.BytesIO(geopyspark_csv(values, dates, order=[1, 0, 2])))
    assert list(ours.columns) == list(upstream.columns)
    pd.testing.assert_frame_equal(ours, upstream)
