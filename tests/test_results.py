"""The pure results-document parser: real documents of every style, edge cases, malformed corpora."""

from __future__ import annotations

import copy
import json
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xr_openeo.errors import ResultsDocumentError, UnsupportedMediaTypeError
from xr_openeo.results import (
    AssetSpec,
    Grid,
    ResultsInfo,
    asset_format,
    merge_items,
    parse_item,
    parse_results,
    redact,
    require_format,
    select,
    time_from_name,
    url_expiry,
    with_file_name_times,
)
from xr_openeo.testing.assets import WrittenAsset
from xr_openeo.testing.stac import JobSummary, item_document, item_ids, results_document

ROOT = "http://h/openeo/1.2/jobs/j-1/results"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
NETCDF = "application/x-netcdf"
BANDS = ("B04", "B08")
GRID = {"epsg": 32631, "shape": (256, 256), "bbox": (640000.0, 5687440.0, 642560.0, 5690000.0), "dtype": "float32"}
# The third date is not at midnight: geopyspark then names the file with the compact slug.
COGS = (
    ("openEO_2023-01-03Z.tif", "2023-01-03T00:00:00Z"),
    ("openEO_2023-01-08Z.tif", "2023-01-08T00:00:00Z"),
    ("openEO_20230113T104100Z.tif", "2023-01-13T10:41:00Z"),
)
COG_TIMES = [np.datetime64("2023-01-03", "ns"), np.datetime64("2023-01-08", "ns"), np.datetime64("2023-01-13T10:41")]
NC_SPAN = ("2023-01-01T00:00:00Z", "2023-01-20T00:00:00Z")
TRANSFORM = (10.0, 0.0, 640000.0, 0.0, -10.0, 5690000.0)
STYLES = ("item", "stac-1.0", "stac-1.1")
COLLECTION_SIG, ITEM_SIG = "c0ffee", "beef42"


@dataclass(frozen=True)
class SignedUrls:
    """URLs as the python-driver signs them: ``…/{user_b64}/{signature}/…?expires=…``.

    A real backend signs each document afresh, so item documents carry other signatures than the
    collection document: ``sig`` differs between the two.
    """

    sig: str

    def self_url(self) -> str:
        return ROOT

    def canonical(self) -> str:
        return f"{ROOT}/dXNlcg/{self.sig}?expires=123"

    def asset(self, key: str) -> str:
        return f"{ROOT}/assets/dXNlcg/{self.sig}/{key}?expires=123"

    def item(self, item_id: str) -> str:
        return f"{ROOT}/items/dXNlcg/{self.sig}/{item_id}?expires=123"


GRAPH = {"save1": {"process_id": "save_result", "arguments": {"format": "GTiff"}, "result": True}}


def job(status: str = "finished") -> JobSummary:
    return JobSummary(
        id="j-1",
        title="NDVI",
        description=None,
        process={"process_graph": GRAPH},
        status=status,
        created="2023-02-01T10:00:00Z",
        updated="2023-02-01T10:05:00Z",
        owner="alice",
    )


def write_assets(folder: Path) -> list[WrittenAsset]:
    """3 dated 2-band COGs, a netCDF with a time span, a JSON time series; files exist (``file:size``)."""

    def written(key: str, media_type: str, **fields: Any) -> WrittenAsset:
        path = folder / key
        path.write_bytes(b"\0" * 64)
        return WrittenAsset(key=key, path=path, media_type=media_type, **fields)

    cogs = [written(key, COG, bands=BANDS, datetime=when, **GRID) for key, when in COGS]
    nc = written("openEO.nc", NETCDF, bands=BANDS, start_datetime=NC_SPAN[0], end_datetime=NC_SPAN[1], **GRID)
    ts = written("timeseries.json", "application/json", bands=BANDS)
    return [*cogs, nc, ts]


def documents(assets: list[WrittenAsset], style: str, status: str = "finished", partial: bool = False):
    """The results document and its item documents, as a backend serves them (round-tripped through JSON)."""
    doc = results_document(job(status), assets, style=style, urls=SignedUrls(COLLECTION_SIG), partial=partial)
    items = {
        item_id: item_document(job(status), item_id, assets, style=style, urls=SignedUrls(ITEM_SIG))
        for item_id in item_ids(assets, style=style, job_id="j-1")
    }
    return json.loads(json.dumps(doc)), json.loads(json.dumps(items))


def open_style(assets: list[WrittenAsset], style: str) -> tuple[ResultsInfo, tuple[AssetSpec, ...]]:
    """parse_results + parse_item of each linked item + merge_items + file-name times, as the opener does."""
    doc, items = documents(assets, style)
    info = parse_results(doc)
    assert [link.rsplit("/", 1)[-1].split("?")[0] for link in info.item_links] == list(items)
    parsed = [parse_item(items[link.rsplit("/", 1)[-1].split("?")[0]]) for link in info.item_links]
    return info, with_file_name_times(merge_items(info.assets, parsed))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> list[WrittenAsset]:
    return write_assets(tmp_path_factory.mktemp("results"))


def by_file(assets: tuple[AssetSpec, ...]) -> dict[str, AssetSpec]:
    return {a.filename: a for a in assets}


# ------------------------------------------------------------------------------------------------
# Real documents of the local backend, all three styles


EXPECTED_KEYS = {
    "item": [key for key, _ in COGS] + ["openEO.nc", "timeseries.json"],
    "stac-1.0": [key for key, _ in COGS] + ["openEO.nc", "timeseries.json"],
    "stac-1.1": [f"j-1_{when}_openEO" for _, when in COGS] + ["j-1_openEO_openEO", "j-1_timeseries_openEO"],
}


@pytest.mark.parametrize("style", STYLES)
def test_real_document_assets(written: list[WrittenAsset], style: str) -> None:
    info, assets = open_style(written, style)
    assert info.job_id == "j-1"
    assert info.status == "finished"
    assert info.kind == ("item" if style == "item" else "collection")
    assert info.stac_version == {"item": "0.9.0", "stac-1.0": "1.0.0", "stac-1.1": "1.1.0"}[style]
    assert info.process_graph == (None if style == "item" else GRAPH)
    # merging items adds nothing: every item asset is also a collection asset
    assert [a.key for a in assets] == EXPECTED_KEYS[style]
    files = [key for key, _ in COGS] + ["openEO.nc", "timeseries.json"]
    assert [a.filename for a in assets] == files
    # hrefs stay the collection's (signed with its signature), never the item documents'
    assert [a.href for a in assets] == [f"{ROOT}/assets/dXNlcg/{COLLECTION_SIG}/{f}?expires=123" for f in files]
    assert [a.media_type for a in assets] == [COG] * 3 + [NETCDF, "application/json"]
    assert [a.format for a in assets] == ["geotiff"] * 3 + ["netcdf", "json"]
    assert all(a.roles == ("data",) for a in assets)
    assert all(a.bands == BANDS for a in assets)
    assert [a.title for a in assets] == files
    assert info.expires == 123.0


