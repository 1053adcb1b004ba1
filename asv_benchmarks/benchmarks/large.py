"""Large files: a full read, ``ds.openeo.load()`` and a 1024² window of 4096² COGs, against download-all and odc-stac.

The backend runs in its own process (``BackendProcess``) with 20 ms added to every request and, for
``link="100Mbit"``, one link of 100 Mbit/s that every download shares (``Faults.bandwidth_mbit``),
so that neither its serving nor its memory counts here.
"""

from __future__ import annotations

import resource
from typing import Any

import xr_openeo
from asv_benchmarks.cogs import window_bytes
from xr_openeo.testing import BackendProcess

from ._common import asset_requests, canonical_url, pick, run_job

DATES = pick(3, 2)
SIZE = pick(4096, 256)
WINDOW = pick(1024, 128)
LINKS = {"latency": {}, "100Mbit": {"bandwidth_mbit": 100}}


class LargeFiles:
    """``DATES`` dates of 3-band uint16 COGs of ``SIZE``² (tiles of 256, ~120 MB each at 4096²)."""

    params = pick(list(LINKS), ["latency"])
    param_names = ["link"]
    timeout = 1800
    number = 1
    repeat = (1, 3, 120.0)

    def setup(self, link: str) -> None:
        faults = {"latency": 0.02, "url_validity": 24 * 3600, **LINKS[link]}
        self.backend = BackendProcess(
            dates=DATES, size=SIZE, blocksize=256, results_style="stac-1.1", faults=faults
        ).start()
        self.job = run_job(self.backend.connect(), "GTiff", dates=DATES)
        self.url = canonical_url(self.job)
        self.task: dict[str, Any] = {
            "job": {"url": self.url, "format": "GTiff"},
            "threads": 8,
            "window": WINDOW,
            "workload": "large-full",
        }

    def teardown(self, link: str) -> None:
        self.backend.stop()

    # -- full reads: xr_openeo (default and masked=False), download-all, odc-stac --

    def _xr_openeo(self, **keywords: Any) -> Any:
        return xr_openeo.open_results(self.url, **keywords).load()

    def _download_all(self) -> Any:
        import shutil

        from asv_benchmarks.methods import m_download8

        task = dict(self.task)
        try:
            return m_download8(task).load()
        finally:
            for folder in task.get("cleanup", ()):
                shutil.rmtree(folder, ignore_errors=True)

    def _odc_stac(self) -> Any:
        from asv_benchmarks.methods import m_odc_stac

        return m_odc_stac(dict(self.task)).load()

    def time_full_read(self, link: str) -> None:
        self._xr_openeo()

    def time_full_read_unmasked(self, link: str) -> None:
        self._xr_openeo(masked=False)

    def time_full_read_download_all(self, link: str) -> None:
        self._download_all()

    def time_full_read_odc_stac(self, link: str) -> None:
        self._odc_stac()

    def peakmem_full_read(self, link: str) -> None:
        self._xr_openeo()

    def peakmem_full_read_download_all(self, link: str) -> None:
        self._download_all()

    def peakmem_full_read_odc_stac(self, link: str) -> None:
        self._odc_stac()

    def track_full_read_peak_rss_over_result(self, link: str) -> float:
        """Peak RSS of this process (imports included) / the float32 result's size (dask's floor: ~2)."""
        return _peak_rss_over(self._xr_openeo())

    track_full_read_peak_rss_over_result.unit = "ratio"  # type: ignore[attr-defined]

    # -- the whole result into memory with ds.openeo.load(): each read written into place --

    def _load(self) -> Any:
        return xr_openeo.open_results(self.url).openeo.load()

    def time_load(self, link: str) -> None:
        self._load()

    def peakmem_load(self, link: str) -> None:
        self._load()

    def track_load_peak_rss_over_result(self, link: str) -> float:
        """Peak RSS of this process (imports included) / the loaded Dataset's size (issue 13 asks ≤ 1.3)."""
        return _peak_rss_over(self._load())

    track_load_peak_rss_over_result.unit = "ratio"  # type: ignore[attr-defined]

    # -- one window --

    def time_window(self, link: str) -> None:
        xr_openeo.open_results(self.url).isel(y=slice(0, WINDOW), x=slice(0, WINDOW)).load()

    def _window_requests(self) -> list[Any]:
        xr_openeo.clear_caches()
        ds = xr_openeo.open_results(self.url)
        self.backend.clear_requests()
        ds.isel(y=slice(0, WINDOW), x=slice(0, WINDOW)).load()
        return asset_requests(self.backend.requests())

    def track_window_bytes_over_tiles(self, link: str) -> float:
        """Asset bytes of one window of every band over all dates / its tiles plus the files' headers (≤ 1.2)."""
        sent = sum(r["bytes_sent"] for r in self._window_requests())
        return sent / window_bytes(self.backend.files(self.job.job_id), WINDOW)

    track_window_bytes_over_tiles.unit = "ratio"  # type: ignore[attr-defined]

    def track_window_requests_per_file(self, link: str) -> float:
        """Asset requests per file for one window (a header and the ranges of its tiles: 2 when not merged)."""
        return len(self._window_requests()) / DATES


def _peak_rss_over(result: Any) -> float:
    """This process's peak RSS so far over the size of ``result``."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / result.nbytes
