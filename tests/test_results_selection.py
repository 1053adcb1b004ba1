"""Issue 12 in the pure parser: far dates, assets of another kind, selection with reasons, which date wins,
documents that are not results documents, relative hrefs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xr_openeo.errors import ResultsDocumentError, UnsupportedMediaTypeError
from xr_openeo.results import (
    AssetSpec,
    Selection,
    merge_items,
    parse_datetime,
    parse_item,
    parse_results,
    select,
    time_from_name,
    with_file_name_times,
)

GTIFF = "image/tiff; application=geotiff"
MODEL_ITEM = {
    "type": "Feature",
    "id": "cb-1",
    "properties": {"datetime": None, "start_datetime": "1970-01-01T00:00:00Z", "end_datetime": "9999-12-31T23:59:59Z"},
    "assets": {
        "model": {
            "href": "http://h/r/assets/catboost_model.cbm.tar.gz",
            "type": "application/octet-stream",
            "roles": ["ml-model:checkpoint"],
        }
    },
}


def item(properties: dict[str, Any], **assets: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": "i", "properties": properties, "assets": assets}


def spec(key: str, media_type: str | None = None, **fields: Any) -> AssetSpec:
    return AssetSpec(key=key, href=f"http://h/{key}", media_type=media_type, **fields)


# ------------------------------------------------------------------------------------------------
# 12.1: far-future and open-ended dates parse; a malformed model or metadata asset never raises


def test_a_model_item_with_end_9999_parses() -> None:
    (model,) = parse_item(MODEL_ITEM)
    assert model.start == np.datetime64("1970-01-01", "ns")
    assert model.end is None  # beyond datetime64[ns]
    assert model.interval == ("1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z")
    assert model.time is None and model.problem is None and model.is_model


def test_open_ended_intervals() -> None:
    (a,) = parse_item(
        item({"datetime": None, "start_datetime": "2023-01-01T00:00:00Z", "end_datetime": None}, a={"href": "x.tif"})
    )
    assert (a.start, a.end, a.interval) == (np.datetime64("2023-01-01", "ns"), None, ("2023-01-01T00:00:00Z", None))


def test_a_far_datetime_of_data_is_an_error_but_not_of_a_model() -> None:
    with pytest.raises(ResultsDocumentError, match="t axis") as info:
        parse_item(item({"datetime": "9999-01-01T00:00:00Z"}, a={"href": "a.tif"}))
    assert info.value.field == "properties.datetime"
    (model,) = parse_item({**MODEL_ITEM, "properties": {"datetime": "9999-01-01T00:00:00Z"}})
    assert model.time is None and model.problem is not None and "t axis" in model.problem


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"proj:shape": "2x2", "proj:epsg": 4326}, "assets.model.proj:shape"),
        ({"eo:bands": [{"name": 1}]}, "assets.model.eo:bands"),
        ({"datetime": "soon"}, "assets.model.datetime"),
    ],
)
def test_malformed_model_assets_carry_a_problem(fields: dict[str, Any], field: str) -> None:
    doc = {**MODEL_ITEM, "assets": {"model": {**MODEL_ITEM["assets"]["model"], **fields}}}
    (model,) = parse_item(doc)
    assert model.problem_field == field and field in (model.problem or "")
    assert model.problem.startswith("item 'cb-1': ")  # type: ignore[union-attr]
    selection = select([model, spec("a.tif", GTIFF)], None, purpose="raster")
    assert [s.key for s in selection.chosen] == ["a.tif"]
    with pytest.raises(ResultsDocumentError) as info:
        select([model], "model", purpose=None)
    assert info.value.field == field


def test_malformed_item_properties_stop_only_data_items() -> None:
    bad = {"datetime": "yesterday"}
    (meta,) = parse_item(item(bad, info={"href": "x_gdalinfo.json", "type": "application/json", "roles": ["metadata"]}))
    assert meta.problem_field == "properties.datetime"
    with pytest.raises(ResultsDocumentError, match="item 'i'") as info:
        parse_item(item(bad, info={"href": "x.json", "roles": ["metadata"]}, data={"href": "x.tif"}))
    assert info.value.field == "properties.datetime"
    with pytest.raises(ResultsDocumentError):  # a malformed data asset is an error of the document
        parse_results({"type": "Collection", "assets": {"a.tif": {"href": "a.tif", "proj:shape": [0, 1]}}})


def test_structural_errors_raise_whatever_the_asset() -> None:
    for broken in ({"href": 1, "roles": ["metadata"]}, {"href": "m", "roles": [1]}, {"href": "m", "type": 5}):
        with pytest.raises(ResultsDocumentError):
            parse_results({"type": "Collection", "assets": {"m": broken}})


# ------------------------------------------------------------------------------------------------
# 12.2: selection with reasons

ASSETS = (
    spec("a.tif", GTIFF, time=np.datetime64("2023-01-01", "ns")),
    spec("b.nc", "application/x-netcdf"),
    spec("c.zarr", "application/zip+zarr"),
    spec("ts.json", "application/json"),
    spec("ts.csv", "text/csv"),
    spec("ts.parquet", "application/parquet; profile=geo"),
    spec("v.geojson", "application/geo+json"),
    spec("gdal.json", "application/json", roles=("metadata",)),
    spec("model.bin", "application/octet-stream", roles=("data", "ml-model:checkpoint")),
    spec("thing.bin", "application/octet-stream"),
    spec("noext", None),
    spec("thumb.png", "image/png", roles=("thumbnail", "overview")),
)


def test_raster_selection() -> None:
    s = select(ASSETS, None, purpose="raster")
    assert [a.key for a in s.chosen] == ["a.tif", "b.nc", "c.zarr", "ts.json"]
    assert s.skipped == {
        "ts.csv": "a table (csv): xr_openeo.open_dataframe reads it",
        "ts.parquet": "a table (parquet): xr_openeo.open_dataframe reads it",
        "v.geojson": "a table (geojson): xr_openeo.open_dataframe reads it",
        "gdal.json": "role metadata",
        "model.bin": "a machine-learning model (roles data, ml-model:checkpoint)",
        "thing.bin": "media type application/octet-stream, which xr_openeo does not read",
        "noext": "no media type, and no file extension xr_openeo reads in 'noext'",
        "thumb.png": "roles thumbnail, overview",
    }
    assert s.other_purpose == ("ts.csv", "ts.parquet", "v.geojson")
    assert s.summary().startswith("'ts.csv' (a table (csv): xr_openeo.open_dataframe reads it); 'ts.parquet'")


def test_table_selection() -> None:
    s = select(ASSETS, None, purpose="table")
    assert [a.key for a in s.chosen] == ["ts.json", "ts.csv", "ts.parquet", "v.geojson"]
    assert s.skipped["a.tif"] == "a raster (geotiff): xr_openeo.open_results reads it"
    assert s.other_purpose == ("a.tif", "b.nc", "c.zarr")


def test_no_purpose_is_every_data_asset() -> None:
    s = select(ASSETS, None)
    assert {a.key for a in s.chosen} == {a.key for a in ASSETS} - {"gdal.json", "thumb.png"}
    assert s.skipped == {"gdal.json": "role metadata", "thumb.png": "roles thumbnail, overview"}


def test_named_assets() -> None:
    s = select(ASSETS, ["ts.csv", "a.tif"], purpose="raster")
    assert [a.key for a in s.chosen] == ["a.tif", "ts.csv"]  # document order; the caller's choice
    assert s.skipped["b.nc"] == "not among assets=['ts.csv', 'a.tif']"
    with pytest.raises(UnsupportedMediaTypeError, match="model.bin"):
        select(ASSETS, "model.bin", purpose="raster")
    assert select(ASSETS, "model.bin").chosen == (ASSETS[8],)  # no purpose: downloading it is fine
    with pytest.raises(ResultsDocumentError, match="matches no asset"):
        select(ASSETS, "B04", purpose="table")


def test_an_empty_selection_says_why() -> None:
    s = select([spec("ts.csv", "text/csv"), spec("m", "application/octet-stream")], None, purpose="raster")
    assert s.chosen == () and s.other_purpose == ("ts.csv",) and set(s.skipped) == {"ts.csv", "m"}


def test_undated_geotiffs_among_dated_ones_are_skipped() -> None:
    t = np.datetime64("2023-01-01", "ns")
    specs = [spec("a.tif", GTIFF, time=t), spec("default.tif", GTIFF), spec("b.tif", GTIFF, start=t)]
    s = select(specs, None, purpose="raster")
    assert [a.key for a in s.chosen] == ["a.tif", "b.tif"]
    assert "no date" in s.skipped["default.tif"] and "2 others" in s.skipped["default.tif"]
    assert [a.key for a in select(specs[1:2], None, purpose="raster").chosen] == ["default.tif"]  # alone: fine
    assert [a.key for a in select(specs, "default.tif", purpose="raster").chosen] == ["default.tif"]


ANY_SPEC = st.builds(
    AssetSpec,
    key=st.text("abcdef.", min_size=1, max_size=6),
    href=st.sampled_from(["http://h/x.tif", "http://h/x.nc", "http://h/x", "http://h/x.csv", "http://h/x.json"]),
    media_type=st.sampled_from([None, GTIFF, "text/csv", "application/octet-stream", "image/png", "application/json"]),
    roles=st.lists(st.sampled_from(["data", "metadata", "ml-model:checkpoint", "thumbnail"]), max_size=2).map(tuple),
    time=st.sampled_from([None, np.datetime64("2023-01-01", "ns")]),
    problem=st.sampled_from([None, "broken"]),
)


@settings(max_examples=200, deadline=None)
@given(
    specs=st.lists(ANY_SPEC, max_size=8, unique_by=lambda s: s.key), purpose=st.sampled_from(["raster", "table", None])
)
def test_selection_partitions_the_assets(specs: list[AssetSpec], purpose: Any) -> None:
    try:
        s = select(specs, None, purpose=purpose)
    except ResultsDocumentError as exc:  # only for a malformed asset of the purpose's own kind
        assert any(a.problem and a.is_readable_data for a in specs), exc
        return
    assert isinstance(s, Selection)
    chosen = [a.key for a in s.chosen]
    assert sorted(chosen + list(s.skipped)) == sorted(a.key for a in specs)
    assert all(why for why in s.skipped.values())
    for a in s.chosen:
        assert a.is_data and a.problem is None
        if purpose is not None:
            assert (
                not a.is_model
                and a.format
                in {"raster": {"geotiff", "netcdf", "zarr", "json"}, "table": {"json", "csv", "parquet", "geojson"}}[
                    purpose
                ]
            )
    assert set(s.other_purpose) <= set(s.skipped)


# ------------------------------------------------------------------------------------------------
# 12.6: which date a file gets


def sh_item(**assets: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": "job", "properties": {"datetime": "2024-05-02T10:11:12Z"}, "assets": assets}


def times(doc: dict[str, Any]) -> dict[str, Any]:
    return {a.key: a.time for a in with_file_name_times(parse_results(doc).assets)}


REQUEST = np.datetime64("2024-05-02T10:11:12", "ns")


def test_names_win_over_a_shared_item_datetime() -> None:
    got = times(
        sh_item(
            **{
                "output_2023-04-03T10:30:21.024Z.tif": {"href": "o1.tif?X-Amz-Signature=s"},
                "output_2023-04-08Z.tif": {"href": "o2.tif"},
                "default.tif": {"href": "default.tif"},
                "userdata.json": {"href": "userdata.json", "roles": ["metadata"]},
                "own.tif": {"href": "own_2020-01-01Z.tif", "datetime": "2021-06-01T00:00:00Z"},
            }
        )
    )
    assert got == {
        "output_2023-04-03T10:30:21.024Z.tif": np.datetime64("2023-04-03T10:30:21.024", "ns"),
        "output_2023-04-08Z.tif": np.datetime64("2023-04-08", "ns"),
        "default.tif": None,  # a GeoTIFF of that item without a date of its own
        "userdata.json": REQUEST,  # not a GeoTIFF: keeps the item's
        "own.tif": np.datetime64("2021-06-01", "ns"),  # the asset's own datetime always wins
    }


def test_the_item_datetime_stays_when_names_carry_no_date_or_there_is_one_file() -> None:
    assert times(sh_item(a={"href": "a.tif"}, b={"href": "b.tif"})) == {"a": REQUEST, "b": REQUEST}
    assert times(sh_item(a={"href": "output_2023-04-03Z.tif"})) == {"a": REQUEST}
    nc = sh_item(a={"href": "x_2023-04-03Z.nc"}, b={"href": "y_2023-04-04Z.nc"})
    assert times(nc) == {"a": REQUEST, "b": REQUEST}  # netCDF: the dates are inside


def test_file_names_with_fractional_seconds() -> None:
    assert time_from_name("output_2023-04-03T10:30:21.024Z.tif") == np.datetime64("2023-04-03T10:30:21.024", "ns")
    assert time_from_name("output_2023-04-03T10:30:21,5Z.tif") == np.datetime64("2023-04-03T10:30:21.5", "ns")


@settings(max_examples=200, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_any_year_parses(moment: datetime) -> None:
    text = moment.isoformat() + "Z"
    value, kept = parse_datetime(text, "x")
    assert kept == text
    if 1678 <= moment.year <= 2261:
        assert value == np.datetime64(moment.isoformat(), "ns")
    else:
        assert value is None
    (a,) = parse_item(
        item(
            {"datetime": None, "start_datetime": text, "end_datetime": text},
            m={"href": "m", "roles": ["ml-model:checkpoint"]},
        )
    )
    assert a.interval == (text, text) and a.start == a.end == value and a.problem is None


# ------------------------------------------------------------------------------------------------
# 12.10: not a results document


@pytest.mark.parametrize(
    ("doc", "base", "says"),
    [
        (
            {"id": "j-1", "status": "finished", "process": {}},
            "https://b/openeo/1.2/jobs/j-1",
            "https://b/openeo/1.2/jobs/j-1/results",
        ),
        ({"id": "j-1", "status": "running", "process": {}}, None, "<backend>/jobs/j-1/results"),
        (
            {"api_version": "1.2.0", "endpoints": [], "type": "Catalog"},
            "https://b/openeo/1.2/",
            "https://b/openeo/1.2/jobs/<job id>/results",
        ),
        ({"jobs": [], "links": []}, None, "list of batch jobs"),
        ({"versions": []}, None, "/.well-known/openeo"),
        ({"code": "JobNotFound", "message": "no such job"}, None, "JobNotFound: no such job"),
        ({"type": "Catalog", "links": []}, None, "STAC Catalog"),
    ],
)
def test_not_a_results_document(doc: dict[str, Any], base: str | None, says: str) -> None:
    with pytest.raises(ResultsDocumentError) as info:
        parse_results(doc, base_url=base)
    assert says in str(info.value)
    assert info.value.field == "type" and "'type'" in str(info.value)


def test_the_url_in_the_message_is_redacted() -> None:
    doc = {"id": "j-1", "status": "finished", "process": {}}
    with pytest.raises(ResultsDocumentError) as info:
        parse_results(doc, base_url="https://u:SECRET@b/openeo/1.2/jobs/j-1?token=SECRET")
    assert "SECRET" not in str(info.value)
    assert "/jobs/j-1/results" in str(info.value)


# ------------------------------------------------------------------------------------------------
# 12.5: relative hrefs


@pytest.mark.parametrize(
    ("base", "item_link", "asset"),
    [
        ("https://b/r/collection.json?x=1", "https://b/r/sub/i.json", "https://b/r/sub/a.tif"),
        ("file:///data/r/collection.json", "file:///data/r/sub/i.json", "file:///data/r/sub/a.tif"),
        ("/data/r/collection.json", "/data/r/sub/i.json", "/data/r/sub/a.tif"),
    ],
)
def test_relative_hrefs_resolve_against_their_own_document(base: str, item_link: str, asset: str) -> None:
    info = parse_results({"type": "Collection", "links": [{"rel": "item", "href": "./sub/i.json"}]}, base_url=base)
    assert info.item_links == (item_link,)
    (a,) = parse_item(item({"datetime": "2023-01-01T00:00:00Z"}, a={"href": "./a.tif"}), base_url=item_link)
    assert a.href == asset
    if not base.startswith(("http", "file")):
        assert Path(a.href).is_absolute()


# ------------------------------------------------------------------------------------------------
# merge_items: roles, intervals and problems


def test_merge_adds_the_items_roles_intervals_and_problems() -> None:
    base = spec("m", "application/octet-stream", roles=("data",))
    (model,) = parse_item({**MODEL_ITEM, "assets": {"model": {**MODEL_ITEM["assets"]["model"], "href": base.href}}})
    (merged,) = merge_items([base], [[model]])
    assert merged.roles == ("data", "ml-model:checkpoint") and merged.is_model
    assert merged.interval == model.interval and merged.start == model.start and merged.end is None
    broken = AssetSpec("m", base.href, roles=("metadata",), problem="bad", problem_field="f")
    assert merge_items([base], [[broken]])[0].problem == "bad"
    own = AssetSpec("m", base.href, interval=("2020-01-01T00:00:00Z", None), start=np.datetime64("2020-01-01", "ns"))
    (kept,) = merge_items([own], [[model]])
    assert kept.interval == ("2020-01-01T00:00:00Z", "9999-12-31T23:59:59Z") and kept.start == own.start


def test_a_malformed_item_copy_of_a_data_file_reports_nothing() -> None:
    """The item calls the file something else and breaks a field; the collection says it is a GeoTIFF of data."""
    base = spec("a.tif", GTIFF)
    broken = {"href": base.href, "roles": [""], "proj:transform": [], "proj:shape": [2, 2], "proj:epsg": 1}
    (copy,) = parse_item(item({"datetime": "2023-01-03T00:00:00Z"}, **{"a.tif": broken}))
    assert copy.problem_field == "assets.a.tif.proj:transform"
    (merged,) = merge_items([base], [[copy]])
    assert merged.problem is None and merged.grid is None and merged.time == np.datetime64("2023-01-03", "ns")
    assert select([merged], None, purpose="raster").chosen == (merged,)
