"""Time series of real jobs of the local backend: combined across formats, joined with their features, as cubes."""

from __future__ import annotations

from collections.abc import Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import requests
from conftest import SMALL, SMALL_EXTENT, two_polygons

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
