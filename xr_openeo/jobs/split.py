"""One batch job as many: the area in tiles on the collection's pixel grid, and/or the time in ranges.

A :class:`Split` says how; :func:`plan_pieces` turns a process graph and a split into
:class:`Piece` s, each a box on whole pixels of the collection's grid and/or a time range, and
:meth:`Piece.graph` writes a piece's extent into the graph's ``load_collection`` / ``load_stac``
nodes. Tiles of a size (metres or pixels) and a user's GeoDataFrame of tiles go through the
openeo client's ``split_area``; tiles by count are whole-pixel divisions of the area (the client
has no such mode). Every tile is snapped to pixel edges, so that the pieces' results lie on one
grid again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import XrOpenEOError, XrOpenEOWarning
from .graphs import process_graph_key
from .pixelgrid import PixelGrid, epsg_of, grid_from_metadata, transform_bbox, unknown_grid

#: The processes whose extents a split sets.
LOADERS = ("load_collection", "load_stac")
#: Processes whose result depends on neighbouring pixels: near a tile's edge they see less than one job would.
NEIGHBOURHOOD = frozenset({"apply_kernel", "apply_neighborhood", "resample_spatial", "resample_cube_spatial"})
#: Processes that combine dates: splitting the time would change what they compute.
TEMPORAL = frozenset({"aggregate_temporal", "aggregate_temporal_period", "climatological_normal", "anomaly"})
#: Processes whose result is a table, not a raster that pieces could mosaic.
VECTOR = frozenset({"aggregate_spatial", "vector_to_raster", "raster_to_vector", "sample_by_feature"})


class SplitEdgeWarning(XrOpenEOWarning):
    """The graph uses pixels' neighbours, so values near the edges of split tiles may differ from one job."""


