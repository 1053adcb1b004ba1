"""combine_tables, join_features and to_vector_cube on files written as backends write them."""

from __future__ import annotations

import io
import json
import pickle
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_tables_writers import (
    DATA,
    feature_collection,
    features_frame,
    geopyspark_csv,
    python_driver_geoparquet,
    timeseries_json,
)

from xr_openeo.readers.tables import combine_tables, join_features, read_table, to_vector_cube
from xr_openeo.results import AssetSpec

MEDIA = {
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/parquet; profile=geo",
    "geojson": "application/geo+json",
}
DATES = pd.DatetimeIndex(["2023-01-03", "2023-01-08", "2023-01-13"])
VALUES = np.array(  # (dates, features, bands)
    [[[0.25, 5.0], [0.5, 6.0]], [[0.75, np.nan], [np.nan, np.nan]], [[1.0, 7.0], [1.25, 8.0]]]
)


def spec(key: str, bands: tuple[str, ...] = ("B04", "B08")) -> AssetSpec:
    return AssetSpec(key, f"https://be.example/results/{key}", MEDIA[key.rsplit(".", 1)[-1]], bands=bands)


def read(data: bytes, key: str, bands: tuple[str, ...] = ("B04", "B08")) -> pd.DataFrame:
    return read_table(data, spec(key, bands))


def polygons() -> gpd.GeoDataFrame:
    return features_frame(feature_collection())


