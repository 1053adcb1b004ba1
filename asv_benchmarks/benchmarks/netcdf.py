"""netCDF results: full and subset reads, bytes moved against the file's size."""

from __future__ import annotations

import xr_openeo
from xr_openeo.testing import LocalBackend, SyntheticCollection

from ._common import asset_requests, pick, run_job


class NetCDFResults:
    """One CF netCDF of ``dates`` × 3 bands × 512² uint16 (33 dates ≈ 52 MB, as in lazy-reading.md)."""

    params = pick([33], [2])
    param_names = ["dates"]
    timeout = 600

    def setup(self, dates: int) -> None:
        size = pick(512, 128)
        self.backend = LocalBackend([SyntheticCollection(dates=dates, width=size, height=size)]).start()
        self.job = run_job(self.backend.connect(), "netCDF", dates=dates)
        self.file_bytes = sum(f.stat().st_size for f in self.backend.job(self.job.job_id).out_dir.iterdir())

    def teardown(self, dates: int) -> None:
        self.backend.stop()

    def time_open(self, dates: int) -> None:
        xr_openeo.open_results(self.job)

    def time_full_read(self, dates: int) -> None:
        xr_openeo.open_results(self.job).load()

    def time_subset_read(self, dates: int) -> None:
        """One date, one 256² corner of one band."""
        xr_openeo.open_results(self.job).B04.isel(t=0, y=slice(0, 256), x=slice(0, 256)).load()

    def _bytes(self, read) -> float:
        self.backend.clear_requests()
        read()
        return sum(r.bytes_sent for r in asset_requests(self.backend.requests)) / self.file_bytes

    def track_full_read_bytes_ratio(self, dates: int) -> float:
        """Bytes moved by a full read / the file's bytes (target ≤ 1.1)."""
        return self._bytes(lambda: xr_openeo.open_results(self.job).load())

    def track_subset_read_bytes_ratio(self, dates: int) -> float:
        """Bytes moved by opening and reading one date's corner of one band / the file's bytes.

        Files under 16 MiB are downloaded whole (1.0); larger ones read only the HDF5 chunks needed.
        """
        return self._bytes(lambda: self.time_subset_read(0))
