"""Side by side: xr_openeo against the other ways of reading an openEO result, in one run.

``python -m asv_benchmarks.compare`` (from the repository root) starts the local openEO backend in
its own process with 20 ms of added latency per request, runs one GeoTIFF job (50 dates × 3-band
512 × 512 uint16 COGs, tiles of 256) and one netCDF job, then measures each method in a fresh
process: open time, compute time, requests and bytes (from the backend's request log), dask tasks
and pickled-graph size, and a checksum that must agree across methods. It prints one table per
workload with ratios to xr_openeo, and writes everything as JSON (``--json``).

Methods (every lazy method computes with dask's threaded scheduler and ``--threads`` workers):

- ``xr_openeo``: ``xr_openeo.open_results(url)`` on the signed results URL;
- ``download8``: fetch the document and items, download every asset with 8 threads, then
  ``xr.open_mfdataset`` (rasterio / h5netcdf) on the local files;
- ``openeo-client``: the openeo client's ``JobResults.download_files`` then ``xr.open_mfdataset``;
- ``odc-stac``: ``odc.stac.load`` on the items of the same results document, with the job's grid;
- ``rioxarray``: ``rioxarray.open_rasterio(href, lock=False)`` per file, then ``xr.concat``;
- ``xarray-h5netcdf`` (netCDF only): ``xr.open_dataset(href, engine="h5netcdf", chunks={})``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from asv_benchmarks.benchmarks._common import asset_requests, canonical_url, memory_workload_dates, run_job
from xr_openeo.testing.process import BackendProcess

GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}  # every GDAL-based method gets the recommended setting
GTIFF_METHODS = ("xr_openeo", "download8", "openeo-client", "odc-stac", "rioxarray")
NETCDF_METHODS = ("xr_openeo", "download8", "openeo-client", "xarray-h5netcdf")
WORKLOADS = {
    "open": GTIFF_METHODS[:1] + ("odc-stac", "rioxarray"),
    "full": GTIFF_METHODS,
    "window": GTIFF_METHODS,
    "netcdf-full": NETCDF_METHODS,
    "netcdf-subset": NETCDF_METHODS,
    "memory": ("xr_openeo", "dask-floor"),
}


# --- the parent: a backend process, the jobs, one fresh process per measurement ------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asv_benchmarks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dates", type=int, default=50, help="dates of the GeoTIFF result (default 50)")
    parser.add_argument("--size", type=int, default=512, help="pixels a side (default 512)")
    parser.add_argument("--netcdf-dates", type=int, default=33, help="dates of the netCDF result (default 33 ≈ 52 MB)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every request (default 0.02)")
    parser.add_argument("--threads", type=int, default=8, help="dask threads and download threads (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the best is reported (default 3)")
    parser.add_argument("--window", type=int, default=256, help="side of the window workload (default 256)")
    parser.add_argument("--memory-budget", type=float, default=256, help="MiB; the memory workload's result is 4× it")
    parser.add_argument(
        "--workloads", default=",".join(w for w in WORKLOADS if w != "memory"), help="comma-separated; add 'memory'"
    )
    parser.add_argument("--methods", default="", help="comma-separated subset of methods (default all)")
    parser.add_argument("--json", default="compare.json", help="where to write the results (default compare.json)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(run_worker(json.loads(args.worker))), flush=True)
        return 0

    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {sorted(WORKLOADS)}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] or None
    report = {"machine": machine(), "options": vars(args) | {"worker": None}, "workloads": {}}
    with Bench(args) as backend:
        jobs = backend.jobs(workloads)
        for workload in workloads:
            rows = {}
            for method in WORKLOADS[workload]:
                if methods and method not in methods:
                    continue
                runs = [backend.measure(method, workload, jobs, args) for _ in range(args.repeat)]
                rows[method] = best(runs)
            report["workloads"][workload] = {"job": jobs[_job_kind(workload)], "rows": rows}
            print_table(workload, rows, jobs[_job_kind(workload)])
    Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten to {args.json}")
    return 0


def _job_kind(workload: str) -> str:
    return "netcdf" if workload.startswith("netcdf") else "memory" if workload == "memory" else "gtiff"


class Bench(BackendProcess):
    """The local backend in its own process, with latency; runs the jobs and the measurements."""

    def __init__(self, args: argparse.Namespace) -> None:
        dates = max(args.dates, args.netcdf_dates)
        if "memory" in args.workloads:
            dates = max(dates, memory_workload_dates(args.memory_budget, args.size))
        faults = {"latency": args.latency, "url_validity": 24 * 3600}
        super().__init__(dates=dates, size=args.size, blocksize=256, results_style="stac-1.1", faults=faults)
        self.args = args

    def jobs(self, workloads: list[str]) -> dict[str, dict[str, Any]]:
        """Run the batch jobs the workloads need; their signed results URLs and file sizes."""
        conn = self.connect()
        wanted = {_job_kind(w) for w in workloads}
        size = self.args.size
        plan = {
            "gtiff": ("GTiff", self.args.dates, ("B02", "B03", "B04")),
            "netcdf": ("netCDF", self.args.netcdf_dates, ("B02", "B03", "B04")),
            "memory": ("GTiff", memory_workload_dates(self.args.memory_budget, size), ("B02", "B03", "B04")),
        }
        out: dict[str, dict[str, Any]] = {}
        for kind in sorted(wanted):
            fmt, dates, bands = plan[kind]
            job = run_job(conn, fmt, dates=dates, bands=bands)
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
            if kind == "gtiff":
                out[kind]["window_bytes"] = window_bytes(files, self.args.window)
        return out

    def measure(self, method: str, workload: str, jobs: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
        task = {
            "method": method,
            "workload": workload,
            "job": jobs[_job_kind(workload)],
            "threads": args.threads,
            "window": args.window,
            "memory_budget": args.memory_budget,
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


def window_bytes(files: list[Path], window: int) -> int:
    """Bytes of the tiles a ``window``² read at the origin touches, plus each file's header (its IFDs)."""
    import rasterio

    total = 0
    for path in files:
        if path.suffix != ".tif":
            continue
        with rasterio.open(path) as src:
            block_h, block_w = src.block_shapes[0]
            for row in range(-(-window // block_h)):
                for col in range(-(-window // block_w)):
                    total += int(src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))
            levels = [None, *range(len(src.overviews(1)))]
            total += min(int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1, ovr=o)) for o in levels)
    return total


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run (the machine is noisy), with the spread of totals."""
    fastest = min(runs, key=lambda r: r["total_s"])
    totals = [r["total_s"] for r in runs]
    checks = {r.get("checksum") for r in runs}
    return fastest | {
        "runs": len(runs),
        "total_s_median": statistics.median(totals),
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
    columns = ("method", "import s", "open s", "compute s", "total s", "× xr_openeo", "requests", "HEAD", "MB moved")
    columns += ("× files", "tasks", "checksum")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for method, r in rows.items():
        ratio = r["total_s"] / ref["total_s"] if ref else float("nan")
        check = "same" if ref and r.get("checksum") == ref.get("checksum") else str(r.get("checksum"))
        cells = [method] + [f"{r[k]:.2f}" for k in ("import_s", "open_s", "compute_s", "total_s")] + [f"{ratio:.2f}"]
        cells += [str(r["requests"]), str(r["head_requests"]), f"{r['bytes'] / 1e6:.1f}"]
        cells += [f"{r['bytes'] / job['file_bytes']:.2f}", str(r.get("tasks", "")), check]
        print("| " + " | ".join(cells) + " |")
    if workload == "memory":
        for method, r in rows.items():
            print(
                f"{method}: peak RSS {r['peak_rss_mib']:.0f} MiB ({r['peak_rss_mib'] / r['result_mib']:.0%} of the "
                f"{r['result_mib']:.0f} MiB result), {r['peak_rss_mib'] - r['baseline_rss_mib']:.0f} MiB above "
                f"the {r['baseline_rss_mib']:.0f} MiB after imports"
            )


# --- the worker: one method, one workload, in a fresh process ------------------------------------


def run_worker(task: dict[str, Any]) -> dict[str, Any]:
    import importlib

    import dask

    dask.config.set(scheduler="threads", num_workers=task["threads"])

    method = METHODS[task["method"]]
    started = time.perf_counter()
    for module in IMPORTS[task["method"]]:  # imports are timed apart: every method pays them once per process
        importlib.import_module(module)
    baseline = _peak_rss_mib()
    t0 = time.perf_counter()
    opened = method(task)
    t1 = time.perf_counter()
    out: dict[str, Any] = {"import_s": t0 - started, "open_s": t1 - t0, "baseline_rss_mib": baseline}
    workload = task["workload"]
    if workload != "open":
        data = select(opened, workload, task)
        paused = time.perf_counter()
        out.update(graph_stats(data))  # not timed: no user pickles the graph before computing
        t1 += time.perf_counter() - paused
        values = compute(data, workload)
        t2 = time.perf_counter()
        out["checksum"] = checksum(values)
        del values
    else:
        out.update(graph_stats(opened))
        t2 = t1
    out["compute_s"] = t2 - t1
    out["total_s"] = t2 - t0
    out["peak_rss_mib"] = _peak_rss_mib()
    if workload == "memory":
        out["result_mib"] = opened.nbytes / 2**20
    return out


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def select(data: Any, workload: str, task: dict[str, Any]) -> Any:
    """The part a workload reads, selected as a user would (on the opened object), as one array."""
    w = task["window"]
    if workload == "memory":
        return data  # reduced as a Dataset, the way users write it: ds.mean("t")
    if workload == "window":
        data = data.isel(y=slice(0, w), x=slice(0, w))
    elif workload == "netcdf-subset":
        data = data.isel(t=slice(0, 1))
    return as_array(data)


def as_array(data: Any) -> Any:
    """A Dataset of band variables (t, y, x) → one (t, band, y, x) DataArray, bands in name order."""
    if hasattr(data, "data_vars"):
        names = sorted(v for v in data.data_vars if data[v].ndim == 3)
        data = data[names].to_dataarray("band")
    return data.transpose("t", "band", "y", "x")


def compute(data: Any, workload: str) -> Any:
    """What is timed: the values in memory (the reduced value for the memory workload)."""
    if workload == "memory":
        return float(data.mean("t").to_dataarray().sum())
    return data.values


def checksum(values: Any) -> Any:
    """Not timed: a checksum of the values read (nodata and NaN count as 0, so every method's masking agrees)."""
    import numpy as np

    if isinstance(values, float):
        return values
    total = np.nan_to_num(np.asarray(values, dtype="float64"), nan=0.0).sum()
    return f"{values.shape}:{int(total)}"


def graph_stats(data: Any) -> dict[str, Any]:
    graph = getattr(data, "__dask_graph__", lambda: None)()
    if graph is None:
        return {"tasks": 0, "graph_bytes": 0}
    import cloudpickle

    return {"tasks": len(graph), "graph_bytes": len(cloudpickle.dumps(dict(graph)))}


def m_xr_openeo(task: dict[str, Any]) -> Any:
    import xr_openeo

    job = task["job"]
    dtype = "float32" if task["workload"] == "memory" else "uint16"
    chunks = {"y": task["window"], "x": task["window"]} if task["workload"] == "window" else None
    return xr_openeo.open_results(job["url"], dtype=dtype, chunks=chunks)


def _asset_hrefs(url: str, threads: int) -> list[str]:
    """Asset hrefs of a results document (and its items), in date order, as a script would find them."""
    import requests

    doc = requests.get(url, timeout=60).json()
    items = [link["href"] for link in doc.get("links", []) if link.get("rel") == "item"]
    with ThreadPoolExecutor(threads) as pool:
        docs = list(pool.map(lambda href: requests.get(href, timeout=60).json(), items)) if items else [doc]
    found = []
    for d in docs:
        when = d.get("properties", {}).get("datetime", "")
        for asset in d.get("assets", {}).values():
            if "data" in asset.get("roles", ["data"]):
                found.append((when, asset["href"]))
    return [href for _, href in sorted(found)]


def _download(hrefs: list[str], folder: Path, threads: int) -> list[Path]:
    import threading

    import requests

    local = threading.local()

    def one(pair: tuple[int, str]) -> Path:
        i, href = pair
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        path = folder / f"{i:05d}{Path(href.split('?')[0]).suffix}"
        with session.get(href, stream=True, timeout=60) as r:
            r.raise_for_status()
            with open(path, "wb") as f:
                shutil.copyfileobj(r.raw, f, 2**20)
        return path

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, enumerate(hrefs)))


