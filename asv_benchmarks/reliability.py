"""Reliability figures for RELIABILITY.md: read results through injected faults, count what happened.

Run from the repository root: ``python asv_benchmarks/reliability.py [--dates 20] [--rate 0.1] [--seed 31]``.
Prints one JSON line per scenario: requests served, faults injected by kind, retries made, and
whether the arrays equal a fault-free read of the same results.
"""

from __future__ import annotations

import argparse
import collections
import json

import xarray as xr

import xr_openeo
from xr_openeo import http
from xr_openeo.testing import Faults, LocalBackend, SyntheticCollection


def read(backend: LocalBackend, chunks: dict | None, fmt: str) -> xr.Dataset:
    conn = backend.connect()
    job = conn.load_collection("SENTINEL2_L2A", bands=["B02", "B03", "B04"]).create_job(out_format=fmt)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    backend.clear_requests()
    return xr_openeo.open_results(job, chunks=chunks).load().drop_attrs()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dates", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args()
    collection = SyntheticCollection(dates=args.dates, width=512, height=512)
    for fmt, chunks in (("GTiff", None), ("GTiff", {"y": 256, "x": 256}), ("netCDF", None)):
        with LocalBackend([collection]) as clean:
            expected = read(clean, chunks, fmt)
        with LocalBackend([collection], faults=Faults(error_rate=args.rate, seed=args.seed)) as flaky:
            before = dict(http.stats)
            got = read(flaky, chunks, fmt)
            assets = [r for r in flaky.requests if "/results/assets/" in r.path]
            kinds = collections.Counter(r.fault for r in assets if r.fault)
        print(
            json.dumps(
                {
                    "format": fmt,
                    "chunks": chunks,
                    "dates": args.dates,
                    "error_rate": args.rate,
                    "seed": args.seed,
                    "asset_requests": len(assets),
                    "faults": dict(kinds),
                    "faults_total": sum(kinds.values()),
                    "retries": http.stats["retries"] - before["retries"],
                    "identical": bool(got.identical(expected)),
                }
            )
        )


if __name__ == "__main__":
    main()
