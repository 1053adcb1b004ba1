"""Smoke tests: every asv benchmark and the comparison script run once at tiny sizes.

Nothing here is timed; a broken benchmark or baseline fails CI. The comparison run doubles as an
agreement check: every method must read exactly the same pixels as xr_openeo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )


@pytest.mark.slow
def test_every_asv_benchmark_runs_at_tiny_size():
    done = _run(["asv_benchmarks.smoke"])
    assert done.returncode == 0, done.stderr[-4000:]
    ran = [line for line in done.stdout.splitlines() if " -> " in line]
    for name in (
        "open_results.GeoTIFFResults.time_full_read",
        "open_results.OpenOverhead.time_open",
        "open_results.Import.timeraw_import_engine",
        "netcdf.NetCDFResults.time_subset_read",
        "timeseries.JSONTimeSeries.time_open_dataframe",
        "memory.ReduceOverTime.peakmem_mean_over_t",
        "large.LargeFiles.time_full_read_odc_stac",
        "large.LargeFiles.track_window_bytes_over_tiles",
        "large.LargeFiles.track_load_peak_rss_over_result",
    ):
        assert any(line.startswith(name) for line in ran), f"{name} did not run:\n{done.stdout}"
    # the request-count claims the benchmarks track hold at any size
    assert "GeoTIFFResults.track_asset_requests_open[2] -> 0" in done.stdout
    assert "GeoTIFFResults.track_full_read_bytes_ratio[2] -> 1.0" in done.stdout


@pytest.mark.slow
def test_compare_script_at_tiny_size_agrees_across_methods(tmp_path):
    out = tmp_path / "compare.json"
    # Every method and every kind of selection once (full reads through large-full, loads through large-load,
    # windows through window-default and large-window): the cross product of all workloads cost twice the
    # time for no code path more.
    workloads = "open,window-default,netcdf-subset,memory,large-full,large-load,large-window"
    args = ["asv_benchmarks.compare", "--dates", "3", "--size", "256", "--netcdf-dates", "2", "--window", "128"]
    args += ["--large-dates", "2", "--large-size", "512", "--large-window", "256", "--bandwidth-mbit", "2000"]
    args += ["--repeat", "1", "--latency", "0", "--memory-budget", "1", "--workloads", workloads, "--json", str(out)]
    done = _run(args)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert set(report["workloads"]) == set(workloads.split(","))
    for name, workload in report["workloads"].items():
        rows = workload["rows"]
        assert "xr_openeo" in rows, name
        if name == "open":
            assert rows["xr_openeo"]["asset_requests"] == 0
            continue
        expected = rows["xr_openeo"]["checksum"]
        for method, row in rows.items():
            if method == "dask-floor":  # in-memory values, for the memory floor only
                continue
            assert row["checksum"] == expected, f"{name}: {method} read different pixels than xr_openeo"
            assert row["peak_rss_mib"] > 0 and row["result_mib"] > 0
    for name, method in (("large-full", "xr_openeo"), ("large-load", "xr_openeo-load")):  # one GET per file
        workload = report["workloads"][name]
        xr_row = workload["rows"][method]
        assert (
            xr_row["asset_bytes"] == workload["job"]["file_bytes"]
            and xr_row["asset_requests"] == workload["job"]["files"]
        )
    for name in ("window-default", "large-window"):  # a window moves its tiles and headers, not the files
        workload = report["workloads"][name]
        assert workload["rows"]["xr_openeo"]["asset_bytes"] <= 1.2 * workload["job"][f"window_bytes_{name}"]
    assert report["options"]["bandwidth_mbit"] == 2000
    assert "| xr_openeo |" in done.stdout and "× xr_openeo" in done.stdout
