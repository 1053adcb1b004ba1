"""xr_openeo.sources.load_results: every kind of source, what is not a results document (12.10), paths that do
not exist (11.5), relative links on disk (12.5), the backend root (11.6), and item documents: concurrent, and
renewed through the results document when their links are refused or expired (issue 10)."""

from __future__ import annotations

import copy
import json
import shutil
import threading
from pathlib import Path

import pystac
import pytest
import requests
import xarray as xr
from conftest import SMALL, SMALL_BLOCKSIZE, SMALL_EXTENT
from scripted_http import Answer, Gate, scripted_server

import xr_openeo
from xr_openeo.errors import JobNotFinishedError, RequestError, ResultsDocumentError, XrOpenEOError
from xr_openeo.sources import LoadedResults, load_results
from xr_openeo.testing import LocalBackend


@pytest.fixture(scope="module")
def backend():
    with LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE, results_style="stac-1.1") as b:
        yield b


@pytest.fixture(scope="module")
def connection(backend):
    return backend.connect()


def run_job(connection, out_format="GTiff", **options):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    job = cube.create_job(out_format=out_format, job_options=options or None)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


@pytest.fixture(scope="module")
def job(connection):
    return run_job(connection)


def document_fetches(backend, job_id: str) -> list:
    return [
        r
        for r in backend.requests
        if r.method == "GET"
        and f"/jobs/{job_id}/results" in r.path
        and "/items/" not in r.path
        and "/assets/" not in r.path
    ]


def item_fetches(backend) -> list:
    return [r for r in backend.requests if "/results/items/" in r.path]


def summary(loaded: LoadedResults) -> list[tuple]:
    return sorted((s.key, s.time, s.grid, s.bands) for s in loaded.specs)


def test_every_kind_of_source_gives_the_same_results(backend, connection, job, tmp_path):
    reference = load_results(job)
    assert reference.connection is connection and reference.backend == backend.url
    assert len(reference.specs) == 3 and all(s.time is not None and s.grid is not None for s in reference.specs)
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    canonical = next(link["href"] for link in doc["links"] if link["rel"] == "canonical")
    path = tmp_path / "job-results.json"
    path.write_text(json.dumps(doc))
    sources = [
        (job.get_results(), {}),
        (job.job_id, {"connection": connection}),
        (f"{backend.url}/jobs/{job.job_id}/results", {"connection": connection}),
        (canonical, {}),
        (doc, {}),
        (path, {}),
        (str(path), {}),
        (path.as_uri(), {}),
        (pystac.Collection.from_dict(copy.deepcopy(doc)), {}),
    ]
    for source, kwargs in sources:
        loaded = load_results(source, **kwargs)
        assert summary(loaded) == summary(reference), type(source)
        assert loaded.backend == backend.url, source  # from the connection, else from the document's links
        assert (loaded.connection is connection) == bool(kwargs) or isinstance(source, type(job.get_results()))
    assert load_results(canonical).results_url == canonical
    assert load_results(path).results_url == path.resolve().as_uri()


def test_what_is_not_a_results_document_says_what_it_is(backend, connection, job):
    job_url = f"{backend.url}/jobs/{job.job_id}"
    with pytest.raises(ResultsDocumentError, match=f"{job_url}/results") as info:
        load_results(job_url, connection=connection)
    assert "describes batch job" in str(info.value)
    with pytest.raises(ResultsDocumentError, match="capabilities of an openEO backend") as info:
        load_results(backend.url)
    assert f"{backend.url}/jobs/<job id>/results" in str(info.value)
    well_known = backend.url.rsplit("/openeo/", 1)[0] + "/.well-known/openeo"
    with pytest.raises(ResultsDocumentError, match="API versions"):
        load_results(well_known)
    with pytest.raises(ResultsDocumentError, match="lists batch jobs"):
        load_results(f"{backend.url}/jobs", connection=connection)
    catalog = {"type": "Catalog", "id": "c", "stac_version": "1.0.0", "description": "d", "links": []}
    with scripted_server() as server:
        with pytest.raises(ResultsDocumentError, match="STAC Catalog"):
            load_results(server.script("/catalog.json", Answer.json(catalog)))


def test_paths_that_do_not_exist_are_no_such_file(tmp_path):
    for missing in (str(tmp_path / "results.json"), "results.json", "some/dir/job", tmp_path / "x.json"):
        with pytest.raises(ResultsDocumentError, match="no such file"):
            load_results(missing)
    with pytest.raises(ResultsDocumentError, match="not a file"):
        load_results(str(tmp_path))
    with pytest.raises(XrOpenEOError, match="pass connection="):
        load_results("j-2501abc")
    with pytest.raises(TypeError, match="cannot open a int"):
        load_results(42)


def test_a_document_on_disk_with_relative_links_reads_everything_from_disk(backend, connection, job, tmp_path):
    """The results document, its item documents and the files, side by side, linked by relative hrefs (12.5)."""
    expected = xr_openeo.open_results(job).load()
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    files = {a.path.name: a.path for a in backend.job(job.job_id).assets}
    (tmp_path / "files").mkdir()
    (tmp_path / "items").mkdir()
    for name, source in files.items():
        shutil.copy(source, tmp_path / "files" / name)

    def relative(href: str, prefix: str) -> str:
        return prefix + href.split("?")[0].rsplit("/", 1)[-1]

    links = []
    for link in doc["links"]:
        if link["rel"] == "item":
            item = requests.get(link["href"], timeout=10).json()
            for asset in item["assets"].values():
                asset["href"] = relative(asset["href"], "../files/")
            item["links"] = []
            name = f"{item['id']}.json"
            (tmp_path / "items" / name).write_text(json.dumps(item))
            links.append({"rel": "item", "href": f"items/{name}", "type": "application/geo+json"})
    assert len(links) == 3
    doc["links"] = links
    for asset in doc["assets"].values():
        asset["href"] = relative(asset["href"], "files/")
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))

    backend.clear_requests()
    loaded = load_results(path)
    assert all(s.href.startswith((tmp_path / "files").as_uri()) for s in loaded.specs)
    assert loaded.backend is None and loaded.links.sources == ()
    result = xr_openeo.open_results(str(path)).load()
    xr.testing.assert_equal(result.drop_attrs(), expected.drop_attrs())
    assert backend.requests == []  # nothing asked over HTTP


