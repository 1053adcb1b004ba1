"""``load_stac`` on the local backend: results and STAC documents on 127.0.0.1, read with no other network.

Issue 11, item 1: ``ds.openeo.cube`` (a ``load_stac`` of a job's signed canonical link) must run as a
new job offline, with the values the first job's results give.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openeo
import pandas as pd
import pytest
import xarray as xr
from conftest import SMALL, SMALL_EXTENT, expected_ndvi
from flask import Flask, send_from_directory
from werkzeug.serving import make_server

import xr_openeo
from xr_openeo.testing import synthetic_pixels
from xr_openeo.testing.writers import save_result


def pixels(band: str, date_index: int, rows=None, cols=None) -> np.ndarray:
    rows = np.arange(SMALL.height) if rows is None else rows
    cols = np.arange(SMALL.width) if cols is None else cols
    return synthetic_pixels(SMALL.seed, SMALL.band_names.index(band), date_index, rows, cols)


def run_failing(cube) -> str:
    job = cube.create_job(out_format="GTiff")
    with pytest.raises(openeo.rest.JobFailedException):
        job.start_and_wait(max_poll_interval=0.1, show_error_logs=False)
    return job.logs(level="error")[0]["message"]


def test_ds_openeo_cube_runs_as_a_new_job_with_the_first_jobs_values(backend, connection):
    first = xr_openeo.compute_batch(
        connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"]), progress=False
    )

    second = xr_openeo.compute_batch(
        first.openeo.cube.ndvi(red="B04", nir="B08", target_band="NDVI"), progress=False
    ).load()

    assert second.openeo.job_id != first.openeo.job_id
    red, nir = first.B04.load(), first.B08.load()
    with np.errstate(invalid="ignore", divide="ignore"):
        from_first = (nir - red) / (nir + red)
    np.testing.assert_allclose(second.NDVI.values, from_first.values, rtol=1e-6)
    assert int(np.isnan(second.NDVI.values).sum()) == int(np.isnan(from_first.values).sum()) > 0
    np.testing.assert_allclose(second.NDVI.isel(t=1).values, expected_ndvi(1), rtol=1e-6)
    xr.testing.assert_equal(second.B04, first.B04.load())
    logs = [e["message"] for e in backend.job(second.openeo.job_id).logs]
    assert any(m.startswith("load_stac: {'t': 3, 'bands': 2, 'y': 256, 'x': 256}") for m in logs)


def test_load_stac_honours_extents_and_bands(backend, connection):
    first = xr_openeo.compute_batch(
        connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B02", "B04", "B08"]),
        progress=False,
    )
    links = connection.job(first.openeo.job_id).get_results().get_metadata()["links"]
    url = next(link["href"] for link in links if link["rel"] == "canonical")
    # 10 m pixels of x 640095..640205 and y 5689800..5689905 overlap: columns 9..20, rows 9..20
    extent = {"west": 640095, "south": 5689800, "east": 640205, "north": 5689905, "crs": 32631}
    cube = connection.load_stac(url, spatial_extent=extent, temporal_extent=["2023-01-05", None], bands=["B08", "B02"])

    loaded = xr_openeo.compute_batch(cube, progress=False).load()

    assert list(loaded.data_vars) == ["B08", "B02"]
    assert [str(t)[:10] for t in loaded.t.values] == ["2023-01-06", "2023-01-11"]
    assert loaded.sizes == {"t": 2, "y": 11, "x": 12}
    rows, cols = np.arange(9, 20), np.arange(9, 21)
    expected = pixels("B02", 2, rows, cols).astype("float32")
    np.testing.assert_array_equal(loaded.B02.isel(t=1).values, np.where(expected == 0, np.nan, expected))
    assert loaded.x.values[0] == 640095.0 and loaded.y.values[0] == 5689905.0


@pytest.fixture
def static_stac(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on 127.0.0.1 (port 0) serving ``tmp_path``, with Range support."""
    app = Flask("static-stac")

    @app.get("/<path:name>")
    def serve(name: str):
        return send_from_directory(tmp_path, name)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def write_stac(root: Path, base: str) -> tuple[list[str], xr.DataArray]:
    """Two dated COGs of SMALL's first pixels, one STAC Item each, and a Collection linking them."""
    rows, cols = np.arange(40), np.arange(30)
    values = np.stack([np.stack([pixels(b, d, rows, cols) for b in ("B04", "B08")]) for d in (0, 1)])
    cube = xr.DataArray(
        values,
        dims=("t", "bands", "y", "x"),
        coords={
            "t": pd.to_datetime(["2023-02-01", "2023-02-11"]).to_numpy(),
            "bands": ["B04", "B08"],
            "y": 5690000 - 10 * (rows + 0.5),
            "x": 640000 + 10 * (cols + 0.5),
        },
    )
    written = save_result(cube, "GTiff", None, root, crs_epsg=32631, nodata=0)
    names = []
    for asset in written:
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
            "id": asset.key,
            "bbox": [5.0, 51.3, 5.01, 51.31],
            "geometry": None,
            "properties": {"datetime": asset.datetime, "proj:epsg": 32631, "proj:shape": list(asset.shape)},
            "links": [],
            "assets": {
                "data": {"href": f"{base}/{asset.key}", "type": asset.media_type, "roles": ["data"]},
            },
        }
        names.append(f"{asset.key}.json")
        (root / names[-1]).write_text(json.dumps(item))
    collection = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": "static",
        "description": "COGs served by a test",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[5.0, 51.3, 5.01, 51.31]]},
            "temporal": {"interval": [["2023-02-01T00:00:00Z", "2023-02-11T00:00:00Z"]]},
        },
        "links": [{"rel": "item", "href": name, "type": "application/geo+json"} for name in names],
        "assets": {},
    }
    (root / "collection.json").write_text(json.dumps(collection))
    return names, cube


