"""Tabular readers: JSON time series, CSV, Parquet/GeoParquet, GeoJSON and xarray JSON rasters, from bytes."""

from __future__ import annotations

import io
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import requests
import xarray as xr
from conftest import two_polygons
from shapely.geometry import Point, box

from xr_openeo.errors import AssetReadError, UnsupportedMediaTypeError
from xr_openeo.readers.tables import (
    is_raster_json,
    read_csv,
    read_geojson,
    read_json,
    read_parquet,
    read_raster_json,
    read_table,
    read_timeseries_json,
    to_vector_cube,
)
from xr_openeo.results import AssetSpec

SECRET = "s3cr3t"
BANDS = ("B04", "B08")
MEDIA = {
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/parquet; profile=geo",
    "geojson": "application/geo+json",
}


def spec(key: str = "timeseries.json", media_type: str | None = None, bands=BANDS, **kw) -> AssetSpec:
    href = f"https://be.example/openeo/1.2/jobs/j-1/results/assets/{key}?expires=1700000000&signature={SECRET}"
    fmt = key.rsplit(".", 1)[-1]
    return AssetSpec(key, href, media_type or MEDIA.get(fmt), bands=tuple(bands), **kw)


def ts(*dates: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(dates).astype("datetime64[ns]")


def assert_read_error(excinfo: pytest.ExceptionInfo, key: str, *fragments: str) -> None:
    """A library error naming the asset and its redacted href, no bare parser error in sight."""
    err = excinfo.value
    assert type(err) is AssetReadError
    assert err.key == key and SECRET not in (err.href or "") and "signature=REDACTED" in err.href
    message = str(err)
    assert repr(key) in message and SECRET not in message and "signature=REDACTED" in message
    for fragment in fragments:
        assert fragment in message, message
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


# -- JSON time series ------------------------------------------------------------------------------

# geopyspark's shape, dates out of order, with a null band, an empty geometry and a dense `[[]]` day.
GEOPYSPARK_TS = {
    "2023-01-08T00:00:00Z": [[0.58, 0.10], []],
    "2023-01-03T00:00:00Z": [[0.61, 0.12], [None, 0.2]],
    "2023-01-13T00:00:00Z": [[]],
    "2023-01-18T00:00:00Z": [None, [0.5, 0.4]],
}


def test_timeseries_json_is_indexed_by_t_and_feature_with_a_column_per_band():
    frame = read_timeseries_json(json.dumps(GEOPYSPARK_TS).encode(), spec())
    assert list(frame.columns) == ["B04", "B08"]
    assert frame.index.names == ["t", "feature"]
    assert frame.index.dtypes.to_dict() == {"t": np.dtype("datetime64[ns]"), "feature": np.dtype("int64")}
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    expected_t = ts("2023-01-03", "2023-01-08", "2023-01-13", "2023-01-18").repeat(2)
    pd.testing.assert_index_equal(frame.index.get_level_values("t"), expected_t, check_names=False)
    assert frame.index.get_level_values("feature").tolist() == [0, 1] * 4
    expected = [[0.61, 0.12], [np.nan, 0.2], [0.58, 0.10], [np.nan] * 2, [np.nan] * 2, [np.nan] * 2, [np.nan] * 2]
    expected.append([0.5, 0.4])
    np.testing.assert_array_equal(frame.to_numpy(), np.array(expected))
    assert (frame.dtypes == "float64").all()


def test_timeseries_json_values_equal_the_openeo_clients_parser():
    from openeo.rest.conversions import timeseries_json_to_pandas

    rng = np.random.default_rng(0)
    doc = {f"2023-02-{d:02d}T00:00:00Z": [[float(v) for v in rng.random(3)] for _ in range(4)] for d in range(1, 10)}
    doc["2023-02-05T00:00:00Z"][2] = []
    doc["2023-02-07T00:00:00Z"][1][0] = None
    ours = read_timeseries_json(json.dumps(doc).encode(), spec(bands=()))
    theirs = timeseries_json_to_pandas(doc)  # index: date strings; columns: (polygon, band)
    assert list(ours.columns) == ["band_0", "band_1", "band_2"]
    for date, row in theirs.iterrows():
        for (polygon, band), value in row.items():
            got = ours.loc[(pd.Timestamp(date[:-1]), polygon), f"band_{band}"]
            np.testing.assert_equal(got, value)
    assert ours.size == theirs.size


def test_timeseries_json_names_bands_by_position_when_the_metadata_count_does_not_match():
    frame = read_timeseries_json(b'{"2023-01-03T00:00:00Z": [[1, 2, 3]]}', spec(bands=("B04", "B08")))
    assert list(frame.columns) == ["band_0", "band_1", "band_2"]


def test_timeseries_json_dates_with_offsets_or_without_time_become_utc_naive():
    doc = {"2023-01-03T01:00:00+01:00": [[1.0]], "2023-01-04": [[2.0]], "2023-01-05T12:30:00.500Z": [[3.0]]}
    frame = read_timeseries_json(json.dumps(doc).encode(), spec(bands=("NDVI",)))
    expected = ts("2023-01-03T00:00:00", "2023-01-04T00:00:00", "2023-01-05T12:30:00.5")
    pd.testing.assert_index_equal(frame.index.get_level_values("t"), expected, check_names=False)
    assert frame["NDVI"].tolist() == [1.0, 2.0, 3.0]


def test_dateless_timeseries_has_only_a_feature_index():
    frame = read_timeseries_json(b"[[1.5, 2.5], [null, 4.0], []]", spec())
    assert frame.index.names == ["feature"] and frame.index.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(frame.to_numpy(), [[1.5, 2.5], [np.nan, 4.0], [np.nan, np.nan]])
    ds = to_vector_cube(frame)
    assert ds.B04.dims == ("feature",)


def test_timeseries_json_with_no_values_at_all_is_all_nan_with_the_metadata_bands():
    frame = read_timeseries_json(b'{"2023-01-03T00:00:00Z": [[], []], "2023-01-08T00:00:00Z": [[]]}', spec())
    assert list(frame.columns) == ["B04", "B08"] and frame.shape == (4, 2) and frame.isna().all().all()
    empty = read_timeseries_json(b"{}", spec())
    assert empty.shape == (0, 2) and empty.index.names == ["t", "feature"]


@pytest.mark.parametrize(
    "doc, fragments",
    [
        ({"2023-01-03T00:00:00Z": [[1, 2]], "2023-01-08T00:00:00Z": [[1, 2, 3]]}, ["inconsistent band counts"]),
        (
            {"2023-01-03T00:00:00Z": [[1, 2], [3, 4]], "2023-01-08T00:00:00Z": [[1, 2], [3, 4], [5, 6]]},
            ["inconsistent feature counts", "'2023-01-08T00:00:00Z'"],
        ),
        ({"2023-01-03T00:00:00Z": {"0": [1]}}, ["date '2023-01-03T00:00:00Z'", "one entry per feature"]),
        ({"2023-01-03T00:00:00Z": [1.0, 2.0]}, ["date '2023-01-03T00:00:00Z', feature 0", "list of band values"]),
        ({"2023-01-03T00:00:00Z": [[1.0, "2.0"]]}, ["feature 0", 'numbers or null, got "2.0"']),
        ({"2023-01-03T00:00:00Z": [[True]]}, ["numbers or null, got true"]),
        ({"2023-01-03T00:00:00Z": [[1]], "yesterday": [[2]]}, ["date 'yesterday' is not an ISO 8601 datetime"]),
        ({"2023-01-03T00:00:00Z": [[1]], "2023-01-03T01:00:00+01:00": [[2]]}, ["same instant"]),
        (42, ["is not a time series", "got int"]),
        ({"type": "FeatureCollection", "features": []}, ["holds GeoJSON", "read_geojson"]),
        ({"dims": ["x"], "data": [1], "coords": {}}, ["xarray JSON raster", "read_raster_json"]),
    ],
)
def test_timeseries_json_structure_errors_name_the_asset_and_the_offending_date(doc, fragments):
    with pytest.raises(AssetReadError) as excinfo:
        read_timeseries_json(json.dumps(doc).encode(), spec())
    assert_read_error(excinfo, "timeseries.json", *fragments)


def test_inconsistent_band_counts_name_the_date():
    doc = {"2023-01-03T00:00:00Z": [[1, 2], [3, 4]], "2023-01-08T00:00:00Z": [[1, 2], [3]]}
    with pytest.raises(AssetReadError) as excinfo:
        read_timeseries_json(json.dumps(doc).encode(), spec())
    assert_read_error(excinfo, "timeseries.json", "1 at date '2023-01-08T00:00:00Z' feature 1")


@pytest.mark.parametrize(
    "data, fragment",
    [
        (json.dumps(GEOPYSPARK_TS).encode()[:-7], "looks truncated"),
        (b"<html>502 Bad Gateway</html>", "is not valid JSON"),
        (b"", "is empty"),
        (b"\xff\xfe\xfa{", "is not valid JSON"),
    ],
)
def test_unparseable_json_is_an_asset_read_error_not_a_json_decode_error(data, fragment):
    with pytest.raises(AssetReadError) as excinfo:
        read_timeseries_json(data, spec())
    assert not isinstance(excinfo.value, json.JSONDecodeError | UnicodeDecodeError)
    assert_read_error(excinfo, "timeseries.json", fragment)


# -- to_vector_cube ---------------------------------------------------------------------------------


def test_to_vector_cube_has_feature_t_dims_and_float_variables_per_band():
    frame = read_timeseries_json(json.dumps(GEOPYSPARK_TS).encode(), spec())
    ds = to_vector_cube(frame)
    assert set(ds.data_vars) == {"B04", "B08"} and ds.B04.dims == ("feature", "t")
    assert ds.B04.dtype == np.float64 and ds.t.dtype == np.dtype("datetime64[ns]")
    assert ds.sizes == {"feature": 2, "t": 4}
    assert float(ds.B04.sel(t="2023-01-03", feature=0)) == 0.61
    assert np.isnan(ds.B04.sel(t="2023-01-08", feature=1))


def test_to_vector_cube_fills_missing_pairs_and_makes_ints_float():
    index = pd.MultiIndex.from_tuples(
        [(pd.Timestamp("2023-01-01"), 0), (pd.Timestamp("2023-01-01"), 1), (pd.Timestamp("2023-01-02"), 1)],
        names=["t", "feature"],
    )
    frame = pd.DataFrame({"count": [1, 2, 3], "label": ["a", "b", "c"]}, index=index)
    ds = to_vector_cube(frame, bands=["count"])
    assert ds["count"].dtype == np.float64 and ds["count"].dims == ("feature", "t")
    np.testing.assert_array_equal(ds["count"].values, [[1, np.nan], [2, 3]])
    # "label" differs between the rows of feature 1: not a property of the feature, a variable of its own
    assert ds["label"].dims == ("feature", "t") and ds["label"].values[1].tolist() == ["b", "c"]


def test_to_vector_cube_refuses_a_frame_without_the_index():
    with pytest.raises(ValueError, match="indexed by"):
        to_vector_cube(pd.DataFrame({"B04": [1.0]}))


# -- CSV --------------------------------------------------------------------------------------------

GEOPYSPARK_CSV = b"""date,feature_index,B04,B08
2020-09-06T00:00:00.000Z,1,0.3,
2020-09-01T00:00:00.000Z,0,0.61,0.12
2020-09-01T00:00:00.000Z,1,0.58,0.10
2020-09-06T00:00:00.000Z,0,,0.4
"""


def test_geopyspark_csv_is_indexed_by_t_and_feature():
    frame = read_csv(GEOPYSPARK_CSV, spec("timeseries.csv"))
    assert frame.index.names == ["t", "feature"] and list(frame.columns) == ["B04", "B08"]
    assert frame.index.dtypes.to_dict() == {"t": np.dtype("datetime64[ns]"), "feature": np.dtype("int64")}
    assert frame.index.tolist() == [
        (pd.Timestamp("2020-09-01"), 0),
        (pd.Timestamp("2020-09-01"), 1),
        (pd.Timestamp("2020-09-06"), 0),
        (pd.Timestamp("2020-09-06"), 1),
    ]
    np.testing.assert_array_equal(frame.to_numpy(), [[0.61, 0.12], [0.58, 0.10], [np.nan, 0.4], [0.3, np.nan]])


def test_csv_written_by_pandas_round_trips_against_the_json_reader():
    json_frame = read_timeseries_json(json.dumps(GEOPYSPARK_TS).encode(), spec())
    table = json_frame.reset_index().rename(columns={"t": "date", "feature": "feature_index"})
    table["date"] = table["date"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
    csv_frame = read_table(table.to_csv(index=False).encode(), spec("timeseries.csv"))
    pd.testing.assert_frame_equal(csv_frame, json_frame)


def test_csv_without_feature_index_keeps_its_columns_with_parsed_dates():
    data = b"date,NDVI\n2023-01-03T00:00:00Z,0.5\n2023-01-08T06:00:00+02:00,0.6\n"
    frame = read_csv(data, spec("stats.csv"))
    assert list(frame.columns) == ["date", "NDVI"] and isinstance(frame.index, pd.RangeIndex)
    assert frame["date"].dtype == np.dtype("datetime64[ns]")
    assert frame["date"].tolist() == [pd.Timestamp("2023-01-03"), pd.Timestamp("2023-01-08T04:00")]


def test_dateless_csv_is_indexed_by_feature():
    frame = read_csv(b"feature_index,B04\n1,2.0\n0,1.0\n", spec("stats.csv"))
    assert frame.index.names == ["feature"] and frame.index.tolist() == [0, 1] and frame["B04"].tolist() == [1, 2]


@pytest.mark.parametrize(
    "data, fragments",
    [
        (b"", ["is not a readable CSV table", "EmptyDataError"]),
        (b"date,feature_index,B04\n2023-01-03T00:00:00Z,0,1,2,3,4\n", ["more fields than its header"]),
        (b"date,feature_index,B04\n2023-01-03T00:00:00Z,0,1\n2023-01-08T00:00:00Z,0,1,2\n", ["Expected 3 fields"]),
        (b"date,feature_index,B04\nnot-a-date,0,1\n", ["date 'not-a-date' is not an ISO 8601 datetime"]),
        (b"date,feature_index,B04\n,0,1\n", ["column 'date' has no value in row 0"]),
        (b"date,feature_index,B04\n2023-01-03,a,1\n", ["'feature_index' must hold integers", 'row 0 has "a"']),
        (
            b"date,feature_index,B04\n2023-01-03T00:00:00Z,0,1\n2023-01-03T00:00:00Z,0,2\n",
            ["more than one row for t=2023-01-03 00:00:00, feature=0"],
        ),
    ],
)
def test_csv_errors_name_the_asset(data, fragments):
    with pytest.raises(AssetReadError) as excinfo:
        read_csv(data, spec("timeseries.csv"))
    assert_read_error(excinfo, "timeseries.csv", *fragments)


# -- Parquet ----------------------------------------------------------------------------------------


def long_table() -> gpd.GeoDataFrame:
    """What geopyspark writes: date (tz-aware), feature_index, float32 bands, geometries in EPSG:4326."""
    dates = pd.DatetimeIndex(["2023-01-03", "2023-01-08"], tz="UTC").repeat(2)
    return gpd.GeoDataFrame(
        {
            "date": dates,
            "feature_index": [0, 1, 0, 1],
            "B04": np.array([1.5, 2.5, np.nan, 4.5], dtype="float32"),
            "B08": np.array([5.0, 6.0, 7.0, 8.0], dtype="float32"),
        },
        geometry=[box(5.0, 51.0, 5.1, 51.1), box(5.2, 51.0, 5.3, 51.1)] * 2,
        crs=4326,
    )


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_geoparquet_is_a_geodataframe_indexed_by_t_and_feature_keeping_the_geometries():
    frame = read_parquet(parquet_bytes(long_table()), spec("timeseries.parquet"))
    assert isinstance(frame, gpd.GeoDataFrame) and frame.crs.to_epsg() == 4326
    assert frame.index.names == ["t", "feature"] and list(frame.columns) == ["B04", "B08", "geometry"]
    assert frame.reset_index().columns.tolist() == ["t", "feature", "B04", "B08", "geometry"]
    assert frame.index.get_level_values("t").dtype == np.dtype("datetime64[ns]")
    assert frame.geometry.iloc[1].equals(box(5.2, 51.0, 5.3, 51.1))
    assert frame["B04"].dtype == np.float32  # as stored
    np.testing.assert_array_equal(frame["B04"].to_numpy(), [1.5, 2.5, np.nan, 4.5])
    ds = to_vector_cube(frame)
    assert set(ds.data_vars) == {"B04", "B08"} and ds.B08.dims == ("feature", "t")


def test_plain_parquet_is_a_dataframe_with_string_dates_parsed():
    table = pd.DataFrame(
        {"date": ["2023-01-08T00:00:00.000Z", "2023-01-03T00:00:00.000Z"], "feature_index": [0, 0], "B04": [2.0, 1.0]}
    )
    frame = read_table(parquet_bytes(table), spec("timeseries.parquet", "application/vnd.apache.parquet"))
    assert type(frame) is pd.DataFrame and frame["B04"].tolist() == [1.0, 2.0]
    assert frame.index.get_level_values("t").tolist() == [pd.Timestamp("2023-01-03"), pd.Timestamp("2023-01-08")]


def test_parquet_without_time_series_columns_is_returned_as_written():
    frame = read_parquet(parquet_bytes(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})), spec("t.parquet"))
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))


