"""Results documents of the local backend: style rules, item agreement, openEO API 1.2 schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from xr_openeo.testing.assets import WrittenAsset
from xr_openeo.testing.stac import (
    STYLES,
    JobSummary,
    item_document,
    item_ids,
    results_document,
)

SPEC = Path(__file__).parent.parent / "data" / "openeo-api-1.2.0.yaml"
SPEC_URI = "urn:openeo-api:1.2.0"
RESULTS_200 = "/paths/~1jobs~1{job_id}~1results/get/responses/200/content/application~1json/schema"
ROOT = "http://127.0.0.1:5000/openeo/1.2/jobs/j-123/results"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
UTM_BBOX = (640000.0, 5685000.0, 645120.0, 5690000.0)
DATES = ("2023-01-03", "2023-01-08", "2023-01-13")
BANDS = ("B04", "B08")
NC_SPAN = ("2023-01-01T00:00:00Z", "2023-01-20T00:00:00Z")
WORLD = [-180.0, -90.0, 180.0, 90.0]
FORBIDDEN_ASSET_FIELDS = {"proj:transform", "proj:wkt2", "nodata", "datetime"}


class FakeUrls:
    """Unsigned, predictable URLs under :data:`ROOT`."""

    def self_url(self) -> str:
        return ROOT

    def canonical(self) -> str:
        return f"{ROOT}/dXNlcg==/sig?expires=1704905316"

    def asset(self, key: str) -> str:
        return f"{ROOT}/assets/{key}"

    def item(self, item_id: str) -> str:
        return f"{ROOT}/items/{item_id}"


URLS = FakeUrls()


def make_job(status: str = "finished", **overrides: Any) -> JobSummary:
    fields: dict[str, Any] = {
        "id": "j-123",
        "title": "NDVI 2023",
        "description": None,
        "process": {"process_graph": {"save1": {"process_id": "save_result", "arguments": {}}}},
        "status": status,
        "created": "2023-02-01T10:00:00Z",
        "updated": "2023-02-01T10:05:00Z",
        "owner": "alice",
    }
    return JobSummary(**{**fields, **overrides})


def written(tmp_path: Path, key: str, media_type: str, **fields: Any) -> WrittenAsset:
    path = tmp_path / key
    path.write_bytes(b"\0" * 100)
    return WrittenAsset(key=key, path=path, media_type=media_type, **fields)


@pytest.fixture
def assets(tmp_path: Path) -> list[WrittenAsset]:
    """3 dated COGs (2 bands), a netCDF with a time range, a JSON time series, a dateless COG."""
    grid = {"epsg": 32631, "shape": (500, 512), "bbox": UTM_BBOX, "dtype": "float32"}
    cogs = [written(tmp_path, f"openEO_{d}Z.tif", COG, bands=BANDS, datetime=f"{d}T00:00:00Z", **grid) for d in DATES]
    nc = written(
        tmp_path,
        "openEO.nc",
        "application/x-netcdf",
        bands=("B02", "SCL"),
        start_datetime=NC_SPAN[0],
        end_datetime=NC_SPAN[1],
        nodata=0.0,
        **grid,
    )
    ts = written(tmp_path, "timeseries.json", "application/json", bands=BANDS)
    lonlat = {"epsg": 4326, "shape": (10, 20), "bbox": (4.9, 51.2, 5.1, 51.3)}
    dateless = written(tmp_path, "openEO.tif", COG, bands=("NDVI",), **lonlat)
    return [*cogs, nc, ts, dateless]


def rels(doc: dict, rel: str) -> list[dict]:
    return [link for link in doc["links"] if link["rel"] == rel]


# --------------------------------------------------------------------------------------------
# openEO API 1.2 schema


def admit_null(node: Any) -> Any:
    """Read ``nullable: true`` without ``type`` as admitting null (OpenAPI 3.0.2, as declared).

    OpenAPI 3.0.3 made ``nullable`` apply only beside ``type``; under that reading the spec's
    ``geometry: {nullable: true, allOf: [GeoJsonGeometry]}`` rejects the null its text allows.
    """
    if isinstance(node, list):
        return [admit_null(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: admit_null(v) for k, v in node.items()}
    if node.get("nullable") is True and "type" not in node:
        rest = {k: v for k, v in node.items() if k != "nullable"}
        return {"anyOf": [{"enum": [None]}, rest]}
    return node


@pytest.fixture(scope="module")
def spec() -> dict:
    return admit_null(yaml.load(SPEC.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader))


def validator(spec: dict, pointer: str) -> OAS30Validator:
    resource = Resource.from_contents(spec, default_specification=DRAFT4)
    return OAS30Validator(
        {"$ref": f"{SPEC_URI}#{pointer}"},
        registry=Registry().with_resource(SPEC_URI, resource),
        format_checker=OAS30Validator.FORMAT_CHECKER,
    )


@pytest.fixture(scope="module")
def results_schema(spec: dict) -> OAS30Validator:
    return validator(spec, RESULTS_200)


@pytest.fixture(scope="module")
def item_schema(spec: dict) -> OAS30Validator:
    """The Item form of the results response, with the job-id pattern dropped from ``id``.

    Item documents are not results responses: STAC-1.1 item ids carry a datetime (``:``),
    which the spec's ``job_id`` pattern forbids (see ``test_spec_job_id_pattern_rejects_...``).
    """
    schemas = spec["components"]["schemas"]
    item = schemas["batch_job_result"]
    item = {**item, "properties": {**item["properties"], "id": {"type": "string"}}}
    components = {**spec["components"], "schemas": {**schemas, "item_doc": item}}
    patched = {**spec, "components": components}
    return validator(patched, "/components/schemas/item_doc")


def assert_valid(schema: OAS30Validator, doc: dict) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in schema.iter_errors(doc)]
    assert not errors, errors


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("status", "partial"), [("finished", False), ("running", True), ("error", True)])
def test_results_documents_match_api_schema(
    results_schema: OAS30Validator,
    assets: list[WrittenAsset],
    style: str,
    status: str,
    partial: bool,
) -> None:
    doc = results_document(make_job(status), assets, style=style, urls=URLS, partial=partial)
    assert_valid(results_schema, doc)


@pytest.mark.parametrize("style", STYLES)
def test_unlocated_results_match_api_schema(
    results_schema: OAS30Validator, assets: list[WrittenAsset], style: str
) -> None:
    doc = results_document(make_job(), assets[4:5], style=style, urls=URLS)
    assert_valid(results_schema, doc)


@pytest.mark.parametrize("style", ["stac-1.0", "stac-1.1"])
def test_item_documents_match_api_item_schema(
    item_schema: OAS30Validator, assets: list[WrittenAsset], style: str
) -> None:
    for item_id in item_ids(assets, style=style, job_id="j-123"):
        item = item_document(make_job(), item_id, assets, style=style, urls=URLS)
        assert_valid(item_schema, item)


def test_spec_job_id_pattern_rejects_stac11_item_ids(spec: dict) -> None:
    schema = validator(spec, "/components/schemas/job_id")
    assert schema.is_valid("openEO_2023-01-03Z.tif")
    assert not schema.is_valid("j-123_2023-01-03T00:00:00Z")


# --------------------------------------------------------------------------------------------
# style "item": API 1.0 STAC Item (python-driver)


def test_item_style(assets: list[WrittenAsset]) -> None:
    doc = results_document(make_job(), assets, style="item", urls=URLS)
    assert (doc["type"], doc["stac_version"], doc["id"]) == ("Feature", "0.9.0", "j-123")
    assert doc["openeo:status"] == "finished"
    assert "openeo:status" not in doc["properties"]
    props = doc["properties"]
    assert props["datetime"] is None
    assert (props["start_datetime"], props["end_datetime"]) == NC_SPAN
    assert props["proj:epsg"] == 32631 and props["proj:code"] == "EPSG:32631"
    assert props["proj:shape"] == [500, 512] and props["proj:bbox"] == list(UTM_BBOX)
    assert doc["geometry"]["type"] == "Polygon"
    west, south, east, north = doc["bbox"]
    assert doc["geometry"]["coordinates"][0][0] == [west, south]
    assert doc["geometry"]["coordinates"][0][2] == [east, north]
    assert [link["rel"] for link in doc["links"]] == ["self", "canonical"]
    assert list(doc["assets"]) == [a.key for a in assets]
    cog = doc["assets"]["openEO_2023-01-03Z.tif"]
    assert cog == {
        "href": f"{ROOT}/assets/openEO_2023-01-03Z.tif",
        "type": COG,
        "roles": ["data"],
        "title": "openEO_2023-01-03Z.tif",
        "eo:bands": [{"name": "B04"}, {"name": "B08"}],
        "file:size": 100,
    }
    assert item_ids(assets, style="item", job_id="j-123") == {}


def test_item_style_single_date_and_unlocated(assets: list[WrittenAsset]) -> None:
    dated = results_document(make_job(), assets[:1], style="item", urls=URLS)
    assert dated["properties"]["datetime"] == "2023-01-03T00:00:00Z"
    assert "start_datetime" not in dated["properties"]
    unlocated = results_document(make_job(), assets[4:5], style="item", urls=URLS)
    assert unlocated["geometry"] is None and "bbox" not in unlocated
    assert unlocated["properties"] == {"datetime": None}


def test_item_style_has_no_item_documents(assets: list[WrittenAsset]) -> None:
    with pytest.raises(ValueError, match="no item documents"):
        item_document(make_job(), "openEO.nc", assets, style="item", urls=URLS)


# --------------------------------------------------------------------------------------------
# style "stac-1.0": geopyspark default Collection


def test_stac10_collection(assets: list[WrittenAsset]) -> None:
    doc = results_document(make_job(), assets, style="stac-1.0", urls=URLS)
    assert (doc["type"], doc["stac_version"], doc["id"]) == ("Collection", "1.0.0", "j-123")
    assert (doc["title"], doc["license"]) == ("NDVI 2023", "proprietary")
    assert doc["openeo:status"] == "finished"
    assert doc["description"] == "Results for batch job j-123"
    extensions = [ext.split("/")[3] for ext in doc["stac_extensions"]]
    assert extensions == ["eo", "file", "processing", "projection"]
    (provider,) = doc["providers"]
    assert provider["processing:expression"] == {
        "format": "openeo",
        "expression": make_job().process["process_graph"],
    }
    assert doc["extent"]["temporal"]["interval"] == [list(NC_SPAN)]
    assert "item_assets" not in doc
    assert rels(doc, "self") == [{"rel": "self", "href": ROOT, "type": "application/json"}]
    canonical = {"rel": "canonical", "href": URLS.canonical(), "type": "application/json"}
    assert rels(doc, "canonical") == [canonical]
    items = rels(doc, "item")
    assert {link["type"] for link in items} == {"application/geo+json"}
    # no item for timeseries.json
    expected = [f"openEO_{d}Z.tif" for d in DATES] + ["openEO.nc", "openEO.tif"]
    assert [link["href"] for link in items] == [URLS.item(key) for key in expected]


def test_stac10_collection_assets(assets: list[WrittenAsset]) -> None:
    doc = results_document(make_job(), assets, style="stac-1.0", urls=URLS)
    assert list(doc["assets"]) == [a.key for a in assets]
    cog = doc["assets"]["openEO_2023-01-08Z.tif"]
    assert cog == {
        "href": f"{ROOT}/assets/openEO_2023-01-08Z.tif",
        "type": COG,
        "roles": ["data"],
        "title": "openEO_2023-01-08Z.tif",
        "eo:bands": [
            {"name": "B04", "common_name": "red", "center_wavelength": 0.665},
            {"name": "B08", "common_name": "nir", "center_wavelength": 0.842},
        ],
        "raster:bands": [{"name": "B04"}, {"name": "B08"}],
        "proj:epsg": 32631,
        "proj:code": "EPSG:32631",
        "proj:shape": [500, 512],
        "proj:bbox": list(UTM_BBOX),
        "file:size": 100,
    }
    assert doc["assets"]["openEO.nc"]["eo:bands"] == [
        {"name": "B02", "common_name": "blue", "center_wavelength": 0.49},
        {"name": "SCL"},
    ]
    ts = doc["assets"]["timeseries.json"]
    assert ts["type"] == "application/json" and ts["title"] == "timeseries.json"
    assert not [k for k in ts if k.startswith("proj:")]
    for asset in doc["assets"].values():
        assert not FORBIDDEN_ASSET_FIELDS & set(asset)


# --------------------------------------------------------------------------------------------
# style "stac-1.1": geopyspark STAC 1.1 Collection


def test_stac11_collection(assets: list[WrittenAsset]) -> None:
    doc = results_document(make_job(), assets, style="stac-1.1", urls=URLS)
    assert (doc["type"], doc["stac_version"]) == ("Collection", "1.1.0")
    dateless = ["j-123_openEO.nc", "j-123_timeseries", "j-123_openEO.tif"]
    ids = [f"j-123_{d}T00:00:00Z" for d in DATES] + dateless
    assert [link["href"] for link in rels(doc, "item")] == [URLS.item(i) for i in ids]  # JSON too
    assert list(doc["assets"]) == [f"{i}_openEO" for i in ids]
    cog = doc["assets"]["j-123_2023-01-03T00:00:00Z_openEO"]
    assert cog["href"] == f"{ROOT}/assets/openEO_2023-01-03Z.tif"
    assert cog["title"] == "openEO_2023-01-03Z.tif"
    assert cog["bands"] == [
        {"name": "B04", "eo:common_name": "red", "eo:center_wavelength": 0.665},
        {"name": "B08", "eo:common_name": "nir", "eo:center_wavelength": 0.842},
    ]
    assert (cog["proj:code"], cog["proj:shape"]) == ("EPSG:32631", [500, 512])
    for asset in doc["assets"].values():
        assert not (FORBIDDEN_ASSET_FIELDS | {"eo:bands", "raster:bands"}) & set(asset)
    assert doc["item_assets"] == {"openEO": {"type": COG, "roles": ["data"], "title": "openEO", "bands": cog["bands"]}}


def test_stac11_same_date_assets_share_an_item(tmp_path: Path) -> None:
    day = "2023-01-03T00:00:00Z"
    per_band = [written(tmp_path, f"openEO_2023-01-03Z_{b}.tif", COG, bands=(b,), datetime=day) for b in BANDS]
    job = make_job()
    assert list(item_ids(per_band, style="stac-1.1", job_id="j-123")) == [f"j-123_{day}"]
    doc = results_document(job, per_band, style="stac-1.1", urls=URLS)
    assert list(doc["assets"]) == [f"j-123_{day}_B04", f"j-123_{day}_B08"]
    assert list(doc["item_assets"]) == ["B04", "B08"]
    item = item_document(job, f"j-123_{day}", per_band, style="stac-1.1", urls=URLS)
    assert list(item["assets"]) == ["B04", "B08"]
    assert item["properties"]["datetime"] == "2023-01-03T00:00:00Z"


# --------------------------------------------------------------------------------------------
# items agree with the collection


@pytest.mark.parametrize("style", ["stac-1.0", "stac-1.1"])
def test_item_ids_links_and_documents_agree(assets: list[WrittenAsset], style: str) -> None:
    job = make_job()
    doc = results_document(job, assets, style=style, urls=URLS)
    items = item_ids(assets, style=style, job_id=job.id)
    assert [link["href"] for link in rels(doc, "item")] == [URLS.item(i) for i in items]
    collection_hrefs = {a["href"] for a in doc["assets"].values()}
    for item_id, members in items.items():
        item = item_document(job, item_id, assets, style=style, urls=URLS)
        assert (item["type"], item["stac_version"]) == ("Feature", doc["stac_version"])
        assert (item["id"], item["collection"]) == (item_id, job.id)
        assert rels(item, "self")[0]["href"] == URLS.item(item_id)
        assert rels(item, "collection")[0]["href"] == ROOT
        hrefs = [a["href"] for a in item["assets"].values()]
        assert hrefs == [URLS.asset(a.key) for a in members]
        assert set(hrefs) <= collection_hrefs
        if style == "stac-1.1":
            assert list(item["assets"]) == ["openEO"]
            fields = set(item["assets"]["openEO"])
            assert "bands" in fields and "eo:bands" not in fields
        else:
            assert list(item["assets"]) == [item_id]


@pytest.mark.parametrize("style", ["stac-1.0", "stac-1.1"])
def test_item_document_time_space_and_job_grid(assets: list[WrittenAsset], style: str) -> None:
    job = make_job()
    ids = list(item_ids(assets, style=style, job_id=job.id))
    dated = item_document(job, ids[1], assets, style=style, urls=URLS)
    assert dated["properties"]["datetime"] == "2023-01-08T00:00:00Z"
    nc = item_document(job, ids[3], assets, style=style, urls=URLS)
    assert nc["properties"]["datetime"] is None
    assert (nc["properties"]["start_datetime"], nc["properties"]["end_datetime"]) == NC_SPAN
    dateless = item_document(job, ids[-1], assets, style=style, urls=URLS)
    assert dateless["properties"]["datetime"] is None
    assert "start_datetime" not in dateless["properties"]
    assert dateless["bbox"] == pytest.approx([4.9, 51.2, 5.1, 51.3])
    # job-level grid (first raster) in properties and the non-standard top-level epsg, as geopyspark
    assert dateless["epsg"] == 32631
    assert dateless["properties"]["proj:code"] == "EPSG:32631"
    assert dateless["properties"]["proj:shape"] == [500, 512]
    # the asset itself keeps its own grid
    assert next(iter(dateless["assets"].values()))["proj:code"] == "EPSG:4326"


def test_stac11_json_item_is_unlocated(assets: list[WrittenAsset]) -> None:
    item = item_document(make_job(), "j-123_timeseries", assets, style="stac-1.1", urls=URLS)
    assert item["geometry"] is None and "bbox" not in item
    assert item["assets"]["openEO"]["type"] == "application/json"


def test_stac11_dateless_stems_disambiguated(assets: list[WrittenAsset]) -> None:
    alone = item_ids(assets[3:4], style="stac-1.1", job_id="j-123")
    assert list(alone) == ["j-123_openEO"]
    both = item_ids(assets[3:4] + assets[5:], style="stac-1.1", job_id="j-123")
    assert list(both) == ["j-123_openEO.nc", "j-123_openEO.tif"]


def test_unknown_item_id(assets: list[WrittenAsset]) -> None:
    with pytest.raises(KeyError):
        item_document(make_job(), "timeseries.json", assets, style="stac-1.0", urls=URLS)


# --------------------------------------------------------------------------------------------
# extents


def test_extent_reprojected_to_lonlat(assets: list[WrittenAsset]) -> None:
    doc = results_document(make_job(), assets[:3], style="stac-1.0", urls=URLS)
    (bbox,) = doc["extent"]["spatial"]["bbox"]
    # UTM 31N x=640 km lies 140 km east of 3°E: about 2.01° of longitude at 51.3°N
    assert bbox == pytest.approx([5.0082, 51.2978, 5.0836, 51.3440], abs=1e-3)
    item = results_document(make_job(), assets[:3], style="item", urls=URLS)
    assert item["bbox"] == bbox


def test_extent_union_and_fallbacks(assets: list[WrittenAsset]) -> None:
    doc = results_document(make_job(), assets, style="stac-1.1", urls=URLS)
    (bbox,) = doc["extent"]["spatial"]["bbox"]
    assert bbox == pytest.approx([4.9, 51.2, 5.1, 51.3440], abs=1e-3)
    unlocated = results_document(make_job(), assets[4:5], style="stac-1.0", urls=URLS)
    assert unlocated["extent"] == {
        "spatial": {"bbox": [WORLD]},
        "temporal": {"interval": [[None, None]]},
    }


# --------------------------------------------------------------------------------------------
# partial results and status


@pytest.mark.parametrize("status", ["created", "queued", "running"])
@pytest.mark.parametrize("style", ["stac-1.0", "stac-1.1"])
def test_partial_stub_collection(assets: list[WrittenAsset], style: str, status: str) -> None:
    so_far = assets[:2]
    doc = results_document(make_job(status), so_far, style=style, urls=URLS, partial=True)
    assert doc["type"] == "Collection" and doc["openeo:status"] == "running"
    assert doc["extent"] == {
        "spatial": {"bbox": [WORLD]},
        "temporal": {"interval": [[None, None]]},
    }
    assert [link["rel"] for link in doc["links"]] == ["canonical"]
    hrefs = sorted(a["href"] for a in doc["assets"].values())
    assert hrefs == sorted(URLS.asset(a.key) for a in so_far)
    assert "item_assets" not in doc


def test_partial_stub_item(assets: list[WrittenAsset]) -> None:
    doc = results_document(make_job("queued"), assets[:1], style="item", urls=URLS, partial=True)
    assert doc["openeo:status"] == "running"
    assert doc["bbox"] == WORLD
    assert doc["properties"] == {"datetime": None}
    assert [link["rel"] for link in doc["links"]] == ["canonical"]
    assert list(doc["assets"]) == ["openEO_2023-01-03Z.tif"]


@pytest.mark.parametrize("status", ["error", "canceled"])
@pytest.mark.parametrize("style", STYLES)
def test_partial_after_stop_lists_existing_assets(assets: list[WrittenAsset], style: str, status: str) -> None:
    doc = results_document(make_job(status), assets[:2], style=style, urls=URLS, partial=True)
    assert doc["openeo:status"] == status
    assert len(doc["assets"]) == 2
    assert rels(doc, "self") and rels(doc, "canonical")


@pytest.mark.parametrize("style", STYLES)
def test_partial_on_finished_job_is_the_full_document(assets: list[WrittenAsset], style: str) -> None:
    job = make_job()
    full = results_document(job, assets, style=style, urls=URLS)
    assert results_document(job, assets, style=style, urls=URLS, partial=True) == full


@pytest.mark.parametrize("status", ["created", "queued", "running", "error", "canceled"])
def test_unfinished_without_partial_is_refused(assets: list[WrittenAsset], status: str) -> None:
    with pytest.raises(ValueError, match="finished"):
        results_document(make_job(status), assets, style="stac-1.0", urls=URLS)


def test_unknown_style_and_status(assets: list[WrittenAsset]) -> None:
    with pytest.raises(ValueError, match="style"):
        results_document(make_job(), assets, style="stac-2.0", urls=URLS)
    with pytest.raises(ValueError, match="status"):
        results_document(make_job("submitted"), assets, style="item", urls=URLS, partial=True)


# --------------------------------------------------------------------------------------------
# plain JSON, deterministic


@pytest.mark.parametrize("style", STYLES)
def test_documents_are_plain_json_and_deterministic(assets: list[WrittenAsset], style: str) -> None:
    job = make_job()
    doc = results_document(job, assets, style=style, urls=URLS)
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc  # tuples would not round-trip equal
    assert results_document(job, list(assets), style=style, urls=URLS) == doc
    for item_id in item_ids(assets, style=style, job_id=job.id):
        item = item_document(job, item_id, assets, style=style, urls=URLS)
        assert json.loads(json.dumps(item, allow_nan=False)) == item
