"""Synthetic, deterministic collections served by the local backend.

Every pixel is a pure function of ``(seed, band, date index, row, col)`` on the collection's full
grid (:func:`synthetic_pixels`), so a test can compute the values any job should produce without
asking the server, and a spatial or temporal subset sees exactly the pixels of the full cube.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MASK_MODULUS = 50  # one pixel in 50 (per date) is nodata in every band


@dataclass(frozen=True)
class Band:
    """A band of a synthetic collection."""

    name: str
    common_name: str | None = None
    center_wavelength: float | None = None
    classes: int | None = None  # categorical band (like SCL): values 1..classes-1, 0 = nodata


SENTINEL2_BANDS = (
    Band("B02", "blue", 0.49),
    Band("B03", "green", 0.56),
    Band("B04", "red", 0.665),
    Band("B08", "nir", 0.842),
    Band("SCL", classes=12),
)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wraps silently, as array arithmetic does)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(seed: int, salt: int, date_index: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    r = np.asarray(rows, dtype=np.uint64)[:, None]
    c = np.asarray(cols, dtype=np.uint64)[None, :]
    key = np.full((1, 1), (seed * 1_000_003 + salt * 10_007 + date_index) % 2**63, dtype=np.uint64)
    return _mix(_mix(key) ^ (r * np.uint64(0x9E3779B97F4A7C15)) ^ (c * np.uint64(0xD1B54A32D192ED03)))


def synthetic_pixels(
    seed: int, band_index: int, date_index: int, rows: np.ndarray, cols: np.ndarray, *, classes: int | None = None
) -> np.ndarray:
    """The uint16 values of one band on one date at the given global rows and columns.

    Reflectance bands take values 1..10000; a categorical band with ``classes`` takes 1..classes-1.
    Where ``_hash(seed, -1, date)`` is a multiple of ``MASK_MODULUS`` every band is 0 (nodata).
    """
    rows, cols = np.asarray(rows), np.asarray(cols)
    h = _hash(seed, band_index + 1, date_index, rows, cols)
    modulus = np.uint64(classes - 1 if classes else 10000)
    values = (h % modulus + np.uint64(1)).astype(np.uint16)
    mask = _hash(seed, 0, date_index, rows, cols) % np.uint64(MASK_MODULUS) == 0
    values[mask] = 0
    return values


@dataclass(frozen=True)
class SyntheticCollection:
    """A multi-band uint16 time series on a regular grid (default: Sentinel-2 L2A-like, 10 m UTM 31N).

    ``origin`` is the top-left corner of the grid in the collection CRS; ``dates`` is a count of
    dates starting at ``start`` every ``step_days`` days, or an explicit sequence of dates.
    """

    id: str = "SENTINEL2_L2A"
    bands: tuple[Band, ...] = SENTINEL2_BANDS
    epsg: int = 32631
    origin: tuple[float, float] = (640000.0, 5690000.0)
    resolution: float = 10.0
    width: int = 256
    height: int = 256
    dates: int | tuple[str, ...] = 3
    start: str = "2023-01-01"
    step_days: int = 5
    seed: int = 42
    nodata: int = 0
    title: str = "Synthetic Sentinel-2 L2A"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        if isinstance(self.dates, int):
            return pd.date_range(self.start, periods=self.dates, freq=f"{self.step_days}D")
        return pd.DatetimeIndex(pd.to_datetime(list(self.dates), utc=True, format="ISO8601").tz_localize(None))

    @property
    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        x0, y0 = self.origin
        return (x0, y0 - self.height * self.resolution, x0 + self.width * self.resolution, y0)

    def band(self, name: str) -> Band:
        for b in self.bands:
            if b.name == name:
                return b
        raise ValueError(
            f"Band {name!r} is not in collection {self.id!r}; available bands: {', '.join(self.band_names)}"
        )

    def pixels(self, band: str, date_index: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Values of ``band`` on date ``date_index`` at global ``rows`` × ``cols`` (what load_collection serves)."""
        b = self.band(band)
        return synthetic_pixels(self.seed, self.band_names.index(band), date_index, rows, cols, classes=b.classes)

    def window(self, spatial_extent: Any) -> tuple[slice, slice]:
        """Row and column slices of the grid covering ``spatial_extent`` (a dict or parser BoundingBox)."""
        if spatial_extent is None:
            return slice(0, self.height), slice(0, self.width)
        west, south, east, north = extent_bounds(spatial_extent, self.epsg)
        x0, y0 = self.origin
        res = self.resolution
        c0 = max(0, math.floor((west - x0) / res + 1e-9))
        c1 = min(self.width, math.ceil((east - x0) / res - 1e-9))
        r0 = max(0, math.floor((y0 - north) / res + 1e-9))
        r1 = min(self.height, math.ceil((y0 - south) / res - 1e-9))
        if c1 <= c0 or r1 <= r0:
            minx, miny, maxx, maxy = self.bounds
            raise ValueError(
                f"spatial_extent {_as_dict(spatial_extent)!r} does not intersect collection {self.id!r}, "
                f"which covers x {minx}..{maxx}, y {miny}..{maxy} in EPSG:{self.epsg}"
            )
        return slice(r0, r1), slice(c0, c1)

    def date_indices(self, temporal_extent: Any) -> list[int]:
        """Indices of the dates within ``[start, end)`` of ``temporal_extent`` (None = open bound)."""
        ts = self.timestamps
        if temporal_extent is None:
            return list(range(len(ts)))
        keep = in_interval(ts, temporal_extent)
        if not keep.any():
            raise ValueError(
                f"temporal_extent {_interval_text(temporal_extent)} holds no date of collection {self.id!r} "
                f"({ts[0].date()} .. {ts[-1].date()})"
            )
        return [int(i) for i in np.flatnonzero(keep)]

    def load(self, spatial_extent: Any = None, temporal_extent: Any = None, bands: Any = None):
        """A lazy ``(t, bands, y, x)`` uint16 DataArray of the requested subset, CRS attached."""
        import dask.array as da
        import rioxarray  # noqa: F401  (registers .rio)
        import xarray as xr

        names = list(bands) if bands else self.band_names
        for name in names:
            self.band(name)
        rows, cols = self.window(spatial_extent)
        dates = self.date_indices(temporal_extent)
        row_idx = np.arange(rows.start, rows.stop)
        col_idx = np.arange(cols.start, cols.stop)
        chunks = ((1,) * len(dates), (len(names),), _split(len(row_idx), 1024), _split(len(col_idx), 1024))

        def block(block_info=None):
            (t0, t1), _, (y0, y1), (x0, x1) = block_info[None]["array-location"]
            planes = [self.pixels(n, dates[t0], row_idx[y0:y1], col_idx[x0:x1]) for n in names]
            return np.stack(planes)[None]

        data = da.map_blocks(block, dtype=np.uint16, chunks=chunks, meta=np.empty((0, 0, 0, 0), np.uint16))
        x0, y0 = self.origin
        res = self.resolution
        cube = xr.DataArray(
            data,
            dims=("t", "bands", "y", "x"),
            coords={
                "t": self.timestamps[dates].values,
                "bands": names,
                "y": y0 - (row_idx + 0.5) * res,
                "x": x0 + (col_idx + 0.5) * res,
            },
        )
        return cube.rio.write_crs(f"EPSG:{self.epsg}")

    def metadata(self) -> dict[str, Any]:
        """The ``/collections/{id}`` document (STAC Collection with datacube and eo extensions)."""
        from pyproj import Transformer

        minx, miny, maxx, maxy = self.bounds
        lonlat = Transformer.from_crs(self.epsg, 4326, always_xy=True).transform_bounds(minx, miny, maxx, maxy)
        ts = self.timestamps
        iso = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (ts[0], ts[-1])]
        eo_bands = [
            {
                k: v
                for k, v in (
                    ("name", b.name),
                    ("common_name", b.common_name),
                    ("center_wavelength", b.center_wavelength),
                )
                if v is not None
            }
            for b in self.bands
        ]
        return {
            "stac_version": "1.0.0",
            "stac_extensions": [
                "https://stac-extensions.github.io/datacube/v2.2.0/schema.json",
                "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            ],
            "type": "Collection",
            "id": self.id,
            "title": self.title,
            "description": f"Deterministic synthetic data (seed {self.seed}) served by xr_openeo's local backend.",
            "license": "proprietary",
            "extent": {"spatial": {"bbox": [list(lonlat)]}, "temporal": {"interval": [iso]}},
            "cube:dimensions": {
                "x": {
                    "type": "spatial",
                    "axis": "x",
                    "extent": [minx, maxx],
                    "step": self.resolution,
                    "reference_system": self.epsg,
                },
                "y": {
                    "type": "spatial",
                    "axis": "y",
                    "extent": [miny, maxy],
                    "step": self.resolution,
                    "reference_system": self.epsg,
                },
                "t": {
                    "type": "temporal",
                    "extent": iso,
                    "step": f"P{self.step_days}D" if isinstance(self.dates, int) else None,
                },
                "bands": {"type": "bands", "values": self.band_names},
            },
            "summaries": {"eo:bands": eo_bands, "proj:epsg": [self.epsg]},
            "links": [],
        }


def _split(n: int, size: int) -> tuple[int, ...]:
    full, rest = divmod(n, size)
    return (size,) * full + ((rest,) if rest else ())


def extent_bounds(spatial_extent: Any, epsg: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a ``spatial_extent`` (dict or parser BoundingBox) in EPSG ``epsg``.

    Raises
    ------
    ValueError
        The extent has no numeric west/south/east/north.
    """
    ext = _as_dict(spatial_extent)
    try:
        west, south, east, north = (float(ext[k]) for k in ("west", "south", "east", "north"))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"spatial_extent needs numeric west/south/east/north, got {ext!r}") from None
    src_crs = ext.get("crs") or 4326
    if not _same_crs(src_crs, epsg):
        from pyproj import CRS, Transformer

        tf = Transformer.from_crs(CRS.from_user_input(src_crs), CRS.from_epsg(epsg), always_xy=True)
        west, south, east, north = tf.transform_bounds(west, south, east, north)
    return west, south, east, north


def in_interval(times: pd.DatetimeIndex, temporal_extent: Any) -> np.ndarray:
    """Which of ``times`` lie in ``[start, end)`` of ``temporal_extent`` (None bounds are open)."""
    keep = np.ones(len(times), dtype=bool)
    if temporal_extent is None:
        return keep
    bounds = getattr(temporal_extent, "root", temporal_extent)
    start, end = (_timestamp(getattr(b, "root", b)) for b in bounds)
    if start is not None:
        keep &= times >= start
    if end is not None:
        keep &= times < end
    return keep


def _interval_text(temporal_extent: Any) -> list[str]:
    return [str(getattr(b, "root", b)) for b in getattr(temporal_extent, "root", temporal_extent)]


def _as_dict(extent: Any) -> dict[str, Any]:
    if isinstance(extent, dict):
        return extent
    if hasattr(extent, "model_dump"):  # openeo-pg-parser-networkx BoundingBox (pydantic)
        return extent.model_dump()
    raise ValueError(f"spatial_extent must be a bounding box object, got {extent!r}")


def _same_crs(crs: Any, epsg: int) -> bool:
    if isinstance(crs, int) or (isinstance(crs, str) and crs.isdigit()):
        return int(crs) == epsg
    from pyproj import CRS

    return CRS.from_user_input(crs).to_epsg() == epsg


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(str(value))
    return ts.tz_convert(None) if ts.tzinfo is not None else ts