@pytest.mark.parametrize("cut", ["garbage", "truncated", "empty"])
def test_broken_parquet_is_an_asset_read_error(cut):
    data = parquet_bytes(long_table())
    data = {"garbage": b"PAR1 this is not parquet at all PAR1", "truncated": data[: len(data) // 2], "empty": b""}[cut]
    with pytest.raises(AssetReadError) as excinfo:
        read_parquet(data, spec("timeseries.parquet"))
    assert_read_error(excinfo, "timeseries.parquet", "is not a readable Parquet file")


# -- GeoJSON ----------------------------------------------------------------------------------------


def vector_cube_geojson() -> dict:
    """geopyspark's vector cube: `date~band` properties, string ids, a feature_index, a null value."""

    def feature(i, geometry, values):
        properties = {"feature_index": i}
        for date, (b04, b08) in zip(["2023-01-03T00:00:00Z", "2023-01-08T00:00:00Z"], values, strict=True):
            properties[f"{date}~B04"], properties[f"{date}~B08"] = b04, b08
        return {"type": "Feature", "id": str(i), "geometry": geometry, "properties": properties}

    square = {"type": "Polygon", "coordinates": [[[5, 51], [5.1, 51], [5.1, 51.1], [5, 51.1], [5, 51]]]}
    return {
        "type": "FeatureCollection",
        "features": [
            feature(0, square, [(1.0, 2.0), (3.0, None)]),
            feature(1, {"type": "Point", "coordinates": [5.2, 51.2]}, [(5.0, 6.0), (7.0, 8.0)]),
        ],
    }


def test_geojson_vector_cube_comes_back_long_as_a_lonlat_geodataframe():
    frame = read_geojson(json.dumps(vector_cube_geojson()).encode(), spec("vectorcube.geojson"))
    assert isinstance(frame, gpd.GeoDataFrame) and frame.crs.to_epsg() == 4326
    assert frame.index.names == ["t", "feature"] and list(frame.columns) == ["B04", "B08", "geometry"]
    assert frame.reset_index().columns.tolist() == ["t", "feature", "B04", "B08", "geometry"]
    assert frame.geometry.loc[(pd.Timestamp("2023-01-08"), 1)].equals(Point(5.2, 51.2))
    assert np.isnan(frame.loc[(pd.Timestamp("2023-01-08"), 0), "B08"])


def test_geojson_gives_the_time_series_shape_of_json():
    frame = read_table(json.dumps(vector_cube_geojson()).encode(), spec("vectorcube.geojson"))
    json_frame = read_timeseries_json(
        json.dumps(
            {"2023-01-03T00:00:00Z": [[1.0, 2.0], [5.0, 6.0]], "2023-01-08T00:00:00Z": [[3.0, None], [7.0, 8.0]]}
        ).encode(),
        spec(),
    )
    pd.testing.assert_frame_equal(pd.DataFrame(frame[["B04", "B08"]]), json_frame)


def test_geojson_uses_feature_index_and_keeps_other_tilde_properties_as_properties():
    gdf = gpd.GeoDataFrame(
        {"feature_index": [7, 3], "note~x": ["a", "b"], "2023-01-03T00:00:00Z~NDVI": [0.1, 0.3]},
        geometry=[Point(0, 0), Point(1, 1)],
        crs=4326,
    )
    frame = read_geojson(gdf.to_json().encode(), spec("vectorcube.geojson", bands=()))
    assert list(frame.columns) == ["NDVI", "note~x", "geometry"] and frame.attrs["bands"] == ["NDVI"]
    assert frame.index.get_level_values("feature").tolist() == [3, 7]
    assert frame["NDVI"].tolist() == [0.3, 0.1] and frame["note~x"].tolist() == ["b", "a"]


def test_geojson_without_time_is_indexed_by_feature():
    gdf = gpd.GeoDataFrame({"feature_index": [0, 1], "B04": [1.0, 2.0]}, geometry=[Point(0, 0), Point(1, 1)])
    frame = read_geojson(gdf.to_json().encode(), spec("vectorcube.geojson"))
    assert frame.index.names == ["feature"] and list(frame.columns) == ["B04", "geometry"]
    assert frame["B04"].tolist() == [1, 2]


def test_geojson_with_a_legacy_crs_member_keeps_it():
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32631"}},
        "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [640000, 5690000]}}],
    }
    gdf = read_geojson(json.dumps(doc).encode(), spec("vectorcube.geojson"))
    assert gdf.crs.to_epsg() == 32631 and len(gdf.columns) == 1


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ({"type": "Topology"}, "is not GeoJSON"),
        ({"type": "FeatureCollection", "features": {}}, "without a 'features' list"),
        ({"type": "FeatureCollection", "features": [{"type": "Point"}]}, "features[0] is not a GeoJSON Feature"),
        (
            {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon"}}]},
            "features[0].geometry is not a valid GeoJSON geometry",
        ),
    ],
)
def test_geojson_errors_name_the_asset(doc, fragment):
    with pytest.raises(AssetReadError) as excinfo:
        read_geojson(json.dumps(doc).encode(), spec("vectorcube.geojson"))
    assert_read_error(excinfo, "vectorcube.geojson", fragment)