@pytest.mark.parametrize("style", STYLES)
def test_real_document_times(written: list[WrittenAsset], style: str) -> None:
    _, assets = open_style(written, style)
    files = by_file(assets)
    assert [files[key].time for key, _ in COGS] == COG_TIMES
    assert all(isinstance(files[key].time, np.datetime64) for key, _ in COGS)
    assert files["openEO.nc"].time is None
    assert files["timeseries.json"].time is None
    if style == "item":
        # API 1.0: one Item for the whole job; its datetime is null and its span covers everything,
        # so each asset gets the job's span and the COGs their file-name datetimes.
        span = (np.datetime64("2023-01-01", "ns"), np.datetime64("2023-01-20", "ns"))
        assert all((a.start, a.end) == span for a in assets)
    else:
        assert (files["openEO.nc"].start, files["openEO.nc"].end) == (
            np.datetime64("2023-01-01", "ns"),
            np.datetime64("2023-01-20", "ns"),
        )
        assert all(files[key].start is None and files[key].end is None for key, _ in COGS)


@pytest.mark.parametrize("style", ["stac-1.0", "stac-1.1"])
def test_item_datetimes_win_over_file_names(written: list[WrittenAsset], style: str) -> None:
    """Datetimes come from the item documents; the file-name fallback fills only what is missing."""
    doc, items = documents(written, style)
    info = parse_results(doc)
    assert all(a.time is None for a in info.assets)  # collection assets carry no datetime
    parsed = [parse_item(item) for item in items.values()]
    merged = merge_items(info.assets, parsed)
    assert [a.time for a in merged[:3]] == COG_TIMES
    assert with_file_name_times(merged) == merged


@pytest.mark.parametrize("style", STYLES)
def test_real_document_grids(written: list[WrittenAsset], style: str) -> None:
    _, assets = open_style(written, style)
    files = by_file(assets)
    for name in [key for key, _ in COGS] + ["openEO.nc"]:
        grid = files[name].grid
        assert grid == Grid("EPSG:32631", (256, 256), TRANSFORM)
        assert grid.bounds == GRID["bbox"]
        y, x = grid.coords()
        assert y[0] == 5690000.0 - 5 and y[-1] == 5687440.0 + 5 and len(y) == 256
        assert x[0] == 640000.0 + 5 and x[-1] == 642560.0 - 5 and len(x) == 256
        np.testing.assert_array_equal(np.diff(y), -10.0)
    # geopyspark copies job-level proj:* onto item properties (and tables); a table has no grid
    assert files["timeseries.json"].grid is None


@pytest.mark.parametrize("style", STYLES)
def test_real_document_item_ids_and_links(written: list[WrittenAsset], style: str) -> None:
    info, assets = open_style(written, style)
    files = by_file(assets)
    assert info.self_url == ROOT
    assert info.canonical_url == f"{ROOT}/dXNlcg/{COLLECTION_SIG}?expires=123"
    cog_names = [key for key, _ in COGS]
    if style == "item":
        expected_items: list[str] = []
        ids = {}
    elif style == "stac-1.0":
        expected_items = [*cog_names, "openEO.nc"]  # no item for JSON
        ids = {name: name for name in expected_items}
    else:
        expected_items = [f"j-1_{when}" for _, when in COGS] + ["j-1_openEO", "j-1_timeseries"]
        ids = dict(zip([*cog_names, "openEO.nc", "timeseries.json"], expected_items, strict=True))
    assert info.item_links == tuple(f"{ROOT}/items/dXNlcg/{COLLECTION_SIG}/{i}?expires=123" for i in expected_items)
    assert {name: a.item_id for name, a in files.items() if a.item_id is not None} == ids


def test_item_documents_alone(written: list[WrittenAsset]) -> None:
    """parse_item: the item's assets with its id, datetime and grid; hrefs keep the item's signature."""
    _, items = documents(written, "stac-1.1")
    (asset,) = parse_item(items["j-1_2023-01-13T10:41:00Z"])
    assert asset.key == "openEO"
    assert asset.item_id == "j-1_2023-01-13T10:41:00Z"
    assert asset.href == f"{ROOT}/assets/dXNlcg/{ITEM_SIG}/openEO_20230113T104100Z.tif?expires=123"
    assert asset.time == np.datetime64("2023-01-13T10:41:00", "ns")
    assert asset.bands == BANDS  # from 1.1 `bands`
    assert asset.grid == Grid("EPSG:32631", (256, 256), TRANSFORM)
    (nc,) = parse_item(items["j-1_openEO"])
    assert (nc.time, nc.start, nc.end) == (None, np.datetime64("2023-01-01", "ns"), np.datetime64("2023-01-20", "ns"))
    (ts,) = parse_item(items["j-1_timeseries"])
    assert ts.grid is None and ts.time is None

    _, items = documents(written, "stac-1.0")
    (asset,) = parse_item(items["openEO_2023-01-08Z.tif"])
    assert asset.key == asset.item_id == "openEO_2023-01-08Z.tif"
    assert asset.bands == BANDS  # from eo:bands
    assert asset.time == np.datetime64("2023-01-08", "ns")


@pytest.mark.parametrize("style", STYLES)
def test_partial_results(written: list[WrittenAsset], style: str) -> None:
    running, _ = documents(written[:1], style, status="running", partial=True)
    info = parse_results(running)
    assert info.status == "running"
    assert info.item_links == ()
    assert info.canonical_url == f"{ROOT}/dXNlcg/{COLLECTION_SIG}?expires=123"
    failed, _ = documents(written, style, status="error", partial=True)
    assert parse_results(failed).status == "error"


def test_specs_pickle_and_hash(written: list[WrittenAsset]) -> None:
    info, assets = open_style(written, "stac-1.1")
    assert pickle.loads(pickle.dumps(assets)) == assets
    assert pickle.loads(pickle.dumps(info)) == info
    assert len(set(assets)) == len(assets)


