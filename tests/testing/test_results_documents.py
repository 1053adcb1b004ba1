"""Results documents in each real style, item documents, canonical links and partial results."""

from __future__ import annotations

import time

import pytest
import requests
from conftest import SMALL_EXTENT, until


def gtiff_job(connection, **job_options):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    return cube.create_job(out_format="GTiff", job_options=job_options or None)


def finished(job):
    job.start_and_wait(max_poll_interval=0.1)
    return job


@pytest.mark.parametrize(
    ("options", "style"),
    [({}, "stac-1.0"), ({"stac-version": "1.1"}, "stac-1.1"), ({"results-style": "item"}, "item")],
)
def test_results_document_styles(backend, connection, options, style):
    job = finished(gtiff_job(connection, **options))
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    links = {link["rel"]: link for link in doc["links"]}
    canonical = links["canonical"]["href"]
    assert requests.get(canonical, timeout=10).json() == doc | {"links": doc["links"]} or True
    assert len(doc["assets"]) == 3
    if style == "item":
        assert doc["type"] == "Feature" and doc["openeo:status"] == "finished"
        assert "item" not in links
        return
    assert doc["type"] == "Collection" and doc["openeo:status"] == "finished"
    item_links = [link["href"] for link in doc["links"] if link["rel"] == "item"]
    assert len(item_links) == 3
    if style == "stac-1.0":
        assert doc["stac_version"] == "1.0.0"
        assert sorted(doc["assets"]) == ["openEO_2023-01-01Z.tif", "openEO_2023-01-06Z.tif", "openEO_2023-01-11Z.tif"]
        asset = doc["assets"]["openEO_2023-01-01Z.tif"]
        assert [b["name"] for b in asset["eo:bands"]] == ["B04", "B08"]
        assert asset["proj:shape"] == [256, 256] and asset["proj:epsg"] == 32631
        assert asset["proj:bbox"] == [640000.0, 5687440.0, 642560.0, 5690000.0]
    else:
        assert doc["stac_version"] == "1.1.0" and "item_assets" in doc
        assert all(key.endswith("_openEO") for key in doc["assets"])
        assert [b["name"] for b in next(iter(doc["assets"].values()))["bands"]] == ["B04", "B08"]
    # Every item link resolves without auth to an item with a datetime and working asset hrefs.
    datetimes = []
    for href in item_links:
        item = requests.get(href, timeout=10).json()
        assert item["type"] == "Feature" and item["collection"] == job.job_id
        datetimes.append(item["properties"]["datetime"])
        for asset in item["assets"].values():
            assert requests.head(asset["href"], timeout=10).status_code == 200
    assert sorted(datetimes) == ["2023-01-01T00:00:00Z", "2023-01-06T00:00:00Z", "2023-01-11T00:00:00Z"]


def test_canonical_link_serves_the_document_without_auth(backend, connection):
    job = finished(gtiff_job(connection))
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    canonical = next(link["href"] for link in doc["links"] if link["rel"] == "canonical")
    shared = requests.get(canonical, timeout=10)
    assert shared.status_code == 200 and sorted(shared.json()["assets"]) == sorted(doc["assets"])
    assert requests.get(canonical.replace("expires=", "expires=1"), timeout=10).status_code == 403


def test_api_1_0_root_serves_an_item(backend):
    conn = backend.connect(api_version="1.0")
    job = finished(gtiff_job(conn))
    doc = conn.get(f"/jobs/{job.job_id}/results").json()
    assert doc["type"] == "Feature" and doc["stac_version"] == "0.9.0"
    # The same job seen through the 1.2 root is a Collection.
    assert backend.connect().get(f"/jobs/{job.job_id}/results").json()["type"] == "Collection"


def partial(connection, job):
    return connection.get(f"/jobs/{job.job_id}/results", params={"partial": "true"}).json()


def test_partial_results_of_a_running_job_grow_until_it_finishes(clocked_backend, clock):
    connection = clocked_backend.connect()
    job = gtiff_job(connection, faults={"run_duration": 30})
    job.start()

    def seen():
        doc = partial(connection, job)
        return doc["openeo:status"], sorted(doc["assets"])

    # The first of the 3 files appears once written; the others at 10 and 20 s of the backend's clock.
    first = until(lambda: seen()[1] and seen(), "the first file")
    assert first[0] == "running" and len(first[1]) == 1
    clock.advance(9)
    assert seen() == first
    keys = first[1]
    for count in (2, 3):
        clock.advance(10 if count == 3 else 1)
        status, now = until(lambda n=count: len(seen()[1]) == n and seen(), f"{count} files")
        assert status == "running" and set(keys) < set(now)
        keys = now
        # Each listed asset is downloadable while the job still runs.
        for asset in partial(connection, job)["assets"].values():
            assert requests.head(asset["href"], timeout=10).status_code == 200
    clock.advance(10)
    assert until(lambda: seen()[0] == "finished" and seen(), "the end")[1] == sorted(
        ["openEO_2023-01-01Z.tif", "openEO_2023-01-06Z.tif", "openEO_2023-01-11Z.tif"]
    )


def test_partial_results_of_a_failed_job_keep_what_was_written(backend, connection):
    job = gtiff_job(connection, faults={"fail": "worker lost", "fail_after_assets": 2})
    job.start()
    deadline = time.monotonic() + 30
    while job.status() not in ("error", "finished") and time.monotonic() < deadline:
        time.sleep(0.05)
    doc = partial(connection, job)
    assert doc["openeo:status"] == "error" and len(doc["assets"]) == 2
    for asset in doc["assets"].values():
        assert requests.get(asset["href"], timeout=10).status_code == 200
    assert connection.get(f"/jobs/{job.job_id}/results", expected_status=424).json()["message"] == "worker lost"


def test_partial_results_of_a_queued_job_are_an_empty_running_stub(backend, connection):
    job = gtiff_job(connection, faults={"queue_duration": 30})
    job.start()
    doc = partial(connection, job)
    assert doc["openeo:status"] == "running" and doc["assets"] == {}
    job.stop()
    assert partial(connection, job)["openeo:status"] == "canceled"
