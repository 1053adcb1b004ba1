"""xr_openeo.download: safe file names (hypothesis), the served bytes on disk, no overwriting, atomic writes.

File names come from asset keys, which the results document chooses: the end-to-end tests serve documents
whose keys try to leave the target directory, and check that nothing is written anywhere else.
"""

from __future__ import annotations

import copy
import importlib
import io
import threading
import time
import unicodedata
from collections import Counter
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from conftest import SMALL, SMALL_BLOCKSIZE, SMALL_EXTENT
from hypothesis import given, settings
from hypothesis import strategies as st

import xr_openeo
from xr_openeo import http
from xr_openeo.downloads import MAX_NAME_BYTES, safe_filename, unique_filenames
from xr_openeo.errors import AssetReadError, UnsupportedMediaTypeError
from xr_openeo.sources import load_results
from xr_openeo.testing import LocalBackend

# The module itself, for its internals.
download_module = importlib.import_module("xr_openeo.downloads")

ATTACKS = ["../../x", "/etc/passwd", "..\\..\\x", "C:\\x", "a/../../b"]
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{d}{i}" for d in ("COM", "LPT") for i in range(1, 10)}
TOKENS = [
    "..",
    ".",
    "/",
    "\\",
    "C:",
    "c:",
    "\x00",
    "\n",
    "\x7f",
    "CON",
    "nul",
    "lpt1",
    "a",
    "é",
    "\u202e",
    ":",
    " ",
    "~",
]
adversarial = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(TOKENS), max_size=12).map("".join),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=5)), max_size=12).map("".join),
    st.text(alphabet="é.a/ ", min_size=150, max_size=400),  # long, multi-byte: cut to MAX_NAME_BYTES
)


@pytest.fixture(scope="module")
def directory(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("target")


def assert_safe(name: str, directory: Path) -> None:
    assert name and name not in (".", "..") and not name.startswith(".")
    assert not set(name) & set('/\\<>:"|?*') and name == name.strip(" ") and not name.endswith(".")
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in name)
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.split(".")[0].rstrip(" ").upper() not in WINDOWS_DEVICES
    windows = PureWindowsPath(name)
    assert not windows.drive and not windows.root and windows.parent == PureWindowsPath(".")
    assert PurePosixPath(name).parent == PurePosixPath(".")
    target = (directory / name).resolve()
    assert target.is_relative_to(directory.resolve()) and target.parent == directory.resolve()


@given(adversarial)
@settings(max_examples=400, deadline=None)
def test_safe_filename_never_leaves_the_directory(directory, name):
    safe = safe_filename(name)
    assert_safe(safe, directory)
    assert safe_filename(safe) == safe


@given(st.lists(adversarial, max_size=12))
@settings(max_examples=200, deadline=None)
def test_unique_filenames_are_distinct_and_safe(directory, names):
    safe = [safe_filename(n) for n in names]
    unique = unique_filenames(safe)
    assert len(unique) == len(safe)
    assert len({u.casefold() for u in unique}) == len(unique)  # distinct on case-insensitive file systems too
    for i, (original, name) in enumerate(zip(safe, unique, strict=True)):
        assert_safe(name, directory)
        assert safe_filename(name) == name
        if original.casefold() not in {s.casefold() for s in safe[:i]}:
            assert name == original  # the first of equal names keeps it
        else:
            assert name != original and name.startswith(PurePosixPath(original).stem.rstrip(". ")[:10])


@pytest.mark.parametrize(
    "key, expected",
    [
        ("../../x", "x"),
        ("/etc/passwd", "etc_passwd"),
        ("..\\..\\x", "x"),
        ("C:\\x", "C__x"),
        ("a/../../b", "a_b"),
        (".bashrc", "bashrc"),
        ("..", "asset"),
        ("", "asset"),
        ("nul.tif", "_nul.tif"),
        ("x\u202egpj.exe", "x_gpj.exe"),
        ("openEO_2023-01-01Z.tif", "openEO_2023-01-01Z.tif"),
        ("j-1_2023-01-01T00:00:00Z_openEO", "j-1_2023-01-01T00_00_00Z_openEO"),
    ],
)
def test_safe_filename_examples(key, expected):
    assert safe_filename(key) == expected


def test_unique_filenames_never_take_a_later_name():
    assert unique_filenames(["a.tif", "A.tif", "a-2.tif", "a.tif"]) == ["a.tif", "A-3.tif", "a-2.tif", "a-4.tif"]


# -- against the local backend ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend():
    with LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE) as b:
        yield b


@pytest.fixture(scope="module")
def connection(backend):
    return backend.connect()


