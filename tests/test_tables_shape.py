"""The tidy shape on the files real backends write: band names, feature properties, collisions, gaps."""

from __future__ import annotations

import io
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Polygon
from test_tables_writers import (
    DATA,
    feature_collection,
    features_frame,
    python_driver_geoparquet,
    python_driver_spatial_geoparquet,
    timeseries_json,
    vector_cube,
    vector_cube_csv,
    vector_cube_geojson,
    vector_cube_parquet,
)

from xr_openeo.errors import AssetReadError
from xr_openeo.readers.tables import read_csv, read_parquet, read_table
from xr_openeo.results import AssetSpec

PARQUET = "application/parquet; profile=geo"
MEDIA = {"json": "application/json", "csv": "text/csv", "parquet": PARQUET, "geojson": "application/geo+json"}
DATES = pd.DatetimeIndex(["2023-01-03", "2023-01-08"])


def spec(key: str, bands: tuple[str, ...] = ("B04", "B08")) -> AssetSpec:
    href = f"https://be.example/openeo/1.2/jobs/j-1/results/assets/{key}?expires=1700000000&signature=s3cr3t"
    return AssetSpec(key, href, MEDIA[key.rsplit(".", 1)[-1]], bands=bands)


def values_2x2x2() -> np.ndarray:
    """(dates, features, bands): feature 1 has no value on the second date."""
    return np.array([[[1.5, 5.0], [2.5, 6.0]], [[3.5, 7.0], [np.nan, np.nan]]])


def polygons() -> gpd.GeoDataFrame:
    return features_frame(feature_collection())


# -- band names --------------------------------------------------------------------------------------


def test_geopyspark_csv_gets_the_documents_band_names_and_every_date_feature_pair():
    frame = read_csv((DATA / "geopyspark_spacetime.csv").read_bytes(), spec("timeseries.csv", ("B02", "B03", "B04")))
    assert list(frame.columns) == ["B02", "B03", "B04"] and frame.attrs["bands"] == ["B02", "B03", "B04"]
    assert frame.index.names == ["t", "feature"]
    # features 0 and 2 have values (feature 1 had no pixels and has no row at all); every pair of them is present
    assert frame.index.tolist() == [
        (pd.Timestamp("2017-09-05"), 0),
        (pd.Timestamp("2017-09-05"), 2),
        (pd.Timestamp("2017-09-06"), 0),
        (pd.Timestamp("2017-09-06"), 2),
    ]
    assert frame.loc[(pd.Timestamp("2017-09-05"), 0), "B02"] == 4646.262612301313
    assert frame.loc[(pd.Timestamp("2017-09-06"), 0)].isna().all()


@pytest.mark.parametrize(
    "bands, expected",
    [
        ((), ["band_0", "band_1", "band_2"]),  # as JSON time series name them
        (("B02", "B03"), ["band_0", "band_1", "band_2"]),  # the count does not match
        (("B02", "B03", "B04"), ["B02", "B03", "B04"]),
    ],
)
def test_generic_csv_columns_are_renamed_only_when_the_band_count_matches(bands, expected):
    frame = read_csv((DATA / "geopyspark_spatial.csv").read_bytes(), spec("timeseries.csv", bands))
    assert list(frame.columns) == expected and frame.index.names == ["feature"] and frame.index.tolist() == [0, 1]


def test_colliding_generic_names_are_three_bands():
    frame = read_csv((DATA / "geopyspark_spatial_name_collision.csv").read_bytes(), spec("t.csv", ("a", "b", "c")))
    assert list(frame.columns) == ["a", "b", "c"] and frame["b"].tolist() == [4865.926572218383, 4865.467252259935]


def test_bands_with_the_documents_names_in_another_order_keep_their_names():
    data = b"date,feature_index,B08,B04\n2023-01-03T00:00:00.000Z,0,8.0,4.0\n"
    frame = read_csv(data, spec("timeseries.csv", ("B04", "B08")))
    assert list(frame.columns) == ["B08", "B04"] and frame["B04"].tolist() == [4.0]


