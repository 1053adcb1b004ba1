"""Opening and reading GeoTIFF results: time, requests, bytes and graph size, measured at the local backend."""

from __future__ import annotations

import copy
import pickle

import xr_openeo
from xr_openeo.testing import LocalBackend, SyntheticCollection

from ._common import asset_requests, pick, run_job


class GeoTIFFResults:
    """A finished job of ``dates`` 3-band 512 × 512 uint16 COGs (tiles of 256) on the local backend."""

    params = pick([10, 50], [2])
    param_names = ["dates"]
    timeout = 300

    def setup(self, dates: int) -> None:
        size = pick(512, 256)
        self.backend = LocalBackend([SyntheticCollection(dates=dates, width=size, height=size)], blocksize=256).start()
        self.job = run_job(self.backend.connect(), "GTiff", dates=dates)
        self.dates = dates

    def teardown(self, dates: int) -> None:
        self.backend.stop()

    def time_open(self, dates: int) -> None:
        xr_openeo.open_results(self.job)

    def time_full_read(self, dates: int) -> None:
        xr_openeo.open_results(self.job, dtype="uint16").load()

    def time_one_window_all_dates(self, dates: int) -> None:
        ds = xr_openeo.open_results(self.job)  # default chunks: the window's tiles are all that is read
        ds.B03.isel(y=slice(0, 256), x=slice(0, 256)).load()

    def track_asset_requests_open(self, dates: int) -> int:
        self.backend.clear_requests()
        xr_openeo.open_results(self.job)
        return len(asset_requests(self.backend.requests))

    def track_full_read_bytes_ratio(self, dates: int) -> float:
        """Bytes moved by a full read / bytes of the files (1.0 = nothing read twice)."""
        files = sum(f.stat().st_size for f in self.backend.job(self.job.job_id).out_dir.iterdir())
        xr_openeo.clear_caches()  # no header kept by an earlier benchmark of this process
        self.backend.clear_requests()
        xr_openeo.open_results(self.job).load()
        return sum(r.bytes_sent for r in asset_requests(self.backend.requests)) / files

    def track_window_requests_per_file(self, dates: int) -> float:
        """Requests per file for one 256² window of all bands across all dates, default chunks (header + tile: 2)."""
        xr_openeo.clear_caches()
        ds = xr_openeo.open_results(self.job)
        self.backend.clear_requests()
        ds.isel(y=slice(0, 256), x=slice(0, 256)).load()
        return len(asset_requests(self.backend.requests)) / dates

    def track_read_tasks_per_file(self, dates: int) -> float:
        """Read tasks in the graph per file (one per file and spatial chunk; 1.0 with whole-file chunks)."""
        ds = xr_openeo.open_results(self.job)
        graph = dict(ds.__dask_graph__())
        return sum(1 for k in graph if _is_read_task(k)) / dates

    def track_graph_tasks(self, dates: int) -> int:
        """Tasks in the graph of the whole dataset (reads plus xarray's band selections)."""
        return len(xr_openeo.open_results(self.job).__dask_graph__())

    def track_graph_pickled_bytes(self, dates: int) -> int:
        """Size of the pickled graph: what a dask.distributed client ships to the scheduler."""
        ds = xr_openeo.open_results(self.job)
        return len(pickle.dumps(dict(ds.__dask_graph__())))


def _is_read_task(key: object) -> bool:
    """A chunk's read task (its band tasks only take their band from it)."""
    return isinstance(key, tuple) and str(key[0]).startswith("openeo-read-") and "-band" not in str(key[0])


def _document(assets: int) -> dict:
    """A geopyspark-style results document of ``assets`` dated COGs (no item links: one document)."""
    with LocalBackend([SyntheticCollection(dates=1, width=64, height=64)]) as backend:
        job = run_job(backend.connect(), "GTiff", dates=1)
        doc = job.get_results().get_metadata()
    ((key, template),) = doc["assets"].items()
    import pandas as pd

    doc["links"] = [link for link in doc["links"] if link["rel"] != "item"]
    doc["assets"] = {}
    for day in pd.date_range("2020-01-01", periods=assets, freq="D"):
        name = f"openEO_{day:%Y-%m-%d}Z.tif"
        asset = copy.deepcopy(template)
        asset["href"] = template["href"].replace(key, name)
        asset["title"] = name
        doc["assets"][name] = asset
    return doc


class OpenOverhead:
    """Opening a results document of 10, 100 and 1,000 assets: parse, specs, graph; no network."""

    params = pick([10, 100, 1000], [3, 10])
    param_names = ["assets"]
    timeout = 300

    def setup_cache(self) -> dict:
        return {n: _document(n) for n in self.params}

    def setup(self, docs: dict, assets: int) -> None:
        # The first open in a process imports dask.array (and with it scipy) and rasterio: ~1 s
        # that is import time (timeraw_import_*), not open overhead.
        xr_openeo.open_results(docs[min(docs)])

    def time_open(self, docs: dict, assets: int) -> None:
        xr_openeo.open_results(docs[assets])

    def track_tasks_per_asset(self, docs: dict, assets: int) -> float:
        """Read tasks per asset (at most one per file and spatial chunk)."""
        graph = dict(xr_openeo.open_results(docs[assets]).__dask_graph__())
        return sum(1 for k in graph if _is_read_task(k)) / assets

    def track_graph_pickled_bytes(self, docs: dict, assets: int) -> int:
        return len(pickle.dumps(dict(xr_openeo.open_results(docs[assets]).__dask_graph__())))


class Import:
    def timeraw_import_xr_openeo(self) -> str:
        return "import xr_openeo"

    def timeraw_import_engine(self) -> str:
        return "import xr_openeo.backend"