# ------------------------------------------------------------------------------------------------
# merge_items


def spec(key: str, href: str, **fields: Any) -> AssetSpec:
    return AssetSpec(key=key, href=href, **fields)


def test_merge_matches_by_path_then_key_then_file_name() -> None:
    t = np.datetime64("2023-01-03", "ns")
    collection = (
        spec("a", "http://h/x/a.tif?sig=1"),
        spec("i1_openEO", "http://h/s1/b.tif"),
        spec("c", "http://h/s1/c.tif"),
    )
    items = [
        [spec("zzz", "http://h/x/a.tif?sig=2", time=t, item_id="i0")],  # same path, other query
        [spec("openEO", "http://h/s2/other.tif", time=t, item_id="i1")],  # {item_id}_{key}
        [spec("other", "http://h/s2/c.tif", time=t, item_id="i2")],  # file name
    ]
    merged = merge_items(collection, items)
    assert [a.key for a in merged] == ["a", "i1_openEO", "c"]
    assert [a.href for a in merged] == [a.href for a in collection]
    assert [a.time for a in merged] == [t, t, t]
    assert [a.item_id for a in merged] == ["i0", "i1", "i2"]


def test_merge_keeps_collection_values_and_fills_gaps() -> None:
    grid = Grid("EPSG:4326", (2, 2), (1.0, 0.0, 0.0, 0.0, -1.0, 2.0))
    other = Grid("EPSG:3857", (1, 1), (1.0, 0.0, 0.0, 0.0, -1.0, 1.0))
    base = spec("a.tif", "http://h/a.tif", bands=("B1",), grid=grid, nodata=0.0)
    item = spec("a.tif", "http://h/s/a.tif", media_type=COG, bands=("X",), grid=other, nodata=5.0, dtype="uint8")
    (merged,) = merge_items([base], [[item]])
    assert (merged.bands, merged.grid, merged.nodata) == (("B1",), grid, 0.0)
    assert (merged.media_type, merged.dtype) == (COG, "uint8")


def test_merge_adds_item_assets_missing_from_the_collection() -> None:
    """STAC 1.1 items all call their asset ``openEO``; unmatched ones must not collapse into one."""
    t1, t2 = np.datetime64("2023-01-03", "ns"), np.datetime64("2023-01-08", "ns")
    items = [
        [spec("openEO", "http://h/a/1.tif", time=t1, item_id="j_1")],
        [spec("openEO", "http://h/a/2.tif", time=t2, item_id="j_2")],
        [spec("openEO", "http://h/a/2.tif", time=t2, item_id="j_2")],  # the same item twice
    ]
    merged = merge_items([], items)
    assert [(a.key, a.href, a.time) for a in merged] == [
        ("openEO", "http://h/a/1.tif", t1),
        ("j_2_openEO", "http://h/a/2.tif", t2),
    ]


def test_merge_does_not_match_ambiguous_file_names() -> None:
    collection = (spec("t1/a.tif", "http://h/t1/a.tif"), spec("t2/a.tif", "http://h/t2/a.tif"))
    t = np.datetime64("2023-01-03", "ns")
    merged = merge_items(collection, [[spec("x", "http://h/t3/a.tif", time=t, item_id="i")]])
    assert len(merged) == 3 and merged[0].time is None and merged[1].time is None


# ------------------------------------------------------------------------------------------------
# Edge cases of single fields


def collection(**asset: Any) -> dict[str, Any]:
    return {"type": "Collection", "id": "j", "links": [], "assets": {"a.tif": {"href": "http://h/a.tif", **asset}}}


def only(doc: dict[str, Any], **kwargs: Any) -> AssetSpec:
    (asset,) = parse_results(doc, **kwargs).assets
    return asset


def grid_of(**fields: Any) -> Grid:
    grid = only(collection(**fields)).grid
    assert grid is not None
    return grid


def test_proj_transform_instead_of_bbox() -> None:
    grid = grid_of(**{"proj:epsg": 32631, "proj:shape": [2, 3], "proj:transform": [20, 0, 100, 0, -20, 900]})
    assert grid == Grid("EPSG:32631", (2, 3), (20.0, 0.0, 100.0, 0.0, -20.0, 900.0))
    assert grid.bounds == (100.0, 860.0, 160.0, 900.0)
    nine = grid_of(**{"proj:epsg": 1, "proj:shape": [2, 3], "proj:transform": [20, 0, 100, 0, -20, 900, 0, 0, 1]})
    assert nine.transform == grid.transform
    # with both, the transform wins (it can describe what a bbox cannot: rotation, odd origins)
    both = {
        "proj:epsg": 1,
        "proj:shape": [2, 3],
        "proj:bbox": [0, 0, 1, 1],
        "proj:transform": [20, 0, 100, 0, -20, 900],
    }
    assert grid_of(**both).transform == grid.transform


def test_rotated_grid_bounds() -> None:
    """A 90° rotation (a = e = 0) is a valid grid; its bounds span all four corners."""
    grid = grid_of(**{"proj:epsg": 1, "proj:shape": [2, 3], "proj:transform": [0, 10, 100, -10, 0, 900]})
    assert grid.bounds == (100.0, 870.0, 120.0, 900.0)


def test_proj_bbox_with_z() -> None:
    grid = grid_of(**{"proj:epsg": 1, "proj:shape": [10, 10], "proj:bbox": [0, 0, -5, 100, 50, 5]})
    assert grid.bounds == (0.0, 0.0, 100.0, 50.0)


@pytest.mark.parametrize(
    ("fields", "crs"),
    [
        ({"proj:code": "EPSG:32631"}, "EPSG:32631"),
        ({"proj:epsg": 32631}, "EPSG:32631"),
        ({"proj:code": "EPSG:3035", "proj:epsg": 32631}, "EPSG:3035"),  # proj v2 code wins
        ({"proj:code": "EPSG:3035", "proj:epsg": "junk"}, "EPSG:3035"),
        ({"proj:epsg": None, "proj:wkt2": 'GEOGCRS["WGS 84"]'}, 'GEOGCRS["WGS 84"]'),
    ],
)
def test_crs_fields(fields: dict[str, Any], crs: str) -> None:
    asset = only(collection(**fields, **{"proj:shape": [1, 1], "proj:bbox": [0, 0, 1, 1]}))
    assert asset.grid is not None and asset.grid.crs == crs


