"""Reducing a result larger than memory: peak RSS while computing ``mean`` over ``t``.

The backend runs in its own process (``BackendProcess``) so that its job and file serving do not
count towards this process's peak memory.
"""

from __future__ import annotations

import os
import resource

import xr_openeo
from xr_openeo.testing import BackendProcess

from ._common import canonical_url, memory_workload_dates, pick, run_job

BUDGET_MIB = float(os.environ.get("XR_OPENEO_BENCH_MEMORY_BUDGET_MIB", pick(256, 1)))
SIZE = pick(1024, 128)
DATES = memory_workload_dates(BUDGET_MIB, SIZE)


class ReduceOverTime:
    """``ds.mean("t")`` of a 3-band float32 result ≥ 4× ``BUDGET_MIB`` (85 dates of 1024² by default)."""

    timeout = 900

    def setup(self) -> None:
        self.backend = BackendProcess(dates=DATES, size=SIZE, blocksize=256).start()
        self.job = run_job(self.backend.connect(), "GTiff", dates=DATES)
        self.url = canonical_url(self.job)

    def teardown(self) -> None:
        self.backend.stop()

    def _reduce(self) -> float:
        ds = xr_openeo.open_results(self.url, dtype="float32")
        self.result_bytes = ds.nbytes
        return float(ds.mean("t").to_dataarray().sum())

    def peakmem_mean_over_t(self) -> None:
        self._reduce()

    def track_peak_rss_over_result_size(self) -> float:
        """Peak RSS of this process during the reduction / the result's size (target ≤ 0.25)."""
        self._reduce()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / self.result_bytes

    track_peak_rss_over_result_size.unit = "ratio"  # type: ignore[attr-defined]
