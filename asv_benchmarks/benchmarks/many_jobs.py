"""The mosaic of a split run: many finished jobs opened as one lazy Dataset, measured at the local backend.

Setup runs ``compute_batch(cube, split=Split(tiles=(8, 8)), job_db=...)`` once: 64 jobs, each
writing 20 dates of 64 × 64 COGs. Opening the mosaic reads the 64 results documents (and the item
documents of one of them), and no asset; a full read is one GET per file. The backend runs in a
process of its own (``BackendProcess``), so that serving does not count in the measured time.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import xr_openeo
from xr_openeo.testing import BackendProcess

from ._common import asset_requests, pick

ORIGIN = (640000, 5690000)  # the synthetic collection's top-left corner, in EPSG:32631


class SplitMosaic:
    """64 finished jobs (an 8 × 8 split) × 20 dates of 3-band 64 × 64 uint16 COGs, and their job database."""

    timeout = 900
    repeat = 3
    number = 1

    def setup(self) -> None:
        tiles, dates, tile = pick(8, 2), pick(20, 2), pick(64, 32)
        size = tiles * tile
        self.backend = BackendProcess(dates=dates, size=size, blocksize=tile).start()
        self.connection = self.backend.connect()
        self.folder = Path(tempfile.mkdtemp(prefix="xr-openeo-bench-split-"))
        self.job_db = self.folder / "jobs.csv"
        west, north = ORIGIN
        extent = {"west": west, "south": north - 10 * size, "east": west + 10 * size, "north": north, "crs": 32631}
        self.cube = self.connection.load_collection("SENTINEL2_L2A", spatial_extent=extent, bands=["B02", "B03", "B04"])
        self.split = xr_openeo.Split(tiles=(tiles, tiles))
        with xr_openeo.set_options(split_poll_interval=0.2):
            ds = self.run()
        self.jobs = list(ds.attrs["openeo:jobs"])
        self.files = sum(f.stat().st_size for job_id in self.jobs for f in self.backend.files(job_id))

    def teardown(self) -> None:
        self.backend.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self) -> Any:
        return xr_openeo.compute_batch(
            self.cube, split=self.split, job_db=self.job_db, parallel_jobs=16, progress=False
        )

    def time_open_mosaic(self) -> None:
        """The mosaic from the job database: results documents and items, no asset."""
        from xr_openeo.many import open_split

        open_split(self.job_db, connection=self.connection)

    def time_rerun_finished_split(self) -> None:
        """The same compute_batch call again: the pieces planned, the database read, nothing submitted, opened."""
        self.run()

    def track_asset_requests_open(self) -> int:
        from xr_openeo.many import open_split

        self.backend.clear_requests()
        open_split(self.job_db, connection=self.connection)
        return len(asset_requests(self.backend.requests()))

    def track_jobs_created_by_a_rerun(self) -> int:
        self.backend.clear_requests()
        self.run()
        return sum(1 for r in self.backend.requests() if r["method"] == "POST" and r["path"].endswith("/jobs"))

    def track_full_read_bytes_ratio(self) -> float:
        """Bytes moved by a full read of the mosaic / bytes of the pieces' files (1.0 = each read once)."""
        from xr_openeo.many import open_split

        xr_openeo.clear_caches()
        ds = open_split(self.job_db, connection=self.connection, dtype="uint16", masked=False)
        self.backend.clear_requests()
        ds.load()
        return sum(r["bytes_sent"] for r in asset_requests(self.backend.requests())) / self.files

    def track_read_tasks_per_file(self) -> float:
        """Read tasks in the mosaic's graph per file (1.0: one task per file)."""
        from xr_openeo.many import open_split

        ds = open_split(self.job_db, connection=self.connection)
        graph = dict(ds.__dask_graph__())
        reads = [k for k in graph if isinstance(k, tuple) and str(k[0]).startswith("openeo-read-")]
        reads = [k for k in reads if "-band" not in str(k[0])]
        return len(reads) / (len(self.jobs) * ds.sizes["t"])