def test_no_grid_without_crs_shape_or_extent() -> None:
    assert only(collection(**{"proj:shape": [1, 1], "proj:bbox": [0, 0, 1, 1]})).grid is None
    assert only(collection(**{"proj:epsg": 4326, "proj:bbox": [0, 0, 1, 1]})).grid is None
    assert only(collection(**{"proj:epsg": 4326, "proj:shape": [1, 1]})).grid is None


def test_relative_hrefs_resolve_against_base_url() -> None:
    doc = {
        "type": "Collection",
        "links": [{"rel": "item", "href": "items/x"}, {"rel": "self", "href": "./"}],
        "assets": {"a.tif": {"href": "assets/a.tif"}, "b.tif": {"href": "http://other/b.tif"}},
    }
    info = parse_results(doc, base_url=f"{ROOT}/")
    assert [a.href for a in info.assets] == [f"{ROOT}/assets/a.tif", "http://other/b.tif"]
    assert info.item_links == (f"{ROOT}/items/x",)
    assert info.self_url == f"{ROOT}/"
    # RFC 3986: relative to the document URL, whose last segment is a "file"
    assert parse_results(doc, base_url=ROOT).assets[0].href == "http://h/openeo/1.2/jobs/j-1/assets/a.tif"
    # without a base they stay as they are
    assert parse_results(doc).assets[0].href == "assets/a.tif"


def test_missing_type_and_roles() -> None:
    asset = only(collection())
    assert asset.media_type is None
    assert asset.roles == ("data",)
    assert asset.format == "geotiff"  # from the extension
    assert only(collection(roles="metadata")).roles == ("metadata",)
    assert only(collection(roles=None)).roles == ("data",)
    assert only(collection(roles=[])).roles == ()


def test_api_1_0_item_status() -> None:
    item = {"type": "Feature", "id": "j", "properties": {"datetime": None}, "assets": {}, "links": []}
    assert parse_results(item).status == "finished"
    assert parse_results({**item, "openeo:status": "error"}).status == "error"
    in_properties = {**item, "properties": {"datetime": None, "openeo:status": "canceled"}}
    assert parse_results(in_properties).status == "canceled"
    top_wins = {**in_properties, "openeo:status": "running"}
    assert parse_results(top_wins).status == "running"
    # job statuses some backends copy count as running (API 1.2 result_status)
    assert parse_results({**item, "openeo:status": "queued"}).status == "running"
    info = parse_results(item)
    assert info.kind == "item" and info.assets == () and info.expires is None


def test_api_1_0_item_properties_apply_to_assets() -> None:
    item = {
        "type": "Feature",
        "stac_version": "0.9.0",
        "id": "j",
        "openeo:status": "finished",
        "properties": {
            "datetime": "2023-01-03T00:00:00+01:00",
            "proj:epsg": 32631,
            "proj:shape": [256, 256],
            "proj:bbox": [640000.0, 5687440.0, 642560.0, 5690000.0],
        },
        "links": [],
        "assets": {
            "openEO.tif": {"href": "http://h/openEO.tif", "type": COG, "eo:bands": [{"name": "B04"}]},
            "ts.csv": {"href": "http://h/ts.csv", "type": "text/csv"},
        },
    }
    tif, csv = parse_results(item).assets
    assert tif.time == csv.time == np.datetime64("2023-01-02T23:00", "ns")  # UTC
    assert tif.grid == Grid("EPSG:32631", (256, 256), TRANSFORM)
    assert csv.grid is None
    assert tif.bands == ("B04",)


def test_collection_without_type_but_extent_and_old_documents() -> None:
    assert parse_results({"extent": {}, "assets": {}}).kind == "collection"
    assert parse_results({"assets": {}, "properties": {}}).kind == "item"
    assert parse_results({"assets": {}}).kind == "collection"
    assert parse_results({"type": "Collection"}).assets == ()
    assert parse_results({"type": "Collection", "assets": None, "links": None}).assets == ()


@pytest.mark.parametrize(
    ("fields", "nodata", "dtype"),
    [
        ({"raster:bands": [{"nodata": -9999, "data_type": "int16"}, {"nodata": 0}]}, -9999.0, "int16"),
        ({"raster:bands": [{"nodata": "nan", "data_type": "float32"}]}, math.nan, "float32"),
        ({"raster:bands": [{"nodata": "-inf"}]}, -math.inf, None),
        ({"bands": [{"name": "B1", "nodata": 3, "data_type": "uint8"}]}, 3.0, "uint8"),
        ({"nodata": 255}, 255.0, None),
        ({"raster:bands": [{"nodata": True, "data_type": 5}]}, None, None),
        ({"raster:bands": [{"nodata": 10**400}]}, None, None),
    ],
)
def test_nodata_and_data_type(fields: dict[str, Any], nodata: float | None, dtype: str | None) -> None:
    asset = only(collection(**fields))
    if nodata is not None and math.isnan(nodata):
        assert asset.nodata is not None and math.isnan(asset.nodata)
    else:
        assert asset.nodata == nodata
    assert asset.dtype == dtype


def test_band_names() -> None:
    assert only(collection(bands=[{"name": "B1"}], **{"eo:bands": [{"name": "X"}]})).bands == ("B1",)
    assert only(collection(**{"eo:bands": [{"name": "X"}, {"name": "Y"}]})).bands == ("X", "Y")
    assert only(collection(**{"raster:bands": [{"name": "R"}]})).bands == ("R",)
    assert only(collection(**{"raster:bands": [{"statistics": {}}]})).bands == ()
    bad_bands: list[Any] = [[{"name": None}], [{"name": ""}], [{"name": 1}], [{}], [1], {"name": "B1"}]
    for bad in bad_bands:
        with pytest.raises(ResultsDocumentError) as info:
            parse_results(collection(**{"eo:bands": bad}))
        assert info.value.field == "assets.a.tif.eo:bands"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("openEO_2023-01-03Z.tif", "2023-01-03T00:00:00"),
        ("openEO_20231231T214100Z.tif", "2023-12-31T21:41:00"),
        ("openEO_2023-01-03T10:20:30Z_B04.tif", "2023-01-03T10:20:30"),
        ("3f0e_2023-01-03T00:00:00Z_openEO", "2023-01-03T00:00:00"),
        ("my_prefix_2024-02-29Z.nc", "2024-02-29T00:00:00"),
        ("openEO_2023-02-30Z.tif", None),  # no such day
        ("openEO_9999-01-01Z.tif", None),  # beyond datetime64[ns]
        ("openEO_2023-13-01Z_2023-01-05Z.tif", "2023-01-05T00:00:00"),  # the first valid one
        ("openEO.tif", None),
        ("openEO_2023-01-03.tif", None),
        ("", None),
    ],
)
def test_time_from_name(name: str, expected: str | None) -> None:
    value = time_from_name(name)
    assert value == (None if expected is None else np.datetime64(expected, "ns"))
    if value is not None:
        assert value.dtype == np.dtype("datetime64[ns]")


