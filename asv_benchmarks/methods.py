"""The comparison's worker: one method reading one workload, in a fresh process (``compare --worker``).

Methods (every lazy method computes with dask's threaded scheduler and ``threads`` workers):

- ``xr_openeo``: ``xr_openeo.open_results(url)`` on the signed results URL, with the workload's keywords;
- ``xr_openeo-unmasked``: the same with ``masked=False`` (the files' dtype, nodata kept as a value);
- ``xr_openeo-load``: the same, loaded with ``ds.openeo.load()`` (the ``load`` selection; others ``.load()``);
- ``download8``: fetch the document and items, download every asset with 8 threads, then
  ``xr.open_mfdataset`` (rasterio / h5netcdf) on the local files;
- ``openeo-client``: the openeo client's ``JobResults.download_files`` then ``xr.open_mfdataset``;
- ``odc-stac``: ``odc.stac.load`` on the items of the same results document, with the job's grid;
- ``rioxarray``: ``rioxarray.open_rasterio(href, lock=False)`` per file, then ``xr.concat``;
- ``xarray-h5netcdf`` (netCDF only): ``xr.open_dataset(href, engine="h5netcdf", chunks={})``;
- ``dask-floor``: the same float32 Dataset made in memory (no reading at all), chunked as
  xr_openeo's: what dask needs for the computation itself.
"""

from __future__ import annotations

import importlib
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from asv_benchmarks.workloads import WORKLOADS

BAND = 1  # the one-band window reads B03: the second of B02, B03, B04 (odc-stac names them otherwise)