# -- raster JSON and dispatch -------------------------------------------------------------------------


def raster_json(array: xr.DataArray) -> bytes:
    """As the backend writes it: to_dict() plus dtype/shape attrs, NaN as null, datetimes as ISO strings."""
    doc = array.to_dict()
    doc["attrs"].update(dtype=str(array.dtype), shape=list(array.shape))
    for name, coord in array.coords.items():
        doc["coords"][name]["attrs"].update(dtype=str(coord.dtype), shape=list(coord.shape))
        if coord.dtype.kind == "M":
            doc["coords"][name]["data"] = [pd.Timestamp(v).isoformat() for v in coord.values]
    text = json.dumps(doc, default=float).replace("NaN", "null")
    return text.encode()


def raster(dtype="float32") -> xr.DataArray:
    values = np.arange(3 * 2 * 2 * 3, dtype=dtype).reshape(3, 2, 2, 3)
    return xr.DataArray(
        values,
        dims=("t", "bands", "y", "x"),
        coords={
            "t": pd.date_range("2023-01-01", periods=3, freq="5D"),
            "bands": ["B04", "B08"],
            "y": [5690005.0, 5689995.0],
            "x": [640005.0, 640015.0, 640025.0],
        },
    )


def test_raster_json_becomes_a_dataset_with_one_variable_per_band():
    array = raster()
    array[0, 0, 0, 0] = np.nan
    ds = read_raster_json(raster_json(array), spec("openEO.json"))
    assert list(ds.data_vars) == ["B04", "B08"] and ds.B04.dims == ("t", "y", "x")
    assert ds.B04.dtype == np.float32 and ds.t.dtype == np.dtype("datetime64[ns]")
    assert "dtype" not in ds.B04.attrs and "shape" not in ds.attrs
    xr.testing.assert_identical(ds, array.to_dataset(dim="bands"))


