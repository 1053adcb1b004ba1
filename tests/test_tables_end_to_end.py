"""Time series of real jobs of the local backend: combined across formats, joined with their features, as cubes."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import requests
from conftest import SMALL, SMALL_EXTENT, two_polygons
from test_tables_writers import geopyspark_csv, timeseries_json

import xr_openeo
from xr_openeo.readers.tables import combine_tables, read_table
from xr_openeo.results import AssetSpec
from xr_openeo.testing import LocalBackend

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def jobs() -> Iterator[dict]:
    """One aggregate_spatial job per format, on one backend."""
    with LocalBackend([SMALL]) as backend:
        connection = backend.connect()
        cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
        series = cube.aggregate_spatial(two_polygons(), "mean")
        out = {}
        for fmt in ("JSON", "CSV", "Parquet"):
            job = series.create_job(out_format=fmt)
            job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
            out[fmt] = job
        yield out


def asset_frame(job) -> tuple[pd.DataFrame, AssetSpec]:
    (asset,) = job.get_results().get_assets()
    bands = tuple(band["name"] for band in asset.metadata.get("eo:bands", []))
    spec = AssetSpec(asset.key, asset.href, asset.media_type, bands=bands)
    return read_table(requests.get(asset.href, timeout=10).content, spec), spec


def test_csv_and_parquet_of_one_series_combine_into_the_parquet(jobs):
    (csv, csv_spec), (parquet, parquet_spec) = asset_frame(jobs["CSV"]), asset_frame(jobs["Parquet"])
    combined = combine_tables({csv_spec.key: csv, parquet_spec.key: parquet}, [csv_spec, parquet_spec])
    assert isinstance(combined, gpd.GeoDataFrame) and "asset" not in combined.index.names
    assert list(combined.columns) == ["B04", "B08", "geometry"] and combined.shape == (SMALL.dates * 2, 3)
    np.testing.assert_allclose(combined[["B04", "B08"]].to_numpy(), csv.to_numpy(), rtol=1e-6)
    assert combined.geometry.equals(parquet.geometry)


def test_open_dataframe_joins_the_jobs_own_features_onto_json(jobs):
    frame = xr_openeo.open_dataframe(jobs["JSON"], features=two_polygons())
    parquet = xr_openeo.open_dataframe(jobs["Parquet"])
    assert isinstance(frame, gpd.GeoDataFrame) and frame.crs.to_epsg() == 4326
    assert list(frame.columns) == ["B04", "B08", "geometry"] and frame.index.names == ["t", "feature"]
    pd.testing.assert_index_equal(frame.index, parquet.index)
    np.testing.assert_allclose(frame[["B04", "B08"]].to_numpy(), parquet[["B04", "B08"]].to_numpy(), rtol=1e-6)
    assert frame.geom_equals_exact(parquet.geometry, tolerance=1e-9).all()
    with pytest.raises(ValueError, match=r"hold 2 features .* has 1 rows"):
        xr_openeo.open_dataframe(jobs["JSON"], features=gpd.GeoDataFrame(geometry=parquet.geometry.iloc[:1]))


def test_open_results_of_a_geoparquet_series_is_a_vector_cube_with_a_geometry_index(jobs):
    from xvec import GeometryIndex

    ds = xr_openeo.open_results(jobs["Parquet"])
    assert ds.B04.dims == ("feature", "t") and ds.sizes == {"feature": 2, "t": SMALL.dates}
    assert isinstance(ds.xindexes["geometry"], GeometryIndex) and ds.xindexes["geometry"].crs.to_epsg() == 4326
    assert ds.attrs["openeo:job_id"] == jobs["Parquet"].job_id
    frame = xr_openeo.open_dataframe(jobs["Parquet"])
    np.testing.assert_array_equal(ds.B08.transpose("t", "feature").values.ravel(), frame["B08"].to_numpy())


@pytest.fixture
def file_server(tmp_path) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 (port 0) serving ``tmp_path``."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def test_a_document_with_several_series_opens_each_once(tmp_path, file_server):
    dates = pd.DatetimeIndex(["2023-01-03", "2023-01-08"])
    values = np.arange(8.0).reshape(2, 2, 2)
    files = {
        "timeseries.json": timeseries_json(values, dates),
        "timeseries.csv": geopyspark_csv(values, dates),
        "ndvi.json": timeseries_json(values[:, :, :1] / 10, dates),
    }
    bands = {"timeseries.json": ["B04", "B08"], "timeseries.csv": ["B04", "B08"], "ndvi.json": ["NDVI"]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    doc = {
        "type": "Collection",
        "id": "j-several",
        "stac_version": "1.0.0",
        "links": [],
        "assets": {
            name: {
                "href": f"{file_server}/{name}",
                "type": "text/csv" if name.endswith(".csv") else "application/json",
                "roles": ["data"],
                "eo:bands": [{"name": b} for b in bands[name]],
            }
            for name in files
        },
    }
    frame = xr_openeo.open_dataframe(doc)
    assert frame.index.names == ["asset", "t", "feature"]
    assert frame.index.get_level_values("asset").unique().tolist() == ["timeseries.json", "ndvi.json"]
    ds = xr_openeo.open_results(doc)
    assert set(ds.data_vars) == {"B04", "B08", "NDVI"} and ds.NDVI.dims == ("feature", "t")
    np.testing.assert_array_equal(ds.B08.transpose("t", "feature").values, values[:, :, 1])
    np.testing.assert_array_equal(ds.NDVI.transpose("t", "feature").values, values[:, :, 0] / 10)
    doc["assets"].pop("ndvi.json")
    joined = xr_openeo.open_dataframe(doc, features=two_polygons())
    assert joined.index.names == ["t", "feature"] and list(joined.columns) == ["B04", "B08", "geometry"]
