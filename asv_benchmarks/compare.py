"""Side by side: xr_openeo against the other ways of reading an openEO result, in one run.

``python -m asv_benchmarks.compare`` (from the repository root) starts the local openEO backend in
its own process with 20 ms of added latency per request (and, with ``--bandwidth-mbit``, one link of
that many Mbit/s shared by every download), runs the jobs the workloads need (50 dates × 3-band
512 × 512 uint16 COGs with tiles of 256; one netCDF; for ``large-*`` a few dates of 4096² COGs), then
measures each method in a fresh process: open time, compute time, peak RSS, requests and bytes (from
the backend's request log), dask tasks and pickled-graph size, and a checksum that must agree across
methods. It prints one table per workload with ratios to xr_openeo, and writes everything as JSON
(``--json``). Workloads are listed in :mod:`asv_benchmarks.workloads`, methods in
:mod:`asv_benchmarks.methods`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from asv_benchmarks.benchmarks._common import asset_requests, canonical_url, memory_workload_dates, run_job
from asv_benchmarks.cogs import window_bytes
from asv_benchmarks.workloads import DEFAULT_WORKLOADS, WORKLOADS
from xr_openeo.testing.process import BackendProcess

GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}  # every GDAL-based method gets the recommended setting
BANDS = ("B02", "B03", "B04")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asv_benchmarks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dates", type=int, default=50, help="dates of the GeoTIFF result (default 50)")
    parser.add_argument("--size", type=int, default=512, help="pixels a side (default 512)")
    parser.add_argument("--netcdf-dates", type=int, default=33, help="dates of the netCDF result (default 33 ≈ 52 MB)")
    parser.add_argument("--large-dates", type=int, default=3, help="dates of the large-file result (default 3)")
    parser.add_argument("--large-size", type=int, default=4096, help="pixels a side of the large files (default 4096)")
    parser.add_argument(
        "--large-window", type=int, default=1024, help="side of the large-window workload (default 1024)"
    )
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every request (default 0.02)")
    parser.add_argument(
        "--bandwidth-mbit",
        type=float,
        default=None,
        help="Mbit/s of the one link all downloads share (default: no cap)",
    )
    parser.add_argument("--threads", type=int, default=8, help="dask threads and download threads (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the best is reported (default 3)")
    parser.add_argument("--window", type=int, default=256, help="side of the window workloads (default 256)")
    parser.add_argument("--memory-budget", type=float, default=256, help="MiB; the memory workload's result is 4× it")
    parser.add_argument(
        "--workloads",
        default=",".join(DEFAULT_WORKLOADS),
        help=f"comma-separated, of {', '.join(WORKLOADS)} (default: {', '.join(DEFAULT_WORKLOADS)})",
    )
    parser.add_argument("--methods", default="", help="comma-separated subset of methods (default all)")
    parser.add_argument("--json", default="compare.json", help="where to write the results (default compare.json)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        from asv_benchmarks.methods import run_worker

        print("RESULT " + json.dumps(run_worker(json.loads(args.worker))), flush=True)
        return 0

    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {sorted(WORKLOADS)}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] or None
    report: dict[str, Any] = {"machine": machine(), "options": vars(args) | {"worker": None}, "workloads": {}}
    with Bench(args, workloads) as backend:
        jobs = backend.jobs(workloads)
        for workload in workloads:
            job = jobs[WORKLOADS[workload].job]
            rows = {}
            for method in WORKLOADS[workload].methods:
                if methods and method not in methods:
                    continue
                runs = [backend.measure(method, workload, job) for _ in range(args.repeat)]
                rows[method] = best(runs)
            report["workloads"][workload] = {"job": job, "rows": rows}
            print_table(workload, rows, job)
    Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten to {args.json}")
    return 0


class Bench(BackendProcess):
    """The local backend in its own process, with latency (and a bandwidth cap); runs jobs and measurements."""

    def __init__(self, args: argparse.Namespace, workloads: list[str]) -> None:
        kinds = {WORKLOADS[w].job for w in workloads}
        self.plan = {  # kind -> (format, dates, pixels a side)
            "gtiff": ("GTiff", args.dates, args.size),
            "netcdf": ("netCDF", args.netcdf_dates, args.size),
            "memory": ("GTiff", memory_workload_dates(args.memory_budget, args.size), args.size),
            "large": ("GTiff", args.large_dates, args.large_size),
        }
        self.plan = {kind: plan for kind, plan in self.plan.items() if kind in kinds}
        faults: dict[str, Any] = {"latency": args.latency, "url_validity": 24 * 3600}
        if args.bandwidth_mbit:
            faults["bandwidth_mbit"] = args.bandwidth_mbit
        dates = max(dates for _, dates, _ in self.plan.values())
        size = max(size for _, _, size in self.plan.values())  # each job reads the top left square it needs
        super().__init__(dates=dates, size=size, blocksize=256, results_style="stac-1.1", faults=faults)
        self.args = args

    def jobs(self, workloads: list[str]) -> dict[str, dict[str, Any]]:
        """Run the batch jobs the workloads need; their signed results URLs and file sizes."""
        conn = self.connect()
        out: dict[str, dict[str, Any]] = {}
        for kind, (fmt, dates, size) in sorted(self.plan.items()):
            job = run_job(conn, fmt, dates=dates, bands=BANDS, size=size)
            files = self.files(job.job_id)
            sizes = [p.stat().st_size for p in files if p.suffix in (".tif", ".nc")]
            out[kind] = {
                "job_id": job.job_id,
                "url": canonical_url(job),
                "backend": self.url,
                "format": fmt,
                "dates": dates,
                "size": size,
                "files": len(sizes),
                "file_bytes": sum(sizes),
            }
            if fmt == "GTiff":  # the touched tiles (and headers) of each window workload on this job
                for name in workloads:
                    if WORKLOADS[name].job == kind and WORKLOADS[name].select.startswith("window"):
                        out[kind][f"window_bytes_{name}"] = window_bytes(files, self._window(name))
        return out

    def _window(self, workload: str) -> int:
        return int(getattr(self.args, WORKLOADS[workload].window))

    def measure(self, method: str, workload: str, job: dict[str, Any]) -> dict[str, Any]:
        task = {
            "method": method,
            "workload": workload,
            "job": job,
            "threads": self.args.threads,
            "window": self._window(workload),
        }
        self.clear_requests()
        env = dict(os.environ, **GDAL_ENV)
        done = subprocess.run(
            [sys.executable, "-m", "asv_benchmarks.compare", "--worker", json.dumps(task)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        if done.returncode or not lines:
            raise RuntimeError(f"{method} / {workload} failed:\n{done.stderr[-3000:]}")
        result = json.loads(lines[-1][len("RESULT ") :])
        log = self.requests()
        assets = asset_requests(log)
        result.update(
            requests=len(log),
            asset_requests=len(assets),
            head_requests=sum(r["method"] == "HEAD" for r in log),
            bytes=sum(r["bytes_sent"] for r in log),
            asset_bytes=sum(r["bytes_sent"] for r in assets),
        )
        return result


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run (the machine is noisy), with the spread of totals and the highest peak RSS."""
    fastest = min(runs, key=lambda r: r["total_s"])
    totals = [r["total_s"] for r in runs]
    checks = {r.get("checksum") for r in runs}
    return fastest | {
        "runs": len(runs),
        "total_s_median": statistics.median(totals),
        "peak_rss_mib_max": max(r["peak_rss_mib"] for r in runs),
        "checksums_agree": len(checks) == 1,
    }


