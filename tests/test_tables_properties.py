"""Property tests: any series, written in any backend's format, reads back to the same tidy frame."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from shapely.geometry import box
from test_tables_writers import (
    geopyspark_csv,
    python_driver_geoparquet,
    timeseries_json,
    vector_cube,
    vector_cube_geojson,
    vector_cube_parquet,
)

from xr_openeo.readers.tables import combine_tables, join_features, read_table, to_vector_cube
from xr_openeo.results import AssetSpec

MEDIA = {
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/parquet",
    "geojson": "application/geo+json",
}
BAND_NAMES = ["B02", "B03", "B04", "B08", "NDVI", "red", "nir"]
SETTINGS = settings(max_examples=30, deadline=None)


@dataclass
class Series:
    values: np.ndarray  # (dates, features, bands), NaN where missing
    dates: pd.DatetimeIndex  # in the order the file lists them (not sorted)
    bands: list[str]
    features: gpd.GeoDataFrame

    def spec(self, key: str, bands: list[str] | None = None) -> AssetSpec:
        chosen = self.bands if bands is None else bands
        return AssetSpec(key, f"https://be.example/{key}", MEDIA[key.rsplit(".", 1)[-1]], bands=tuple(chosen))

    def expected(self) -> pd.DataFrame:
        """The tidy frame, built directly from the values."""
        n_t, n_f, n_b = self.values.shape
        index = pd.MultiIndex.from_arrays(
            [self.dates.repeat(n_f), np.tile(np.arange(n_f, dtype="int64"), n_t)], names=["t", "feature"]
        )
        return pd.DataFrame(self.values.reshape(n_t * n_f, n_b), index=index, columns=self.bands).sort_index()


@st.composite
def series(draw: st.DrawFn) -> Series:
    n_t, n_f, n_b = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    hours = draw(st.lists(st.integers(0, 24 * 3650), min_size=n_t, max_size=n_t, unique=True))
    dates = pd.DatetimeIndex([pd.Timestamp("2015-01-01") + pd.Timedelta(hours=h) for h in hours])
    number = st.floats(-1e9, 1e9, allow_nan=False, allow_subnormal=False)
    values = draw(arrays(np.float64, (n_t, n_f, n_b), elements=st.one_of(st.just(np.nan), number)))
    bands = draw(st.lists(st.sampled_from(BAND_NAMES), min_size=n_b, max_size=n_b, unique=True))
    names = draw(st.lists(st.text(st.characters(exclude_categories=("Cs",)), max_size=4), min_size=n_f, max_size=n_f))
    features = gpd.GeoDataFrame(
        {"name": names, "code": np.arange(100, 100 + n_f)},
        geometry=[box(i, 50, i + 0.5, 50.5) for i in range(n_f)],
        crs=4326,
    )
    return Series(values, dates, bands, features)


def bands_of(frame: pd.DataFrame, bands: list[str]) -> pd.DataFrame:
    return pd.DataFrame(frame[bands]).astype("float64")


def assert_features(frame: pd.DataFrame, s: Series) -> None:
    """Every row carries its feature's properties and geometry."""
    feature = frame.index.get_level_values("feature").to_numpy()
    assert frame["name"].tolist() == s.features["name"].to_numpy()[feature].tolist()
    assert frame["code"].tolist() == s.features["code"].to_numpy()[feature].tolist()
    expected = gpd.GeoSeries(s.features.geometry.to_numpy()[feature], index=frame.index, crs=4326)
    assert frame.geometry.geom_equals(expected).all()
    assert frame.crs.to_epsg() == 4326
    assert list(frame.reset_index().columns[:2]) == ["t", "feature"]


@SETTINGS
@given(series(), st.sampled_from(["[]", "null", "[[]]"]))
def test_json_gives_the_series(s, empty):
    assume(empty == "[]" or not np.isnan(s.values).all())  # without any value, null days say nothing of features
    frame = read_table(timeseries_json(s.values, s.dates, empty), s.spec("timeseries.json"))
    pd.testing.assert_frame_equal(frame, s.expected())


@SETTINGS
@given(series(), st.randoms(use_true_random=False))
def test_geopyspark_csv_gives_the_series_where_it_has_rows(s, random):
    expected = s.expected()
    order = list(range(s.values.shape[0] * s.values.shape[1]))
    random.shuffle(order)
    frame = read_table(geopyspark_csv(s.values, s.dates, order), s.spec("timeseries.csv"))
    assert list(frame.columns) == s.bands and frame.index.names == ["t", "feature"]
    pd.testing.assert_frame_equal(frame, expected.loc[frame.index], check_freq=False)
    absent = expected.drop(index=frame.index)
    assert absent.isna().all().all()  # only dates and features without any value are missing
    json_frame = read_table(timeseries_json(s.values, s.dates), s.spec("timeseries.json"))
    combined = combine_tables({"timeseries.csv": frame, "timeseries.json": json_frame}, [])
    pd.testing.assert_frame_equal(combined, expected)


