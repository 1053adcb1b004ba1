"""The README's main command runs end to end (small sizes), with its output redirected to files as in CI."""

from __future__ import annotations

import re
import subprocess
import sys

FINISHED = re.compile(r"^Batch job '[^']+': finished \(progress 100%\) after \d+:\d\d:\d\d$", re.MULTILINE)


def test_demo_runs_a_job_opens_it_lazily_and_writes_a_plot(tmp_path):
    plot = tmp_path / "demo.png"
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("w") as out, stderr.open("w") as err:
        subprocess.run(
            [sys.executable, "-m", "xr_openeo", "demo", "--dates", "2", "--size", "64", "--plot", str(plot)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            timeout=300,
            check=True,
        )
    out_text, err_text = stdout.read_text(), stderr.read_text()
    assert "finished in" in out_text and "dask.array" in out_text and "Mean NDVI per date" in out_text
    assert plot.read_bytes().startswith(b"\x89PNG")
    # Progress shows without a terminal and without any logging set-up: plain status lines on stderr.
    assert FINISHED.search(err_text), err_text[-3000:]
