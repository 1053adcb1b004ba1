"""Asset downloads of the local backend: signing, auth, Range/HEAD, and every download fault switch."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import requests
from conftest import SMALL, SMALL_BLOCKSIZE, SMALL_EXTENT

from xr_openeo.testing import Faults, LocalBackend


def run_job(connection, **job_options):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    job = cube.create_job(out_format="GTiff", job_options=job_options or None)
    job.start_and_wait(max_poll_interval=0.1)
    return job


def first_asset(job):
    assets = job.get_results().get_assets()
    return sorted(assets, key=lambda a: a.key)[0]


def local_path(backend, job, asset):
    return backend.job(job.job_id).out_dir / asset.key


def test_signed_asset_urls_serve_bytes_ranges_and_head_without_auth(backend, connection):
    job = run_job(connection)
    asset = first_asset(job)
    data = local_path(backend, job, asset).read_bytes()
    assert "expires=" in asset.href

    full = requests.get(asset.href, timeout=10)
    assert full.status_code == 200 and full.content == data
    assert full.headers["Accept-Ranges"] == "bytes" and int(full.headers["Content-Length"]) == len(data)

    part = requests.get(asset.href, headers={"Range": "bytes=100-1099"}, timeout=10)
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(data)}"

    head = requests.head(asset.href, timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data) and head.content == b""

    beyond = requests.get(asset.href, headers={"Range": f"bytes={len(data) + 10}-"}, timeout=10)
    assert beyond.status_code == 416

    tampered = asset.href.replace("/assets/", "/assets/x", 1)
    assert requests.get(tampered, timeout=10).status_code in (403, 404)
    forged = asset.href.split("?")[0] + "?expires=9999999999"
    assert requests.get(forged, timeout=10).json()["code"] == "CredentialsInvalid"
    # The served bytes were recorded with the headers the client sent.
    records = [r for r in backend.requests if r.path.endswith(asset.key)]
    assert [r.status for r in records] == [200, 206, 200, 416, 403, 403]
    assert records[1].headers["Range"] == "bytes=100-1099" and records[1].bytes_sent == 1000
    assert "Authorization" not in records[0].headers


def test_rasterio_reads_a_cog_asset_with_range_requests(backend, connection):
    job = run_job(connection)
    asset = first_asset(job)
    backend.clear_requests()
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        with rasterio.open(f"/vsicurl/{asset.href}") as ds:
            assert ds.count == 2 and ds.descriptions == ("B04", "B08")
            window = ds.read(window=((128, 256), (128, 256)))
    with rasterio.open(local_path(backend, job, asset)) as local:
        np.testing.assert_array_equal(window, local.read(window=((128, 256), (128, 256))))
    gets = [r for r in backend.requests if r.method == "GET" and r.path.endswith(asset.key)]
    assert gets and all(r.status == 206 and "Range" in r.headers for r in gets)
    assert sum(r.bytes_sent for r in gets) < local_path(backend, job, asset).stat().st_size


def test_unsigned_asset_urls_need_the_owners_bearer_token(backend, connection):
    job = run_job(connection, faults={"signed_urls": False})
    asset = first_asset(job)
    assert "expires" not in asset.href
    assert requests.get(asset.href, timeout=10).status_code == 401
    assert connection.get(asset.href, expected_status=200).content == local_path(backend, job, asset).read_bytes()
    bob = backend.connect(user=("bob", "bob123"))
    assert bob.get(asset.href, expected_status=404).json()["code"] == "JobNotFound"


def test_signed_urls_expire_and_a_fresh_results_document_renews_them(clocked_backend, clock):
    job = run_job(clocked_backend.connect(), faults={"url_validity": 60})
    href = first_asset(job).href
    clock.advance(60)
    assert requests.get(href, timeout=10).status_code == 200  # valid up to its last second
    clock.advance(1)
    expired = requests.get(href, timeout=10)
    assert expired.status_code == 410 and expired.json()["code"] == "ResultLinkExpired"
    fresh = first_asset(job).href  # get_results() fetches the document again
    assert fresh != href and requests.get(fresh, timeout=10).status_code == 200


def test_expired_status_is_configurable(clocked_backend, clock):
    job = run_job(clocked_backend.connect(), faults={"url_validity": 60, "expired_status": 403})
    href = first_asset(job).href
    clock.advance(61)
    assert requests.get(href, timeout=10).status_code == 403


def test_head_refused(backend, connection):
    job = run_job(connection, faults={"head_refused": True})
    href = first_asset(job).href
    assert requests.head(href, timeout=10).status_code == 403
    assert requests.get(href, headers={"Range": "bytes=0-15"}, timeout=10).status_code == 206


def test_range_ignored(backend, connection):
    job = run_job(connection, faults={"range_ignored": True})
    asset = first_asset(job)
    response = requests.get(asset.href, headers={"Range": "bytes=0-15"}, timeout=10)
    assert response.status_code == 200 and "Accept-Ranges" not in response.headers
    assert response.content == local_path(backend, job, asset).read_bytes()


def test_no_content_length(backend, connection):
    job = run_job(connection, faults={"no_content_length": True})
    asset = first_asset(job)
    response = requests.get(asset.href, timeout=10)
    assert response.status_code == 200 and "Content-Length" not in response.headers
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert response.content == local_path(backend, job, asset).read_bytes()
    assert "Content-Length" not in requests.head(asset.href, timeout=10).headers


def outcome(href: str, attempt_range: str) -> str:
    try:
        response = requests.get(href, headers={"Range": attempt_range}, timeout=10)
        response.content  # noqa: B018 (reads the whole body)
        return str(response.status_code)
    except requests.exceptions.ChunkedEncodingError:
        return "truncate"
    except requests.exceptions.ConnectionError:
        return "drop"


def fault_sequence(error_rate: float, seed: int, n: int) -> tuple[list[str], list[str | None]]:
    with LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE, faults=Faults(error_rate=error_rate, seed=seed)) as b:
        job = run_job(b.connect())
        href = first_asset(job).href
        b.clear_requests()
        seen = [outcome(href, f"bytes=0-{1000 + i}") for i in range(n)]
        return seen, [r.fault for r in b.requests]


def test_error_rate_faults_are_seeded_and_of_every_kind():
    seen, faults = fault_sequence(0.5, seed=7, n=60)
    assert set(seen) == {"206", "500", "503", "drop", "truncate"}
    injected = [f for f in faults if f]
    assert 15 <= len(injected) <= 45  # about half of 60
    # What the client saw is what the log says was injected.
    assert [s if s != "206" else None for s in seen] == faults
    # The same seed gives the same faults; another seed others.
    assert fault_sequence(0.5, seed=7, n=60) == (seen, faults)
    assert fault_sequence(0.5, seed=8, n=60)[1] != faults


def test_a_retried_request_draws_again():
    faults = Faults(error_rate=0.5, seed=3)
    draws = [faults.download_fault("j/x.tif|GET|bytes=0-9", attempt) for attempt in range(1, 41)]
    assert None in draws and any(draws)
    assert Faults(error_rate=0.0).download_fault("k", 1) is None
    assert all(Faults(error_rate=1.0, error_kinds=("503",)).download_fault("k", a) == "503" for a in range(1, 20))


def test_fault_switches_reject_bad_values():
    with pytest.raises(ValueError, match="error_rate"):
        Faults(error_rate=2)
    with pytest.raises(ValueError, match="error_kinds"):
        Faults(error_kinds=("teapot",))
    with pytest.raises(ValueError, match="unknown fault switch"):
        Faults().merged({"latncy": 1})


def test_latency_is_added_to_every_request(backend, connection):
    backend.set_faults(latency=0.15)
    backend.clear_requests()
    connection.list_jobs()
    assert backend.requests[-1].duration >= 0.15


def test_a_bad_job_option_is_refused_when_the_job_is_created(backend, connection):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])
    import openeo

    with pytest.raises(openeo.rest.OpenEoApiError, match="unknown fault switch"):
        cube.create_job(out_format="GTiff", job_options={"faults": {"bogus": 1}})


def test_server_wide_faults_apply_to_every_job_and_jobs_can_override_them(backend, connection):
    backend.set_faults(head_refused=True)
    job = run_job(connection)
    assert requests.head(first_asset(job).href, timeout=10).status_code == 403
    job2 = run_job(connection, faults={"head_refused": False})
    assert requests.head(first_asset(job2).href, timeout=10).status_code == 200
