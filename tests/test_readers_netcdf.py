"""netCDF reader: lazy range reads, download, pickling, URL renewal and odd servers, on the local backend."""

from __future__ import annotations

import hashlib
import io
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pyproj
import pytest
import requests
import xarray as xr

from xr_openeo.errors import AssetReadError, XrOpenEOError
from xr_openeo.http import Auth, Links
from xr_openeo.readers import netcdf
from xr_openeo.readers.netcdf import NetCDFFile, combine_netcdf, open_netcdf
from xr_openeo.results import AssetSpec, parse_results, url_expiry
from xr_openeo.testing import Faults, LocalBackend, SyntheticCollection

SMALL_BLOCK = 64 * 2**10  # the test file is ~3 MB: small blocks make lazy reads visible


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    with LocalBackend([SyntheticCollection(dates=3, width=300, height=300)]) as b:
        yield b


@pytest.fixture(scope="module")
def conn(backend: LocalBackend) -> Any:
    return backend.connect()


def run_job(conn: Any, faults: dict | None = None, clock: Any = None) -> tuple[AssetSpec, Links]:
    """A finished netCDF job: its asset spec and a locator with the connection's auth (and ``clock``)."""
    options = {"faults": faults} if faults else None
    job = conn.load_collection("SENTINEL2_L2A", bands=["B04", "B08"]).create_job(
        out_format="netCDF", job_options=options
    )
    job.start_and_wait(max_poll_interval=0.1, show_error_logs=False)
    info = parse_results(conn.get(f"/jobs/{job.job_id}/results").json())
    (spec,) = info.assets
    hrefs = {a.key: a.href for a in info.assets}
    return spec, Links(hrefs, Auth.from_connection(conn), sources=(info.self_url, info.canonical_url), clock=clock)


@pytest.fixture(scope="module")
def plain(conn: Any) -> tuple[AssetSpec, Links]:
    return run_job(conn)


def reference(spec: AssetSpec, locator: Links) -> xr.Dataset:
    """The asset downloaded whole and opened with xarray's own h5netcdf engine."""
    url = locator.href(spec.key)
    body = requests.get(url, headers=locator.headers(url), timeout=30).content
    return xr.open_dataset(io.BytesIO(body), engine="h5netcdf").load()


@pytest.fixture(scope="module")
def ref(plain: tuple[AssetSpec, Links]) -> xr.Dataset:
    return reference(*plain)


def asset_requests(backend: LocalBackend) -> list[Any]:
    return [r for r in backend.requests if "/assets/" in r.path]