def test_item_documents_are_fetched_concurrently():
    count = 12
    with scripted_server() as server:
        gate = threading.Barrier(count)  # no item answers before all have been asked
        items = []
        for i in range(count):
            item = {
                "type": "Feature",
                "stac_version": "1.1.0",
                "id": f"i{i}",
                "properties": {"datetime": f"2023-01-{i + 1:02d}T00:00:00Z"},
                "assets": {"openEO": {"href": f"f{i}.tif", "type": "image/tiff; application=geotiff"}},
                "links": [],
            }
            items.append({"rel": "item", "href": server.script(f"/items/i{i}", Gate(gate, Answer.json(item)))})
        doc = {"type": "Collection", "stac_version": "1.1.0", "id": "j-1", "assets": {}, "links": items}
        url = server.script("/results", Answer.json(doc))
        loaded = load_results(url)
        assert [str(s.time)[:10] for s in loaded.specs] == [f"2023-01-{i + 1:02d}" for i in range(count)]
        assert loaded.specs[0].href == server.url("/items/f0.tif")  # relative to the item document
        with xr_openeo.set_options(item_concurrency=1):  # one at a time: this script's items never answer
            server.script("/items/i0", Answer(503))
            with xr_openeo.set_options(retries=0), pytest.raises(RequestError, match="item document"):
                load_results(url)


def test_item_documents_reuse_kept_alive_connections():
    count = 60
    with scripted_server() as server:
        links = []
        for i in range(count):
            item = {
                "type": "Feature",
                "stac_version": "1.1.0",
                "id": f"i{i}",
                "properties": {"datetime": "2023-01-01T00:00:00Z"},
                "assets": {"openEO": {"href": f"f{i}.tif", "type": "image/tiff; application=geotiff"}},
                "links": [],
            }
            links.append({"rel": "item", "href": server.script(f"/items/i{i}", Answer.json(item))})
        doc = {"type": "Collection", "stac_version": "1.1.0", "id": "j-1", "assets": {}, "links": links}
        with xr_openeo.set_options(item_concurrency=4):
            assert len(load_results(server.script("/results", Answer.json(doc))).specs) == count
        connections = {r.client for r in server.requests}
        assert len(server.requests) == count + 1 and len(connections) <= 5  # 4 threads (+ the document's)


def tamper(href: str) -> str:
    """``href`` with the last character of its signature segment changed: the server refuses it (403)."""
    head, _, rest = href.partition("/results/items/")
    user, signature, item = rest.split("/", 2)
    return f"{head}/results/items/{user}/{signature[:-1]}{'1' if signature[-1] == '0' else '0'}/{item}"


def test_refused_item_links_renew_through_the_results_document_once(backend, connection, job):
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    for link in doc["links"]:
        if link["rel"] == "item":
            link["href"] = tamper(link["href"])
    backend.clear_requests()
    loaded = load_results(doc, connection=connection)
    assert summary(loaded) == summary(load_results(job))
    refused = [r for r in item_fetches(backend) if r.status == 403]
    assert len(refused) == 3 and len(document_fetches(backend, job.job_id)) == 2  # one renewal; then the reference
    backend.clear_requests()
    with pytest.raises(RequestError) as info:
        load_results({**doc, "links": [link for link in doc["links"] if link["rel"] == "item"]})
    assert info.value.status == 403 and info.value.what == "item document"  # nothing to renew from


def test_expired_item_links_renew_once_then_say_why(backend, connection):
    """Links valid for 0 s: born expired (410), and so are the renewed ones. One renewal, then a clear error."""
    job = run_job(connection, faults={"url_validity": 0, "canonical_validity": 3600})
    backend.clear_requests()
    with pytest.raises(RequestError) as info:
        load_results(job)
    err = info.value
    assert (err.what, err.status, err.cause) == ("item document", 410, "HTTP 410 ResultLinkExpired")
    assert "expires=REDACTED" in err.href and "fresh links" in str(err)
    assert len(document_fetches(backend, job.job_id)) == 2  # the document, and once more for fresh item links


def test_unfinished_jobs_and_partial_results(connection):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])
    running = cube.create_job(out_format="GTiff", job_options={"faults": {"run_duration": 600}})
    running.start()
    with pytest.raises(JobNotFinishedError, match="partial=True") as info:
        load_results(running)
    assert info.value.job_id == running.job_id
    partial = load_results(running, partial=True)
    assert partial.info.status == "running"
    assert all("partial=true" in s for s in partial.links.sources)
    running.stop()


def test_a_signed_results_url_alone_knows_its_backend(backend, connection, job):
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    canonical = next(link["href"] for link in doc["links"] if link["rel"] == "canonical")
    loaded = load_results(canonical)
    assert loaded.backend == backend.url and loaded.auth.token is None and loaded.connection is None
    assert loaded.links.sources[0] == canonical
    ds = xr_openeo.open_results(canonical)
    assert ds.attrs["openeo:backend"] == backend.url
    assert Path(loaded.results_url or "").name != ""