def _open_local(paths: list[Path], fmt: str) -> Any:
    import xarray as xr

    if fmt == "netCDF":
        return xr.open_mfdataset(paths, engine="h5netcdf", chunks={}, combine="by_coords")
    da = xr.open_mfdataset(paths, engine="rasterio", chunks={}, combine="nested", concat_dim="t", lock=False)
    return da["band_data"].transpose("t", "band", "y", "x")


def m_download8(task: dict[str, Any]) -> Any:
    job = task["job"]
    folder = Path(tempfile.mkdtemp(prefix="xr_openeo-dl-"))
    paths = _download(_asset_hrefs(job["url"], task["threads"]), folder, task["threads"])
    return _open_local(paths, job["format"])


def m_openeo_client(task: dict[str, Any]) -> Any:
    import openeo

    job = task["job"]
    folder = Path(tempfile.mkdtemp(prefix="xr_openeo-client-"))
    conn = openeo.connect(job["backend"]).authenticate_basic("alice", "alice123")
    conn.job(job["job_id"]).get_results().download_files(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix in (".tif", ".nc"))
    return _open_local(paths, job["format"])


def m_odc_stac(task: dict[str, Any]) -> Any:
    import odc.stac
    import pystac
    import requests
    from odc.geo.geobox import GeoBox

    job = task["job"]
    doc = requests.get(job["url"], timeout=60).json()
    links = [link["href"] for link in doc["links"] if link["rel"] == "item"]
    with ThreadPoolExecutor(task["threads"]) as pool:
        docs = list(pool.map(lambda href: requests.get(href, timeout=60).json(), links))
    items = [pystac.Item.from_dict(d) for d in docs]  # pystac's from_dict is not thread-safe
    first = items[0]
    props = {**next(iter(first.assets.values())).extra_fields, **first.properties}
    # odc-stac cannot guess the exact grid without proj:transform; give it the job's grid, as a user would
    geobox = GeoBox.from_bbox(
        props["proj:bbox"], crs=props.get("proj:code") or f"EPSG:{props['proj:epsg']}", shape=tuple(props["proj:shape"])
    )
    chunk = task["window"]
    ds = odc.stac.load(items, geobox=geobox, chunks={"x": chunk, "y": chunk}, dtype="uint16", groupby="time")
    return ds.rename(time="t")


