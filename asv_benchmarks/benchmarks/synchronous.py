"""The demo's NDVI graph run synchronously (``xr_openeo.execute``) and as a batch job, to values in memory.

The local backend runs in its own process (``BackendProcess``), as a remote backend would.
``python -m asv_benchmarks.execute_vs_batch`` prints the same comparison as a table, best of a few runs.
"""

from __future__ import annotations

from typing import Any

import xr_openeo
from xr_openeo.testing import BackendProcess

from ._common import pick


def demo_cube(connection: Any) -> Any:
    """The graph ``python -m xr_openeo demo`` runs: NDVI of every date of the collection, B04 and B08 kept."""
    cube = connection.load_collection(
        "SENTINEL2_L2A", temporal_extent=["2023-01-01", "2024-01-01"], bands=["B04", "B08"]
    )
    return cube.ndvi(red="B04", nir="B08", target_band="NDVI")


class DemoGraph:
    """``dates`` dates of 256² (the demo's default is 6), saved as GTiff: one COG per date."""

    params = pick([6, 30], [2])
    param_names = ["dates"]
    timeout = 300

    def setup(self, dates: int) -> None:
        self.backend = BackendProcess(dates=dates, size=pick(256, 64)).start()
        self.cube = demo_cube(self.backend.connect())

    def teardown(self, dates: int) -> None:
        self.backend.stop()

    def time_execute(self, dates: int) -> None:
        xr_openeo.execute(self.cube).load()

    def time_execute_lazy(self, dates: int) -> None:
        with xr_openeo.execute(self.cube, chunks={}) as ds:
            ds.load()

    def time_compute_batch(self, dates: int) -> None:
        xr_openeo.compute_batch(self.cube, progress=False).load()

    def track_execute_requests(self, dates: int) -> int:
        """Requests ``execute`` sends (one POST /result, whatever the number of dates)."""
        self.backend.clear_requests()
        xr_openeo.execute(self.cube)
        return len(self.backend.requests())