def run_job(connection, **options):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    job = cube.create_job(out_format="GTiff", job_options=options or None)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


@pytest.fixture(scope="module")
def job(connection):
    return run_job(connection)


def served(backend, job) -> dict[str, bytes]:
    """The files the backend wrote for ``job``, by asset key: what a download must reproduce."""
    return {a.key: a.path.read_bytes() for a in backend.job(job.job_id).assets}


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file() or p.is_symlink()}


def asset_gets(backend) -> list:
    return [r for r in backend.requests if "/results/assets/" in r.path]


@pytest.mark.parametrize("chunk", [None, 40_000])
def test_download_writes_the_served_bytes(backend, job, tmp_path, chunk):
    backend.clear_requests()
    if chunk:  # several ranged requests per file
        paths = xr_openeo.download(job, tmp_path / "out", chunk_bytes=chunk)
    else:
        paths = xr_openeo.download(job, tmp_path / "out")
    expected = served(backend, job)
    assert list(paths) == sorted(expected) and len(expected) == 3
    for key, path in paths.items():
        assert path == (tmp_path / "out" / key).resolve() and path.read_bytes() == expected[key]
    assert files_under(tmp_path) == set(paths.values())  # no temporary file left
    gets = asset_gets(backend)
    if chunk:
        assert {r.status for r in gets} == {206}
        assert len(gets) == sum(-(-len(b) // chunk) for b in expected.values())
    else:
        assert len(gets) == 3


def test_malicious_asset_keys_stay_in_the_directory(backend, connection, job, tmp_path):
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    originals = served(backend, job)
    real = list(doc["assets"].items())
    keys = [*ATTACKS, "x", "a/b.tif", "a\\b.tif", "A_B.TIF", ".profile", "CON", "\x00\n"]
    doc["assets"] = {key: copy.deepcopy(real[i % len(real)][1]) for i, key in enumerate(keys)}
    # Without item links: the items would add their own (original) keys whenever their signed hrefs
    # were issued in another second than this document's, since several keys here share one file.
    doc["links"] = [link for link in doc["links"] if link.get("rel") != "item"]
    source_of = {key: real[i % len(real)][0] for i, key in enumerate(keys)}
    target = tmp_path / "a" / "b" / "c"  # "../../x" would land in tmp_path, where it is looked for

    paths = xr_openeo.download(doc, target, connection=connection)

    assert list(paths) == keys
    assert len({p.name.casefold() for p in paths.values()}) == len(keys)  # collisions got distinct names
    for key, path in paths.items():
        assert path.resolve().is_relative_to(target.resolve()) and path.parent == target.resolve()
        assert path.read_bytes() == originals[source_of[key]], key
    assert files_under(tmp_path) == set(paths.values())
    names = sorted(p.name for p in paths.values())
    assert names == sorted(
        [
            "x.tif",
            "etc_passwd.tif",
            "x-2.tif",
            "C__x.tif",
            "a_b.tif",
            "x-3.tif",
            "a_b-2.tif",
            "a_b-3.tif",
            "A_B-4.TIF",
            "profile.tif",
            "_CON.tif",
            "__.tif",
        ]
    )


def test_keys_without_an_extension_get_one_for_their_format(connection, tmp_path):
    job = run_job(connection, **{"results-style": "stac-1.1"})
    paths = xr_openeo.download(job, tmp_path)
    assert len(paths) == 3 and all(":" in k and ":" not in p.name for k, p in paths.items())
    assert all(p.suffix == ".tif" and not k.endswith(".tif") for k, p in paths.items())


def test_existing_files_are_not_overwritten_unless_asked(backend, job, tmp_path):
    paths = xr_openeo.download(job, tmp_path)
    first = next(iter(paths.values()))
    first.write_bytes(b"mine")
    backend.clear_requests()
    with pytest.raises(FileExistsError, match="overwrite=True") as info:
        xr_openeo.download(job, tmp_path)
    assert str(first) in str(info.value) and info.value.filename == str(first)
    assert asset_gets(backend) == [] and first.read_bytes() == b"mine"  # checked before any download

    again = xr_openeo.download(job, tmp_path, overwrite=True)
    assert again == paths and first.read_bytes() == served(backend, job)[first.name]
    assert files_under(tmp_path) == set(paths.values())


def test_a_symlink_under_a_target_name_is_replaced_never_followed(backend, job, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    target = tmp_path / "out"
    target.mkdir()
    key = sorted(served(backend, job))[0]
    (target / key).symlink_to(outside)
    with pytest.raises(FileExistsError):
        xr_openeo.download(job, target)
    paths = xr_openeo.download(job, target, overwrite=True)
    assert not paths[key].is_symlink() and paths[key].read_bytes() == served(backend, job)[key]
    assert outside.read_text() == "keep me"


def test_a_persistent_failure_leaves_no_partial_file(connection, tmp_path):
    job = run_job(connection, faults={"error_rate": 1.0, "error_kinds": ["truncate"]})
    with pytest.raises(AssetReadError, match="failed after 5 attempt") as info:
        xr_openeo.download(job, tmp_path)
    hrefs = [a["href"] for a in connection.get(f"/jobs/{job.job_id}/results").json()["assets"].values()]
    signatures = {href.rsplit("/", 2)[-2] for href in hrefs}
    assert info.value.key is not None and not [s for s in signatures if s in str(info.value)]
    assert any("Not downloaded" in note for note in info.value.__notes__)
    assert files_under(tmp_path) == set()


def test_a_failure_halfway_through_a_file_keeps_the_others_and_no_part_file(backend, job, tmp_path, monkeypatch):
    keys = sorted(served(backend, job))
    broken = keys[1]
    real_fetch = http.fetch

    def fetch(key, locator, byte_range=None, **kwargs):
        if key == broken and byte_range and byte_range[0] > 0:
            raise AssetReadError(f"Reading asset {key!r} failed (injected)", key=key, status=503)
        return real_fetch(key, locator, byte_range, **kwargs)

    monkeypatch.setattr(http, "fetch", fetch)
    with pytest.raises(AssetReadError, match="injected") as info:
        # one at a time: the others are done or not begun
        xr_openeo.download(job, tmp_path, max_workers=1, chunk_bytes=40_000)
    assert info.value.key == broken
    written = files_under(tmp_path)
    assert all(not p.name.startswith(".") for p in written) and tmp_path / broken not in written
    notes = "\n".join(info.value.__notes__)
    assert f"Not downloaded: {[k for k in keys if tmp_path / k not in written]}" in notes
    for path in written:
        assert path.read_bytes() == served(backend, job)[path.name]


def test_the_token_goes_to_the_backend_only(backend, connection, tmp_path):
    job = run_job(connection, faults={"signed_urls": False, "redirect_assets": True})
    backend.clear_requests()
    paths = xr_openeo.download(job, tmp_path)
    expected = served(backend, job)
    assert {k: p.read_bytes() for k, p in paths.items()} == expected
    to_backend = asset_gets(backend)
    assert to_backend and all("Authorization" in r.headers and r.status == 302 for r in to_backend)
    host = backend.asset_host_requests
    assert host and not [r for r in host if "Authorization" in r.headers]
    assert not [r for r in host if connection.auth.bearer.rpartition("/")[2] in str(r.headers)]


def test_selecting_assets_and_the_accessor(backend, job, tmp_path):
    keys = sorted(served(backend, job))
    one = xr_openeo.download(job, tmp_path / "one", assets=keys[0])
    assert list(one) == [keys[0]]
    ds = xr_openeo.open_results(job, assets=keys[1:])
    paths = ds.openeo.download(tmp_path / "acc")
    assert list(paths) == keys[1:] and all(p.read_bytes() == served(backend, job)[k] for k, p in paths.items())
    assert list(ds.openeo.download(tmp_path / "all", assets="data")) == keys
    with pytest.raises(ValueError, match="names no batch job"):
        xr_openeo.from_cube(job.connection.load_collection("SENTINEL2_L2A")).openeo.download(tmp_path)


def test_what_cannot_be_downloaded_fails_before_anything_is_written(connection, job, tmp_path):
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    key, asset = next(iter(doc["assets"].items()))
    zarr = copy.deepcopy(doc)
    zarr["assets"] = {key: asset, "cube.zarr": {**asset, "type": "application/vnd+zarr", "href": asset["href"]}}
    with pytest.raises(UnsupportedMediaTypeError, match="Zarr store"):
        xr_openeo.download(zarr, tmp_path / "z")
    local = copy.deepcopy(doc)
    local["assets"] = {key: asset, "local.tif": {**asset, "href": "file:///etc/hostname"}}
    with pytest.raises(AssetReadError, match="not at an http"):
        xr_openeo.download(local, tmp_path / "l")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_workers"):
            xr_openeo.download(doc, tmp_path / "w", max_workers=bad)
        with pytest.raises(ValueError, match="chunk_bytes"):
            xr_openeo.download(doc, tmp_path / "w", chunk_bytes=bad)
    assert files_under(tmp_path) == set()


@pytest.mark.parametrize(
    "faults",
    [
        {"range_ignored": True},
        {"no_content_length": True},
        {"error_rate": 0.3, "seed": 3},
        {"redirect_assets": True, "head_refused": True},
    ],
    ids=["range-ignored", "no-content-length", "transient-errors", "redirected"],
)
def test_downloads_survive_what_backends_do(backend, connection, tmp_path, faults):
    job = run_job(connection, faults=faults)
    backend.clear_requests()
    paths = xr_openeo.download(job, tmp_path, chunk_bytes=100_000)
    assert {k: p.read_bytes() for k, p in paths.items()} == served(backend, job)
    assert files_under(tmp_path) == set(paths.values())
    if "error_rate" in faults:  # the faults hit, and each faulted request was asked again
        gets = asset_gets(backend)
        faulted = Counter((r.path, r.headers.get("Range")) for r in gets if r.fault)
        asked = Counter((r.path, r.headers.get("Range")) for r in gets)
        assert faulted and all(asked[request] > n for request, n in faulted.items())


def test_links_expiring_halfway_through_a_file_are_renewed(backend, connection, tmp_path):
    """The links expire, by the client's clock, once the first range of the first file has arrived.

    The clock jumps past the links' expiry (7 days) as soon as the backend has served an asset
    request: the next range of that file renews the links (one results document) and the download
    goes on with them.
    """
    job = run_job(connection)
    week = 8 * 24 * 3600.0
    backend.clear_requests()

    def clock() -> float:
        started = any("/results/assets/" in r.path for r in backend.requests)
        return time.time() + (week if started else 0.0)

    results = load_results(job, clock=clock)
    paths = xr_openeo.download(results, tmp_path, max_workers=1, chunk_bytes=40_000)
    assert {k: p.read_bytes() for k, p in paths.items()} == served(backend, job)
    documents = [r for r in backend.requests if r.path.endswith(f"/jobs/{job.job_id}/results")]
    assert len(documents) == 2  # the first, and once more for fresh links
    before = [r for r in asset_gets(backend) if r.started < documents[1].started]
    assert len(before) == 1 and before[0].headers["Range"] == "bytes=0-39999"  # halfway through the first file
    assert results.links.refreshes == 1


def test_refused_links_are_renewed_once_through_the_results_document(backend, connection, job, tmp_path):
    """Asset links refused by the server (a signature it rejects: 403) are renewed once, for every file."""
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    doc["links"] = [link for link in doc["links"] if link.get("rel") != "item"]
    for asset in doc["assets"].values():  # one character of each signature changed: the server refuses them
        head, user, signature, name = asset["href"].rsplit("/", 3)
        asset["href"] = f"{head}/{user}/{signature[:-1]}{'0' if signature[-1] != '0' else '1'}/{name}"
    backend.clear_requests()
    paths = xr_openeo.download(doc, tmp_path, connection=connection, max_workers=1)
    assert {k: p.read_bytes() for k, p in paths.items()} == served(backend, job)
    documents = [r for r in backend.requests if r.path.endswith(f"/jobs/{job.job_id}/results")]
    refused = [r for r in asset_gets(backend) if r.status == 403]
    assert len(documents) == 1 and len(refused) == 1  # the first refusal renews the links of every file


def test_empty_files_and_servers_ignoring_range():
    """``_copy`` against scripted answers: 416 for an empty file, a whole body for a range, a file that changes."""
    answers: list = []

    def fetch(key, links, byte_range=None, **kwargs):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def copy_(out, chunk=download_module.DEFAULT_CHUNK_BYTES):
        return download_module._copy("k", None, out, threading.Event(), chunk, fetch=fetch)

    out = io.BytesIO()
    answers[:] = [AssetReadError("HTTP 416", key="k", status=416), (b"", 0, False)]
    assert copy_(out) == 0 and out.getvalue() == b""
    out = io.BytesIO()
    answers[:] = [(b"whole file", 10, False)]
    assert copy_(out) == 10 and out.getvalue() == b"whole file"
    out = io.BytesIO()
    answers[:] = [(b"abcd", 10, True), (b"efgh", 10, True), (b"ij", 10, True)]
    assert copy_(out, 4) == 10 and out.getvalue() == b"abcdefghij"
    answers[:] = [(b"abcd", 10, True), (b"efgh", 12, True)]
    with pytest.raises(AssetReadError, match="changed while it was downloaded"):
        copy_(io.BytesIO(), 4)
    answers[:] = [(b"abcd", 10, True), (b"", 10, True)]
    with pytest.raises(AssetReadError, match="got 4 bytes, expected 10"):
        copy_(io.BytesIO(), 4)
