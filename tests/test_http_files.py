"""RemoteFile: size from the first ranged GET, the header cache, blocks, concurrent ranges, servers that ignore
Range, local files, pickles; and the two libraries it is for, GDAL (rasterio's opener) and h5py."""

from __future__ import annotations

import io
import pickle
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted_http import Answer, File, Gate, scripted_server

import xr_openeo
from xr_openeo.errors import AssetReadError
from xr_openeo.http import HEADS, Auth, Links, RemoteFile, clear_caches, fetch_ranges

DATA = bytes(random.Random(5).randrange(256) for _ in range(300_000))


@pytest.fixture(scope="module")
def server():
    with scripted_server() as s:
        yield s


@pytest.fixture(autouse=True)
def fresh_caches():
    clear_caches()
    yield
    clear_caches()


def served(server, path: str, file: File) -> Links:
    return Links({"f": server.script(path, file)}, Auth())


def requests_to(server, path: str) -> list[tuple[str, str | None]]:
    return [(r.method, r.headers.get("Range")) for r in server.requests if r.path.split("?")[0] == path]


def test_size_from_the_first_ranged_get_then_header_cache_and_blocks(server):
    links = served(server, "/a.bin", File(DATA))
    f = RemoteFile("f", links, head_bytes=1000, block_bytes=10_000)
    assert f.size == len(DATA) and f.seekable() and f.readable() and not f.writable()
    assert requests_to(server, "/a.bin") == [("GET", "bytes=0-999")]  # no HEAD
    assert f.read(10) == DATA[:10] and f.tell() == 10
    f.seek(-5, io.SEEK_END)
    assert f.read() == DATA[-5:] and f.read() == b""
    f.seek(25_000)
    assert f.read(100) == DATA[25_000:25_100] and f.pread(20_500, 200) == DATA[20_500:20_700]  # one block
    f.seek(995)
    assert f.read(10) == DATA[995:1005]  # across the header's end
    assert f.pread(50_000, 60_000) == DATA[50_000:110_000]  # a large read: fetched as asked
    assert requests_to(server, "/a.bin")[1:] == [
        ("GET", "bytes=290000-299999"),
        ("GET", "bytes=20000-29999"),
        ("GET", "bytes=0-9999"),
        ("GET", "bytes=50000-109999"),
    ]
    again = RemoteFile("f", links, head_bytes=1000, block_bytes=10_000)
    assert again.size == len(DATA) and again.read(1000) == DATA[:1000]
    assert len(requests_to(server, "/a.bin")) == 5  # the header came from the per-process cache
    buffer = bytearray(7)
    again.seek(3)
    assert again.readinto(buffer) == 7 and bytes(buffer) == DATA[3:10]
    with pytest.raises(OSError):
        again.seek(-1)


def test_read_all_is_one_get(server):
    # Nothing known of the file yet: one GET of all of it, whose start is kept as the header.
    links = served(server, "/whole.bin", File(DATA))
    assert RemoteFile("f", links, head_bytes=4096).read_all() == DATA
    assert requests_to(server, "/whole.bin") == [("GET", None)]
    assert RemoteFile("f", links, head_bytes=4096).size == len(DATA)  # from the kept header: no request
    assert len(requests_to(server, "/whole.bin")) == 1
    # The header already read: one GET of what it did not bring.
    links = served(server, "/all.bin", File(DATA))
    f = RemoteFile("f", links, head_bytes=4096)
    assert f.size == len(DATA) and f.read_all() == DATA
    assert requests_to(server, "/all.bin") == [("GET", "bytes=0-4095"), ("GET", f"bytes=4096-{len(DATA) - 1}")]
    small = served(server, "/small.bin", File(DATA[:100]))
    assert RemoteFile("f", small).read_all() == DATA[:100] and len(requests_to(server, "/small.bin")) == 1
    assert RemoteFile("f", small).readall() == DATA[:100]


