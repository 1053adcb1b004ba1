"""Jobs of the local backend that write what real backends write: tiles, per-feature files, gdalinfo, a model.

End to end over real sockets: the job options (or save_result's format options, where geopyspark
reads them) switch the layout; the files are downloaded through their signed hrefs and read with
rasterio / h5netcdf; every JSON answer is checked against the openEO API 1.2 spec on teardown
(the ``backend`` fixture).
"""

from __future__ import annotations

import io

import h5netcdf
import numpy as np
import openeo
import pytest
import rasterio
import requests
import shapely
from conftest import SMALL, SMALL_EXTENT, two_polygons
from pyproj import Transformer
from rasterio.io import MemoryFile

from xr_openeo.testing import synthetic_pixels

BANDS = ["B04", "B08"]
DAYS = ["2023-01-01", "2023-01-06", "2023-01-11"]
# SMALL (x 640000..642560, y 5687440..5690000) in 1 km cells of the grid aligned at (600000, 5700000)
TILES = [f"31UFS_{c}_{r}" for r in (10, 11, 12) for c in (40, 41, 42)]
SMALL_BBOX = [640000.0, 5687440.0, 642560.0, 5690000.0]


def expected(date_index: int) -> np.ndarray:
    """(bands, y, x) pixels of the whole SMALL grid on one date, from the seed."""
    rows, cols = np.arange(SMALL.height), np.arange(SMALL.width)
    return np.stack([synthetic_pixels(SMALL.seed, SMALL.band_names.index(b), date_index, rows, cols) for b in BANDS])


def run(cube, out_format: str | None, **job_options):
    """Run ``cube`` as a batch job (``out_format`` None: the graph has its save_result) and get its results."""
    formats = {} if out_format is None else {"out_format": out_format}
    job = cube.create_job(**formats, job_options=job_options or None)
    job.start_and_wait(max_poll_interval=0.1)
    return job, job.get_results().get_metadata()


def fetch(href: str) -> bytes:
    response = requests.get(href, timeout=10)
    assert response.status_code == 200
    return response.content


def items(doc: dict) -> list[dict]:
    return [requests.get(link["href"], timeout=10).json() for link in doc["links"] if link["rel"] == "item"]


def window(bbox: list[float]) -> tuple[slice, slice]:
    west, _, east, north = bbox
    r0, c0 = round((SMALL.origin[1] - north) / 10), round((west - SMALL.origin[0]) / 10)
    return slice(r0, r0 + round((north - bbox[1]) / 10)), slice(c0, c0 + round((east - west) / 10))


@pytest.mark.parametrize(("style", "proj"), [("1.0", "tile"), ("1.1", "job")])
def test_tile_grid_job_writes_several_cogs_per_date_on_one_grid(backend, connection, style, proj):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=BANDS)

    _, doc = run(cube, "GTiff", **{"tile_grid": "utm-1km", "tile_grid_proj": proj, "stac-version": style})

    data = {k: a for k, a in doc["assets"].items() if "data" in a["roles"]}
    assert sorted(a["title"] for a in data.values()) == sorted(f"openEO_{d}Z_{t}.tif" for d in DAYS for t in TILES)
    mosaics = {d: np.zeros((2, SMALL.height, SMALL.width), dtype="uint16") for d in DAYS}
    for asset in data.values():
        with MemoryFile(fetch(asset["href"])) as memory, memory.open() as src:
            bounds = [src.bounds.left, src.bounds.bottom, src.bounds.right, src.bounds.top]
            rows, cols = window(bounds)
            mosaics[asset["title"][7:17]][:, rows, cols] = src.read()
            assert src.descriptions == tuple(BANDS) and src.nodata == 0
        if proj == "tile":
            assert asset["proj:bbox"] == bounds and asset["proj:shape"] == [src.height, src.width]
        else:  # geopyspark's: every tile claims the job's grid; only the file headers tell the truth
            assert asset["proj:bbox"] == SMALL_BBOX and asset["proj:shape"] == [256, 256]
    for i, day in enumerate(DAYS):
        np.testing.assert_array_equal(mosaics[day], expected(i))
    documents = items(doc)
    assert len(documents) == len(DAYS) * len(TILES)
    assert len({tuple(d["bbox"]) for d in documents}) == len(TILES)
    if style == "1.1":
        assert {d["id"] for d in documents} == {f"{doc['id']}_{d}T00:00:00Z_{t}" for d in DAYS for t in TILES}
        assert all(list(d["assets"]) == ["openEO"] for d in documents)


def test_tile_grid_as_a_save_result_option_for_netcdf(backend, connection):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=BANDS)
    cube = cube.save_result(format="netCDF", options={"tile_grid": "utm-1km"})

    _, doc = run(cube, None)

    assert sorted(doc["assets"]) == sorted(f"openEO_{t}.nc" for t in TILES)
    full = np.stack([expected(i) for i in range(3)], axis=1)  # (bands, t, y, x)
    for key, asset in doc["assets"].items():
        rows, cols = window(asset["proj:bbox"])
        with h5netcdf.File(io.BytesIO(fetch(asset["href"])), "r") as nc:
            assert nc["B04"].shape == (3, rows.stop - rows.start, cols.stop - cols.start), key
            for b, band in enumerate(BANDS):
                np.testing.assert_array_equal(nc[band][:], full[b, :, rows, cols])


