"""Reliability figures for RELIABILITY.md: read results through injected faults, count what happened.

Run from the repository root::

    python asv_benchmarks/reliability.py [--dates 20] [--rate 0.1] [--seed 31] [--only faults|distributed|expiry]

Prints one JSON line per scenario:

- ``faults``: GeoTIFF (whole files and 256-pixel windows) and netCDF read on the threaded
  scheduler through a backend where ``--rate`` of asset requests fail; requests served, faults
  injected by kind, retries made, and whether the arrays equal a fault-free read.
- ``distributed``: the same for GeoTIFF windows computed by a ``dask.distributed`` LocalCluster
  (2 worker processes, 1 thread each).

Retries are counted at the backend, from its request log: a faulted request that was asked again
(the same path and range) later.
- ``expiry``: signed URLs valid for 2 s during a threaded computation of many tasks (each request
  delayed 0.1 s so that it outlives a few expiries): results-document GETs during the compute
  against the number of URL expiries that fell within it.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from typing import Any

import xarray as xr

import xr_openeo
from xr_openeo.testing import Faults, LocalBackend, SyntheticCollection

BANDS = ["B02", "B03", "B04"]


def run_job(backend: LocalBackend, fmt: str, bands: list[str] = BANDS, job_options: dict | None = None) -> Any:
    conn = backend.connect()
    job = conn.load_collection("SENTINEL2_L2A", bands=bands).create_job(out_format=fmt, job_options=job_options)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    backend.clear_requests()
    return job


def read(backend: LocalBackend, chunks: dict | None, fmt: str) -> xr.Dataset:
    return xr_openeo.open_results(run_job(backend, fmt), chunks=chunks).load().drop_attrs()


def fault_counts(backend: LocalBackend) -> dict[str, Any]:
    """Asset requests served, faults injected by kind, and retries: faulted requests asked again later."""
    assets = [r for r in backend.requests if "/results/assets/" in r.path]
    kinds = collections.Counter(r.fault for r in assets if r.fault)
    last = {(r.path, r.headers.get("Range")): r.started for r in sorted(assets, key=lambda r: r.started)}
    retried = sum(1 for r in assets if r.fault and last[(r.path, r.headers.get("Range"))] > r.started)
    return {
        "asset_requests": len(assets),
        "faults": dict(kinds),
        "faults_total": sum(kinds.values()),
        "retries": retried,
    }


def faults(args: argparse.Namespace) -> None:
    collection = SyntheticCollection(dates=args.dates, width=512, height=512)
    for fmt, chunks in (("GTiff", None), ("GTiff", {"y": 256, "x": 256}), ("netCDF", None)):
        with LocalBackend([collection]) as clean:
            expected = read(clean, chunks, fmt)
        with LocalBackend([collection], faults=Faults(error_rate=args.rate, seed=args.seed)) as flaky:
            got = read(flaky, chunks, fmt)
            counts = fault_counts(flaky)
        report(
            "faults",
            format=fmt,
            chunks=chunks,
            dates=args.dates,
            error_rate=args.rate,
            seed=args.seed,
            **counts,
            identical=bool(got.identical(expected)),
        )


def distributed_faults(args: argparse.Namespace) -> None:
    import distributed

    collection = SyntheticCollection(dates=args.dates, width=512, height=512)
    chunks = {"y": 256, "x": 256}
    with LocalBackend([collection]) as clean:
        expected = read(clean, chunks, "GTiff")
    with (
        LocalBackend([collection], faults=Faults(error_rate=args.rate, seed=args.seed)) as flaky,
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        ds = xr_openeo.open_results(run_job(flaky, "GTiff"), chunks=chunks)
        got = client.compute(ds).result().drop_attrs()
        workers = client.run(lambda: 1)
        counts = fault_counts(flaky)
    report(
        "distributed",
        format="GTiff",
        chunks=chunks,
        workers=len(workers),
        tasks=ds[BANDS[0]].data.npartitions,
        dates=args.dates,
        error_rate=args.rate,
        seed=args.seed,
        **counts,
        identical=bool(got.identical(expected)),
    )


def expiry(args: argparse.Namespace) -> None:
    from xr_openeo.results import parse_results, url_expiry

    collection = SyntheticCollection(dates=args.dates, width=512, height=512)
    with LocalBackend([collection], record_json=True) as backend:
        job = run_job(backend, "GTiff", ["B04"], {"faults": {"url_validity": 2, "latency": 0.1}})
        ds = xr_openeo.open_results(job, chunks={"y": 256, "x": 256})
        tasks = ds.B04.data.npartitions
        t0 = time.time()
        ds.load(scheduler="threads", num_workers=4)
        t1 = time.time()
        docs = [r for r in backend.requests if r.method == "GET" and r.path.endswith(f"/jobs/{job.job_id}/results")]
        expiries = {url_expiry(parse_results(r.json_body).assets[0].href) for r in docs}
        asset_requests = len([r for r in backend.requests if "/results/assets/" in r.path and r.started >= t0])
    report(
        "expiry",
        url_validity=2,
        tasks=tasks,
        asset_requests=asset_requests,
        seconds=round(t1 - t0, 1),
        expiries_during=len([e for e in expiries if e is not None and t0 <= e <= t1]),
        document_gets_during=len([r for r in docs if r.started >= t0]),
    )


def report(scenario: str, **figures: Any) -> None:
    print(json.dumps({"scenario": scenario, **figures}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dates", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--only", choices=["faults", "distributed", "expiry"], help="run one scenario")
    args = parser.parse_args()
    scenarios = {"faults": faults, "distributed": distributed_faults, "expiry": expiry}
    for name, scenario in scenarios.items():
        if args.only in (None, name):
            scenario(args)


if __name__ == "__main__":
    main()