def test_raster_json_ints_with_nulls_become_float_and_nodata_is_masked():
    data = raster_json(raster("uint16")).replace(b"[0, 1, 2]", b"[null, 1, 2]")
    ds = read_raster_json(data, spec("openEO.json"))
    assert ds.B04.dtype == np.float64 and np.isnan(ds.B04[0, 0, 0])
    assert read_raster_json(raster_json(raster("uint16")), spec("openEO.json")).B04.dtype == np.uint16
    masked = read_raster_json(raster_json(raster("uint16")), spec("openEO.json", nodata=1.0))
    assert np.isnan(masked.B04[0, 0, 1]) and float(masked.B04[0, 0, 2]) == 2


def test_raster_json_without_bands_coordinate_or_dimension():
    nameless = raster().drop_vars("bands")
    ds = read_raster_json(raster_json(nameless), spec("openEO.json", bands=("red", "nir")))
    assert list(ds.data_vars) == ["red", "nir"]
    single = read_raster_json(raster_json(raster().isel(bands=0, drop=True)), spec("openEO.json", bands=("NDVI",)))
    assert list(single.data_vars) == ["NDVI"] and single.NDVI.dims == ("t", "y", "x")


def test_inconsistent_raster_json_is_an_asset_read_error():
    doc = json.loads(raster_json(raster()))
    doc["attrs"]["shape"] = [3, 2, 2, 4]
    with pytest.raises(AssetReadError) as excinfo:
        read_raster_json(json.dumps(doc).encode(), spec("openEO.json"))
    assert_read_error(excinfo, "openEO.json", "not a consistent xarray JSON raster", "attrs.shape")
    with pytest.raises(AssetReadError) as excinfo:
        read_raster_json(b'{"2023-01-01T00:00:00Z": [[1]]}', spec("openEO.json"))
    assert_read_error(excinfo, "openEO.json", "is not an xarray JSON raster")


