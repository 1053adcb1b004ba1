"""The backend's clock (signed links expire when a test moves it) and how its servers stop (at once, all closed)."""

from __future__ import annotations

import socket
import threading

import pytest
import requests
from conftest import SMALL, SMALL_BLOCKSIZE, SMALL_EXTENT

from xr_openeo.testing import LocalBackend, ManualClock
from xr_openeo.testing.clock import wait_until
from xr_openeo.testing.signing import UrlSigner


def test_a_manual_clock_moves_only_when_told():
    clock = ManualClock(start=1000.5)
    assert clock() == clock() == 1000.5
    assert clock.advance(10) == 1010.5 and clock() == 1010.5
    clock.set(5.0)
    assert clock() == 5.0
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    assert ManualClock()() == int(ManualClock()())  # starts at a whole second


def test_waiting_on_a_clock():
    clock, stop = ManualClock(start=0.0), threading.Event()
    assert wait_until(clock, 0.0, stop) is False  # already there
    moved = threading.Thread(target=clock.advance, args=(5,))
    moved.start()
    assert wait_until(clock, 5.0, stop) is False  # returns once another thread moved the clock
    moved.join()
    threading.Timer(0.05, stop.set).start()
    assert wait_until(clock, 1e9, stop) is True  # stop ends a wait the clock would never end
    assert wait_until(clock, None, stop) is True


def test_signatures_expire_by_the_signers_clock():
    clock = ManualClock(start=1_000_000.0)
    signer = UrlSigner(b"secret", clock=clock)
    expires = signer.expiry(60)
    sig = signer.signature("j-1", "alice", "results", expires)
    user = signer.encode_user("alice")
    assert signer.check("j-1", user, sig, "results", str(expires)) == ("alice", "")
    clock.advance(60)
    assert signer.check("j-1", user, sig, "results", str(expires)) == ("alice", "")
    clock.advance(1)
    assert signer.check("j-1", user, sig, "results", str(expires)) == ("alice", "expired")
    assert signer.check("j-1", user, sig[::-1], "results", str(expires)) == ("alice", "invalid")


def test_presigned_asset_host_urls_expire_with_the_clock(clocked_backend, clock):
    connection = clocked_backend.connect()
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04"])
    job = cube.create_job(out_format="GTiff", job_options={"faults": {"redirect_assets": True}})
    job.start_and_wait(max_poll_interval=0.1)
    href = sorted(job.get_results().get_assets(), key=lambda a: a.key)[0].href
    redirect = requests.get(href, allow_redirects=False, timeout=10)
    assert redirect.status_code == 302
    location = redirect.headers["Location"]
    assert location.startswith(clocked_backend.asset_host_url) and requests.get(location, timeout=10).status_code == 200
    clock.advance(clocked_backend.state.host_validity + 1)
    expired = requests.get(location, timeout=10)
    assert expired.status_code == 403 and expired.json()["message"] == "Request has expired"


def test_job_times_come_from_the_clock(clock):
    clock.set(1_700_000_000.0)  # 2023-11-14T22:13:20Z
    with LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE, clock=clock) as backend:
        connection = backend.connect()
        job = connection.load_collection("SENTINEL2_L2A", bands=["B04"]).create_job(out_format="GTiff")
        assert job.describe()["created"] == "2023-11-14T22:13:20Z"
        clock.advance(3600)
        job.start_and_wait(max_poll_interval=0.1)
        assert job.describe()["updated"] == "2023-11-14T23:13:20Z"
        assert {entry["time"] for entry in job.logs()} == {"2023-11-14T22:13:20Z", "2023-11-14T23:13:20Z"}


def test_stopping_refuses_new_connections_and_closes_open_ones():
    backend = LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE).start()
    port, host_url = backend.port, backend.asset_host_url
    # A client that opened a connection and sent half a request: its handler waits for the rest.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        idle.sendall(b"GET /openeo/1.2/ HTT")
        backend.stop()
        try:
            assert idle.recv(1) == b""  # closed by the server (a timeout here would raise instead)
        except ConnectionResetError:
            pass  # closed while still in the listening socket's queue
    for url in (f"http://127.0.0.1:{port}/", host_url):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, timeout=10)
    assert not any(t.name.startswith("local-openeo-") and t.is_alive() for t in threading.enumerate())


def test_a_stopped_backend_can_pause_and_resume_on_its_port():
    with LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE) as backend:
        port = backend.port
        backend.pause()
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/openeo/1.2/", timeout=10)
        # The port stays bound while paused (connections refused): no other server binding it (nor the OS,
        # choosing a port for a bind to port 0) can take it before resume() listens on it again.
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))
        backend.resume()
        assert backend.port == port and requests.get(f"{backend.url}/", timeout=10).status_code == 200
