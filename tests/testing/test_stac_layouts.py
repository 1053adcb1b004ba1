"""Results documents of split outputs, gdalinfo and model assets, in every style.

Shapes after openeo-python-driver ``views.py`` (``_asset_object`` falls back to the job's
``proj:*``; ``ml_model_metadata.json`` items; STAC 1.1 ``{item}_{asset}`` keys and ``item_assets``)
and openeo-geopyspark-driver's ``tests/test_batch_result.py`` (one item per date and tile, each
holding ``openEO``; ``*_gdalinfo.json`` metadata assets in the item of their GeoTIFF) and
``tests/mlmodel/test_catboost.py`` (the model's item document).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xr_openeo.testing.assets import WrittenAsset
from xr_openeo.testing.stac import JobSummary, item_document, item_ids, results_document
from xr_openeo.testing.stac_fields import bbox_4326
from xr_openeo.testing.writers import save_result

EPSG = 32631
X0, Y0, RES = 500_000.0, 5_000_000.0, 10.0
JOB_BBOX = [X0, Y0 - 2600, X0 + 2700, Y0]  # the union of the tiles, in the raster's CRS
TILES = [f"31TEK_{c}_{r}" for r in range(3) for c in range(3)]
DAYS = ("2023-01-03", "2023-01-08")
ROOT = "http://127.0.0.1:5000/openeo/1.2/jobs/j-123/results"


class Urls:
    def self_url(self) -> str:
        return ROOT

    def canonical(self) -> str:
        return f"{ROOT}/dXNlcg==/sig?expires=1704905316"

    def asset(self, key: str) -> str:
        return f"{ROOT}/assets/{key}"

    def item(self, item_id: str) -> str:
        return f"{ROOT}/items/{item_id}"


URLS = Urls()
JOB = JobSummary(
    id="j-123",
    title=None,
    description=None,
    process={"process_graph": {}},
    status="finished",
    created="2023-02-01T10:00:00Z",
    updated="2023-02-01T10:05:00Z",
    owner="alice",
)


def cube(dates=DAYS) -> xr.DataArray:
    coords = {
        "t": pd.to_datetime(list(dates)).to_numpy(),
        "bands": ["B04", "B08"],
        "y": Y0 - RES * (np.arange(260) + 0.5),
        "x": X0 + RES * (np.arange(270) + 0.5),
    }
    return xr.DataArray(np.ones(tuple(len(c) for c in coords.values()), "float32"), dims=tuple(coords), coords=coords)


@pytest.fixture(params=["tile", "job"])
def tiled(request, tmp_path) -> tuple[str, list[WrittenAsset]]:
    """Two dates in nine 1 km tiles with gdalinfo assets and a model, in either proj:* layout."""
    options = {
        "tile_grid": "utm-1km",
        "tile_grid_proj": request.param,
        "attach_gdalinfo_assets": True,
        "ml_model": True,
    }
    return request.param, save_result(cube(), "GTiff", None, tmp_path, crs_epsg=EPSG, job_options=options)


def tif_name(day: str, tile: str) -> str:
    return f"openEO_{day}Z_{tile}.tif"


def test_stac10_tiles_have_an_item_each_metadata_and_model_none_of_their_own(tiled):
    proj, assets = tiled
    doc = results_document(JOB, assets, style="stac-1.0", urls=URLS)

    tifs = [tif_name(d, t) for d in DAYS for t in TILES]
    assert list(doc["assets"]) == [k for name in tifs for k in (name, name + "_gdalinfo.json")] + [
        "randomforest.model.tar.gz"
    ]
    links = [link for link in doc["links"] if link["rel"] == "item"]
    assert [link["href"] for link in links] == [URLS.item(n) for n in tifs] + [URLS.item("ml_model_metadata.json")]
    assert {link["type"] for link in links[:-1]} == {"application/geo+json"} and links[-1]["type"] == "application/json"
    assert doc["stac_extensions"][-1] == "https://stac-extensions.github.io/ml-model/v1.0.0/schema.json"
    assert doc["summaries"]["ml-model:architecture"] == ["random-forest"]

    first = doc["assets"][tif_name(DAYS[0], TILES[0])]
    last = doc["assets"][tif_name(DAYS[0], TILES[-1])]
    if proj == "tile":  # each tile its own grid
        assert (first["proj:bbox"], first["proj:shape"]) == ([X0, Y0 - 1000, X0 + 1000, Y0], [100, 100])
        assert (last["proj:bbox"], last["proj:shape"]) == ([X0 + 2000, Y0 - 2600, X0 + 2700, Y0 - 2000], [60, 70])
    else:  # every tile the job's: several files of one date claim one grid
        for tile in (first, last):
            assert (tile["proj:bbox"], tile["proj:shape"]) == (JOB_BBOX, [260, 270])
    info = doc["assets"][tif_name(DAYS[0], TILES[0]) + "_gdalinfo.json"]
    model = doc["assets"]["randomforest.model.tar.gz"]
    assert (info["type"], info["roles"]) == ("application/json", ["metadata"])
    assert (model["type"], model["roles"]) == ("application/octet-stream", ["data"])
    for other in (info, model):  # the python-driver's fallback: non-raster assets show the job's grid
        assert (other["proj:bbox"], other["proj:shape"], other["proj:epsg"]) == (JOB_BBOX, [260, 270], EPSG)
        assert "eo:bands" not in other


def test_stac10_tile_items_locate_their_tile_and_carry_the_job_grid(tiled):
    _, assets = tiled
    ids = item_ids(assets, style="stac-1.0", job_id="j-123")
    first = item_document(JOB, tif_name(DAYS[1], TILES[0]), assets, style="stac-1.0", urls=URLS)
    last = item_document(JOB, tif_name(DAYS[1], TILES[-1]), assets, style="stac-1.0", urls=URLS)

    assert list(ids[tif_name(DAYS[1], TILES[0])]) == [a for a in assets if a.key == tif_name(DAYS[1], TILES[0])]
    assert first["properties"]["datetime"] == "2023-01-08T00:00:00Z"
    assert first["properties"]["proj:bbox"] == JOB_BBOX and first["properties"]["proj:shape"] == [260, 270]
    assert first["bbox"][0] < last["bbox"][0] and first["bbox"][3] > last["bbox"][3]  # north-west vs south-east
    tile = next(a for a in assets if a.key == tif_name(DAYS[1], TILES[-1]))
    assert last["bbox"] == pytest.approx(list(bbox_4326(tile)))
    assert list(last["assets"]) == [tile.key]


def test_model_item_is_the_ml_model_document(tiled):
    _, assets = tiled
    model = assets[-1].model
    for style in ("stac-1.0", "stac-1.1"):
        assert item_ids(assets, style=style, job_id="j-123")["ml_model_metadata.json"] == [assets[-1]]
        doc = item_document(JOB, "ml_model_metadata.json", assets, style=style, urls=URLS)
        assert (doc["id"], doc["collection"], doc["type"]) == (model.id, "j-123", "Feature")
        assert doc["stac_extensions"] == ["https://stac-extensions.github.io/ml-model/v1.0.0/schema.json"]
        props = doc["properties"]
        assert (props["datetime"], props["start_datetime"], props["end_datetime"]) == (
            None,
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        )
        assert props["ml-model:architecture"] == "random-forest"
        assert doc["bbox"] == [-179.999, -89.999, 179.999, 89.999]
        assert doc["assets"] == {
            "model": {
                "href": URLS.asset("randomforest.model.tar.gz"),
                "type": "application/octet-stream",
                "title": "org.apache.spark.mllib.tree.model.RandomForestModel",
                "roles": ["ml-model:checkpoint"],
            }
        }


def test_stac11_one_item_per_date_and_tile_with_its_gdalinfo(tiled):
    proj, assets = tiled
    doc = results_document(JOB, assets, style="stac-1.1", urls=URLS)

    ids = [f"j-123_{d}T00:00:00Z_{t}" for d in DAYS for t in TILES]
    links = [link["href"] for link in doc["links"] if link["rel"] == "item"]
    assert links == [URLS.item(i) for i in ids] + [URLS.item("ml_model_metadata.json")]
    first_id = ids[0]
    tif = tif_name(DAYS[0], TILES[0])
    assert f"{first_id}_openEO" in doc["assets"] and f"{first_id}_{tif}_gdalinfo.json" in doc["assets"]
    assert doc["assets"]["ml_model_metadata.json_model"]["type"] == "application/octet-stream"
    assert len(doc["assets"]) == 2 * len(ids) + 1
    assert set(doc["item_assets"]) == {"openEO", "model"} | {
        f"{tif_name(d, t)}_gdalinfo.json" for d in DAYS for t in TILES
    }
    assert doc["item_assets"]["openEO"]["roles"] == ["data"]

    item = item_document(JOB, first_id, assets, style="stac-1.1", urls=URLS)
    assert list(item["assets"]) == ["openEO", f"{tif}_gdalinfo.json"]
    assert item["properties"]["datetime"] == "2023-01-03T00:00:00Z"
    own = item["assets"]["openEO"]
    assert own["title"] == tif and own["href"] == URLS.asset(tif)
    expected = [X0, Y0 - 1000, X0 + 1000, Y0] if proj == "tile" else JOB_BBOX
    assert own["proj:bbox"] == expected


def test_item_style_lists_every_file(tiled):
    _, assets = tiled
    doc = results_document(JOB, assets, style="item", urls=URLS)
    assert list(doc["assets"]) == [a.key for a in assets]
    assert doc["properties"]["proj:bbox"] == JOB_BBOX and doc["properties"]["proj:shape"] == [260, 270]
    assert doc["properties"]["datetime"] is None
    assert (doc["properties"]["start_datetime"], doc["properties"]["end_datetime"]) == (
        "2023-01-03T00:00:00Z",
        "2023-01-08T00:00:00Z",
    )  # the model's open-ended validity stays out of the job's extent
    assert item_ids(assets, style="item", job_id="j-123") == {}


def test_per_feature_netcdfs_each_have_an_item_with_their_own_grid(tmp_path):
    features = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": c}}
            for c in ([3.0, 45.14], [3.02, 45.135])
        ],
    }
    assets = save_result(cube(), "netCDF", {"sample_by_feature": True, "geometries": features}, tmp_path, crs_epsg=EPSG)
    assert [a.key for a in assets] == ["openEO_0.nc", "openEO_1.nc"]

    v10 = results_document(JOB, assets, style="stac-1.0", urls=URLS)
    v11 = results_document(JOB, assets, style="stac-1.1", urls=URLS)

    assert list(item_ids(assets, style="stac-1.0", job_id="j-123")) == ["openEO_0.nc", "openEO_1.nc"]
    assert list(item_ids(assets, style="stac-1.1", job_id="j-123")) == ["j-123_openEO_0", "j-123_openEO_1"]
    assert list(v11["assets"]) == ["j-123_openEO_0_openEO", "j-123_openEO_1_openEO"]
    boxes = [v10["assets"][a.key]["proj:bbox"] for a in assets]
    assert boxes[0] != boxes[1] and [v10["assets"][a.key]["proj:shape"] for a in assets] == [[1, 1], [1, 1]]
    items = [item_document(JOB, i, assets, style="stac-1.1", urls=URLS) for i in ("j-123_openEO_0", "j-123_openEO_1")]
    assert items[0]["bbox"] != items[1]["bbox"]
    for item in items:
        assert item["properties"]["datetime"] is None
        assert (item["properties"]["start_datetime"], item["properties"]["end_datetime"]) == (
            "2023-01-03T00:00:00Z",
            "2023-01-08T00:00:00Z",
        )