def test_the_spatial_geoparquet_of_openeo_python_driver_is_tidy_with_its_properties():
    data = python_driver_spatial_geoparquet((DATA / "geopyspark_spatial.csv").read_bytes(), polygons())
    frame = read_parquet(data, spec("timeseries.parquet", ("B02", "B03", "B04")))
    assert isinstance(frame, gpd.GeoDataFrame) and frame.crs.to_epsg() == 4326
    assert frame.index.names == ["feature"] and frame.index.tolist() == [0, 1]
    assert list(frame.columns) == ["B02", "B03", "B04", "id", "pop", "geometry"]
    assert frame["id"].tolist() == ["first", "second"] and frame["pop"].tolist() == [1234, 5678]
    assert frame["B02"].tolist() == [4646.262612301313, 4645.719597475695]
    assert frame.geometry.iloc[1].equals(Polygon([(4, 2), (5, 4), (3, 4), (4, 2)]))
    assert frame.reset_index().columns[0] == "feature"


@pytest.mark.parametrize("labels", [["B04", "B08"], ["red", "nir"], None])
def test_the_geoparquet_of_openeo_python_driver_names_bands_after_the_document(labels):
    """Its columns follow the cube's labels (or band_i); the document's names win whenever the count matches."""
    data = python_driver_geoparquet(values_2x2x2(), DATES, polygons(), labels)
    frame = read_table(data, spec("timeseries.parquet"))
    assert frame.index.names == ["t", "feature"]
    assert list(frame.columns) == ["B04", "B08", "id", "pop", "geometry"]
    np.testing.assert_array_equal(frame["B04"], [1.5, 2.5, 3.5, np.nan])
    assert frame["id"].tolist() == ["first", "second"] * 2 and frame["pop"].tolist() == [1234, 5678] * 2
    assert frame.reset_index().columns[:2].tolist() == ["t", "feature"]


def test_without_band_metadata_the_bands_are_the_numeric_columns_after_feature_index_and_properties_stay():
    data = python_driver_geoparquet(values_2x2x2(), DATES, polygons(), ["red", "nir"])
    frame = read_table(data, spec("timeseries.parquet", ()))
    assert list(frame.columns) == ["red", "nir", "id", "pop", "geometry"] and frame.attrs["bands"] == ["red", "nir"]


def test_with_more_numeric_columns_than_bands_the_ones_after_feature_index_are_the_bands():
    data = python_driver_geoparquet(values_2x2x2(), DATES, polygons(), ["red", "nir"])
    frame = read_table(data, spec("timeseries.parquet", ("NDVI", "EVI")))
    assert list(frame.columns) == ["NDVI", "EVI", "id", "pop", "geometry"]  # "pop" is numeric, yet a property


# -- properties and collisions ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["geojson", "parquet", "csv"])
def test_vector_cubes_come_back_long_with_their_properties(fmt):
    cube = vector_cube(values_2x2x2(), DATES, ["B04", "B08"], polygons())
    data = {"geojson": vector_cube_geojson, "parquet": vector_cube_parquet, "csv": vector_cube_csv}[fmt](cube)
    frame = read_table(data, spec(f"vectorcube.{fmt}"))
    assert frame.index.names == ["t", "feature"] and frame.index.get_level_values("t").unique().equals(DATES)
    assert list(frame.columns) == ["B04", "B08", "id", "pop", "geometry"]
    np.testing.assert_array_equal(frame[["B04", "B08"]].to_numpy(), values_2x2x2().reshape(4, 2))
    assert frame["id"].tolist() == ["first", "second"] * 2
    assert frame.geometry.iloc[3].equals(polygons().geometry.iloc[1])
    if fmt != "csv":  # CSV keeps the WKT and no CRS
        assert frame.crs.to_epsg() == 4326