def test_ranges_asked_together_go_out_at_once(server):
    links = served(server, "/ranges.bin", File(DATA))
    f = RemoteFile("f", links, head_bytes=1000)
    assert f.size == len(DATA)
    gate = threading.Barrier(3)
    server.script("/ranges.bin", Gate(gate, File(DATA)))  # answers only once all 3 requests have arrived
    offsets, sizes = [100_000, 200_000, 150_000, 50, 100_500], [500, 600, 700, 20, 100]
    assert f.read_ranges(offsets, sizes) == [DATA[o : o + s] for o, s in zip(offsets, sizes, strict=True)]
    assert sorted(requests_to(server, "/ranges.bin")[1:]) == [
        ("GET", "bytes=100000-100599"),  # two adjacent ranges merged; the header range served from memory
        ("GET", "bytes=150000-150699"),
        ("GET", "bytes=200000-200599"),
    ]
    gate = threading.Barrier(2)
    plain = Links({"f": server.script("/plain.bin", Gate(gate, File(DATA)))}, Auth())
    assert fetch_ranges("f", plain, [(10, 20), (5000, 6000), (20, 30)]) == [DATA[10:20], DATA[5000:6000], DATA[20:30]]
    assert sorted(requests_to(server, "/plain.bin")) == [("GET", "bytes=10-29"), ("GET", "bytes=5000-5999")]


def test_a_server_ignoring_range_is_read_once(server):
    links = served(server, "/norange.bin", File(DATA, ranges=False))
    f = RemoteFile("f", links, head_bytes=1000)
    assert f.size == len(DATA) and f.pread(200_000, 10) == DATA[200_000:200_010]
    assert f.read_ranges([5, 250_000], [5, 5]) == [DATA[5:10], DATA[250_000:250_005]] and f.read_all() == DATA
    assert requests_to(server, "/norange.bin") == [("GET", "bytes=0-999")]  # its whole answer was kept
    other = RemoteFile("f", links, head_bytes=1000)  # the header cache knows; the body is fetched once more
    assert other.pread(100_000, 3) == DATA[100_000:100_003] and other.pread(7, 3) == DATA[7:10]
    assert len(requests_to(server, "/norange.bin")) == 2
    unknown = served(server, "/nototal.bin", File(DATA, total=False))  # Content-Range: bytes 0-999/*
    assert RemoteFile("f", unknown, head_bytes=1000).size == len(DATA)
    assert requests_to(server, "/nototal.bin") == [("GET", "bytes=0-999"), ("GET", None)]


def test_failures_name_the_asset(server):
    links = Links({"gone.tif": server.script("/gone.tif?X-Amz-Signature=abc", Answer(404))}, Auth())
    with xr_openeo.set_options(retries=0), pytest.raises(AssetReadError) as info:
        RemoteFile("gone.tif", links).read(10)
    assert (info.value.key, info.value.status, info.value.cause) == ("gone.tif", 404, "HTTP 404")
    assert "abc" not in str(info.value) and "X-Amz-Signature=REDACTED" in info.value.href


def test_local_files_and_file_urls(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    for href in (str(path), path.as_uri()):
        f = RemoteFile("f", Links({"f": href}, Auth()))
        assert f.size == len(DATA) and f.read_all() == DATA and f.pread(10, 5) == DATA[10:15]
        assert f.read_ranges([0, 299_990], [3, 100]) == [DATA[:3], DATA[299_990:]]
        f.close()
        with pytest.raises(ValueError):
            f.pread(0, 1)
    with pytest.raises(AssetReadError, match="no such file") as info:
        RemoteFile("f", Links({"f": str(tmp_path / "missing.bin")}, Auth())).read(1)
    assert info.value.cause == "no such file"


def test_pickles_by_constructor_arguments(server):
    links = Links({"f": server.script("/p.bin", File(DATA))}, Auth("http://127.0.0.1", "basic//secret-token"))
    f = RemoteFile("f", links, head_bytes=512, block_bytes=2048)
    f.read(100)
    blob = pickle.dumps(f)
    assert b"secret-token" not in blob
    restored = pickle.loads(blob)
    assert (restored.key, restored.head_bytes, restored.block_bytes, restored.tell()) == ("f", 512, 2048, 0)
    assert restored.read(100) == DATA[:100] and "secret-token" not in repr(restored)


def test_caches_are_bounded_in_bytes(server):
    with xr_openeo.set_options(cache_bytes=5_000):
        for i in range(10):
            assert RemoteFile("f", served(server, f"/many{i}.bin", File(DATA)), head_bytes=1000).size == len(DATA)
            assert HEADS.nbytes <= 5_000
        f = RemoteFile("f", served(server, "/blocks.bin", File(DATA)), head_bytes=100, block_bytes=1000)
        for start in range(0, 100_000, 1000):
            assert f.pread(start + 500, 10) == DATA[start + 500 : start + 510]
        assert sum(len(b) for b in f._blocks.values()) <= 5_000
    assert len(HEADS) == 5  # four headers of 1,000 bytes and one of 100
    clear_caches()
    assert len(HEADS) == 0 and HEADS.nbytes == 0


def test_threads_reading_one_file_get_the_right_bytes(server):
    f = RemoteFile("f", served(server, "/threads.bin", File(DATA)), head_bytes=2000, block_bytes=8192)
    rng = random.Random(3)
    reads = [(rng.randrange(len(DATA)), rng.randrange(1, 20_000)) for _ in range(200)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda r: f.pread(*r), reads))
    assert got == [DATA[o : o + n] for o, n in reads]


