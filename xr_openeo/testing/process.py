"""The local backend in a process of its own, for measurements that must not count its CPU or memory."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .backend import TEST_USER


class BackendProcess:
    """``python -m xr_openeo.testing`` in a subprocess on a free port; its request log over HTTP.

    Benchmarks use it so that the backend's job execution, file serving and injected latency do not
    show up in the measuring process's time, peak memory or GIL contention.

    Parameters
    ----------
    dates, size, blocksize, seed, results_style
        As the command line options of ``python -m xr_openeo.testing``.
    faults
        Server-wide fault switches, e.g. ``{"latency": 0.02}``.
    """

    def __init__(
        self,
        *,
        dates: int = 3,
        size: int = 256,
        blocksize: int = 256,
        seed: int = 42,
        results_style: str = "stac-1.0",
        faults: dict[str, Any] | None = None,
    ) -> None:
        self.options = dict(dates=dates, size=size, blocksize=blocksize, seed=seed, results_style=results_style)
        self.faults = dict(faults or {})
        self.workdir: Path | None = None
        self._proc: subprocess.Popen[str] | None = None
        self.root = ""

    @property
    def url(self) -> str:
        """The openEO API 1.2 root."""
        return f"{self.root}/openeo/1.2"

    def start(self) -> BackendProcess:
        self.workdir = Path(tempfile.mkdtemp(prefix="xr_openeo-backend-"))
        o = self.options
        cmd = [sys.executable, "-m", "xr_openeo.testing", "--port", "0", "--dates", str(o["dates"])]
        cmd += ["--size", str(o["size"]), str(o["size"]), "--blocksize", str(o["blocksize"]), "--seed", str(o["seed"])]
        cmd += ["--results-style", str(o["results_style"]), "--workdir", str(self.workdir)]
        cmd += ["--faults", json.dumps(self.faults)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if not found:
            self.stop()
            raise RuntimeError(f"the local backend process did not start (it printed {line!r})")
        self.root = found.group(1)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> BackendProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def connect(self, user: tuple[str, str] = TEST_USER) -> Any:
        """An ``openeo.Connection`` authenticated as ``user`` (basic auth)."""
        import openeo

        return openeo.connect(self.url).authenticate_basic(*user)

    def requests(self) -> list[dict[str, Any]]:
        """Every request served since the last :meth:`clear_requests` (the log's own routes left out)."""
        import requests

        records = requests.get(f"{self.root}/_local/requests", timeout=60).json()
        return [r for r in records if not r["path"].startswith("/_local")]

    def clear_requests(self) -> None:
        import requests

        requests.delete(f"{self.root}/_local/requests", timeout=60).raise_for_status()

    def files(self, job_id: str) -> list[Path]:
        """The files a job wrote, in name order."""
        assert self.workdir is not None, "start() the backend first"
        return sorted(p for p in self.workdir.rglob("*") if p.is_file() and job_id in p.parts)
