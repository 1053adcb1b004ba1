"""The pixel grid a split follows: the collection's CRS, pixel size and pixel edges, and areas on it.

Splitting a job along whole pixels of the data's own grid is what lets the pieces' results lie on
one grid again, with neither gaps nor doubled pixels between them. The grid comes from the
collection's metadata (``cube:dimensions``: ``step``, ``reference_system`` and ``extent`` of the
spatial dimensions; for ``load_stac`` also the ``proj:*`` fields of its assets), or from the
user (``Split(crs=..., resolution=...)``) when the metadata does not say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import XrOpenEOError

#: Tolerance, in pixels, under which a coordinate counts as lying on a pixel edge (float noise).
EDGE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class PixelGrid:
    """A north-up pixel grid: EPSG code, pixel size ``(x, y)`` and a pixel corner ``origin`` ``(x, y)``.

    Pixel edges lie at ``origin[0] + i * resolution[0]`` and ``origin[1] - j * resolution[1]``;
    column ``i`` and row ``j`` count from that corner (negative to its west and north).
    ``bounds`` is the collection's extent in this CRS, when known.
    """

    epsg: int
    resolution: tuple[float, float]
    origin: tuple[float, float] = (0.0, 0.0)
    bounds: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if not all(r > 0 and math.isfinite(r) for r in self.resolution):
            raise ValueError(f"a pixel size must be a positive number, got {self.resolution!r}")

    def window(self, bbox: Sequence[float], *, outward: bool = True) -> tuple[int, int, int, int]:
        """``(col0, row0, col1, row1)`` of the pixels covering ``bbox`` (west, south, east, north).

        ``outward``: every pixel the box touches; otherwise the edges are rounded to the nearest
        pixel edge (for boxes already on the grid but for float noise).
        """
        west, south, east, north = (float(v) for v in bbox)
        (x0, y0), (rx, ry) = self.origin, self.resolution
        cols = ((west - x0) / rx, (east - x0) / rx)
        rows = ((y0 - north) / ry, (y0 - south) / ry)
        if outward:
            c0, c1 = math.floor(cols[0] + EDGE_TOLERANCE), math.ceil(cols[1] - EDGE_TOLERANCE)
            r0, r1 = math.floor(rows[0] + EDGE_TOLERANCE), math.ceil(rows[1] - EDGE_TOLERANCE)
        else:
            c0, c1, r0, r1 = (round(v) for v in (*cols, *rows))
        return c0, r0, c1, r1

    def bbox(self, window: Sequence[int]) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` of the pixel edges of ``window`` (col0, row0, col1, row1)."""
        c0, r0, c1, r1 = window
        (x0, y0), (rx, ry) = self.origin, self.resolution
        return (_clean(x0 + c0 * rx), _clean(y0 - r1 * ry), _clean(x0 + c1 * rx), _clean(y0 - r0 * ry))

    def clip(self, window: Sequence[int]) -> tuple[int, int, int, int]:
        """``window`` within the collection's extent (unchanged when the extent is unknown)."""
        c0, r0, c1, r1 = window
        if self.bounds is None:
            return c0, r0, c1, r1
        b0, b1, b2, b3 = self.window(self.bounds, outward=False)
        return max(c0, b0), max(r0, b1), min(c1, b2), min(r1, b3)


def _clean(value: float) -> float | int:
    """A coordinate as an int when it is one (``640000`` rather than ``640000.0000000001``)."""
    nearest = round(value)
    if math.isclose(value, nearest, rel_tol=0.0, abs_tol=1e-7 * max(1.0, abs(value))):
        return int(nearest)
    return round(value, 9)


def epsg_of(crs: Any) -> int:
    """The EPSG code of ``crs`` (an int, ``"EPSG:32631"``, a WKT or PROJJSON); a ValueError if it has none."""
    if isinstance(crs, bool):
        raise ValueError(f"not a CRS: {crs!r}")
    if isinstance(crs, int):
        return crs
    if isinstance(crs, str) and crs.strip().isdigit():
        return int(crs)
    from pyproj import CRS

    code = CRS.from_user_input(crs).to_epsg()
    if code is None:
        raise ValueError(f"the CRS {str(crs)[:80]!r} has no EPSG code")
    return int(code)


def is_geographic(epsg: int) -> bool:
    from pyproj import CRS

    return bool(CRS.from_epsg(epsg).is_geographic)


def transform_bbox(bbox: Sequence[float], src: int, dst: int) -> tuple[float, float, float, float]:
    """``bbox`` (west, south, east, north) in EPSG ``src`` as the box around it in EPSG ``dst``."""
    if src == dst:
        west, south, east, north = (float(v) for v in bbox)
        return west, south, east, north
    from pyproj import Transformer

    west, south, east, north = (float(v) for v in bbox)
    out = Transformer.from_crs(src, dst, always_xy=True).transform_bounds(west, south, east, north, densify_pts=21)
    return out[0], out[1], out[2], out[3]