def test_a_flatten_prefix_and_bare_date_columns_are_understood():
    cube = vector_cube(values_2x2x2(), DATES, ["B04", "B08"], polygons(), prefix="mean")
    frame = read_table(vector_cube_geojson(cube), spec("vectorcube.geojson"))
    assert list(frame.columns) == ["B04", "B08", "id", "pop", "geometry"]
    one_band = vector_cube(values_2x2x2()[:, :, :1], DATES, ["x"], polygons())
    one_band.columns = [c.removesuffix("~x") for c in one_band.columns]  # a cube without bands: date columns
    frame = read_table(vector_cube_geojson(one_band), spec("vectorcube.geojson", ("NDVI",)))
    assert list(frame.columns) == ["NDVI", "id", "pop", "geometry"]
    np.testing.assert_array_equal(frame["NDVI"], [1.5, 2.5, 3.5, np.nan])


@pytest.mark.parametrize("name", ["t", "feature", "B04"])
def test_a_property_named_like_an_index_level_or_a_band_is_renamed(name):
    features = polygons().rename(columns={"id": name})
    cube = vector_cube(values_2x2x2(), DATES, ["B04", "B08"], features)
    frame = read_table(vector_cube_geojson(cube), spec("vectorcube.geojson"))
    assert f"{name}_property" in frame.columns and frame[f"{name}_property"].tolist() == ["first", "second"] * 2
    assert list(frame.index.names) == ["t", "feature"] and list(frame.columns[:2]) == ["B04", "B08"]
    frame.reset_index()  # no level is also a column


def test_missing_rows_of_a_geoparquet_get_nan_values_and_keep_the_features_properties():
    data = python_driver_geoparquet(values_2x2x2(), DATES, polygons(), ["B04", "B08"])
    table = gpd.read_parquet(io.BytesIO(data)).drop(index=3)  # feature 1 on the second date
    buffer = io.BytesIO()
    table.to_parquet(buffer)
    frame = read_table(buffer.getvalue(), spec("timeseries.parquet"))
    assert len(frame) == 4 and frame.loc[(DATES[1], 1), ["B04", "B08"]].isna().all()
    assert frame.loc[(DATES[1], 1), "id"] == "second" and frame.geometry.iloc[3].equals(polygons().geometry.iloc[1])


def test_json_csv_parquet_and_geojson_of_one_series_agree():
    values = values_2x2x2()
    cube = vector_cube(values, DATES, ["B04", "B08"], polygons())
    csv = b"date,feature_index,avg(band_0),avg(band_1)\n"
    csv += (
        b"2023-01-08T00:00:00.000Z,0,3.5,7.0\n2023-01-03T00:00:00.000Z,1,2.5,6.0\n2023-01-03T00:00:00.000Z,0,1.5,5.0\n"
    )
    frames = {
        "json": read_table(timeseries_json(values, DATES), spec("timeseries.json")),
        "csv": read_table(csv, spec("timeseries.csv")),
        "parquet": read_table(python_driver_geoparquet(values, DATES, polygons(), None), spec("timeseries.parquet")),
        "geojson": read_table(vector_cube_geojson(cube), spec("vectorcube.geojson")),
    }
    for fmt, frame in frames.items():
        pd.testing.assert_frame_equal(pd.DataFrame(frame[["B04", "B08"]]), frames["json"], obj=fmt)


def test_a_non_numeric_band_value_names_the_column_and_row():
    with pytest.raises(AssetReadError, match=r"column 'B08' holds non-numeric values; row 1 has \"oops\""):
        read_csv(b"date,feature_index,B04,B08\n2023-01-03,0,1,2\n2023-01-03,1,1,oops\n", spec("timeseries.csv"))
    cube = vector_cube(values_2x2x2(), DATES, ["B04", "B08"], polygons()).astype({"2023-01-03T00:00:00Z~B04": object})
    cube.loc[1, "2023-01-03T00:00:00Z~B04"] = "oops"
    with pytest.raises(AssetReadError, match=r"property '2023-01-03T00:00:00Z~B04' of feature 1 holds a non-numeric"):
        read_table(json.dumps(cube.__geo_interface__).encode(), spec("vectorcube.geojson"))


def test_geojson_features_without_properties_are_numbered_by_position():
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": None}] * 2}
    frame = read_table(json.dumps(doc).encode(), spec("vectorcube.geojson"))
    assert frame.index.tolist() == [0, 1] and list(frame.columns) == ["geometry"]
    assert frame.geometry.isna().all()