def test_json_is_told_apart_by_content():
    assert is_raster_json(json.loads(raster_json(raster()))) and not is_raster_json(GEOPYSPARK_TS)
    assert isinstance(read_json(raster_json(raster()), spec("openEO.json")), xr.Dataset)
    assert type(read_json(json.dumps(GEOPYSPARK_TS).encode(), spec())) is pd.DataFrame
    geojson = json.dumps(vector_cube_geojson()).encode()
    assert isinstance(read_json(geojson, spec("vectorcube.json")), gpd.GeoDataFrame)
    assert isinstance(read_table(geojson, spec("vectorcube.json")), gpd.GeoDataFrame)


def test_read_table_refuses_rasters_and_unknown_media_types():
    with pytest.raises(AssetReadError) as excinfo:
        read_table(raster_json(raster()), spec("openEO.json"))
    assert_read_error(excinfo, "openEO.json", "holds a raster")
    with pytest.raises(UnsupportedMediaTypeError, match="'openEO_2023-01-01Z.tif'.*not a table"):
        read_table(b"II*\x00", spec("openEO_2023-01-01Z.tif", "image/tiff; application=geotiff"))
    with pytest.raises(UnsupportedMediaTypeError, match="application/x-unknown"):
        read_table(b"", spec("result.bin", "application/x-unknown"))