def m_rioxarray(task: dict[str, Any]) -> Any:
    import rioxarray
    import xarray as xr

    hrefs = _asset_hrefs(task["job"]["url"], task["threads"])
    chunk = task["window"]
    arrays = [rioxarray.open_rasterio(h, chunks={"x": chunk, "y": chunk}, lock=False) for h in hrefs]
    return xr.concat(arrays, dim="t").transpose("t", "band", "y", "x")


def m_dask_floor(task: dict[str, Any]) -> Any:
    """The same Dataset (3 float32 band variables, one chunk per date) made in memory: no reading at all.

    Its peak RSS is what dask and xarray need for the reduction itself, the floor any reader sits on.
    """
    import dask.array as da
    import numpy as np
    import xarray as xr
    from dask.highlevelgraph import HighLevelGraph

    job = task["job"]
    n, size = job["dates"], job["size"]
    name = "floor"
    dsk = {(name, i, 0, 0, 0): (np.full, (1, 3, size, size), float(i), "float32") for i in range(n)}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    cube = da.Array(graph, name, chunks=((1,) * n, (3,), (size,), (size,)), dtype="float32")
    return xr.Dataset({f"B0{i + 2}": (("t", "y", "x"), cube[:, i]) for i in range(3)})


def m_xarray_h5netcdf(task: dict[str, Any]) -> Any:
    import xarray as xr

    (href,) = _asset_hrefs(task["job"]["url"], task["threads"])
    return xr.open_dataset(href, engine="h5netcdf", chunks={})