def bands(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(frame[["B04", "B08"]]).astype("float64")


# -- combine_tables ----------------------------------------------------------------------------------


def test_csv_and_parquet_of_one_series_are_one_frame_with_the_parquets_properties():
    csv = read(geopyspark_csv(VALUES, DATES, order=[3, 1, 0, 2, 4]), "timeseries.csv")
    parquet = read(python_driver_geoparquet(VALUES, DATES, polygons(), ["B04", "B08"]), "timeseries.parquet")
    specs = [spec("timeseries.csv"), spec("timeseries.parquet")]
    combined = combine_tables({"timeseries.csv": csv, "timeseries.parquet": parquet}, specs)
    assert isinstance(combined, gpd.GeoDataFrame) and combined.crs.to_epsg() == 4326
    assert combined.index.names == ["t", "feature"] and len(combined) == 6
    assert list(combined.columns) == ["B04", "B08", "id", "pop", "geometry"]
    pd.testing.assert_frame_equal(bands(combined), bands(parquet))
    assert combined["id"].tolist() == ["first", "second"] * 3


def test_float32_values_and_their_csv_text_agree():
    values32 = VALUES.astype("float32") + np.float32(1 / 3)
    as_text = np.array([float(str(v)) for v in values32.ravel()]).reshape(values32.shape)  # float32 shortest text
    assert (as_text != values32.astype("float64"))[~np.isnan(as_text)].any()
    csv = read(geopyspark_csv(as_text, DATES), "timeseries.csv")
    parquet = read(python_driver_geoparquet(values32, DATES, polygons(), None), "timeseries.parquet")
    combined = combine_tables({"a.csv": csv, "b.parquet": parquet}, [])
    assert "asset" not in combined.index.names and len(combined) == 6


def test_json_and_a_csv_missing_rows_combine_to_the_json():
    json_frame = read(timeseries_json(VALUES, DATES), "timeseries.json")
    csv = read(geopyspark_csv(VALUES, DATES), "timeseries.csv")
    assert len(csv) < len(json_frame) or csv.isna().any().any()
    combined = combine_tables({"timeseries.json": json_frame, "timeseries.csv": csv}, [])
    pd.testing.assert_frame_equal(combined, json_frame)


def test_assets_split_by_date_are_concatenated():
    first = read(timeseries_json(VALUES[:2], DATES[:2]), "2023-01.json")
    second = read(timeseries_json(VALUES[2:], DATES[2:]), "2023-02.json")
    combined = combine_tables({"2023-02.json": second, "2023-01.json": first}, [spec("2023-01.json")])
    pd.testing.assert_frame_equal(combined, read(timeseries_json(VALUES, DATES), "all.json"))


def test_one_asset_per_feature_is_numbered_in_asset_order():
    features = polygons()
    parts = {
        f"feature_{i}.parquet": read(
            python_driver_geoparquet(VALUES[:, i : i + 1], DATES, features.iloc[[i]].reset_index(drop=True), None),
            f"feature_{i}.parquet",
        )
        for i in (1, 0)
    }
    assert all(p.index.get_level_values("feature").unique().tolist() == [0] for p in parts.values())
    specs = [spec("feature_0.parquet"), spec("feature_1.parquet")]
    combined = combine_tables(parts, specs)
    whole = read(python_driver_geoparquet(VALUES, DATES, features, None), "timeseries.parquet")
    pd.testing.assert_frame_equal(pd.DataFrame(combined), pd.DataFrame(whole))


def test_one_feature_in_assets_split_by_date_keeps_its_number():
    features = polygons()
    early = python_driver_geoparquet(VALUES[:2], DATES[:2], features, None)
    late = python_driver_geoparquet(VALUES[2:, 1:], DATES[2:], features.iloc[[1]].reset_index(drop=True), None)
    combined = combine_tables(
        {"early.parquet": read(early, "early.parquet"), "late.parquet": read(late, "l.parquet")}, []
    )
    assert combined.index.get_level_values("feature").unique().tolist() == [0, 1]
    assert combined.loc[(DATES[2], 1), "B04"] == 1.25 and np.isnan(combined.loc[(DATES[2], 0), "B04"])
    assert combined.loc[(DATES[2], 0), "id"] == "first"


@pytest.mark.parametrize("case", ["other bands", "values disagree"])
def test_genuinely_different_tables_keep_an_asset_level(case):
    json_frame = read(timeseries_json(VALUES, DATES), "timeseries.json")
    if case == "other bands":
        other = read(timeseries_json(VALUES[:, :, :1], DATES), "ndvi.json", ("NDVI",))
    else:
        other = read(timeseries_json(VALUES + 1, DATES), "other.json")
    combined = combine_tables({"timeseries.json": json_frame, "other.json": other}, [])
    assert combined.index.names == ["asset", "t", "feature"]
    assert combined.index.get_level_values("asset").unique().tolist() == ["timeseries.json", "other.json"]
    pd.testing.assert_frame_equal(pd.DataFrame(combined.loc["timeseries.json"]).dropna(axis=1, how="all"), json_frame)


def test_each_series_of_a_result_is_combined_and_series_are_kept_apart():
    json_frame = read(timeseries_json(VALUES, DATES), "a.json")
    frames = {
        "a.json": json_frame,
        "ndvi.json": read(timeseries_json(VALUES[:, :, :1], DATES), "ndvi.json", ("NDVI",)),
        "a.csv": read(geopyspark_csv(VALUES, DATES), "a.csv"),
        "ndvi.csv": read(geopyspark_csv(VALUES[:, :, :1], DATES), "ndvi.csv", ("NDVI",)),
    }
    combined = combine_tables(frames, [])
    assert combined.index.get_level_values("asset").unique().tolist() == ["a.json", "ndvi.json"]
    pd.testing.assert_frame_equal(pd.DataFrame(combined.loc["a.json"])[["B04", "B08"]], json_frame)
    np.testing.assert_array_equal(combined.loc["ndvi.json", "NDVI"], json_frame["B04"])


def test_tables_with_other_index_levels_are_kept_apart_with_their_levels_as_columns():
    json_frame = read(timeseries_json(VALUES, DATES), "timeseries.json")
    static = read(b"[[1.0, 2.0], [3.0, 4.0]]", "static.json")
    combined = combine_tables({"timeseries.json": json_frame, "static.json": static}, [])
    assert combined.index.names == ["asset", None] and {"t", "feature", "B04", "B08"} <= set(combined.columns)
    assert combined.loc["static.json", "feature"].tolist() == [0, 1]
    assert combined.loc["timeseries.json", "t"].tolist() == list(DATES.repeat(2))


def test_one_table_comes_back_as_it_is_and_none_is_an_error():
    frame = read(timeseries_json(VALUES, DATES), "timeseries.json")
    assert combine_tables({"timeseries.json": frame}, [spec("timeseries.json")]) is frame
    with pytest.raises(ValueError, match="at least one"):
        combine_tables({}, [])


# -- join_features -----------------------------------------------------------------------------------


def test_the_jobs_feature_collection_joins_onto_json():
    frame = join_features(read(timeseries_json(VALUES, DATES), "timeseries.json"), feature_collection())
    assert isinstance(frame, gpd.GeoDataFrame) and frame.crs.to_epsg() == 4326
    assert list(frame.columns) == ["B04", "B08", "id", "pop", "geometry"] and frame.attrs["bands"] == ["B04", "B08"]
    assert frame["id"].tolist() == ["first", "second"] * 3
    assert frame.geometry.iloc[5].equals(polygons().geometry.iloc[1])
    frame.reset_index()
    parquet = read(python_driver_geoparquet(VALUES, DATES, polygons(), None), "timeseries.parquet")
    pd.testing.assert_frame_equal(pd.DataFrame(frame), pd.DataFrame(parquet))  # what GeoParquet carries itself


def test_a_feature_count_that_does_not_match_says_both_counts():
    frame = read(timeseries_json(VALUES, DATES), "timeseries.json")
    three = pd.concat([polygons(), polygons().iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match=r"hold 2 features .* has 3 rows"):
        join_features(frame, three)
    with pytest.raises(ValueError, match=r"hold 2 features .* has 1 rows"):
        join_features(frame, polygons().iloc[:1])


def test_features_without_any_row_get_nan_rows():
    csv = read((DATA / "geopyspark_spacetime.csv").read_bytes(), "timeseries.csv", ("B02", "B03", "B04"))
    names = pd.DataFrame({"name": ["a", "b", "c"]}, index=pd.Index([10, 11, 12], name="field_id"))
    frame = join_features(csv, names)
    assert type(frame) is pd.DataFrame and list(frame.columns) == ["B02", "B03", "B04", "field_id", "name"]
    assert frame.index.get_level_values("feature").unique().tolist() == [0, 1, 2] and len(frame) == 6
    assert frame.xs(1, level="feature")[["B02", "B03", "B04"]].isna().all().all()
    assert frame.xs(1, level="feature")["name"].tolist() == ["b", "b"]
    assert frame.xs(2, level="feature")["field_id"].tolist() == [12, 12]


def test_feature_columns_named_like_a_level_or_a_band_get_a_suffix_and_replace_same_named_properties():
    parquet = read(python_driver_geoparquet(VALUES, DATES, polygons(), None), "timeseries.parquet")
    mine = gpd.GeoDataFrame(
        {"t": ["x", "y"], "B04": [1, 2], "id": ["mine-0", "mine-1"]},
        geometry=polygons().to_crs(3857).geometry.to_numpy(),
        crs=3857,
    ).rename_geometry("geom")
    frame = join_features(parquet, mine)
    assert list(frame.columns) == ["B04", "B08", "pop", "t_property", "B04_property", "id", "geometry"]
    assert frame.crs.to_epsg() == 3857 and frame["id"].tolist() == ["mine-0", "mine-1"] * 3
    pd.testing.assert_frame_equal(bands(frame), bands(parquet))


def test_join_features_refuses_what_it_cannot_join():
    frame = read(timeseries_json(VALUES, DATES), "timeseries.json")
    with pytest.raises(TypeError, match="got list"):
        join_features(frame, [1, 2])
    with pytest.raises(ValueError, match="indexed by 'feature'"):
        join_features(frame.reset_index(), polygons())


def test_features_join_onto_tables_kept_apart_by_asset():
    combined = combine_tables(
        {
            "a.json": read(timeseries_json(VALUES, DATES), "a.json"),
            "b.json": read(timeseries_json(VALUES[:, :, :1], DATES), "b.json", ("NDVI",)),
        },
        [],
    )
    frame = join_features(combined, polygons())
    assert (
        frame.index.names == ["asset", "t", "feature"] and frame.loc["b.json", "id"].tolist() == ["first", "second"] * 3
    )


# -- to_vector_cube ----------------------------------------------------------------------------------


def test_the_vector_cube_has_feature_properties_and_an_xvec_geometry_index():
    from xvec import GeometryIndex

    parquet = read(python_driver_geoparquet(VALUES, DATES, polygons(), None), "timeseries.parquet")
    ds = to_vector_cube(parquet)
    assert ds.B04.dims == ("feature", "t") and ds.sizes == {"feature": 2, "t": 3}
    assert ds["id"].dims == ("feature",) and ds["id"].values.tolist() == ["first", "second"]
    assert ds["pop"].values.tolist() == [1234, 5678]
    assert isinstance(ds.xindexes["geometry"], GeometryIndex) and ds.xindexes["geometry"].crs.to_epsg() == 4326
    assert ds.xvec.to_crs(geometry=3857).geometry.values[0].equals(polygons().to_crs(3857).geometry.iloc[0])
    np.testing.assert_array_equal(ds.B04.transpose("t", "feature").values, VALUES[:, :, 0])
    back = pickle.loads(pickle.dumps(ds))
    xr.testing.assert_identical(back, ds)


def test_without_xvec_the_geometries_are_a_plain_coordinate(monkeypatch):
    monkeypatch.setitem(sys.modules, "xvec", None)  # import xvec now raises ImportError
    parquet = read(python_driver_geoparquet(VALUES, DATES, polygons(), None), "timeseries.parquet")
    ds = to_vector_cube(parquet)
    assert "geometry" not in ds.xindexes and ds.geometry.dims == ("feature",) and ds.geometry.dtype == object
    assert ds.geometry.values[1].equals(polygons().geometry.iloc[1])


def test_a_dateless_series_is_a_cube_along_feature_only():
    data = python_driver_geoparquet(VALUES[:1], DATES[:1], polygons(), None)
    table = gpd.read_parquet(io.BytesIO(data)).drop(columns="date")
    buffer = io.BytesIO()
    table.to_parquet(buffer)
    ds = to_vector_cube(read(buffer.getvalue(), "static.parquet"))
    assert ds.B04.dims == ("feature",) and ds.B04.values.tolist() == [0.25, 0.5] and "t" not in ds.dims


def test_features_without_geometry_keep_a_plain_coordinate_and_no_features_is_an_empty_cube():
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": None, "properties": {"2023-01-03T00:00:00Z~B04": 1.0}},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 51]}, "properties": {}},
        ],
    }
    ds = to_vector_cube(read(json.dumps(doc).encode(), "vectorcube.geojson"))
    assert "geometry" not in ds.xindexes and ds.geometry.values[0] is None
    assert ds.B04.values[0, 0] == 1.0 and np.isnan(ds.B04.values[1, 0])
    empty = to_vector_cube(read(b'{"type": "FeatureCollection", "features": []}', "vectorcube.geojson"))
    assert empty.sizes == {"feature": 0} and not empty.data_vars


def test_to_vector_cube_refuses_tables_kept_apart_by_asset():
    combined = combine_tables(
        {
            "a.json": read(timeseries_json(VALUES, DATES), "a.json"),
            "b.json": read(timeseries_json(VALUES[:, :, :1], DATES), "b.json", ("NDVI",)),
        },
        [],
    )
    with pytest.raises(ValueError, match="'asset' level"):
        to_vector_cube(combined)