def test_with_file_name_times_keeps_existing() -> None:
    t = np.datetime64("2020-01-01", "ns")
    assets = [
        spec("k", "http://h/x/openEO_2023-01-03Z.tif?expires=1"),
        spec("k2", "http://h/x/openEO_2023-01-04Z.tif", time=t),
        spec("openEO_2023-01-05Z.tif", "http://h/x/"),  # no file name in the href: the key
        spec("k4", "http://h/x/openEO.tif"),
        spec("j_2023-01-06T00:00:00Z_openEO", "http://h/x/download?id=1"),  # 1.1-style key
        spec("k6", "http://h/x/openEO_2023-01-07Z%2Etif"),
    ]
    assert [a.time for a in with_file_name_times(assets)] == [
        np.datetime64("2023-01-03", "ns"),
        t,
        np.datetime64("2023-01-05", "ns"),
        None,
        np.datetime64("2023-01-06", "ns"),
        np.datetime64("2023-01-07", "ns"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-01-03T00:00:00Z", "2023-01-03T00:00:00"),
        ("2023-01-03T00:00:00.123456789Z", "2023-01-03T00:00:00.123456789"),
        ("2023-01-03T00:00:00.1234567891234Z", "2023-01-03T00:00:00.123456789"),
        ("2023-01-03t10:00:00z", "2023-01-03T10:00:00"),
        ("2023-01-03 10:00:00", "2023-01-03T10:00:00"),
        ("2023-01-03T00:30:00-02:30", "2023-01-03T03:00:00"),
        ("2023-01-03T00:30:00+0100", "2023-01-02T23:30:00"),
        ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00"),
        ("2023-01-03", "2023-01-03T00:00:00"),
    ],
)
def test_datetimes(text: str, expected: str) -> None:
    assert only(collection(datetime=text)).time == np.datetime64(expected, "ns")


@pytest.mark.parametrize(
    "text", ["now", "today", "NaT", "2023", "2023-01", "9999-01-01T00:00:00Z", "2023-02-30T00:00:00Z", "x", ""]
)
def test_bad_datetimes(text: str) -> None:
    with pytest.raises(ResultsDocumentError, match="assets.a.tif.datetime") as info:
        parse_results(collection(datetime=text))
    assert info.value.field == "assets.a.tif.datetime"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"proj:shape": [1, 2, 3]}, "proj:shape"),
        ({"proj:shape": [0, 2]}, "proj:shape"),
        ({"proj:shape": [2.0, 2]}, "proj:shape"),
        ({"proj:shape": "2x2"}, "proj:shape"),
        ({"proj:bbox": [0, 0, 1]}, "proj:bbox"),
        ({"proj:bbox": [1, 0, 0, 1]}, "proj:bbox"),  # inverted
        ({"proj:bbox": [0, 0, 0, 1]}, "proj:bbox"),  # empty
        ({"proj:bbox": [0, 0, math.inf, 1]}, "proj:bbox"),
        ({"proj:bbox": [0, 0, "1", 1]}, "proj:bbox"),
        ({"proj:bbox": [-1e308, 0, 1e308, 1]}, "proj:bbox"),  # pixel size overflows
        ({"proj:bbox": [0, 0, 5e-324, 1]}, "proj:bbox"),  # pixel size underflows to zero
        ({"proj:bbox": [0, 0, 1, 1], "proj:transform": [1, 2, 3]}, "proj:transform"),
        ({"proj:transform": [0, 0, 3, 0, 0, 1]}, "proj:transform"),  # singular
        ({"proj:transform": [1, 0, 3, 0, math.nan, 1]}, "proj:transform"),
        ({"proj:epsg": "32631", "proj:code": None}, "proj:epsg"),
        ({"proj:epsg": -1, "proj:code": None}, "proj:epsg"),
        ({"proj:epsg": True, "proj:code": None}, "proj:epsg"),
    ],
)
def test_bad_grids(fields: dict[str, Any], field: str) -> None:
    doc = collection(**{"proj:code": "EPSG:1", "proj:shape": [2, 2], "proj:bbox": [0, 0, 1, 1], **fields})
    with pytest.raises(ResultsDocumentError) as info:
        parse_results(doc)
    assert info.value.field == f"assets.a.tif.{field}"
    assert f"assets.a.tif.{field}" in str(info.value)


def test_tables_have_no_grid_even_with_bad_proj_fields() -> None:
    doc = collection(type="application/json", **{"proj:epsg": 4326, "proj:shape": [1, 1], "proj:bbox": [1, 1, 0, 0]})
    assert only(doc).grid is None


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"type": "Catalog", "assets": {}}, "type"),
        ({"type": None}, "type"),
        ({"type": "Collection", "assets": []}, "assets"),
        ({"type": "Collection", "assets": {"a": "http://h/a"}}, "assets.a"),
        ({"type": "Collection", "assets": {"a": {}}}, "assets.a.href"),
        ({"type": "Collection", "assets": {"a": {"href": ""}}}, "assets.a.href"),
        ({"type": "Collection", "assets": {"a": {"href": "x", "type": 1}}}, "assets.a.type"),
        ({"type": "Collection", "assets": {"a": {"href": "x", "roles": [1]}}}, "assets.a.roles"),
        ({"type": "Collection", "links": {}}, "links"),
        ({"type": "Collection", "links": [{"rel": "self"}]}, "links[0]"),
        ({"type": "Collection", "links": [{"href": "x"}, "x"]}, "links[1]"),
        ({"type": "Collection", "openeo:status": "done"}, "openeo:status"),
        ({"type": "Feature", "properties": []}, "properties"),
        ({"type": "Feature", "properties": {"datetime": 20230103}}, "properties.datetime"),
        ({"type": "Feature", "properties": {"start_datetime": "soon"}}, "properties.start_datetime"),
    ],
)
def test_malformed_documents(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ResultsDocumentError) as info:
        parse_results(doc)
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("doc", [None, [], "{}", 1])
def test_not_an_object(doc: Any) -> None:
    with pytest.raises(ResultsDocumentError, match="JSON object"):
        parse_results(doc)
    with pytest.raises(ResultsDocumentError, match="JSON object"):
        parse_item(doc)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"type": "Collection", "properties": {}, "assets": {}}, "type"),
        ({"type": "Feature", "assets": {}}, "properties"),
        ({"type": "Feature", "properties": {}}, "assets"),
        ({"type": "Feature", "id": "i", "properties": {}, "assets": {"openEO": {"href": 1}}}, "assets.openEO.href"),
        ({"type": "Feature", "id": "i", "properties": {"datetime": "x"}, "assets": {}}, "properties.datetime"),
    ],
)
def test_malformed_items(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ResultsDocumentError) as info:
        parse_item(doc)
    assert info.value.field == field
    assert field in str(info.value)
    if "id" in doc:
        assert "item 'i'" in str(info.value)


