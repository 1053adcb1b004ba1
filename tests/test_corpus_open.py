"""Every corpus entry opened end to end: served with real files on 127.0.0.1, opened as a user would.

Asserts what issue 12 asks: dims, coordinates, CRS, dtype, nodata and values of the result, the
assets skipped (and said so with a ``SkippedAssetWarning``), and no asset request at open wherever
``proj:*`` gives the grid.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from corpus import BY_NAME, ENTRIES, CorpusServer, Entry, Window, materialize
from corpus.files import FEATURES, timeseries_value

import xr_openeo
from xr_openeo.errors import SkippedAssetWarning, UnsupportedMediaTypeError

SERVED = [e for e in ENTRIES if not e.on_disk]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CorpusServer]:
    with CorpusServer(tmp_path / "served") as served:
        yield served


def serve(entry: Entry, server: CorpusServer) -> str:
    """Write the entry under the server's folder; the URL of its results document."""
    materialize(entry, server.root, server.url)
    return f"{server.url}{entry.results_path}"


def asset_requests(entry: Entry, server: CorpusServer) -> list[str]:
    documents = {p.rstrip("/") for p in entry.documents.values()}
    return [r.path for r in server.requests if r.path.rstrip("/") not in documents]


def opened(open_: object, *args: object, **kwargs: object) -> tuple[object, dict[str, str]]:
    """``open_(*args, **kwargs)`` and the assets its SkippedAssetWarnings skipped; no other warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = open_(*args, **kwargs)  # type: ignore[operator]
    skipped: dict[str, str] = {}
    for w in caught:
        assert issubclass(w.category, SkippedAssetWarning), f"unexpected warning: {w.category.__name__}: {w.message}"
        skipped.update(w.message.skipped)  # type: ignore[union-attr]
    assert len([w for w in caught if issubclass(w.category, SkippedAssetWarning)]) <= 1, "reported more than once"
    return result, skipped


def check_raster(entry: Entry, ds: object) -> None:
    """The Dataset has the entry's variables, grid, dates, CRS, dtype and values (NaN where no file is)."""
    assert isinstance(ds, xr.Dataset), f"{entry.name}: expected one Dataset, got {type(ds).__name__}"
    cube, expected = entry.cube, entry.expected
    window = expected.window or Window(0, 0, *cube.shape)
    assert list(ds.data_vars) == list(expected.variables)
    assert expected.dates is not None
    assert dict(ds.sizes) == {"t": len(expected.dates), "y": window.rows, "x": window.cols}
    y, x = cube.coords(window)
    np.testing.assert_allclose(ds["y"].values, y)
    np.testing.assert_allclose(ds["x"].values, x)
    times = [np.datetime64(cube.dates[d].rstrip("Z"), "ns") for d in expected.dates]
    np.testing.assert_array_equal(ds["t"].values, np.array(times, dtype="datetime64[ns]"))
    assert ds.rio.crs is not None and ds.rio.crs.to_epsg() == cube.epsg
    covered = [f.window or Window(0, 0, *cube.shape) for f in entry.files if f.kind in ("geotiff", "netcdf")]
    for b, name in enumerate(expected.variables):
        variable = ds[name]
        assert variable.dims == ("t", "y", "x")
        assert variable.dtype == np.dtype("float32")
        if expected.fill_value is not None:
            assert variable.encoding.get("_FillValue") == expected.fill_value
        values = variable.values
        for i, d in enumerate(expected.dates):
            want = np.full((window.rows, window.cols), np.nan, dtype="float32")
            for w in covered:
                rows = slice(w.row - window.row, w.row - window.row + w.rows)
                cols = slice(w.col - window.col, w.col - window.col + w.cols)
                want[rows, cols] = cube.expected(b, d, w)
            np.testing.assert_array_equal(values[i], want, err_msg=f"{entry.name}: {name} on {cube.dates[d]}")


