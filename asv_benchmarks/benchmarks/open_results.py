"""Opening and reading GeoTIFF results: time, requests and bytes, measured at the local backend."""

from __future__ import annotations

import xr_openeo
from xr_openeo.testing import LocalBackend, SyntheticCollection


class GeoTIFFResults:
    """A finished job of ``dates`` 3-band 512 × 512 uint16 COGs (tiles of 256) on the local backend."""

    params = [10, 50]
    param_names = ["dates"]
    timeout = 300

    def setup(self, dates: int) -> None:
        self.backend = LocalBackend([SyntheticCollection(dates=dates, width=512, height=512)], blocksize=256).start()
        conn = self.backend.connect()
        cube = conn.load_collection("SENTINEL2_L2A", bands=["B02", "B03", "B04"])
        self.job = cube.create_job(out_format="GTiff")
        self.job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)

    def teardown(self, dates: int) -> None:
        self.backend.stop()

    def time_open(self, dates: int) -> None:
        xr_openeo.open_results(self.job)

    def time_full_read(self, dates: int) -> None:
        xr_openeo.open_results(self.job, dtype="uint16").load()

    def time_one_window_all_dates(self, dates: int) -> None:
        ds = xr_openeo.open_results(self.job, chunks={"y": 256, "x": 256})
        ds.B03.isel(y=slice(0, 256), x=slice(0, 256)).load()

    def track_asset_requests_open(self, dates: int) -> int:
        self.backend.clear_requests()
        xr_openeo.open_results(self.job)
        return sum(1 for r in self.backend.requests if "/results/assets/" in r.path)

    def track_full_read_bytes_ratio(self, dates: int) -> float:
        """Bytes moved by a full read / bytes of the files (1.0 = nothing read twice)."""
        files = sum(f.stat().st_size for f in self.backend.job(self.job.job_id).out_dir.iterdir())
        self.backend.clear_requests()
        xr_openeo.open_results(self.job).load()
        return sum(r.bytes_sent for r in self.backend.requests if "/results/assets/" in r.path) / files

    def track_read_tasks_per_file(self, dates: int) -> float:
        """Read tasks in the graph per file (one per file and spatial chunk; 1.0 with whole-file chunks)."""
        ds = xr_openeo.open_results(self.job)
        graph = dict(ds.__dask_graph__())
        return sum(1 for k in graph if isinstance(k, tuple) and str(k[0]).startswith("read-geotiff")) / dates


class Import:
    def timeraw_import_xr_openeo(self) -> str:
        return "import xr_openeo"

    def timeraw_import_engine(self) -> str:
        return "import xr_openeo.backend"