# ------------------------------------------------------------------------------------------------
# select, formats, URLs


def test_asset_format() -> None:
    assert asset_format("image/tiff; application=geotiff; profile=cloud-optimized") == "geotiff"
    assert asset_format("image/tiff") == "geotiff"
    assert asset_format("application/x-netcdf") == "netcdf"
    assert asset_format("application/x-hdf5") == "netcdf"
    assert asset_format("application/json") == "json"
    assert asset_format("application/geo+json") == "geojson"
    assert asset_format("text/csv") == "csv"
    assert asset_format("application/parquet; profile=geo") == "parquet"
    assert asset_format("application/zip+zarr") == "zarr"
    assert asset_format("Application/X-NetCDF") == "netcdf"
    assert asset_format("application/octet-stream", "http://h/a/openEO.TIF?x=1") == "geotiff"
    assert asset_format(None, "http://h/a/download?file=x.nc", "openEO.nc") == "netcdf"
    assert asset_format("image/png", "http://h/a.png") is None
    assert asset_format(None) is None


def test_require_format_names_asset_and_media_type() -> None:
    png = spec("preview.png", "http://h/preview.png?sig=SECRET", media_type="image/png", roles=("thumbnail",))
    with pytest.raises(UnsupportedMediaTypeError, match="'preview.png'.*'image/png'") as info:
        require_format(png)
    assert (info.value.key, info.value.media_type) == ("preview.png", "image/png")
    assert "SECRET" not in str(info.value)
    assert require_format(spec("a", "http://h/a.csv")) == "csv"


ASSETS = (
    spec("openEO_2023-01-03Z.tif", "http://h/1.tif", media_type=COG),
    spec("openEO.nc", "http://h/openEO.nc", media_type=NETCDF),
    spec("timeseries.json", "http://h/ts.json", media_type="application/json"),
    spec("job-results.json", "http://h/jr.json", media_type="application/json", roles=("metadata",)),
    spec("thumb.png", "http://h/t.png?sig=SECRET", media_type="image/png", roles=("thumbnail", "overview")),
    spec("noroles.csv", "http://h/n.csv", roles=()),
)


@pytest.mark.parametrize(
    ("wanted", "keys"),
    [
        (None, ["openEO_2023-01-03Z.tif", "openEO.nc", "timeseries.json", "noroles.csv"]),
        ("openEO.nc", ["openEO.nc"]),
        (["thumb.png", "openEO.nc"], ["openEO.nc", "thumb.png"]),  # document order
        ("metadata", ["job-results.json"]),
        ("overview", ["thumb.png"]),
        ("image/png", ["thumb.png"]),
        (NETCDF, ["openEO.nc"]),
        ("json", ["timeseries.json", "job-results.json"]),
        ("geotiff", ["openEO_2023-01-03Z.tif"]),
        ("GTiff", ["openEO_2023-01-03Z.tif"]),  # openEO format names, any case
        ("netCDF", ["openEO.nc"]),
        ("csv", ["noroles.csv"]),
    ],
)
def test_select(wanted: Any, keys: list[str]) -> None:
    assert [a.key for a in select(ASSETS, wanted).chosen] == keys


def test_select_error_lists_assets() -> None:
    with pytest.raises(ResultsDocumentError) as info:
        select(ASSETS, ["B04", "zarr"])
    message = str(info.value)
    assert info.value.field == "assets"
    assert "['B04', 'zarr']" in message
    for a in ASSETS:
        assert a.key in message
    assert "openEO.nc (application/x-netcdf, roles ['data'])" in message
    assert "SECRET" not in message  # hrefs are not listed
    with pytest.raises(ResultsDocumentError, match="the results have: none"):
        select([], "data")
    assert select([], None).chosen == ()


def test_url_expiry() -> None:
    assert url_expiry(f"{ROOT}/assets/u/s/a.tif?expires=1704905316") == 1704905316.0
    assert url_expiry(f"{ROOT}/assets/a.tif") is None
    assert url_expiry(f"{ROOT}/assets/a.tif?expires=soon") is None
    info = ResultsInfo("j", "finished", "collection", None, (spec("a", "h?expires=5"), spec("b", "h?expires=3")))
    assert info.expires == 3.0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"{ROOT}/assets/dXNlcg/SIG/a.tif?expires=123",
            f"{ROOT}/assets/dXNlcg/SIG/a.tif?expires=REDACTED",
        ),
        (
            "https://b.s3.amazonaws.com/j/a.tif?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F1&X-Amz-Signature=abc123&x=1",
            "https://b.s3.amazonaws.com/j/a.tif?X-Amz-Algorithm=REDACTED&X-Amz-Credential=REDACTED"
            "&X-Amz-Signature=REDACTED&x=1",
        ),
        (
            "https://acct.blob.core.windows.net/c/a.tif?sv=2021&se=2024-01-01&sp=r&sig=abc%3D&page=2",
            "https://acct.blob.core.windows.net/c/a.tif?sv=REDACTED&se=REDACTED&sp=REDACTED&sig=REDACTED&page=2",
        ),
        ("http://h/a.tif?access_token=t0k&format=GTiff", "http://h/a.tif?access_token=REDACTED&format=GTiff"),
        ("http://h/a.tif?X%2DAmz%2DSignature=abc", "http://h/a.tif?X%2DAmz%2DSignature=REDACTED"),
        ("http://user:pw@h/a.tif", "http://user:REDACTED@h/a.tif"),
        ("http://h/a.tif", "http://h/a.tif"),
        ("http://h/a.tif?spatial_extent=1&service=x", "http://h/a.tif?spatial_extent=1&service=x"),
        (
            "GET http://h/a?expires=1 failed (see http://h/b?x=1 and http://h/c?sig=S)",
            "GET http://h/a?expires=REDACTED failed (see http://h/b?x=1 and http://h/c?sig=REDACTED)",
        ),
        ("", ""),
        (None, "None"),
    ],
)
def test_redact(url: str | None, expected: str) -> None:
    assert redact(url) == expected


