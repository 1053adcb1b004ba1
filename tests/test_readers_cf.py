"""CF netCDF files written here, opened from disk and over HTTP: decoding, odd layouts, mosaics and grids.

Each test writes small CF files (geopyspark's layout: ``t``/``time``, pixel-centre ``x``/``y``, a
``crs`` variable, one variable per band), lists them in a results document and opens it with
``open_results``: from disk (``file://`` hrefs), and from a static server on 127.0.0.1 with tiny
header and block sizes, so that h5py needs bytes that were not fetched yet at every step (the
ranged path). Files that tile one grid mosaic into one cube (holes NaN, overlaps first-valid);
files on different grids come back as DataTree groups.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pyproj
import pytest
import xarray as xr
from corpus import CorpusServer

import xr_openeo
from xr_openeo.errors import AssetReadError

Publish = Callable[[dict[str, Path]], Any]
TIMES = np.array(["2023-01-01", "2023-01-06"], dtype="datetime64[ns]")
ROWS, COLS = 40, 60
X0, Y0, RES = 640000.0, 5690000.0, 10.0  # west and north edges, pixel size (EPSG:32631)


def full_cube() -> xr.Dataset:
    """Two uint16 bands on 2 dates × 40 × 60 pixels, nodata 0 at a few pixels, as a CF Dataset."""
    shape = (TIMES.size, ROWS, COLS)
    b04 = (np.arange(np.prod(shape)) % 997 + 1).reshape(shape).astype("uint16")
    b08 = (b04.astype("uint32") * 3 % 65000 + 1).astype("uint16")
    b04[0, 5, 7] = b04[1, 30, 50] = 0
    return xr.Dataset(
        {"B04": (("t", "y", "x"), b04), "B08": (("t", "y", "x"), b08)},
        coords={
            "t": TIMES,
            "y": Y0 - RES * (np.arange(ROWS) + 0.5),
            "x": X0 + RES * (np.arange(COLS) + 0.5),
        },
    )


def write_cf(
    ds: xr.Dataset, path: Path, epsg: int = 32631, chunks: tuple[int, int] = (16, 16), geotransform: bool = False
) -> Path:
    """``ds`` as geopyspark writes netCDF: a ``crs`` variable, ``_FillValue`` 0, HDF5 chunks of ``chunks``;
    with ``geotransform``, GDAL's ``GeoTransform`` on the ``crs`` variable as well."""
    out = ds.copy()
    crs = pyproj.CRS.from_epsg(epsg)
    attrs = {**crs.to_cf(), "spatial_ref": crs.to_wkt()}
    if geotransform:
        west, north = float(ds.x[0]) - RES / 2, float(ds.y[0]) + RES / 2
        attrs["GeoTransform"] = f"{west} {RES} 0.0 {north} 0.0 {-RES}"
    out["crs"] = xr.Variable((), np.array(b"", dtype="S1"), attrs)
    encoding: dict[str, Any] = {}
    for name, var in ds.data_vars.items():
        out[name].attrs["grid_mapping"] = "crs"
        dims = var.dims
        sizes = {"y": min(chunks[0], ds.sizes["y"]), "x": min(chunks[1], ds.sizes["x"])}
        encoding[name] = {"chunksizes": tuple(sizes.get(str(d), 1) for d in dims)}
        if var.dtype.kind in "iu":
            encoding[name]["_FillValue"] = np.array(0, dtype=var.dtype)
    out.to_netcdf(path, engine="h5netcdf", encoding=encoding)
    return path


def document(hrefs: dict[str, str]) -> dict[str, Any]:
    assets = {key: {"href": href, "type": "application/x-netcdf", "roles": ["data"]} for key, href in hrefs.items()}
    return {"type": "Collection", "stac_version": "1.1.0", "id": "local-cf", "links": [], "assets": assets}