def machine() -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for dist in ("xr_openeo", "xarray", "dask", "rasterio", "rioxarray", "odc-stac", "openeo", "h5netcdf", "fsspec"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d"),
    }


def print_table(workload: str, rows: dict[str, dict[str, Any]], job: dict[str, Any]) -> None:
    ref = rows.get("xr_openeo")
    mb = job["file_bytes"] / 1e6
    print(f"\n## {workload}: {job['files']} {job['format']} files, {mb:.1f} MB, {job['dates']} dates of {job['size']}²")
    window = job.get(f"window_bytes_{workload}")
    if window:
        print(f"touched tiles plus headers: {window / 1e6:.2f} MB")
    columns = ("method", "import s", "open s", "compute s", "total s", "× xr_openeo", "requests", "HEAD", "MB moved")
    columns += ("× files", "× tiles" if window else "", "peak MiB", "× result", "tasks", "checksum")
    print("| " + " | ".join(c for c in columns if c) + " |")
    print("|" + "---|" * sum(1 for c in columns if c))
    for method, r in rows.items():
        ratio = r["total_s"] / ref["total_s"] if ref else float("nan")
        check = "same" if ref and r.get("checksum") == ref.get("checksum") else str(r.get("checksum"))
        cells = [method] + [f"{r[k]:.2f}" for k in ("import_s", "open_s", "compute_s", "total_s")] + [f"{ratio:.2f}"]
        cells += [f"{r['requests']} ({r['asset_requests']})", str(r["head_requests"]), f"{r['bytes'] / 1e6:.1f}"]
        cells += [f"{r['bytes'] / job['file_bytes']:.2f}"] + ([f"{r['asset_bytes'] / window:.2f}"] if window else [])
        result = r.get("result_mib") or float("nan")
        cells += [f"{r['peak_rss_mib']:.0f}", f"{r['peak_rss_mib'] / result:.2f}", str(r.get("tasks", "")), check]
        print("| " + " | ".join(cells) + " |")
    for method, r in rows.items():
        if "download_s" in r:
            print(f"{method}: the download alone took {r['download_s']:.2f} s")
    if workload == "memory":
        for method, r in rows.items():
            print(
                f"{method}: peak RSS {r['peak_rss_mib']:.0f} MiB ({r['peak_rss_mib'] / r['result_mib']:.0%} of the "
                f"{r['result_mib']:.0f} MiB result), {r['peak_rss_mib'] - r['baseline_rss_mib']:.0f} MiB above "
                f"the {r['baseline_rss_mib']:.0f} MiB after imports"
            )


if __name__ == "__main__":
    sys.exit(main())
