"""Tiles of an area on a pixel grid: by count, by size (the openeo client's ``split_area``), or a user's tiles.

Areas and tiles are windows ``(col0, row0, col1, row1)`` of whole pixels of a
:class:`~xr_openeo.jobs.pixelgrid.PixelGrid`; tiles are named ``r{row}c{col}`` (counted from the
north-west), or after the user's tiles (their ``name``, ``id`` or ``tile_id`` column, else
``g{index}``).
"""

from __future__ import annotations

import math
from typing import Any

from .pixelgrid import PixelGrid

Window = tuple[int, int, int, int]


def tile_windows(grid: PixelGrid, area: Window, split: Any) -> list[tuple[str, Window]]:
    """The tiles of ``area`` that ``split`` (a :class:`~xr_openeo.jobs.split.Split`) asks for, by name."""
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