# ------------------------------------------------------------------------------------------------
# Hypothesis: malformed corpora never raise anything but ResultsDocumentError naming the field

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "Feature", "Collection", "finished", "2023-01-03T00:00:00Z", "EPSG:4326", "nan"]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=10,
)
NUMBERS = st.one_of(st.integers(-(2**40), 2**40), st.floats(), st.sampled_from([0, -0.0, 5e-324, 1e308, -1e308]))
DATETIME_TEXT = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.from_regex(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?)?([Zz]|[+-]\d{2}:?\d{2})?", fullmatch=True),
    st.sampled_from(["now", "today", "NaT", "", "2023", "T", "2023-01-03T", "+01:00"]),
)
# Values aimed at one field: wrong lengths, inverted boxes, zero sizes, bad names.
TARGETED: dict[str, st.SearchStrategy[Any]] = {
    "proj:shape": st.lists(st.integers(-3, 2**33), min_size=0, max_size=3),
    "proj:bbox": st.lists(NUMBERS, min_size=0, max_size=7),
    "proj:transform": st.lists(NUMBERS, min_size=0, max_size=10),
    "proj:epsg": st.one_of(st.integers(-5, 2**33), st.floats(), st.text(max_size=6)),
    "datetime": DATETIME_TEXT,
    "start_datetime": DATETIME_TEXT,
    "end_datetime": DATETIME_TEXT,
    "bands": st.lists(st.dictionaries(st.sampled_from(["name", "nodata", "data_type"]), JSON_SCALARS), max_size=3),
    "eo:bands": st.lists(st.dictionaries(st.sampled_from(["name", "nodata"]), JSON_SCALARS), max_size=3),
    "raster:bands": st.lists(
        st.dictionaries(st.sampled_from(["name", "nodata", "data_type"]), JSON_SCALARS), max_size=3
    ),
    "roles": st.lists(JSON_SCALARS, max_size=3),
    "type": st.sampled_from(["application/json", "text/csv", COG, "", "Feature", "Collection", "Catalog"]),
}
ASSET_FIELDS = (
    "href",
    "type",
    "roles",
    "title",
    "bands",
    "eo:bands",
    "raster:bands",
    "nodata",
    "proj:shape",
    "proj:bbox",
    "proj:epsg",
    "proj:code",
    "proj:transform",
    "datetime",
    "start_datetime",
    "end_datetime",
)
TOP_FIELDS = ("type", "assets", "links", "openeo:status", "properties", "id", "stac_version", "providers", "extent")
PROPERTY_FIELDS: tuple[str, ...] = ("datetime", "start_datetime", "end_datetime", "openeo:status")
PROPERTY_FIELDS += ("proj:shape", "proj:bbox", "proj:epsg", "proj:code")

Path_ = tuple[Any, ...]


def mutation_paths(doc: dict[str, Any]) -> list[Path_]:
    """Where to break a document: top-level fields, asset fields, band entries, links, properties."""
    paths: list[Path_] = [(name,) for name in TOP_FIELDS]
    for key in list(doc.get("assets", {}))[::2]:  # every other asset keeps the corpus small
        paths.append(("assets", key))
        paths += [("assets", key, name) for name in ASSET_FIELDS]
        for bands in ("bands", "eo:bands", "raster:bands"):
            paths += [("assets", key, bands, 0), ("assets", key, bands, 0, "name"), ("assets", key, bands, 0, "nodata")]
    for i in range(min(len(doc.get("links", [])), 3)):
        paths += [("links", i), ("links", i, "href"), ("links", i, "rel")]
    paths += [("properties", name) for name in PROPERTY_FIELDS]
    return paths


def field_of(path: Path_) -> set[str]:
    """The ``.field`` names an error about ``path`` may give."""
    if path[0] == "links":
        return {"links"} if len(path) == 1 else {f"links[{path[1]}]"}
    if path[0] == "properties":
        if path[1:] == ("openeo:status",):
            return {"openeo:status"}
        return {".".join(path[:2])}
    if path[0] == "assets" and len(path) > 3:
        return {".".join(path[:3])}  # a band entry: the band list is the field
    return {".".join(str(p) for p in path)}


def mutate(doc: Any, path: Path_, value: Any, delete: bool) -> bool:
    """Set (or delete) ``path`` in ``doc``; False if the path no longer leads anywhere."""
    parent = doc
    for step in path[:-1]:
        if isinstance(parent, dict) and isinstance(step, str) and step in parent:
            parent = parent[step]
        elif isinstance(parent, list) and isinstance(step, int) and step < len(parent):
            parent = parent[step]
        else:
            return False
    last = path[-1]
    if isinstance(parent, dict) and isinstance(last, str):
        if delete:
            parent.pop(last, None)
        else:
            parent[last] = value
        return True
    if isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        if delete:
            del parent[last]
        else:
            parent[last] = value
        return True
    return False


