"""JSON time series to a DataFrame: a 365-date aggregate_spatial result."""

from __future__ import annotations

import xr_openeo
from xr_openeo.testing import LocalBackend, SyntheticCollection

from ._common import pick, run_job


def _polygons() -> dict:
    """Two rectangles in the synthetic grid (EPSG:32631) as GeoJSON in lon/lat."""
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(32631, 4326, always_xy=True)

    def rect(x0: float, y0: float, x1: float, y1: float) -> dict:
        ring = [to_lonlat.transform(x, y) for x, y in [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]]
        return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}

    return {
        "type": "FeatureCollection",
        "features": [rect(640100, 5689100, 640400, 5689400), rect(640700, 5688900, 641100, 5689800)],
    }


class JSONTimeSeries:
    """``aggregate_spatial(mean)`` over two polygons for ``dates`` dates, saved as JSON."""

    params = pick([365], [5])
    param_names = ["dates"]
    timeout = 600

    def setup(self, dates: int) -> None:
        self.backend = LocalBackend([SyntheticCollection(dates=dates, width=128, height=128)]).start()
        conn = self.backend.connect()
        cube = conn.load_collection("SENTINEL2_L2A", bands=["B04", "B08"]).aggregate_spatial(_polygons(), "mean")
        self.job = run_job(conn, "JSON", dates=dates, cube=cube)

    def teardown(self, dates: int) -> None:
        self.backend.stop()

    def time_open_dataframe(self, dates: int) -> None:
        xr_openeo.open_dataframe(self.job)

    def track_rows(self, dates: int) -> int:
        """Rows of the DataFrame: dates × geometries."""
        return len(xr_openeo.open_dataframe(self.job))
