"""Every example runs against the local backend as a user would run it in CI or cron: a fresh process with
its output redirected to files (not a terminal), whose stderr shows the job's progress lines."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).parent.parent / "examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))
#: A status line of xr_openeo's progress display without a terminal, for a job that finished.
FINISHED = re.compile(r"^Batch job '[^']+': finished \(progress [^)]*\) after \d+:\d\d:\d\d$", re.MULTILINE)


def run_redirected(args: list[str], tmp_path: Path, cwd: Path) -> tuple[int, str, str]:
    """Run ``args`` with stdout and stderr redirected to files; (return code, stdout, stderr)."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        code = subprocess.run(args, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, timeout=300, cwd=cwd)
    return code.returncode, out.read_text(), err.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_shows_progress_in_a_log_file(script, tmp_path):
    code, out, err = run_redirected([sys.executable, str(script)], tmp_path, script.parent)
    assert code == 0, err[-3000:]
    assert out.strip()
    assert FINISHED.search(err), f"no progress lines in the example's stderr:\n{err[-3000:]}"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_each_example_says_which_extra_it_needs(script):
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    assert re.search(r'Needs: pip install "xr_openeo\[[a-z,]+\]"', doc), doc


def test_the_cluster_example_says_what_to_install_without_dask_distributed(tmp_path):
    script = EXAMPLES_DIR / "on_a_cluster.py"
    hide = (
        "import runpy, sys\n"
        "sys.modules['distributed'] = sys.modules['dask.distributed'] = None  # as if not installed\n"
        f"sys.path.insert(0, {str(EXAMPLES_DIR)!r})\n"
        f"sys.argv = [{str(script)!r}]\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    code, out, err = run_redirected([sys.executable, "-c", hide], tmp_path, EXAMPLES_DIR)
    assert code == 1 and out == ""
    assert 'needs dask.distributed, which is not installed: pip install "xr_openeo[distributed]"' in err
    assert "Traceback" not in err
