"""One batch job as many: the area in tiles on the collection's pixel grid, and/or the time in ranges.

A :class:`Split` says how; :func:`plan_pieces` turns a process graph and a split into
:class:`Piece` s, each a box on whole pixels of the collection's grid and/or a time range, and
:meth:`Piece.graph` writes a piece's extent into the graph's ``load_collection`` / ``load_stac``
nodes. The grid comes from :mod:`.pixelgrid`, the tiles from :mod:`.tiles` (tiles of a size and
a user's GeoDataFrame of tiles go through the openeo client's ``split_area``; tiles by count are
whole-pixel divisions of the area, a mode the client does not have), the time ranges from
:mod:`.timeranges`. Every tile lies on pixel edges, so that the pieces' results lie on one grid again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import XrOpenEOError, XrOpenEOWarning
from .graphs import LOADERS, loader_nodes, process_graph_key
from .pixelgrid import PixelGrid, epsg_of, grid_from_metadata, transform_bbox, unknown_grid
from .tiles import tile_windows
from .timeranges import period, time_ranges

logger = logging.getLogger("xr_openeo.jobs")

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
    loaders = loader_nodes(nodes)
    if not loaders:
        raise XrOpenEOError(
            "A split sets the extent of the graph's load_collection or load_stac, and this graph has neither: "
            "run it as one job (drop split=)"
        )
    _check_processes(nodes, split)
    first = loaders[0]
    if split.spatial or _needs_time_metadata(first, split):
        meta = _metadata(connection, first)
    elif split.time is not None:  # a closed period: the collection's dates only cut it, when they can be read
        meta = _optional_metadata(connection, first)
    else:
        meta = {}
    tiles: list[tuple[str, tuple[float, float, float, float]]] = [("", (0, 0, 0, 0))]
    epsg = None
    if split.spatial:
        grid = _grid(meta, split, _what(first))
        epsg = grid.epsg
        tiles = [(name, grid.bbox(window)) for name, window in tile_windows(grid, _area(grid, first), split)]
    ranges: list[tuple[str, tuple[str | None, str | None]]] = [("", (None, None))]
    if split.time is not None:
        ranges = [(f"t{i}", r) for i, r in enumerate(time_ranges(period(first, meta), split.time))]
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
    for node in loader_nodes(nodes):
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


def _optional_metadata(connection: Any, loader: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return _metadata(connection, loader)
    except XrOpenEOError as exc:
        logger.info("Splitting the graph's own period: the metadata of its data could not be read (%s)", exc)
        return {}


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


# -- time ------------------------------------------------------------------------------------------------------


def _needs_time_metadata(loader: Mapping[str, Any], split: Split) -> bool:
    extent = (loader.get("arguments") or {}).get("temporal_extent")
    return split.time is not None and (not isinstance(extent, list | tuple) or None in extent)