def test_stac_items_and_collections_served_on_localhost(backend, connection, static_stac):
    base, root = static_stac
    items, cube = write_stac(root, base)
    nir, red = cube.sel(bands="B08").astype("float64"), cube.sel(bands="B04").astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = ((nir - red) / (nir + red)).where((nir != 0) & (red != 0))

    from_item = xr_openeo.compute_batch(
        connection.load_stac(f"{base}/{items[1]}").ndvi(red="B04", nir="B08"), progress=False
    ).load()
    from_collection = xr_openeo.compute_batch(
        connection.load_stac(f"{base}/collection.json").ndvi(red="B04", nir="B08"), progress=False
    ).load()

    (name,) = from_item.data_vars
    np.testing.assert_allclose(from_item[name].isel(t=0).values, ndvi.isel(t=1).values, rtol=1e-6)
    assert [str(t)[:10] for t in from_collection.t.values] == ["2023-02-01", "2023-02-11"]
    np.testing.assert_allclose(from_collection[name].values, ndvi.values, rtol=1e-6)


def test_only_127_0_0_1_is_read(backend, connection, static_stac):
    base, root = static_stac
    items, _ = write_stac(root, base)
    item = json.loads((root / items[0]).read_text())
    item["assets"]["data"]["href"] = "https://data.example.com/openEO_2023-02-01Z.tif?sig=secret123"
    (root / "remote.json").write_text(json.dumps(item))

    elsewhere = run_failing(connection.load_stac("https://stac.example.com/collections/S2/items/x"))
    remote_asset = run_failing(connection.load_stac(f"{base}/remote.json"))

    assert "host 'stac.example.com'" in elsewhere and "only STAC served on 127.0.0.1" in elsewhere
    assert "load_stac asset 'data' is on host 'data.example.com'" in remote_asset
    assert "secret123" not in remote_asset
    missing = run_failing(connection.load_stac(f"{base}/nothing.json"))
    assert "HTTP 404" in missing and base.split("//")[1] in missing