@given(reads=st.lists(st.tuples(st.integers(0, len(DATA) + 10), st.integers(0, 30_000)), max_size=8))
@settings(max_examples=40, deadline=None)
def test_any_reads_give_the_files_bytes(server, reads):
    f = RemoteFile("f", served(server, "/any.bin", File(DATA)), head_bytes=1500, block_bytes=7000)
    for offset, size in reads:
        f.seek(offset)
        assert f.read(size) == DATA[offset : offset + size]
    assert f.read_ranges([o for o, _ in reads], [s for _, s in reads]) == [DATA[o : o + s] for o, s in reads]


# -- the libraries it is for ---------------------------------------------------------------------


class OneFile:
    """rasterio's multi-range opener protocol serving one RemoteFile as ``asset.tif``, nothing else."""

    def __init__(self, file: RemoteFile) -> None:
        self.file = file

    def open(self, path, mode="rb", **kwargs):
        if not path.endswith("asset.tif"):
            raise FileNotFoundError(path)
        return self.file

    def isfile(self, path):
        return path.endswith("asset.tif")

    def isdir(self, path):
        return False

    def ls(self, path):
        return []

    def mtime(self, path):
        return 0

    def rm(self, path):
        raise PermissionError(path)

    def size(self, path):
        return self.file.size


def cog(width: int = 512, height: int = 512) -> tuple[bytes, np.ndarray]:
    """A tiled, compressed 3-band uint16 GeoTIFF in memory, and its pixels."""
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.transform import Affine

    pixels = np.random.default_rng(1).integers(0, 10_000, (3, height, width), dtype="uint16")
    profile = dict(driver="GTiff", width=width, height=height, count=3, dtype="uint16", tiled=True)
    profile.update(blockxsize=128, blockysize=128, compress="deflate", crs="EPSG:32631")
    with MemoryFile() as memfile:
        with memfile.open(transform=Affine(10, 0, 600000, 0, -10, 5700000), **profile) as ds:
            ds.write(pixels)
        assert rasterio  # imported for the driver registration
        return memfile.read(), pixels


def test_gdal_reads_windows_with_a_header_and_concurrent_tile_ranges(server):
    import rasterio
    from rasterio.windows import Window

    data, pixels = cog()
    links = served(server, "/cog.tif", File(data))
    f = RemoteFile("f", links, head_bytes=16_384)
    with (
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
        rasterio.open("/x/asset.tif", opener=OneFile(f)) as ds,
    ):
        assert (ds.count, ds.width, ds.block_shapes[0]) == (3, 512, (128, 128))
        window = ds.read(window=Window(128, 256, 256, 128))
    np.testing.assert_array_equal(window, pixels[:, 256:384, 128:384])
    sent = requests_to(server, "/cog.tif")
    assert sent[0] == ("GET", "bytes=0-16383") and all(m == "GET" for m, _ in sent)
    assert 1 < len(sent) <= 3  # the header, then the window's two tiles (merged where adjacent)


def test_h5py_and_h5netcdf_read_through_it(server):
    import h5netcdf
    import h5py

    buffer = io.BytesIO()
    values = np.arange(4 * 200 * 300, dtype="float32").reshape(4, 200, 300)
    with h5netcdf.File(buffer, "w") as nc:
        nc.dimensions = {"t": 4, "y": 200, "x": 300}
        var = nc.create_variable("B04", ("t", "y", "x"), "float32", chunks=(1, 100, 100), compression="gzip")
        var[...] = values
    links = served(server, "/data.nc", File(buffer.getvalue()))
    f = RemoteFile("f", links, head_bytes=8192, block_bytes=16_384)
    h5 = h5py.File(f, "r")
    try:
        with h5netcdf.File(h5, "r") as nc:
            np.testing.assert_array_equal(nc.variables["B04"][2, 50:150, 100:200], values[2, 50:150, 100:200])
    finally:
        h5.close()
    assert all(m == "GET" for m, _ in requests_to(server, "/data.nc"))