@st.composite
def mutations(draw: st.DrawFn, doc: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """A copy of ``doc`` with 1-3 fields broken, and the fields an error may name."""
    broken = copy.deepcopy(doc)
    fields: set[str] = set()
    paths = mutation_paths(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        last = path[-1]
        targeted = TARGETED.get(last) if isinstance(last, str) else None
        value = draw(st.one_of(targeted, JSON_VALUES) if targeted is not None and path[0] != "links" else JSON_VALUES)
        if mutate(broken, path, value, delete=draw(st.booleans())):
            fields |= field_of(path)
    return broken, fields


def check(parse: Callable[[], Any], fields: set[str]) -> Any:
    """``parse()``, or None if it raised a ResultsDocumentError naming one of ``fields`` (or a field inside one)."""
    try:
        return parse()
    except ResultsDocumentError as exc:
        assert exc.field is not None, str(exc)
        assert any(exc.field == f or exc.field.startswith((f"{f}.", f"{f}[")) for f in fields), (exc.field, fields)
        assert exc.field in str(exc)
        return None


class Corpus(dict):
    """Style -> (results document, item documents); a short repr keeps Hypothesis' failure reports readable."""

    def __repr__(self) -> str:
        return f"<documents of the styles {', '.join(self)}>"


@pytest.fixture(scope="module")
def corpus(written: list[WrittenAsset]) -> Corpus:
    """Valid documents of each style, and their item documents: the seeds of the malformed corpus."""
    out = Corpus()
    for style in STYLES:
        doc, items = documents(written, style)
        out[style] = (doc, list(items.values()))
    return out


def use_parsed(info: ResultsInfo | None, items: list[list[AssetSpec]]) -> None:
    """What the opener does next with parsed documents must not fail either."""
    assets = info.assets if info is not None else ()
    merged = with_file_name_times(merge_items(assets, items))
    for a in merged:
        assert a.format in (None, "geotiff", "netcdf", "json", "csv", "parquet", "geojson", "zarr")
        if a.grid is not None:
            minx, miny, maxx, maxy = a.grid.bounds
            assert minx < maxx and miny < maxy
        for t in (a.time, a.start, a.end):
            assert t is None or (isinstance(t, np.datetime64) and not np.isnat(t))
    select(merged, None)
    redact(" ".join(a.href for a in merged))
    if info is not None:
        assert info.expires is None or isinstance(info.expires, float)


@pytest.mark.parametrize("style", STYLES)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_malformed_results_documents(corpus: Corpus, style: str, data: st.DataObject) -> None:
    doc, _ = corpus[style]
    broken, fields = data.draw(mutations(doc))
    info = check(lambda: parse_results(json.loads(json.dumps(broken))), fields)
    if info is not None:
        use_parsed(info, [])


@pytest.mark.parametrize("style", ["stac-1.0", "stac-1.1"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_malformed_item_documents(corpus: Corpus, style: str, data: st.DataObject) -> None:
    doc, items = corpus[style]
    item = data.draw(st.sampled_from(items))
    broken, fields = data.draw(mutations(item))
    parsed = check(lambda: parse_item(broken), fields)
    use_parsed(parse_results(doc), [parsed] if parsed is not None else [])


@settings(max_examples=200, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(TOP_FIELDS), JSON_VALUES, max_size=6))
def test_random_documents(doc: dict[str, Any]) -> None:
    info = check(lambda: parse_results(doc), {"type", "assets", "links", "openeo:status", "properties"})
    items = check(lambda: parse_item(doc), {"type", "assets", "properties"})
    use_parsed(info, [items] if items is not None else [])


# ------------------------------------------------------------------------------------------------
# Hypothesis: file-name times and redaction

MOMENTS = st.datetimes(min_value=datetime(1678, 1, 1), max_value=datetime(2261, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)
PREFIXES = st.text("abcdefghijklmnopqrstuvwxyz_-ABC", max_size=10)


@settings(max_examples=200, deadline=None)
@given(moment=MOMENTS, prefix=PREFIXES, suffix=st.sampled_from([".tif", "_B04.tif", ".nc", "", "_openEO"]))
def test_time_from_name_round_trips(moment: datetime, prefix: str, suffix: str) -> None:
    expected = np.datetime64(moment.isoformat(), "ns")
    compact = f"{prefix}_{moment:%Y%m%dT%H%M%S}Z{suffix}"
    assert time_from_name(compact) == expected
    iso = f"{prefix}_{moment.isoformat()}Z{suffix}"
    assert time_from_name(iso) == expected
    day = moment.replace(hour=0, minute=0, second=0)
    dashed = f"{prefix}_{day:%Y-%m-%d}Z{suffix}"
    assert time_from_name(dashed) == np.datetime64(day.isoformat(), "ns")
    # as geopyspark names a file: dashed at midnight, compact otherwise
    geopyspark = dashed if moment == day else compact
    assert with_file_name_times([spec("k", f"http://h/r/{geopyspark}?expires=1")])[0].time == expected


@settings(max_examples=200, deadline=None)
@given(moment=MOMENTS, offset=st.integers(-23 * 60 - 59, 23 * 60 + 59), fraction=st.integers(0, 999_999_999))
def test_datetime_offsets_round_trip(moment: datetime, offset: int, fraction: int) -> None:
    sign = "+" if offset >= 0 else "-"
    text = f"{moment.isoformat()}.{fraction:09d}{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    expected = np.datetime64((moment - timedelta(minutes=offset)).isoformat(), "ns") + np.timedelta64(fraction, "ns")
    assert only(collection(datetime=text)).time == expected


SIGNING = [
    "expires",
    "sig",
    "signature",
    "Signature",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "X-Goog-Signature",
    "token",
    "access_token",
    "se",
    "sv",
    "sp",
    "sr",
    "skoid",
    "Key-Pair-Id",
    "Policy",
]
SAFE_TEXT = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", max_size=8)
SECRET = st.text("BFGHIJKLMNOPQUVWXYZ+/%", min_size=4, max_size=16)  # no letter of REDACTED


@settings(max_examples=200, deadline=None)
@given(
    path=st.lists(SAFE_TEXT, max_size=4),
    params=st.lists(
        st.one_of(
            st.tuples(st.sampled_from(SIGNING), SECRET, st.booleans()),
            st.tuples(SAFE_TEXT.filter(lambda n: n not in {s.lower() for s in SIGNING}), SAFE_TEXT, st.just(False)),
        ),
        max_size=6,
    ),
)
def test_redact_never_shows_signing_values(path: list[str], params: list[tuple[str, str, bool]]) -> None:
    query = "&".join(f"{quote(name) if encode else name}={value}" for name, value, encode in params)
    url = f"https://h.example/{'/'.join(path)}" + (f"?{query}" if query else "")
    redacted = redact(url)
    assert urlsplit(redacted).path == urlsplit(url).path
    for name, value, _ in params:
        if name in SIGNING:
            assert value not in redacted
    kept = [(n, v) for n, v in parse_qsl(urlsplit(redacted).query) if v != "REDACTED"]
    assert all(n not in SIGNING for n, _ in kept)
    assert redact(redacted) == redacted  # idempotent
