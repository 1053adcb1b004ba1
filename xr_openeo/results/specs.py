"""The frozen values parsing produces: a raster :class:`Grid`, one :class:`AssetSpec` per file, :class:`ResultsInfo`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from ..urls import url_expiry
from .formats import asset_format

# Roles that say a file is a machine-learning model (STAC ml-model and mlm extensions)
_MODEL_ROLE_PREFIXES = ("ml-model", "mlm:")


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS (``EPSG:n`` or WKT), ``shape`` (rows, cols) and an affine ``transform``.

    ``transform`` is ``(a, b, c, d, e, f)`` as in rasterio/affine: x = a·col + b·row + c,
    y = d·col + e·row + f.
    """

    crs: str
    shape: tuple[int, int]
    transform: tuple[float, float, float, float, float, float]

    @classmethod
    def from_bbox(cls, crs: str, shape: Sequence[int], bbox: Sequence[float]) -> Grid:
        """The north-up grid of ``shape`` (rows, cols) whose pixel edges span ``bbox`` (minx, miny, maxx, maxy)."""
        rows, cols = int(shape[0]), int(shape[1])
        minx, miny, maxx, maxy = (float(v) for v in bbox)
        return cls(crs, (rows, cols), ((maxx - minx) / cols, 0.0, minx, 0.0, -(maxy - miny) / rows, maxy))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the pixel edges (of all four corners, for rotated grids)."""
        a, b, c, d, e, f = self.transform
        rows, cols = self.shape
        corners = [(col, row) for col in (0, cols) for row in (0, rows)]
        xs = [a * col + b * row + c for col, row in corners]
        ys = [d * col + e * row + f for col, row in corners]
        return min(xs), min(ys), max(xs), max(ys)

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre ``y`` and ``x`` coordinates (for axis-aligned grids)."""
        a, _, c, _, e, f = self.transform
        rows, cols = self.shape
        return f + e * (np.arange(rows) + 0.5), c + a * (np.arange(cols) + 0.5)


@dataclass(frozen=True)
class AssetSpec:
    """One result file as the results document describes it; small, frozen and picklable.

    ``key`` is the collection-level asset key (stable across re-fetches of the document, so a
    renewed href can be found by it).

    Dates: ``time`` is the date of the file's data, for the ``t`` axis, as numpy
    ``datetime64[ns]`` (UTC, naive) or None. ``start``/``end`` bound it when there is no single
    datetime; they are ``datetime64[ns]`` too, and None when the document gives none, gives
    ``null`` (open-ended), or gives a date that ``datetime64[ns]`` cannot hold (before 1678 or
    after 2261, such as the ``9999-12-31T23:59:59Z`` of a model's item). ``interval`` keeps
    ``start_datetime`` and ``end_datetime`` exactly as the document wrote them (None when absent
    or null), so those far dates are not lost.

    ``problem`` says why the document's description of this asset is unusable (a malformed field,
    named in ``problem_field``). Only assets xr_openeo would not read by default (models,
    metadata, unknown formats) carry one: a malformed readable data asset is an error of the whole
    document. Selection skips assets with a problem, or raises it when they are asked for by name.
    """

    key: str
    href: str
    media_type: str | None = None
    roles: tuple[str, ...] = ("data",)
    bands: tuple[str, ...] = ()
    time: np.datetime64 | None = None
    start: np.datetime64 | None = None
    end: np.datetime64 | None = None
    grid: Grid | None = None
    nodata: float | None = None
    dtype: str | None = None
    item_id: str | None = None
    title: str | None = None
    interval: tuple[str | None, str | None] = (None, None)
    problem: str | None = None
    problem_field: str | None = None

    @property
    def format(self) -> str | None:
        """``geotiff``, ``netcdf``, ``json``, ``csv``, ``parquet``, ``geojson``, ``zarr`` or None if unknown."""
        return asset_format(self.media_type, self.href, self.key)

    @property
    def filename(self) -> str:
        """The last segment of the href's path (percent-decoded), else the key."""
        return unquote(urlsplit(self.href).path).rsplit("/", 1)[-1] or self.key

    @property
    def is_model(self) -> bool:
        """Whether a role says this file is a machine-learning model (``ml-model:checkpoint``…)."""
        return any(role.startswith(_MODEL_ROLE_PREFIXES) for role in self.roles)

    @property
    def is_data(self) -> bool:
        """Whether the roles make it data: role ``data``, or no roles at all."""
        return not self.roles or "data" in self.roles

    @property
    def is_readable_data(self) -> bool:
        """Data (not a model) in a format xr_openeo reads: what an open considers by default."""
        return self.is_data and not self.is_model and self.format is not None


@dataclass(frozen=True)
class ResultsInfo:
    """What a results document says: the job, its status, links, and its (collection-level) assets."""

    job_id: str | None
    status: str
    kind: str  # "item" (API 1.0 STAC Item) or "collection"
    stac_version: str | None
    assets: tuple[AssetSpec, ...]
    item_links: tuple[str, ...] = ()
    self_url: str | None = None
    canonical_url: str | None = None
    process_graph: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def expires(self) -> float | None:
        """The earliest ``expires=`` (unix seconds) among the asset hrefs, if any."""
        values = [v for v in (url_expiry(a.href) for a in self.assets) if v is not None]
        return min(values) if values else None