# -- end to end: the same numbers from every format of the local backend ---------------------------


@pytest.mark.slow
def test_every_format_of_a_real_job_gives_the_same_numbers():
    from xr_openeo.testing import LocalBackend, SyntheticCollection

    extent = {"west": 640000, "south": 5687440, "east": 642560, "north": 5690000, "crs": 32631}
    frames = {}
    with LocalBackend([SyntheticCollection(dates=3, width=256, height=256)]) as b:
        conn = b.connect()
        cube = conn.load_collection("SENTINEL2_L2A", spatial_extent=extent, bands=["B04", "B08"])
        cube = cube.aggregate_spatial(two_polygons(), "mean")
        for out_format in ("JSON", "CSV", "Parquet", "GeoJSON"):
            job = cube.create_job(out_format=out_format)
            job.start_and_wait(max_poll_interval=0.1)
            (asset,) = job.get_results().get_assets()
            bands = tuple(band["name"] for band in asset.metadata.get("eo:bands", []))
            asset_spec = AssetSpec(asset.key, asset.href, asset.media_type, bands=bands)
            response = requests.get(asset.href, timeout=10)
            response.raise_for_status()
            frames[out_format] = read_table(response.content, asset_spec)
    reference = frames["JSON"]
    assert list(reference.columns) == ["B04", "B08"] and reference.shape == (6, 2)
    assert reference.index.get_level_values("t").unique().tolist() == list(
        pd.date_range("2023-01-01", "2023-01-11", freq="5D")
    )
    assert reference.index.get_level_values("feature").unique().tolist() == [0, 1]
    assert reference.notna().all().all() and (reference > 0).all().all()
    for out_format in ("Parquet", "GeoJSON"):
        assert isinstance(frames[out_format], gpd.GeoDataFrame) and frames[out_format].crs.to_epsg() == 4326
        assert list(frames[out_format].columns) == ["B04", "B08", "geometry"]
        frames[out_format].reset_index()  # no level is also a column
    assert frames["Parquet"].geometry.geom_equals_exact(frames["GeoJSON"].geometry, tolerance=1e-9).all()
    for out_format, frame in frames.items():
        frame = pd.DataFrame(frame[["B04", "B08"]]).astype("float64")
        pd.testing.assert_index_equal(frame.index, reference.index)
        # CSV holds the float32 means as their shortest decimal text; the others hold them exactly.
        rtol = 1e-6 if out_format == "CSV" else 0
        np.testing.assert_allclose(frame.to_numpy(), reference.to_numpy(), rtol=rtol, err_msg=out_format)
    datasets = [to_vector_cube(frame[["B04", "B08"]]) for frame in frames.values()]
    for ds in datasets[1:]:
        xr.testing.assert_allclose(ds.astype("float64"), datasets[0], rtol=1e-6)
