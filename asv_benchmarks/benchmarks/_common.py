"""Sizes and finished jobs shared by the benchmarks.

``XR_OPENEO_BENCH_SMOKE=1`` shrinks every workload to a few tiny files: the CI smoke test runs each
benchmark once that way, so a broken benchmark fails CI without anything being timed there.
"""

from __future__ import annotations

import os
from typing import Any

SMOKE = os.environ.get("XR_OPENEO_BENCH_SMOKE") == "1"


def pick(full: Any, smoke: Any) -> Any:
    """``full`` for real runs, ``smoke`` under ``XR_OPENEO_BENCH_SMOKE=1``."""
    return smoke if SMOKE else full


def run_job(
    conn: Any,
    out_format: str,
    *,
    dates: int,
    bands: tuple[str, ...] = ("B02", "B03", "B04"),
    cube: Any = None,
    size: int | None = None,
    job_options: dict[str, Any] | None = None,
) -> Any:
    """A finished batch job over the first ``dates`` dates of the synthetic collection.

    ``size``: only the collection's top left ``size`` × ``size`` pixels (default: all of it).
    """
    import pandas as pd

    if cube is None:
        end = (pd.Timestamp("2023-01-01") + pd.Timedelta(days=5 * dates)).strftime("%Y-%m-%d")
        extent = None if size is None else top_left(size)
        cube = conn.load_collection(
            "SENTINEL2_L2A", bands=list(bands), temporal_extent=["2023-01-01", end], spatial_extent=extent
        )
    job = cube.create_job(out_format=out_format, job_options=job_options)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


def top_left(size: int) -> dict[str, Any]:
    """The spatial extent of the synthetic collection's top left ``size`` × ``size`` pixels (10 m, UTM 31N)."""
    west, north = 640000, 5690000
    return {"west": west, "south": north - 10 * size, "east": west + 10 * size, "north": north, "crs": 32631}


def asset_requests(records: Any) -> list[Any]:
    """The asset downloads among request-log records (objects or dicts)."""
    return [r for r in records if "/results/assets/" in (r["path"] if isinstance(r, dict) else r.path)]


def canonical_url(job: Any) -> str:
    """The signed results URL of a finished job: readable without the job owner's token."""
    links = job.get_results().get_metadata()["links"]
    return next(link["href"] for link in links if link["rel"] == "canonical")


def memory_workload_dates(budget_mib: float, size: int) -> int:
    """Dates of ``size``² pixels making a float32 3-band result at least 4× ``budget_mib``."""
    return max(2, -int(-4 * budget_mib * 2**20 // (3 * size * size * 4)))