def assert_same_values(ds: xr.Dataset, ref: xr.Dataset) -> None:
    assert sorted(ds.data_vars) == ["B04", "B08"]
    for name in ("B04", "B08"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
    np.testing.assert_array_equal(ds.t.values, ref.t.values)


class StaticLocator:
    """A locator that never renews (returns the stale URL) and sends the given headers everywhere."""

    def __init__(self, href: str, headers: dict[str, str] | None = None) -> None:
        self._href, self._headers, self.renewals = href, headers or {}, 0

    def href(self, key: str) -> str:
        return self._href

    def headers(self, url: str) -> dict[str, str]:
        return dict(self._headers)

    def renew(self, key: str, stale: str) -> str:
        self.renewals += 1
        return stale


# -- lazy reads and values ------------------------------------------------------------------------


def test_lazy_open_reads_only_metadata_and_matches_download(
    backend: LocalBackend, plain: tuple[AssetSpec, Links], ref: xr.Dataset
) -> None:
    spec, locator = plain
    backend.clear_requests()
    ds = open_netcdf(spec, locator, download=False, block_size=SMALL_BLOCK, chunks={})
    opened = asset_requests(backend)
    size = int(requests.head(locator.href(spec.key), timeout=10).headers["Content-Length"])
    assert len(opened) <= 4 and sum(r.bytes_sent for r in opened) < size / 10
    # Exactly the locator's headers: it alone decides who gets the bearer token.
    expected = locator.headers(locator.href(spec.key)).get("Authorization")
    assert all(r.headers.get("Authorization") == expected for r in opened)

    assert all(isinstance(ds[name].data, da.Array) for name in ds.data_vars)
    assert ds.B04.dims == ("t", "y", "x") and ds.B04.dtype == np.float32
    assert ds.B04.encoding["_FillValue"] == 0 and ds.B04.encoding["dtype"] == np.uint16
    assert ds.B04.chunks == ((1, 1, 1), (256, 44), (256, 44))  # chunks={}: the file's HDF5 chunks
    assert "crs" not in ds.variables and ds.rio.crs.to_epsg() == 32631
    assert ds.t.dtype == np.dtype("datetime64[ns]")
    assert "REDACTED" in ds.encoding["source"] and "REDACTED" in ds.B04.encoding["source"]
    assert_same_values(ds, ref)


def test_one_chunk_read_moves_a_fraction_of_the_file(
    backend: LocalBackend, plain: tuple[AssetSpec, Links], ref: xr.Dataset
) -> None:
    spec, locator = plain
    ds = open_netcdf(spec, locator, download=False, block_size=SMALL_BLOCK)
    assert ds.B08.chunks == ((3,), (300,), (300,))  # default "auto": one task, yet slicing reads little
    backend.clear_requests()
    window = ds.B08.isel(t=1, y=slice(256, 300), x=slice(0, 256)).values
    moved = asset_requests(backend)
    np.testing.assert_array_equal(window, ref.B08.isel(t=1, y=slice(256, 300), x=slice(0, 256)).values)
    total = sum(r.bytes_sent for r in moved)
    assert all(r.method == "GET" and r.status == 206 for r in moved)
    assert len(moved) <= 4 and total < 300 * 1024  # one padded 256² uint16 chunk is 128 KiB; the file ~3 MB

    backend.clear_requests()
    ds.load()
    full = asset_requests(backend)
    assert sum(r.bytes_sent for r in full) < 4 * 2**20


@pytest.mark.parametrize("download", [None, True])
def test_small_files_are_downloaded_whole(
    backend: LocalBackend, plain: tuple[AssetSpec, Links], ref: xr.Dataset, download: bool | None
) -> None:
    spec, locator = plain
    backend.clear_requests()
    ds = open_netcdf(spec, locator, download=download)
    opened = asset_requests(backend)
    assert [r.method for r in opened] == (["HEAD", "GET"] if download is None else ["GET"])
    assert "Range" not in opened[-1].headers
    backend.clear_requests()
    assert_same_values(ds, ref)
    assert asset_requests(backend) == []  # computed from memory


def test_time_dimension_is_renamed_t_and_dims_ordered(tmp_path: Path) -> None:
    times = np.array(["2023-01-01", "2023-01-06"], dtype="datetime64[ns]")
    values = np.arange(2 * 3 * 4, dtype="uint16").reshape(2, 3, 4)
    source = xr.Dataset(
        {
            "B1": (("time", "y", "x"), values, {"grid_mapping": "crs"}),
            "B2": (("y", "x", "time"), values.transpose(1, 2, 0), {"grid_mapping": "crs"}),
            "crs": ((), b"", {"spatial_ref": pyproj.CRS.from_epsg(4326).to_wkt()}),
        },
        coords={"time": times, "y": [3.0, 2.0, 1.0], "x": [0.0, 1.0, 2.0, 3.0]},
    )
    source.B1.encoding["_FillValue"] = np.uint16(0)
    path = tmp_path / "eodc.nc"
    source.to_netcdf(path, engine="h5netcdf")
    spec = AssetSpec(key="eodc.nc", href=path.as_uri(), media_type="application/x-netcdf")
    ds = open_netcdf(spec, StaticLocator(spec.href))
    assert "time" not in ds.dims and ds.B1.dims == ds.B2.dims == ("t", "y", "x")
    np.testing.assert_array_equal(ds.t.values, times)
    assert np.isnan(ds.B1.values[0, 0, 0]) and ds.B1.encoding["_FillValue"] == 0
    np.testing.assert_array_equal(ds.B2.values, values)
    assert ds.rio.crs.to_epsg() == 4326 and "crs" not in ds.variables


# -- pickling and processes -----------------------------------------------------------------------


def test_pickles_without_open_files_and_unpickled_copies_compute(
    plain: tuple[AssetSpec, Links], ref: xr.Dataset
) -> None:
    spec, locator = plain
    ds = open_netcdf(spec, locator, download=False, block_size=SMALL_BLOCK)
    ds.B04.isel(t=0).load()  # the file is open now; pickling must not try to take it along
    payload = pickle.dumps(ds)
    assert len(payload) < 100_000
    assert_same_values(pickle.loads(payload), ref)

    file = NetCDFFile(spec, locator, download=False)
    copy = pickle.loads(pickle.dumps(file))
    assert copy.handle() is file.handle()  # copies in one process share one open file

    script = (
        "import hashlib, pickle, sys\n"
        "ds = pickle.loads(sys.stdin.buffer.read())\n"
        "print(hashlib.sha256(ds.B04.values.tobytes() + ds.B08.values.tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], input=payload, capture_output=True, timeout=60, check=True)
    expected = hashlib.sha256(ref.B04.values.tobytes() + ref.B08.values.tobytes()).hexdigest()
    assert out.stdout.decode().strip() == expected


def test_computes_on_a_distributed_cluster(
    backend: LocalBackend, plain: tuple[AssetSpec, Links], ref: xr.Dataset
) -> None:
    from dask.distributed import Client, LocalCluster

    spec, locator = plain
    ds = open_netcdf(spec, locator, download=False, block_size=SMALL_BLOCK)
    with (
        LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster),
    ):
        backend.clear_requests()
        total = float(ds.B04.sum().compute())
    assert total == float(ds.B04.sum().compute(scheduler="threads"))
    assert np.isclose(total, float(ref.B04.sum()), rtol=1e-6)
    # Workers open the file themselves, without a HEAD: the client's size travelled in the pickle.
    assert [r for r in asset_requests(backend) if r.method == "HEAD"] == []


# -- signed URLs, bearer auth ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def expired(conn: Any) -> dict[str, tuple[AssetSpec, Links, xr.Dataset | None]]:
    """Jobs whose links expire after 2 s, opened (except "refused") while their links were fresh."""
    cases = {"proactive": 410, "reactive": 410, "reactive-403": 403, "refused": 410}
    validity = 2  # seconds: renewed links must outlive a full read of the file
    out: dict[str, tuple[AssetSpec, Links, xr.Dataset | None]] = {}
    for name, status in cases.items():
        # The reactive cases' links never expire by their clock: the server refuses them first.
        clock = (lambda: 0.0) if name.startswith("reactive") else None
        spec, locator = run_job(conn, {"url_validity": validity, "expired_status": status}, clock)
        ds = None if name == "refused" else open_netcdf(spec, locator, download=False, block_size=SMALL_BLOCK)
        out[name] = (spec, locator, ds)
    latest = max(url_expiry(spec.href) or 0 for spec, _, _ in out.values())
    time.sleep(max(0.0, latest - time.time()) + 1.05)  # one wait for all of them
    return out


@pytest.mark.parametrize("case", ["proactive", "reactive", "reactive-403"])
def test_expired_urls_are_renewed_once(
    backend: LocalBackend, expired: dict, ref: xr.Dataset, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    spec, locator, ds = expired[case]
    assert url_expiry(locator.href(spec.key)) < time.time()
    if case != "proactive":  # let the server refuse the stale URL first
        monkeypatch.setattr(netcdf, "_expired", lambda url: False)
    backend.clear_requests()
    assert_same_values(ds, ref)
    # Renewed links also last only 1-2 s (expires= is in whole seconds), so a slow run may renew
    # more than once; each read renews at most once.
    assert locator.refreshes >= 1
    refused = [r.status for r in asset_requests(backend) if r.status >= 400]
    if case == "proactive":
        assert refused == [] or locator.refreshes > 1
    else:
        assert refused and set(refused) == {403 if case.endswith("403") else 410}


def test_persistent_refusal_names_asset_status_and_redacts(expired: dict) -> None:
    spec, _, _ = expired["refused"]
    locator = StaticLocator(spec.href)  # "renews" to the same expired link
    with pytest.raises(AssetReadError) as info:
        open_netcdf(spec, locator, download=True)
    err = info.value
    assert err.key == spec.key and err.status == 410 and locator.renewals == 1
    expires = str(url_expiry(spec.href))
    assert "expires=REDACTED" in err.href and "expires=REDACTED" in str(err) and expires not in str(err)


def test_bearer_only_urls_need_the_connections_auth(backend: LocalBackend, conn: Any, ref: xr.Dataset) -> None:
    spec, locator = run_job(conn, {"signed_urls": False})
    assert "expires" not in spec.href
    backend.clear_requests()
    ds = open_netcdf(spec, locator, download=False, block_size=SMALL_BLOCK)
    assert_same_values(ds, ref)
    assert all(r.headers.get("Authorization", "").startswith("Bearer ") for r in asset_requests(backend))

    anonymous = Links({spec.key: spec.href}, Auth(), sources=())
    for download in (None, False, True):
        with pytest.raises(AssetReadError) as info:
            open_netcdf(spec, anonymous, download=download)
        assert info.value.status == 401 and info.value.key == spec.key and "401" in str(info.value)


# -- servers that misbehave -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def range_backend() -> Iterator[LocalBackend]:
    # Its own backend: responses the client stops reading stay "in flight" in the request log,
    # which would slow every later look at the main backend's log.
    with LocalBackend([SyntheticCollection(dates=3, width=300, height=300)], faults=Faults(range_ignored=True)) as b:
        yield b


@pytest.fixture(scope="module")
def range_ignored(range_backend: LocalBackend) -> tuple[AssetSpec, Links]:
    return run_job(range_backend.connect())


def test_range_ignored_falls_back_to_download(
    range_backend: LocalBackend,
    range_ignored: tuple[AssetSpec, Links],
    ref: xr.Dataset,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, locator = range_ignored
    monkeypatch.setattr(netcdf, "AUTO_DOWNLOAD_MAX", 0)  # as if the file were large: try lazy first
    range_backend.clear_requests()
    ds = open_netcdf(spec, locator, block_size=SMALL_BLOCK)
    # HEAD advertises no Range support; the one-byte probe gets the whole file, which is kept.
    assert [(r.method, r.status) for r in asset_requests(range_backend)] == [("HEAD", 200), ("GET", 200)]
    assert_same_values(ds, ref)


def test_range_ignored_detected_while_reading_lazily(
    range_ignored: tuple[AssetSpec, Links], ref: xr.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, locator = range_ignored
    size = int(requests.head(locator.href(spec.key), timeout=10).headers["Content-Length"])
    # A large file on a server that claims Range support but ignores it: caught at the first ranged GET.
    monkeypatch.setattr(netcdf, "AUTO_DOWNLOAD_MAX", 0)
    monkeypatch.setattr(netcdf, "_head", lambda url, headers: (size, True))
    ds = open_netcdf(spec, locator, block_size=SMALL_BLOCK)
    assert_same_values(ds, ref)


def test_range_ignored_with_download_false_is_a_clear_error(range_ignored: tuple[AssetSpec, Links]) -> None:
    spec, locator = range_ignored
    with pytest.raises(AssetReadError, match="ignores HTTP Range") as info:
        open_netcdf(spec, locator, download=False)
    assert info.value.key == spec.key and "REDACTED" in str(info.value)


@pytest.mark.parametrize("download", [None, False, True])
def test_no_content_length(
    backend: LocalBackend, conn: Any, ref: xr.Dataset, download: bool | None, no_length: Any
) -> None:
    spec, locator = no_length
    backend.clear_requests()
    ds = open_netcdf(spec, locator, download=download, block_size=SMALL_BLOCK)
    assert_same_values(ds, ref)
    if download is False:  # the length came from the Content-Range of a one-byte probe
        assert any(r.headers.get("Range") == "bytes=0-0" for r in asset_requests(backend))


@pytest.fixture(scope="module")
def no_length(conn: Any) -> tuple[AssetSpec, Links]:
    return run_job(conn, {"no_content_length": True})


@pytest.mark.parametrize("download", [None, False])
def test_head_refused(conn: Any, ref: xr.Dataset, download: bool | None) -> None:
    spec, locator = run_job(conn, {"head_refused": True})
    ds = open_netcdf(spec, locator, download=download, block_size=SMALL_BLOCK)
    assert_same_values(ds, ref)
    assert locator.refreshes == 0  # a refused HEAD is not an expired URL


SEED = 2  # a seed under which all four kinds of fault hit this test's requests


@pytest.fixture(scope="module")
def faulty_backend() -> Iterator[LocalBackend]:
    # Its own backend: injected faults are drawn per (request, attempt), counted server-wide.
    faults = Faults(error_rate=0.25, seed=SEED)
    with LocalBackend([SyntheticCollection(dates=3, width=300, height=300)], faults=faults) as b:
        yield b


def test_transient_errors_are_retried(faulty_backend: LocalBackend, ref: xr.Dataset) -> None:
    spec, locator = run_job(faulty_backend.connect())
    faulty_backend.clear_requests()
    ds = open_netcdf(spec, locator, download=False, block_size=SMALL_BLOCK)
    assert_same_values(ds, ref)
    faults = {r.fault for r in asset_requests(faulty_backend) if r.fault}
    assert {"500", "503", "drop", "truncate"} <= faults  # each kind happened, and was survived


def test_not_hdf5_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "classic.nc"
    path.write_bytes(b"CDF\x01" + bytes(100))
    spec = AssetSpec(key="classic.nc", href=str(path))
    with pytest.raises(AssetReadError, match="netCDF-3") as info:
        open_netcdf(spec, StaticLocator(spec.href))
    assert info.value.key == "classic.nc"


# -- combining tiles ------------------------------------------------------------------------------


def write_tiles(ref: xr.Dataset, tmp_path: Path, boxes: list[tuple[slice, slice]]) -> list[xr.Dataset]:
    opened = []
    for i, (ys, xs) in enumerate(boxes):
        path = tmp_path / f"tile{i}.nc"
        ref.isel(y=ys, x=xs).to_netcdf(path, engine="h5netcdf")
        spec = AssetSpec(key=path.name, href=str(path))
        opened.append(open_netcdf(spec, StaticLocator(spec.href)))
    return opened


def test_combine_tiles_of_one_grid(ref: xr.Dataset, tmp_path: Path) -> None:
    halves = [slice(0, 150), slice(150, 300)]
    tiles = write_tiles(ref, tmp_path, [(ys, xs) for ys in halves for xs in reversed(halves)])
    ds = combine_netcdf(tiles[::-1])
    assert isinstance(ds.B04.data, da.Array) and ds.B04.dims == ("t", "y", "x")
    assert ds.rio.crs.to_epsg() == 32631
    np.testing.assert_array_equal(ds.y.values, ref.y.values)
    assert_same_values(ds, ref)


@pytest.mark.parametrize(
    "boxes",
    [
        [(slice(0, 150), slice(0, 150)), (slice(0, 150), slice(100, 300))],  # overlap
        [(slice(0, 150), slice(0, 150)), (slice(150, 300), slice(0, 150)), (slice(0, 150), slice(150, 300))],  # hole
    ],
)
def test_combine_refuses_what_does_not_tile(ref: xr.Dataset, tmp_path: Path, boxes: list) -> None:
    with pytest.raises(XrOpenEOError, match="separate datasets"):
        combine_netcdf(write_tiles(ref, tmp_path, boxes))


def test_combine_refuses_other_grids(ref: xr.Dataset, tmp_path: Path) -> None:
    a, b = write_tiles(ref, tmp_path, [(slice(0, 150), slice(0, 300)), (slice(150, 300), slice(0, 300))])
    with pytest.raises(XrOpenEOError, match="different x grids"):
        combine_netcdf([a, b.assign_coords(x=b.x + 3.0)])
    with pytest.raises(XrOpenEOError, match="different CRSs"):
        combine_netcdf([a, b.rio.write_crs("EPSG:4326")])