class LockWatchingServer(CorpusServer):
    """A static server that notes every request it gets while some thread holds h5py's global lock."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.while_h5py_locked: list[str] = []

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        from h5py._objects import phil

        if phil.acquire(blocking=False):
            phil.release()
        else:
            self.while_h5py_locked.append(f"{environ['PATH_INFO']} {environ.get('HTTP_RANGE')}")
        return super()._app(environ, start_response)


@pytest.fixture(params=["disk", "http"])
def publish(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Publish]:
    """Publishes files (``{asset key: path}``) as a results document; gives what open_results opens."""
    if request.param == "disk":
        yield lambda files: document({key: path.as_uri() for key, path in files.items()})
        return
    served = tmp_path / "served"
    served.mkdir()
    with (
        CorpusServer(served) as server,
        xr_openeo.set_options(download_threshold=0, header_bytes=1024, block_bytes=2048),
    ):

        def serve(files: dict[str, Path]) -> str:
            for key, path in files.items():
                (served / key).write_bytes(path.read_bytes())
            (served / "results").mkdir(exist_ok=True)
            doc = document({key: f"{server.url}/{key}" for key in files})
            (served / "results" / "_index").write_text(json.dumps(doc))
            return f"{server.url}/results"

        yield serve
        xr_openeo.clear_caches()


# -- decoding --------------------------------------------------------------------------------------


def test_time_is_renamed_t_and_every_band_is_t_y_x(tmp_path: Path, publish: Publish) -> None:
    """An EODC-style file: ``time``, a band stored ``(y, x, time)``, a static ``(y, x)`` band, EPSG:4326."""
    values = np.arange(2 * 3 * 4, dtype="uint16").reshape(2, 3, 4)
    source = xr.Dataset(
        {
            "B1": (("time", "y", "x"), values, {"grid_mapping": "crs"}),
            "B2": (("y", "x", "time"), values.transpose(1, 2, 0), {"grid_mapping": "crs"}),
            "B3": (("y", "x"), values[0] + 100, {"grid_mapping": "crs"}),
            "crs": ((), b"", {"spatial_ref": pyproj.CRS.from_epsg(4326).to_wkt()}),
        },
        coords={"time": TIMES, "y": [3.0, 2.0, 1.0], "x": [0.0, 1.0, 2.0, 3.0]},
    )
    source.B1.encoding["_FillValue"] = np.uint16(0)
    source.to_netcdf(tmp_path / "eodc.nc", engine="h5netcdf")
    for chunks in (None, {"t": -1}):  # one date per read, and both dates in one read
        ds = xr_openeo.open_results(publish({"eodc.nc": tmp_path / "eodc.nc"}), chunks=chunks)
        assert "time" not in ds.dims and {ds[b].dims for b in ("B1", "B2", "B3")} == {("t", "y", "x")}
        np.testing.assert_array_equal(ds.t.values, TIMES)
        assert np.isnan(ds.B1.values[0, 0, 0]) and ds.B1.encoding["_FillValue"] == 0
        np.testing.assert_array_equal(ds.B1.values[1], values[1])
        np.testing.assert_array_equal(ds.B2.values, values)  # no _FillValue of its own: its 0 stays 0
        np.testing.assert_array_equal(ds.B3.values, np.stack([values[0] + 100] * 2))  # holds for each date
        assert ds.rio.crs.to_epsg() == 4326 and "crs" not in ds.variables


def test_int_chunks_round_up_to_whole_hdf5_chunks(tmp_path: Path, publish: Publish) -> None:
    path = write_cf(full_cube(), tmp_path / "a.nc", chunks=(16, 32))
    ds = xr_openeo.open_results(publish({"a.nc": path}), chunks={"y": 1, "x": 20})
    assert ds.B04.chunks == ((1, 1), (16, 16, 8), (32, 28))


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"CDF\x01" + bytes(100), "netCDF-3 \\(classic\\) file"),
        (b"PK\x03\x04 a zip, not a netCDF at all" + bytes(100), "does not start with the HDF5 signature"),
    ],
)
def test_what_is_not_hdf5_is_a_clear_error(tmp_path: Path, publish: Publish, head: bytes, why: str) -> None:
    path = tmp_path / "classic.nc"
    path.write_bytes(head)
    with pytest.raises(AssetReadError, match=why) as info:
        xr_openeo.open_results(publish({"classic.nc": path}))
    assert info.value.key == "classic.nc" and "classic.nc" in str(info.value)


def test_a_file_that_is_no_raster_opens_on_its_own(tmp_path: Path, publish: Publish) -> None:
    """A vector cube saved as netCDF (``(t, feature)`` variables): a Dataset of its own, read lazily."""
    values = np.arange(2 * 5, dtype="float32").reshape(2, 5) / 4
    vector = xr.Dataset({"B04": (("t", "feature"), values)}, coords={"t": TIMES, "feature": np.arange(5)})
    vector.to_netcdf(tmp_path / "series.nc", engine="h5netcdf")
    ds = xr_openeo.open_results(publish({"series.nc": tmp_path / "series.nc"}))
    assert ds.B04.dims == ("t", "feature") and isinstance(ds.B04.data, da.Array)
    np.testing.assert_array_equal(ds.B04.values, values)


# -- mosaics and grids -----------------------------------------------------------------------------


def tiles(tmp_path: Path, boxes: list[tuple[slice, slice]], cube: xr.Dataset | None = None) -> dict[str, Path]:
    """One CF file per ``(rows, cols)`` box of the cube, keyed ``tile0.nc``, ``tile1.nc``…"""
    cube = full_cube() if cube is None else cube
    return {
        f"tile{i}.nc": write_cf(cube.isel(y=ys, x=xs), tmp_path / f"tile{i}.nc") for i, (ys, xs) in enumerate(boxes)
    }


def masked(values: np.ndarray) -> np.ndarray:
    out = values.astype("float32")
    out[values == 0] = np.nan
    return out


def test_tiles_of_one_grid_mosaic_into_one_cube(tmp_path: Path, publish: Publish) -> None:
    halves_y, halves_x = [slice(0, 20), slice(20, 40)], [slice(0, 30), slice(30, 60)]
    files = tiles(tmp_path, [(ys, xs) for ys in halves_y for xs in halves_x])
    ds = xr_openeo.open_results(publish(dict(reversed(files.items()))))
    cube = full_cube()
    assert isinstance(ds, xr.Dataset) and isinstance(ds.B04.data, da.Array) and ds.B04.dims == ("t", "y", "x")
    assert ds.rio.crs.to_epsg() == 32631
    np.testing.assert_array_equal(ds.y.values, cube.y.values)
    np.testing.assert_array_equal(ds.x.values, cube.x.values)
    for band in ("B04", "B08"):
        np.testing.assert_array_equal(ds[band].values, masked(cube[band].values))


def test_overlaps_take_the_first_valid_pixel_and_holes_are_nan(tmp_path: Path, publish: Publish) -> None:
    cube = full_cube()
    first = cube.isel(y=slice(0, 20), x=slice(0, 40))
    second = (cube.isel(y=slice(0, 20), x=slice(20, 60)) + 1000).astype("uint16")
    first["B04"][0, 3, 25] = 0  # nodata in the overlap: the second file's pixel shows through
    files = {
        "first.nc": write_cf(first, tmp_path / "first.nc"),
        "second.nc": write_cf(second, tmp_path / "second.nc"),
        "bottom.nc": write_cf(cube.isel(y=slice(30, 40), x=slice(0, 60)), tmp_path / "bottom.nc"),
    }
    ds = xr_openeo.open_results(publish(files))
    assert ds.sizes == {"t": 2, "y": 40, "x": 60}
    b04 = ds.B04.values
    np.testing.assert_array_equal(b04[:, :20, :40][:, :, :20], masked(first.B04.values)[:, :, :20])
    assert b04[0, 3, 25] == second.B04.values[0, 3, 5]  # the first file had no data there
    overlap = masked(first.B04.values)[:, :, 20:]
    np.testing.assert_array_equal(np.where(np.isnan(overlap), b04[:, :20, 20:40], overlap), b04[:, :20, 20:40])
    np.testing.assert_array_equal(b04[:, :20, 40:], masked(second.B04.values)[:, :, 20:])
    assert np.isnan(b04[:, 20:30]).all()  # no file covers these rows
    np.testing.assert_array_equal(b04[:, 30:], masked(cube.B04.values[:, 30:]))


@pytest.mark.parametrize("geotransform", [True, False])
def test_a_single_pixel_file_needs_a_geotransform_to_join_the_mosaic(
    tmp_path: Path, publish: Publish, geotransform: bool
) -> None:
    """A one-pixel file (a small feature of ``sample_by_feature``) says nothing of its pixel size by its
    coordinates: its GeoTransform does. Without one it is opened on its own, never on a made-up grid."""
    cube = full_cube()
    files = {
        "field.nc": write_cf(cube.isel(y=slice(0, 20)), tmp_path / "field.nc"),
        "pixel.nc": write_cf(
            cube.isel(y=slice(30, 31), x=slice(10, 11)), tmp_path / "pixel.nc", geotransform=geotransform
        ),
    }
    opened = xr_openeo.open_results(publish(files))
    if not geotransform:
        assert isinstance(opened, xr.DataTree)
        pixel = opened["pixel.nc"].to_dataset()
        np.testing.assert_array_equal(pixel.B04.values, cube.B04.values[:, 30:31, 10:11])
        return
    assert isinstance(opened, xr.Dataset) and opened.sizes == {"t": 2, "y": 31, "x": 60}
    assert opened.B04.chunks[1:] == ((20, 11), (60,))  # chunks follow the larger file, not the one pixel
    b04 = opened.B04.values
    np.testing.assert_array_equal(b04[:, 30, 10], masked(cube.B04.values[:, 30, 10]))
    assert np.isnan(b04[:, 20:30]).all() and np.isnan(b04[:, 30, 11:]).all()
    np.testing.assert_array_equal(b04[:, :20], masked(cube.B04.values[:, :20]))


@pytest.mark.parametrize("change", ["shifted", "crs"])
def test_files_on_other_grids_come_back_as_groups(tmp_path: Path, publish: Publish, change: str) -> None:
    cube = full_cube()
    top, bottom = cube.isel(y=slice(0, 20)), cube.isel(y=slice(20, 40))
    if change == "shifted":  # a third of a pixel east: no whole-pixel offset puts it on the first grid
        bottom = bottom.assign_coords(x=bottom.x + RES / 3)
    files = {"top.nc": write_cf(top, tmp_path / "top.nc"), "bottom.nc": write_cf(bottom, tmp_path / "bottom.nc")}
    if change == "crs":
        files["bottom.nc"] = write_cf(bottom, tmp_path / "bottom.nc", epsg=32632)
    source = publish(files)
    tree = xr_openeo.open_results(source)
    assert isinstance(tree, xr.DataTree)
    groups = [node.to_dataset() for node in tree.subtree if node.has_data]
    assert len(groups) == 2
    by_rows = sorted(groups, key=lambda g: -float(g.y[0]))
    for group, part in zip(by_rows, (top, bottom), strict=True):
        np.testing.assert_allclose(group.x.values, part.x.values)
        np.testing.assert_array_equal(group.B08.values, masked(part.B08.values))
    assert {g.rio.crs.to_epsg() for g in groups} == ({32631} if change == "shifted" else {32631, 32632})
    with pytest.raises(ValueError, match="different grids"):
        xr.open_dataset(source, engine="openeo", chunks={})


def test_h5py_never_waits_on_the_network(tmp_path: Path) -> None:
    """h5py holds a global lock while it reads through a Python file object, and freeing an h5py object
    (a garbage collection on any thread) needs that lock. A read that waited on the network under it
    deadlocked against the threads of an in-process server (until the read timed out, 120 s later).

    So no request is ever sent while that lock is held: the server checks at every request. One
    file, read one chunk at a time (synchronous scheduler): the lock can only be held by the thread
    that waits for the answer.
    """
    served = tmp_path / "served"
    served.mkdir()
    files = {"a.nc": write_cf(full_cube(), served / "a.nc")}
    with (
        LockWatchingServer(served) as server,
        xr_openeo.set_options(download_threshold=0, header_bytes=1024, block_bytes=2048),
    ):
        doc = document({key: f"{server.url}/{key}" for key in files})
        ds = xr_openeo.open_results(doc).load(scheduler="synchronous")
        requests = server.requests
    xr_openeo.clear_caches()
    np.testing.assert_array_equal(ds.B04.values, masked(full_cube().B04.values))
    assert len(requests) > 10  # metadata and chunks came in many small requests
    assert server.while_h5py_locked == []


def test_random_windows_read_right_with_a_tiny_cache(tmp_path: Path) -> None:
    """Windows of every shape, read on 4 threads through 2 KiB blocks of which the file keeps 4: h5py
    misses bytes at almost every step, blocks are forgotten and fetched again, and every value is right."""
    cube = full_cube()
    served = tmp_path / "served"
    served.mkdir()
    write_cf(cube, served / "a.nc", chunks=(8, 8))
    rng = np.random.default_rng(7)
    with (
        CorpusServer(served) as server,
        xr_openeo.set_options(download_threshold=0, header_bytes=1024, block_bytes=2048, cache_bytes=8192),
    ):
        ds = xr_openeo.open_results(document({"a.nc": f"{server.url}/a.nc"}), chunks={"y": 8, "x": 8})
        for _ in range(12):
            (y0, y1), (x0, x1) = (sorted(rng.choice(n + 1, 2, replace=False)) for n in (ROWS, COLS))
            window = {"t": slice(int(rng.integers(2)), 2), "y": slice(y0, y1), "x": slice(x0, x1)}
            got = ds[["B04", "B08"]].isel(window).load(scheduler="threads", num_workers=4)
            for band in ("B04", "B08"):
                np.testing.assert_array_equal(got[band].values, masked(cube[band].isel(window).values))
        requests = server.requests
    xr_openeo.clear_caches()
    assert len(requests) > 50


def test_windows_read_on_many_threads_at_once_read_right(tmp_path: Path) -> None:
    """Eight threads each compute windows of one file at the same time: each window's chunks are looked
    up and fetched while others are, in a cache that keeps a few dozen of them (forgotten and fetched
    again while other windows still need theirs), and every value is right."""
    cube = full_cube()
    served = tmp_path / "served"
    served.mkdir()
    write_cf(cube, served / "a.nc", chunks=(8, 8))
    rng = np.random.default_rng(11)
    windows = []
    for _ in range(48):
        (y0, y1), (x0, x1) = (sorted(int(v) for v in rng.choice(n + 1, 2, replace=False)) for n in (ROWS, COLS))
        windows.append({"t": slice(int(rng.integers(2)), 2), "y": slice(y0, y1), "x": slice(x0, x1)})
    with (
        CorpusServer(served) as server,
        xr_openeo.set_options(download_threshold=0, header_bytes=1024, block_bytes=2048, cache_bytes=4096),
    ):
        ds = xr_openeo.open_results(document({"a.nc": f"{server.url}/a.nc"}))

        def read(window: dict[str, slice]) -> xr.Dataset:
            return ds[["B04", "B08"]].isel(window).load(scheduler="synchronous")

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(read, windows))
        requests = server.requests
    xr_openeo.clear_caches()
    for window, got in zip(windows, results, strict=True):
        for band in ("B04", "B08"):
            np.testing.assert_array_equal(got[band].values, masked(cube[band].isel(window).values))
    assert len(requests) > len(windows)
    starts = [int(r.headers["Range"].split("=")[1].split("-")[0]) for r in requests if "Range" in r.headers]
    assert any(start % 2048 for start in starts)  # chunks came by their own ranges, not in blocks