METHODS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "xr_openeo": m_xr_openeo,
    "download8": m_download8,
    "openeo-client": m_openeo_client,
    "odc-stac": m_odc_stac,
    "rioxarray": m_rioxarray,
    "xarray-h5netcdf": m_xarray_h5netcdf,
    "dask-floor": m_dask_floor,
}

IMPORTS: dict[str, tuple[str, ...]] = {
    # xr_openeo imports dask.array and rasterio lazily, on first open; count that as import time like the others'
    "xr_openeo": ("xr_openeo", "xr_openeo.api", "xr_openeo.readers.geotiff", "xr_openeo.readers.netcdf", "dask.array"),
    "download8": ("requests", "xarray", "rioxarray", "h5netcdf", "dask.array"),
    "openeo-client": ("openeo", "xarray", "rioxarray", "h5netcdf", "dask.array"),
    "odc-stac": ("odc.stac", "pystac", "requests", "dask.array"),
    "rioxarray": ("rioxarray", "xarray", "requests", "dask.array"),
    "xarray-h5netcdf": ("xarray", "h5netcdf", "fsspec", "aiohttp", "dask.array"),
    "dask-floor": ("xarray", "dask.array", "rasterio", "h5netcdf"),
}


if __name__ == "__main__":
    sys.exit(main())