@dataclass(frozen=True)
class Split:
    """How to split a batch job into pieces: tiles of the area, ranges of the time, or both.

    Give at most one of ``tiles``, ``tile_size``, ``tile_pixels`` and ``tile_grid``, and/or ``time``.

    Parameters
    ----------
    tiles
        A count of tiles: ``(rows, columns)``, or an int ``n`` (rows × columns = n, tiles as square
        as the area allows). Tiles differ by at most one pixel in size.
    tile_size
        Tiles of this size in the units of the collection's CRS (metres for UTM), rounded to whole
        pixels; edge tiles are smaller (the openeo client's ``split_area``).
    tile_pixels
        Tiles of this many pixels a side (``split_area`` with ``tile_pixels`` × the pixel size).
    tile_grid
        A GeoDataFrame (with a CRS) of tiles; those intersecting the area become pieces, each the
        pixels its box covers within the area. A ``name`` or ``id`` column names them.
    time
        The time in ranges: a count of equal ranges (whole days when the period allows), a pandas
        frequency (``"MS"``: months, ``"7D"``…) whose boundaries cut it, or explicit
        ``[start, end)`` pairs.
    crs, resolution, origin
        The pixel grid (EPSG code, pixel size, a pixel corner), for collections whose metadata
        does not give it. Default: the metadata's.
    """

    tiles: int | tuple[int, int] | None = None
    tile_size: float | None = None
    tile_pixels: int | None = None
    tile_grid: Any = field(default=None, compare=False)
    time: int | str | Sequence[Sequence[str]] | None = None
    crs: Any = None
    resolution: float | tuple[float, float] | None = None
    origin: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("tiles", "tile_size", "tile_pixels", "tile_grid") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"Split takes one way of tiling, got {' and '.join(given)}")
        if not given and self.time is None:
            raise ValueError("Split needs tiles=, tile_size=, tile_pixels=, tile_grid= and/or time=")
        tiles = self.tiles
        if tiles is not None:
            counts = (tiles,) if isinstance(tiles, int) else tuple(tiles)
            if len(counts) not in (1, 2) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in counts
            ):
                raise ValueError(f"tiles must be a count > 0 or (rows, columns), got {tiles!r}")
        for name in ("tile_size", "tile_pixels"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if self.time is not None and isinstance(self.time, int) and (isinstance(self.time, bool) or self.time < 1):
            raise ValueError(f"time must be a count >= 1, a pandas frequency or [start, end) pairs, got {self.time!r}")

    @classmethod
    def of(cls, value: Any) -> Split:
        """A Split from a Split, a dict of its fields, a tile count, or a GeoDataFrame of tiles."""
        if isinstance(value, Split):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(
                    f"unknown split option(s) {sorted(unknown)}; Split takes {[f.name for f in fields(cls)]}"
                )
            return cls(**value)
        if isinstance(value, int | tuple) and not isinstance(value, bool):
            return cls(tiles=value)
        if hasattr(value, "geometry") and hasattr(value, "crs"):
            return cls(tile_grid=value)
        raise TypeError(
            f"split= takes a Split, a dict such as {{'tiles': (4, 4), 'time': 'MS'}}, a tile count or a GeoDataFrame "
            f"of tiles; got {type(value).__name__}"
        )

    @property
    def spatial(self) -> bool:
        return any(v is not None for v in (self.tiles, self.tile_size, self.tile_pixels, self.tile_grid))


@dataclass(frozen=True)
class Piece:
    """One piece of a split job: its name, its box (on whole pixels of EPSG ``epsg``) and time range.

    ``failures`` is how many of its jobs failed before (what a ``job_options`` callable sees).
    """

    name: str
    bbox: tuple[float, float, float, float] | None = None
    epsg: int | None = None
    start: str | None = None
    end: str | None = None
    failures: int = 0

    def spatial_extent(self) -> dict[str, Any] | None:
        if self.bbox is None:
            return None
        west, south, east, north = self.bbox
        return {"west": west, "south": south, "east": east, "north": north, "crs": self.epsg}

    def graph(self, nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """The flat process graph ``nodes`` with this piece's extents in its loading nodes."""
        out: dict[str, dict[str, Any]] = {name: copy.deepcopy(dict(node)) for name, node in nodes.items()}
        for node in out.values():
            if node.get("process_id") in LOADERS:
                args = node.setdefault("arguments", {})
                if self.bbox is not None:
                    args["spatial_extent"] = self.spatial_extent()
                if self.start is not None:
                    args["temporal_extent"] = [self.start, self.end]
        return out


def plan_pieces(nodes: Mapping[str, Mapping[str, Any]], connection: Any, split: Split) -> list[Piece]:
    """The pieces of ``split`` for the flat process graph ``nodes`` (one request for the collection's metadata).

    Raises
    ------
    XrOpenEOError
        The graph loads nothing a split can cut (no ``load_collection``/``load_stac``), has a
        polygon for extent, writes a table, combines dates that a time split would separate, or
        the collection's grid is unknown (pass it in the Split).
    """
    loaders = [n for n in nodes.values() if n.get("process_id") in LOADERS]
    if not loaders:
        raise XrOpenEOError(
            "A split sets the extent of the graph's load_collection or load_stac, and this graph has neither: "
            "run it as one job (drop split=)"
        )
    _check_processes(nodes, split)
    first = loaders[0]
    meta = _metadata(connection, first) if split.spatial or _needs_time_metadata(first, split) else {}
    tiles: list[tuple[str, tuple[float, float, float, float]]] = [("", (0, 0, 0, 0))]
    epsg = None
    if split.spatial:
        grid = _grid(meta, split, _what(first))
        epsg = grid.epsg
        tiles = [(name, grid.bbox(window)) for name, window in _tiles(grid, _area(grid, first), split)]
    ranges: list[tuple[str, tuple[str | None, str | None]]] = [("", (None, None))]
    if split.time is not None:
        ranges = [(f"t{i}", r) for i, r in enumerate(_ranges(_period(first, meta), split.time))]
    pieces = []
    for tile_name, bbox in tiles:
        for range_name, (start, end) in ranges:
            name = "_".join(n for n in (tile_name, range_name) if n)
            pieces.append(
                Piece(
                    name=name,
                    bbox=bbox if split.spatial else None,
                    epsg=epsg,
                    start=start if split.time is not None else None,
                    end=end if split.time is not None else None,
                )
            )
    return pieces


def run_key(nodes: Mapping[str, Any], pieces: Sequence[Piece], job_options: Any) -> str:
    """A short digest of what a split run computes: graph, pieces and (static) job options."""
    doc = {
        "graph": process_graph_key(nodes),
        "pieces": [(p.name, p.bbox, p.epsg, p.start, p.end) for p in pieces],
        "job_options": None if callable(job_options) else job_options,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:12]


def options_for(piece: Piece, static: Mapping[str, Any] | None, dynamic: Callable[[Piece], Any] | None) -> dict | None:
    """The job options of ``piece``'s next job: ``static`` updated with ``dynamic(piece)``."""
    out = dict(static or {})
    if dynamic is not None:
        extra = dynamic(piece)
        if extra is not None and not isinstance(extra, Mapping):
            raise TypeError(f"job_options(piece) must return a dict or None, got {type(extra).__name__}")
        out.update(extra or {})
    return out or None


# -- checks --------------------------------------------------------------------------------------------


def _dimension(node: Mapping[str, Any]) -> str:
    return str((node.get("arguments") or {}).get("dimension", "")).lower()


def _check_processes(nodes: Mapping[str, Mapping[str, Any]], split: Split) -> None:
    ids = {str(n.get("process_id")) for n in nodes.values()}
    vector = sorted(ids & VECTOR)
    if vector:
        raise XrOpenEOError(
            f"This graph computes a table ({', '.join(vector)}), and split runs mosaic rasters: run it as one job "
            "(drop split=), or split its geometries yourself"
        )
    for node in nodes.values():
        if node.get("process_id") in LOADERS:
            extent = (node.get("arguments") or {}).get("spatial_extent")
            if isinstance(extent, Mapping) and "west" not in extent and split.spatial:
                raise XrOpenEOError(
                    "A split needs the spatial_extent of load_collection/load_stac as a bounding box (west, south, "
                    "east, north, crs), and this graph gives a geometry: load its bounding box and mask it with "
                    "mask_polygon, or split in time only"
                )
    over_time = {
        str(n.get("process_id"))
        for n in nodes.values()
        if n.get("process_id") in TEMPORAL
        or (
            n.get("process_id") in ("reduce_dimension", "apply_dimension")
            and _dimension(n) in ("t", "time", "temporal")
        )
    }
    if split.time is not None and over_time:
        raise XrOpenEOError(
            f"This graph combines dates ({', '.join(sorted(over_time))}), so pieces holding part of the time would "
            "compute something else than one job: split in space only (drop time=)"
        )
    neighbours = sorted(ids & NEIGHBOURHOOD)
    if split.spatial and neighbours:
        warnings.warn(
            SplitEdgeWarning(
                f"This graph uses neighbouring pixels ({', '.join(neighbours)}): near the edges of the split's tiles "
                "its values can differ from those of one job. Pad the tiles (a tile_grid with overlaps) if it matters."
            ),
            stacklevel=4,
        )


# -- the grid and the area ---------------------------------------------------------------------------------


def _what(loader: Mapping[str, Any]) -> str:
    args = loader.get("arguments") or {}
    if loader.get("process_id") == "load_collection":
        return f"collection {args.get('id')!r}"
    return f"the STAC document {args.get('url')!r} (load_stac)"


def _metadata(connection: Any, loader: Mapping[str, Any]) -> dict[str, Any]:
    from .client_errors import CLIENT_ERRORS, backend_error

    args = loader.get("arguments") or {}
    if loader.get("process_id") == "load_collection":
        try:
            return dict(connection.describe_collection(args.get("id")))
        except CLIENT_ERRORS as exc:
            raise backend_error(exc, f"read the metadata of collection {args.get('id')!r} to split it") from exc
    from ..http import Auth, get_json

    doc = get_json(str(args.get("url")), Auth.from_connection(connection), what="STAC document of load_stac")
    return dict(doc) if isinstance(doc, Mapping) else {}


def _grid(meta: Mapping[str, Any], split: Split, what: str) -> PixelGrid:
    found = grid_from_metadata(meta)
    if split.crs is None and split.resolution is None:
        if found is None:
            raise unknown_grid(what)
        return found
    if split.crs is None or split.resolution is None:
        raise ValueError("Split(crs=..., resolution=...) go together: give both, or neither to use the metadata's grid")
    res = split.resolution
    resolution = (float(res), float(res)) if isinstance(res, int | float) else (float(res[0]), float(res[1]))
    epsg = epsg_of(split.crs)
    same = found is not None and found.epsg == epsg and found.resolution == resolution
    origin = split.origin or (found.origin if found is not None and same else (0.0, 0.0))
    return PixelGrid(epsg, resolution, (float(origin[0]), float(origin[1])), found.bounds if same and found else None)


def _area(grid: PixelGrid, loader: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """The window of the loader's spatial extent on ``grid`` (whole pixels, outward, within the collection)."""
    extent = (loader.get("arguments") or {}).get("spatial_extent")
    if extent is None:
        if grid.bounds is None:
            raise XrOpenEOError(
                "This graph loads the whole collection (spatial_extent is null) and its metadata gives no extent to "
                "split: set a spatial_extent"
            )
        window = grid.window(grid.bounds, outward=False)
    else:
        try:
            box = tuple(float(extent[k]) for k in ("west", "south", "east", "north"))
            src = epsg_of(extent.get("crs") or 4326)
        except (KeyError, TypeError, ValueError) as exc:
            raise XrOpenEOError(f"Cannot split the spatial_extent {extent!r}: {exc}") from None
        window = grid.clip(grid.window(transform_bbox(box, src, grid.epsg)))
    if window[2] <= window[0] or window[3] <= window[1]:
        raise XrOpenEOError(f"The spatial_extent {extent!r} covers no pixel of the collection: nothing to split")
    return window


def _tiles(
    grid: PixelGrid, area: tuple[int, int, int, int], split: Split
) -> list[tuple[str, tuple[int, int, int, int]]]:
    c0, r0, c1, r1 = area
    if split.tiles is not None:
        rows, cols = _counts(split.tiles, r1 - r0, c1 - c0)
        row_edges = [r0 + (i * (r1 - r0)) // rows for i in range(rows + 1)]
        col_edges = [c0 + (j * (c1 - c0)) // cols for j in range(cols + 1)]
        return [
            (f"r{i}c{j}", (col_edges[j], row_edges[i], col_edges[j + 1], row_edges[i + 1]))
            for i in range(rows)
            for j in range(cols)
            if row_edges[i + 1] > row_edges[i] and col_edges[j + 1] > col_edges[j]
        ]
    from openeo.extra.job_management import split_area

    aoi = dict(zip(("west", "south", "east", "north"), grid.bbox(area), strict=True))
    aoi["crs"] = grid.epsg
    if split.tile_grid is not None:
        return _user_tiles(grid, area, split_area(aoi, tile_grid=split.tile_grid))
    if split.tile_pixels is not None:
        if grid.resolution[0] != grid.resolution[1]:
            raise ValueError(f"tile_pixels needs square pixels; this grid's are {grid.resolution}: use tiles=")
        size = split.tile_pixels * grid.resolution[0]
    else:
        pixels = max(1, round(float(split.tile_size or 0) / grid.resolution[0]))
        size = pixels * grid.resolution[0]
    frame = split_area(aoi, projection=f"EPSG:{grid.epsg}", tile_size=size)
    windows = [grid.window(g.bounds, outward=False) for g in frame.geometry]
    tops = sorted({w[1] for w in windows})
    lefts = sorted({w[0] for w in windows})
    named = [(f"r{tops.index(w[1])}c{lefts.index(w[0])}", w) for w in windows if w[2] > w[0] and w[3] > w[1]]
    return sorted(named, key=lambda item: (item[1][1], item[1][0]))


def _user_tiles(
    grid: PixelGrid, area: tuple[int, int, int, int], frame: Any
) -> list[tuple[str, tuple[int, int, int, int]]]:
    if frame.crs is not None and frame.crs.to_epsg() != grid.epsg:
        frame = frame.to_crs(epsg=grid.epsg)
    column = next((c for c in ("name", "id", "tile_id") if c in frame.columns), None)
    out = []
    seen: set[str] = set()
    for i, (index, geometry) in enumerate(zip(frame.index, frame.geometry, strict=True)):
        c0, r0, c1, r1 = grid.window(geometry.bounds)
        window = (max(c0, area[0]), max(r0, area[1]), min(c1, area[2]), min(r1, area[3]))
        if window[2] <= window[0] or window[3] <= window[1]:
            continue
        name = str(frame[column].iloc[i]) if column else f"g{index}"
        if name in seen or not name or "/" in name:
            raise ValueError(f"tile names must be unique and without '/', got {name!r} (column {column or 'index'!r})")
        seen.add(name)
        out.append((name, window))
    return out


def _counts(tiles: int | tuple[int, int], height: int, width: int) -> tuple[int, int]:
    if not isinstance(tiles, int):
        return int(tiles[0]), int(tiles[1])
    pairs = [(r, tiles // r) for r in range(1, tiles + 1) if tiles % r == 0]
    return min(pairs, key=lambda p: abs(math.log((height / p[0]) / (width / p[1]))))


# -- time ------------------------------------------------------------------------------------------------------


def _needs_time_metadata(loader: Mapping[str, Any], split: Split) -> bool:
    extent = (loader.get("arguments") or {}).get("temporal_extent")
    return split.time is not None and (not isinstance(extent, list | tuple) or None in extent)


def _period(loader: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[Any, Any]:
    """``[start, end)`` of the loader's time: its temporal_extent, else the collection's (whose end is inclusive)."""
    import pandas as pd

    extent = (loader.get("arguments") or {}).get("temporal_extent")
    start, end = (extent[0], extent[1]) if isinstance(extent, list | tuple) and len(extent) == 2 else (None, None)
    interval = _collection_interval(meta)
    if start is None and interval[0] is not None:
        start = interval[0]
    if end is None and interval[1] is not None:
        end = pd.Timestamp(interval[1]) + pd.Timedelta(days=1)
    if start is None or end is None:
        raise XrOpenEOError(
            "A split in time needs the period: this graph's temporal_extent is open and the collection's metadata "
            "does not close it; set a temporal_extent"
        )
    return _naive(start), _naive(end)


def _collection_interval(meta: Mapping[str, Any]) -> tuple[Any, Any]:
    for dim in (meta.get("cube:dimensions") or {}).values():
        if isinstance(dim, Mapping) and dim.get("type") == "temporal" and isinstance(dim.get("extent"), list):
            extent = dim["extent"]
            if len(extent) == 2:
                return extent[0], extent[1]
    try:
        interval = meta["extent"]["temporal"]["interval"][0]
        return interval[0], interval[1]
    except (KeyError, IndexError, TypeError):
        return None, None


def _naive(value: Any) -> Any:
    import pandas as pd

    ts = pd.Timestamp(str(value))
    return ts.tz_convert(None) if ts.tzinfo is not None else ts


def _ranges(period: tuple[Any, Any], spec: Any) -> list[tuple[str, str]]:
    import pandas as pd

    start, end = period
    if end <= start:
        raise XrOpenEOError(f"The temporal extent [{start}, {end}) is empty: nothing to split")
    if isinstance(spec, int):
        span = end - start
        whole_days = span >= pd.Timedelta(days=spec) and start == start.normalize() and end == end.normalize()
        edges = [start + span * i / spec for i in range(spec + 1)]
        if whole_days:
            edges = [e.round("D") for e in edges]
    elif isinstance(spec, str):
        try:
            inner = list(pd.date_range(start, end, freq=spec, inclusive="neither"))
        except ValueError as exc:
            raise ValueError(f"time={spec!r} is not a pandas frequency ('MS', '7D', 'YS'…): {exc}") from None
        edges = [start, *inner, end]
    else:
        pairs = [tuple(p) for p in spec]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError(f"time= takes a count, a pandas frequency or [start, end) pairs, got {spec!r}")
        return [(str(a), str(b)) for a, b in pairs]
    edges = sorted(set(edges))
    days = all(e == e.normalize() for e in edges)  # dates when every edge is one, else UTC timestamps throughout
    text = [str(e.strftime("%Y-%m-%d" if days else "%Y-%m-%dT%H:%M:%SZ")) for e in edges]
    return list(zip(text[:-1], text[1:], strict=True))