@SETTINGS
@given(series(), st.sampled_from(["document", "other", "generic"]))
def test_python_driver_geoparquet_gives_the_series_with_its_features(s, labels):
    names = {"document": s.bands, "other": [f"label{i}" for i in range(len(s.bands))], "generic": None}[labels]
    frame = read_table(python_driver_geoparquet(s.values, s.dates, s.features, names), s.spec("timeseries.parquet"))
    assert list(frame.columns) == [*s.bands, "name", "code", "geometry"]
    pd.testing.assert_frame_equal(bands_of(frame, s.bands), s.expected())
    assert_features(frame, s)
    joined = join_features(read_table(timeseries_json(s.values, s.dates), s.spec("timeseries.json")), s.features)
    pd.testing.assert_frame_equal(pd.DataFrame(joined), pd.DataFrame(frame))


@SETTINGS
@given(series(), st.sampled_from(["geojson", "parquet"]))
def test_vector_cubes_give_the_series_with_its_features(s, fmt):
    cube = vector_cube(s.values, s.dates, s.bands, s.features)
    data = vector_cube_geojson(cube) if fmt == "geojson" else vector_cube_parquet(cube)
    frame = read_table(data, s.spec(f"vectorcube.{fmt}"))
    pd.testing.assert_frame_equal(bands_of(frame, s.bands), s.expected())
    assert_features(frame, s)


@SETTINGS
@given(series(), st.data())
def test_assets_split_by_date_combine_to_the_whole(s, data):
    n_t = len(s.dates)
    cut = data.draw(st.integers(0, n_t))
    parts = {}
    for key, rows in (("early.parquet", slice(0, cut)), ("late.parquet", slice(cut, n_t))):
        if rows.stop > rows.start:
            parquet = python_driver_geoparquet(s.values[rows], s.dates[rows], s.features, s.bands)
            parts[key] = read_table(parquet, s.spec(key))
    whole = read_table(python_driver_geoparquet(s.values, s.dates, s.features, s.bands), s.spec("all.parquet"))
    combined = combine_tables(parts, [])
    pd.testing.assert_frame_equal(pd.DataFrame(combined), pd.DataFrame(whole))


@SETTINGS
@given(series())
def test_the_vector_cube_holds_the_values(s):
    frame = read_table(python_driver_geoparquet(s.values, s.dates, s.features, s.bands), s.spec("timeseries.parquet"))
    ds = to_vector_cube(frame)
    order = np.argsort(s.dates.to_numpy())
    assert ds.sizes == {"feature": s.values.shape[1], "t": s.values.shape[0]}
    for b, band in enumerate(s.bands):
        np.testing.assert_array_equal(ds[band].transpose("t", "feature").values, s.values[order, :, b])
    assert ds["name"].values.tolist() == s.features["name"].tolist()
    back = pd.DataFrame(ds[s.bands].to_dataframe()[s.bands]).reorder_levels(["t", "feature"]).sort_index()
    pd.testing.assert_frame_equal(back, s.expected(), check_freq=False)


@SETTINGS
@given(series())
def test_without_band_metadata_every_format_names_the_bands_alike_and_they_combine(s):
    assume(not np.isnan(s.values).all())  # a CSV without any row has no columns to name
    generic = [f"band_{i}" for i in range(len(s.bands))]
    frames = {
        "timeseries.json": read_table(timeseries_json(s.values, s.dates), s.spec("timeseries.json", [])),
        "timeseries.csv": read_table(geopyspark_csv(s.values, s.dates), s.spec("timeseries.csv", [])),
        "timeseries.parquet": read_table(
            python_driver_geoparquet(s.values, s.dates, s.features, None), s.spec("timeseries.parquet", [])
        ),
    }
    for frame in frames.values():
        assert frame.attrs["bands"] == generic and list(frame.columns[: len(generic)]) == generic
    combined = combine_tables(frames, [])
    assert list(combined.columns) == [*generic, "name", "code", "geometry"]
    pd.testing.assert_frame_equal(pd.DataFrame(combined), pd.DataFrame(frames["timeseries.parquet"]))
