"""The README's main command runs end to end (small sizes)."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_a_job_opens_it_lazily_and_writes_a_plot(tmp_path):
    plot = tmp_path / "demo.png"
    out = subprocess.run(
        [sys.executable, "-m", "xr_openeo", "demo", "--dates", "2", "--size", "64", "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "finished in" in out and "dask.array" in out and "Mean NDVI per date" in out
    assert plot.read_bytes().startswith(b"\x89PNG")