def run_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Import, open, select and compute; times, peak RSS, graph size and a checksum of the values."""
    import dask

    dask.config.set(scheduler="threads", num_workers=task["threads"])
    workload = WORKLOADS[task["workload"]]
    method = METHODS[task["method"]]
    started = time.perf_counter()
    for module in IMPORTS[task["method"]]:  # imports are timed apart: every method pays them once per process
        importlib.import_module(module)
    baseline = _peak_rss_mib()
    t0 = time.perf_counter()
    opened = method(task)
    t1 = time.perf_counter()
    out: dict[str, Any] = {"import_s": t0 - started, "open_s": t1 - t0, "baseline_rss_mib": baseline}
    out.update(task.pop("extra", {}))
    if workload.select != "open":
        data = select(opened, workload.select, task["window"])
        paused = time.perf_counter()
        out.update(graph_stats(data))  # not timed: no user pickles the graph before computing
        t1 += time.perf_counter() - paused
        values = compute(data, workload.select, task["method"])
        t2 = time.perf_counter()
        out["peak_rss_mib"] = _peak_rss_mib()  # before the checksum, which needs memory of its own
        out["checksum"] = checksum(values)
        out["result_mib"] = getattr(values, "nbytes", 0) / 2**20
        del values
    else:
        out.update(graph_stats(opened))
        t2 = t1
        out["peak_rss_mib"] = _peak_rss_mib()
    out["compute_s"] = t2 - t1
    out["total_s"] = t2 - t0
    if workload.select == "reduce":
        out["result_mib"] = opened.nbytes / 2**20
    del opened
    for folder in task.get("cleanup", ()):  # downloads: gone once read
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def select(data: Any, what: str, window: int) -> Any:
    """The part a workload reads, selected as a user would (on the opened object), as one array."""
    if what in ("reduce", "load"):
        return data  # reduced or loaded as it was opened, the way users write it: ds.mean("t"), ds.load()
    if what == "window-band":  # the second band (B03), selected first as a user would
        if hasattr(data, "data_vars"):
            name = sorted(v for v in data.data_vars if data[v].ndim == 3)[BAND]
            return as_array(data[[name]].isel(y=slice(0, window), x=slice(0, window)))
        return as_array(data.isel(band=[BAND], y=slice(0, window), x=slice(0, window)))
    if what == "window":
        data = data.isel(y=slice(0, window), x=slice(0, window))
    elif what == "first-date":
        data = data.isel(t=slice(0, 1))
    return as_array(data)


def as_array(data: Any) -> Any:
    """A Dataset of band variables (t, y, x) → one (t, band, y, x) DataArray, bands in name order."""
    if hasattr(data, "data_vars"):
        names = sorted(v for v in data.data_vars if data[v].ndim == 3)
        data = data[names].to_dataarray("band")
    return data.transpose("t", "band", "y", "x")


def compute(data: Any, what: str, method: str = "") -> Any:
    """What is timed: the values in memory (the reduced value for ``reduce``, the opened object loaded for ``load``)."""
    if what == "reduce":
        return float(data.mean("t").to_dataarray().sum())
    if what == "load":
        return data.openeo.load() if method == "xr_openeo-load" else data.load()
    return data.values


def checksum(values: Any) -> Any:
    """Not timed: a checksum of the values read (nodata and NaN count as 0, so every method's masking agrees)."""
    import numpy as np

    if isinstance(values, float):
        return values
    if hasattr(values, "variables"):  # a loaded Dataset or DataArray: its band values as one (t, band, y, x) array
        values = as_array(values).values
    total = 0.0
    for plane in np.asarray(values).reshape(-1, *values.shape[-2:]):  # a plane at a time: little memory
        total += np.nan_to_num(plane.astype("float64"), nan=0.0).sum()
    return f"{values.shape}:{int(total)}"


def graph_stats(data: Any) -> dict[str, Any]:
    graph = getattr(data, "__dask_graph__", lambda: None)()
    if graph is None:
        return {"tasks": 0, "graph_bytes": 0}
    import cloudpickle

    return {"tasks": len(graph), "graph_bytes": len(cloudpickle.dumps(dict(graph)))}


# --- the methods ------------------------------------------------------------------------------------


def m_xr_openeo(task: dict[str, Any], **extra: Any) -> Any:
    import xr_openeo

    keywords = dict(WORKLOADS[task["workload"]].openeo)
    if keywords.get("chunks") == "window":
        keywords["chunks"] = {"y": task["window"], "x": task["window"]}
    return xr_openeo.open_results(task["job"]["url"], **keywords, **extra)


def m_xr_openeo_unmasked(task: dict[str, Any]) -> Any:
    return m_xr_openeo(task, masked=False)


def m_xr_openeo_load(task: dict[str, Any]) -> Any:
    return m_xr_openeo(task)  # opened as by xr_openeo; loaded by ds.openeo.load() (see compute)


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
    task["cleanup"] = [folder]
    t0 = time.perf_counter()
    paths = _download(_asset_hrefs(job["url"], task["threads"]), folder, task["threads"])
    task["extra"] = {"download_s": time.perf_counter() - t0}  # the bytes on disk: what the link allows
    return _open_local(paths, job["format"])


def m_openeo_client(task: dict[str, Any]) -> Any:
    import openeo

    job = task["job"]
    folder = Path(tempfile.mkdtemp(prefix="xr_openeo-client-"))
    task["cleanup"] = [folder]
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
    chunk = task["window"]  # chunks of the window's size: what reads a window best
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

    Its peak RSS is what dask and xarray need for the computation itself, the floor any reader sits on.
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
    "xr_openeo-unmasked": m_xr_openeo_unmasked,
    "xr_openeo-load": m_xr_openeo_load,
    "download8": m_download8,
    "openeo-client": m_openeo_client,
    "odc-stac": m_odc_stac,
    "rioxarray": m_rioxarray,
    "xarray-h5netcdf": m_xarray_h5netcdf,
    "dask-floor": m_dask_floor,
}

_XR_OPENEO = ("xr_openeo", "xr_openeo.api", "xr_openeo.readers.geotiff", "xr_openeo.readers.netcdf", "dask.array")
IMPORTS: dict[str, tuple[str, ...]] = {
    # xr_openeo imports dask.array and rasterio lazily, on first open; count that as import time like the others'
    "xr_openeo": _XR_OPENEO,
    "xr_openeo-unmasked": _XR_OPENEO,
    "xr_openeo-load": (*_XR_OPENEO, "xr_openeo.loading"),
    "download8": ("requests", "xarray", "rioxarray", "h5netcdf", "dask.array"),
    "openeo-client": ("openeo", "xarray", "rioxarray", "h5netcdf", "dask.array"),
    "odc-stac": ("odc.stac", "pystac", "requests", "dask.array"),
    "rioxarray": ("rioxarray", "xarray", "requests", "dask.array"),
    "xarray-h5netcdf": ("xarray", "h5netcdf", "fsspec", "aiohttp", "dask.array"),
    "dask-floor": ("xarray", "dask.array", "rasterio", "h5netcdf"),
}