def check_table(entry: Entry, frame: object) -> None:
    assert isinstance(frame, pd.DataFrame)
    expected = entry.expected
    assert expected.dates is not None and expected.table_shape is not None
    assert list(frame.index.names) == ["t", "feature"]
    assert list(frame.columns) == list(expected.table_columns)
    assert frame.shape == expected.table_shape
    for d in expected.dates:
        when = pd.Timestamp(entry.cube.dates[d]).tz_localize(None)
        for f in range(FEATURES):
            row = frame.loc[(when, f)]
            for b, column in enumerate(expected.table_columns):
                value = timeseries_value(f, b, d)
                if value is None:
                    assert np.isnan(row[column])
                else:
                    assert row[column] == pytest.approx(value)


@pytest.mark.parametrize("entry", [e for e in SERVED if e.expected.front == "raster"], ids=lambda e: e.name)
def test_rasters_open_as_one_cube(entry: Entry, server: CorpusServer) -> None:
    url = serve(entry, server)
    ds, skipped = opened(xr_openeo.open_results, url)
    at_open = asset_requests(entry, server)
    check_raster(entry, ds)
    if entry.expected.grid_in_metadata:
        assert at_open == [], f"{entry.name}: proj:* gives the grid, yet opening requested {at_open}"
    assert set(skipped) == set(entry.expected.skipped)


@pytest.mark.parametrize("entry", [e for e in SERVED if e.expected.front == "table"], ids=lambda e: e.name)
def test_tables_open_as_one_frame(entry: Entry, server: CorpusServer) -> None:
    url = serve(entry, server)
    frame, skipped = opened(xr_openeo.open_dataframe, url)
    check_table(entry, frame)
    assert set(skipped) == set(entry.expected.skipped)


@pytest.mark.parametrize("entry", [e for e in SERVED if e.expected.front == "error"], ids=lambda e: e.name)
def test_not_results_documents_say_what_to_pass(entry: Entry, server: CorpusServer) -> None:
    url = serve(entry, server)
    assert entry.expected.error is not None
    with pytest.raises(entry.expected.error) as info:
        xr_openeo.open_results(url)
    assert f"{server.url}{entry.expected.message}" in str(info.value)


def test_document_on_disk_with_relative_links(tmp_path: Path) -> None:
    entry = BY_NAME["disk-relative-links"]
    materialize(entry, tmp_path)
    ds, skipped = opened(xr_openeo.open_results, tmp_path / entry.results_path)
    assert skipped == {}
    check_raster(entry, ds)
    ds2, _ = opened(xr_openeo.open_results, str(tmp_path / entry.results_path))
    xr.testing.assert_identical(ds.load(), ds2.load())


def test_a_model_never_stops_an_open(server: CorpusServer) -> None:
    entry = BY_NAME["model-rasters"]
    url = serve(entry, server)
    ds, skipped = opened(xr_openeo.open_results, url, assets="geotiff")
    assert skipped == {}  # asked for by format: nothing to report
    check_raster(entry, ds)
    with pytest.raises(UnsupportedMediaTypeError, match="catboost_model.cbm.tar.gz"):
        xr_openeo.open_results(url, assets="catboost_model.cbm.tar.gz")


def test_a_tile_grid_with_per_tile_proj_reads_each_file_once(server: CorpusServer) -> None:
    entry = BY_NAME["tile-grid-per-tile"]
    url = serve(entry, server)
    ds, _ = opened(xr_openeo.open_results, url)
    assert asset_requests(entry, server) == []
    ds.load()
    gets = [r for r in server.requests if r.method == "GET" and r.path in {f.path for f in entry.files}]
    assert sorted(r.path for r in gets) == sorted(f.path for f in entry.files)  # one GET per file
    sizes = {f.path: (server.root / f.path.lstrip("/")).stat().st_size for f in entry.files}
    assert sum(r.bytes_sent for r in gets) == sum(sizes.values())
