"""The one graph-running path of batch jobs and synchronous requests, without a server."""

from __future__ import annotations

import pytest
import rasterio
from conftest import SMALL, SMALL_BLOCKSIZE, SMALL_EXTENT, expected_ndvi

from xr_openeo.testing import Faults
from xr_openeo.testing.execution import Canceled, InjectedFailure, execute_graph
from xr_openeo.testing.graphs import with_save_result


def ndvi_graph(fmt: str | None = "GTiff") -> dict:
    graph = {
        "load": {
            "process_id": "load_collection",
            "arguments": {"id": "SENTINEL2_L2A", "spatial_extent": SMALL_EXTENT, "bands": ["B04", "B08"]},
        },
        "ndvi": {"process_id": "ndvi", "arguments": {"data": {"from_node": "load"}, "red": "B04", "nir": "B08"}},
    }
    if fmt is None:
        graph["ndvi"]["result"] = True
    else:
        graph["save"] = {
            "process_id": "save_result",
            "arguments": {"data": {"from_node": "ndvi"}, "format": fmt},
            "result": True,
        }
    return graph


def run(graph, out_dir, faults: Faults | None = None, **kwargs):
    logs: list[tuple[str, str]] = []
    kwargs.setdefault("checkpoint", lambda: None)
    kwargs.setdefault("job_options", {})
    assets = execute_graph(
        graph,
        collections=[SMALL],
        out_dir=out_dir,
        faults=faults or Faults(),
        blocksize=SMALL_BLOCKSIZE,
        log=lambda level, message: logs.append((level, message)),
        **kwargs,
    )
    return assets, logs


def test_a_graph_writes_its_files_and_logs(tmp_path):
    assets, logs = run(ndvi_graph(), tmp_path)
    assert [a.key for a in assets] == ["openEO_2023-01-01Z.tif", "openEO_2023-01-06Z.tif", "openEO_2023-01-11Z.tif"]
    assert ("info", "save_result: format GTiff") in logs
    with rasterio.open(assets[1].path) as ds:
        assert ds.read(1).shape == expected_ndvi(1).shape


def test_an_implicit_save_writes_a_raster_as_gtiff(tmp_path):
    assets, logs = run(with_save_result(ndvi_graph(fmt=None)), tmp_path)
    assert len(assets) == 3 and ("info", "save_result: format GTiff") in logs


def test_a_checkpoint_stops_the_run_before_a_file_is_kept(tmp_path):
    def cancel():
        raise Canceled

    with pytest.raises(Canceled):
        run(ndvi_graph(), tmp_path, checkpoint=cancel)


def test_an_injected_failure_hands_over_the_files_written_before_it(tmp_path):
    handed: list = []
    with pytest.raises(InjectedFailure, match="disk full"):
        run(ndvi_graph(), tmp_path, Faults(fail="disk full", fail_after_assets=2), on_failure=handed.extend)
    assert [a.key for a in handed] == ["openEO_2023-01-01Z.tif", "openEO_2023-01-06Z.tif"]
    with pytest.raises(InjectedFailure, match="at once"):
        run(ndvi_graph(), tmp_path / "other", Faults(fail="at once"), on_failure=handed.extend)
    assert not (tmp_path / "other").exists()  # failed before running anything


def test_job_options_reach_the_writers(tmp_path):
    assets, _ = run(ndvi_graph(), tmp_path, job_options={"attach_gdalinfo_assets": True})
    names = sorted(a.key for a in assets)
    assert (
        sum(name.endswith(".tif_gdalinfo.json") for name in names)
        == SMALL.dates
        == sum(name.endswith(".tif") for name in names)
    )