def grid_from_metadata(meta: Mapping[str, Any]) -> PixelGrid | None:
    """The pixel grid a collection's (or a STAC document's) metadata describes, or None when it says too little.

    ``cube:dimensions`` of type ``spatial`` with a ``step`` give the pixel size and CRS
    (``reference_system``, default EPSG:4326), and their ``extent`` the grid's corner and bounds.
    Without them, the assets' ``proj:epsg``/``proj:code`` with ``proj:transform``, or with
    ``proj:bbox`` and ``proj:shape``, do (the first asset's pixels; the union of the assets of that
    grid for the bounds). A pixel size of half a degree or more in a geographic CRS is taken as a mistake
    of the metadata (backends give the native size in metres next to a lon/lat reference system),
    and so as unknown.
    """
    dims = meta.get("cube:dimensions")
    if isinstance(dims, Mapping):
        spatial = {
            str(d.get("axis")): d for d in dims.values() if isinstance(d, Mapping) and d.get("type") == "spatial"
        }
        x, y = spatial.get("x"), spatial.get("y")
        if x is not None and y is not None and _number(x.get("step")) and _number(y.get("step")):
            try:
                epsg = epsg_of(x.get("reference_system", 4326))
            except ValueError:
                return None
            resolution = (abs(float(x["step"])), abs(float(y["step"])))
            if is_geographic(epsg) and max(resolution) >= 0.5:
                return None
            xs, ys = _pair(x.get("extent")), _pair(y.get("extent"))
            origin = (xs[0], ys[1]) if xs and ys else (0.0, 0.0)
            bounds = (xs[0], ys[0], xs[1], ys[1]) if xs and ys else None
            return PixelGrid(epsg, resolution, origin, bounds)
    found: PixelGrid | None = None
    boxes: list[tuple[float, float, float, float]] = []
    for asset in _assets(meta):
        grid = _asset_grid(asset, _asset_epsg(asset))
        if grid is None or (found is not None and (grid.epsg, grid.resolution) != (found.epsg, found.resolution)):
            continue
        found = found or grid
        if grid.bounds is not None:
            boxes.append(grid.bounds)
    if found is None:
        return None
    if not boxes:
        return found
    union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    return PixelGrid(found.epsg, found.resolution, found.origin, union)


def _asset_epsg(asset: Mapping[str, Any]) -> int | None:
    code = asset.get("proj:epsg") or asset.get("proj:code")
    try:
        return epsg_of(code) if code is not None else None
    except ValueError:
        return None


def _asset_grid(asset: Mapping[str, Any], epsg: int | None) -> PixelGrid | None:
    """An asset's grid from its ``proj:transform`` (and ``proj:shape``), or its ``proj:bbox`` and ``proj:shape``."""
    if epsg is None:
        return None
    transform, shape, bbox = asset.get("proj:transform"), asset.get("proj:shape"), asset.get("proj:bbox")
    size: tuple[int, int] | None = None
    if isinstance(shape, list | tuple) and len(shape) == 2 and all(isinstance(n, int) and n > 0 for n in shape):
        size = (int(shape[0]), int(shape[1]))
    if isinstance(transform, list | tuple) and len(transform) >= 6 and all(_finite(v) for v in transform[:6]):
        a, _, c, _, e, f = (float(v) for v in transform[:6])
        if not (a and e):
            return None
        bounds = (c, f + e * size[0], c + a * size[1], f) if size else None
        return PixelGrid(epsg, (abs(a), abs(e)), (c, f), bounds)
    if size and isinstance(bbox, list | tuple) and len(bbox) == 4 and all(_finite(v) for v in bbox):
        west, south, east, north = (float(v) for v in bbox)
        rows, cols = size
        if east <= west or north <= south:
            return None
        return PixelGrid(
            epsg, ((east - west) / cols, (north - south) / rows), (west, north), (west, south, east, north)
        )
    return None


def _assets(meta: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    assets = meta.get("assets")
    out = [a for a in assets.values() if isinstance(a, Mapping)] if isinstance(assets, Mapping) else []
    for item in meta.get("features") or []:
        if isinstance(item, Mapping) and isinstance(item.get("assets"), Mapping):
            out.extend(a for a in item["assets"].values() if isinstance(a, Mapping))
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0 and math.isfinite(value)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _pair(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and all(_finite(v) for v in value):
        return float(value[0]), float(value[1])
    return None


def unknown_grid(what: str) -> XrOpenEOError:
    return XrOpenEOError(
        f"The metadata of {what} does not say on which pixel grid it lies (no cube:dimensions with a step and "
        "reference system, no proj:transform), so xr_openeo cannot split it along whole pixels. Give the grid: "
        "Split(..., crs=<EPSG code>, resolution=<pixel size>, origin=(<x>, <y>) of a pixel corner)."
    )