def test_sample_by_feature_writes_a_netcdf_per_filter_spatial_feature(backend, connection):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=BANDS)
    cube = cube.filter_spatial(two_polygons()).save_result(format="netCDF", options={"sample_by_feature": True})

    _, doc = run(cube, None, **{"stac-version": "1.1"})

    keys = [a["title"] for a in doc["assets"].values()]
    assert keys == ["openEO_0.nc", "openEO_1.nc"]
    boxes = [a["proj:bbox"] for a in doc["assets"].values()]
    # the rectangles of two_polygons(), snapped out to whole pixels after their round trip through lon/lat
    for box, rect in zip(boxes, [(640100, 5689100, 640400, 5689400), (640700, 5688900, 641100, 5689800)], strict=True):
        assert box == pytest.approx(rect, abs=10)
    documents = items(doc)
    assert [d["id"] for d in documents] == [f"{doc['id']}_openEO_0", f"{doc['id']}_openEO_1"]
    assert documents[0]["bbox"] != documents[1]["bbox"]
    asset = next(iter(doc["assets"].values()))
    rows, cols = window(asset["proj:bbox"])
    with h5netcdf.File(io.BytesIO(fetch(asset["href"])), "r") as nc:
        values = nc["B08"][1]
    inner = values[2:-2, 2:-2]  # away from the edges that lon/lat rounding may mask
    np.testing.assert_array_equal(inner, expected(1)[1, rows, cols][2:-2, 2:-2])


def test_gdalinfo_and_model_assets_next_to_the_rasters(backend, connection):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=BANDS)

    _, doc = run(cube, "GTiff", attach_gdalinfo_assets=True, ml_model="catboost")

    assert list(doc["assets"]) == [k for d in DAYS for k in (f"openEO_{d}Z.tif", f"openEO_{d}Z.tif_gdalinfo.json")] + [
        "catboost_model.cbm.tar.gz"
    ]
    info = doc["assets"]["openEO_2023-01-06Z.tif_gdalinfo.json"]
    assert (info["type"], info["roles"]) == ("application/json", ["metadata"])
    gdalinfo = requests.get(info["href"], timeout=10).json()
    assert gdalinfo["size"] == [256, 256] and [b["description"] for b in gdalinfo["bands"]] == BANDS
    model = doc["assets"]["catboost_model.cbm.tar.gz"]
    assert (model["type"], model["roles"]) == ("application/octet-stream", ["data"])
    assert fetch(model["href"])[:2] == b"\x1f\x8b"  # gzip
    links = [link for link in doc["links"] if link["rel"] == "item"]
    assert [link["href"].split("?")[0].rsplit("/", 1)[1] for link in links] == [
        *(f"openEO_{d}Z.tif" for d in DAYS),
        "ml_model_metadata.json",
    ]
    model_item = requests.get(links[-1]["href"], timeout=10).json()
    assert model_item["properties"]["end_datetime"] == "9999-12-31T23:59:59Z"
    assert model_item["id"].startswith("cb-") and model_item["assets"]["model"]["roles"] == ["ml-model:checkpoint"]
    assert doc["extent"]["temporal"]["interval"] == [["2023-01-01T00:00:00Z", "2023-01-11T00:00:00Z"]]


def test_an_option_the_backend_cannot_honour_fails_the_job_naming_it(backend, connection):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=BANDS)
    job = cube.create_job(out_format="GTiff", job_options={"tile_grid": "mgrs"})
    with pytest.raises(openeo.rest.JobFailedException):
        job.start_and_wait(max_poll_interval=0.1, show_error_logs=False)
    assert "tile_grid must be 'wgs84-1degree'" in job.logs(level="error")[0]["message"]


def test_served_cogs_of_a_tile_job_are_valid_cogs(backend, connection):
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=BANDS, temporal_extent=DAYS[:2]
    )
    _, doc = run(cube, "GTiff", tile_grid="utm-1km")
    asset = doc["assets"][f"openEO_2023-01-01Z_{TILES[4]}.tif"]
    with MemoryFile(fetch(asset["href"])) as memory, memory.open() as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.profile["tiled"] and src.crs == rasterio.crs.CRS.from_epsg(32631)


def test_filter_spatial_keeps_the_pixels_whose_centres_are_inside(backend, connection):
    polygons = two_polygons()
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"]).filter_spatial(
        polygons
    )

    _, doc = run(cube, "netCDF")

    (asset,) = doc["assets"].values()
    with h5netcdf.File(io.BytesIO(fetch(asset["href"])), "r") as nc:
        x, y, values = nc["x"][:], nc["y"][:], nc["B04"][0]
    # the union of the two rectangles' bounds, whole pixels; NaN outside the rectangles
    assert (x[0], x[-1], y[0], y[-1]) == (640105.0, 641095.0, 5689795.0, 5688905.0)
    to_utm = Transformer.from_crs(4326, 32631, always_xy=True)
    inside = np.zeros(values.shape, dtype=bool)
    for feature in polygons["features"]:
        ring = np.array(feature["geometry"]["coordinates"][0])
        box = shapely.Polygon(np.column_stack(to_utm.transform(ring[:, 0], ring[:, 1])))
        xs, ys = np.meshgrid(x, y)
        inside |= shapely.contains_xy(box, xs, ys)
    rows, cols = window([x[0] - 5, y[-1] - 5, x[-1] + 5, y[0] + 5])
    truth = expected(0)[0, rows, cols].astype("float32")
    # nodata (0) of the uint16 input stays 0 inside: only what filter_spatial masks becomes null
    want = np.where(inside, truth, np.nan)
    assert np.isnan(want).any() and (want == 0).any()
    np.testing.assert_array_equal(values, want)
