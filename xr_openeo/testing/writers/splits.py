"""Split outputs: a raster written as several files of one pixel grid (``tile_grid``, ``sample_by_feature``).

Cells of a ``tile_grid`` are those of openeo-geotrellis-extensions' ``TileGrid``: 1° cells named
``N50E000`` in EPSG:4326 (``wgs84-1degree``), or square cells of the UTM zone of the result's
south-west corner (``utm-10km``, ``utm-20km``, ``utm-100km``; here any ``utm-<n>km`` or
``utm-<n>m``) named ``{MGRS square}_{col}_{row}``, columns and rows counted from a grid whose
corners are rounded out to 100 km. A pixel belongs to the cell holding its centre. Each file is
the bounding window of its cell's pixels; pixels of that window outside the cell are nodata, as
geopyspark masks tiles by their cell. Per-feature files are the window of the feature's bounding
box, masked outside the feature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyproj import CRS, Transformer

from .grid import Grid
from .options import tile_grid_metres

_MGRS_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # 8° latitude bands from 80°S
_MGRS_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")  # 100 km easting letters, by zone mod 3
_MGRS_ROWS = "ABCDEFGHJKLMNPQRSTUV"  # 100 km northing letters, offset by 5 in even zones
_UTM_ALIGNMENT = 100_000.0


@dataclass(frozen=True)
class Piece:
    """One file of a split raster: its name, its window of the cube and which pixels it owns."""

    name: str
    rows: slice
    cols: slice
    mask: np.ndarray | None = None  # (rows, cols) bool, True where the pixel is this piece's; None = all

    def take(self, array: np.ndarray, fill: float | int) -> np.ndarray:
        """This piece's window of a ``(..., y, x)`` array, ``fill`` where it owns no pixel."""
        window = array[..., self.rows, self.cols]
        if self.mask is None:
            return window
        return np.where(self.mask, window, np.asarray(fill, dtype=array.dtype))


def tile_grid_pieces(tile_grid: str, grid: Grid) -> list[Piece]:
    """The cells of ``tile_grid`` that hold pixels of ``grid``, north-west first.

    Raises
    ------
    ValueError
        ``tile_grid`` is not ``wgs84-1degree``, ``utm-<n>km`` or ``utm-<n>m``.
    """
    xs, ys = _centres(grid)
    west, south, east, north = _lonlat_bounds(grid)
    if tile_grid == "wgs84-1degree":
        cell_crs, size = CRS.from_epsg(4326), 1.0
        origin = (0.0, 0.0)
    else:
        size = tile_grid_metres(tile_grid) or 0.0
        if size <= 0:
            raise ValueError(
                f"save_result: tile_grid must be 'wgs84-1degree', 'utm-<n>km' or 'utm-<n>m', got {tile_grid!r}."
            )
        zone = min(int((west + 180) // 6) + 1, 60)
        cell_crs = CRS.from_epsg((32600 if south >= 0 else 32700) + zone)
        x_min, _, _, y_max = Transformer.from_crs(grid.crs_epsg, cell_crs, always_xy=True).transform_bounds(
            *grid.bbox, densify_pts=21
        )
        origin = (
            math.floor(x_min / _UTM_ALIGNMENT) * _UTM_ALIGNMENT,
            math.ceil(y_max / _UTM_ALIGNMENT) * _UTM_ALIGNMENT,
        )
    if CRS.from_epsg(grid.crs_epsg).equals(cell_crs):  # cells follow the axes: no need to transform every pixel
        east_index = np.broadcast_to(_cell_index(xs - origin[0], size)[None, :], (ys.size, xs.size))
        north_index = np.broadcast_to(_cell_index(ys - origin[1], size)[:, None], (ys.size, xs.size))
    else:
        cx, cy = Transformer.from_crs(grid.crs_epsg, cell_crs, always_xy=True).transform(*np.meshgrid(xs, ys))
        east_index, north_index = _cell_index(cx - origin[0], size), _cell_index(cy - origin[1], size)
    cells = {(int(n), int(e)) for n, e in zip(north_index.ravel(), east_index.ravel(), strict=True)}
    pieces = []
    for north_i, east_i in sorted(cells, key=lambda cell: (-cell[0], cell[1])):
        members = (north_index == north_i) & (east_index == east_i)
        if tile_grid == "wgs84-1degree":
            name = _degree_name(east_i, north_i)
        else:  # rows counted down from the grid's top edge
            centre = (origin[0] + (east_i + 0.5) * size, origin[1] + (north_i + 0.5) * size)
            name = f"{_mgrs_square(centre, cell_crs)}_{east_i}_{-north_i - 1}"
        pieces.append(_piece(name, members))
    return pieces


def feature_pieces(geometries: Any, grid: Grid, id_property: str | None) -> list[Piece]:
    """One piece per feature of a GeoJSON (EPSG:4326): its bounding window, masked outside it.

    Raises
    ------
    ValueError
        No geometries, a feature outside the raster, or a missing ``id_property``.
    """
    from rasterio.features import geometry_mask

    if not geometries:
        raise ValueError("save_result: sample_by_feature needs the features of a filter_spatial in the process graph.")
    frame = features_frame(geometries).to_crs(grid.crs_epsg)
    if id_property is not None and id_property not in frame.columns:
        raise ValueError(f"save_result: feature_id_property {id_property!r} is no property of the features.")
    pieces = []
    for i, (geometry, name) in enumerate(
        zip(frame.geometry, frame[id_property] if id_property else range(len(frame)), strict=True)
    ):
        rows, cols = _bbox_window(geometry.bounds, grid)
        if rows.stop <= rows.start or cols.stop <= cols.start:
            raise ValueError(f"save_result: feature {i} does not overlap the raster it should sample.")
        window = grid.window(rows, cols)
        shape = window.shape
        mask = geometry_mask([geometry], out_shape=shape, transform=window.transform, invert=True)
        if not mask.any():  # smaller than a pixel: keep the pixels it touches
            mask = geometry_mask([geometry], out_shape=shape, transform=window.transform, invert=True, all_touched=True)
        pieces.append(Piece(str(name), rows, cols, None if mask.all() else mask))
    return pieces


def features_frame(geometries: Any) -> Any:
    """A GeoDataFrame of a GeoJSON geometry, Feature or FeatureCollection (EPSG:4326, openEO's default).

    Raises
    ------
    ValueError
        ``geometries`` is no GeoJSON object.
    """
    import geopandas as gpd
    import shapely.geometry

    if isinstance(geometries, gpd.GeoDataFrame):
        return geometries if geometries.crs is not None else geometries.set_crs(4326)
    if isinstance(geometries, dict) and geometries.get("type") == "FeatureCollection":
        return gpd.GeoDataFrame.from_features(geometries, crs=4326)
    if isinstance(geometries, dict) and geometries.get("type") == "Feature":
        return gpd.GeoDataFrame.from_features([geometries], crs=4326)
    if isinstance(geometries, dict) and "type" in geometries:
        return gpd.GeoDataFrame(geometry=[shapely.geometry.shape(geometries)], crs=4326)
    raise ValueError(f"geometries must be GeoJSON, got {str(geometries)[:200]!r}.")


def _centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = grid.shape
    t = grid.transform
    return t.c + t.a * (np.arange(cols) + 0.5), t.f + t.e * (np.arange(rows) + 0.5)


def _lonlat_bounds(grid: Grid) -> tuple[float, float, float, float]:
    to_lonlat = Transformer.from_crs(grid.crs_epsg, 4326, always_xy=True)
    west, south, east, north = to_lonlat.transform_bounds(*grid.bbox, densify_pts=21)
    return float(west), float(south), float(east), float(north)


def _cell_index(offset: np.ndarray, size: float) -> np.ndarray:
    return np.floor(np.asarray(offset) / size).astype(np.int64)


def _piece(name: str, members: np.ndarray) -> Piece:
    row_hits, col_hits = np.flatnonzero(members.any(axis=1)), np.flatnonzero(members.any(axis=0))
    rows = slice(int(row_hits[0]), int(row_hits[-1]) + 1)
    cols = slice(int(col_hits[0]), int(col_hits[-1]) + 1)
    mask = np.ascontiguousarray(members[rows, cols])
    return Piece(name, rows, cols, None if mask.all() else mask)


def _bbox_window(bounds: Sequence[float], grid: Grid) -> tuple[slice, slice]:
    """Rows and columns of the pixels that overlap ``bounds`` (west, south, east, north); a point gets its pixel."""
    west, south, east, north = bounds
    t = grid.transform
    c0 = math.floor((west - t.c) / t.a + 1e-9)
    c1 = max(math.ceil((east - t.c) / t.a - 1e-9), c0 + 1)
    r0 = math.floor((north - t.f) / t.e + 1e-9)
    r1 = max(math.ceil((south - t.f) / t.e - 1e-9), r0 + 1)
    return slice(max(r0, 0), min(r1, grid.shape[0])), slice(max(c0, 0), min(c1, grid.shape[1]))


def _degree_name(lon: int, lat: int) -> str:
    ns = f"S{abs(lat):02d}" if lat < 0 else f"N{lat:02d}"
    ew = f"W{abs(lon):03d}" if lon < 0 else f"E{lon:03d}"
    return ns + ew


def _mgrs_square(centre: tuple[float, float], utm: CRS) -> str:
    """The MGRS grid zone and 100 km square (``31UFS``) of a point in UTM coordinates."""
    zone = int(str(utm.to_epsg())[-2:])
    lon, lat = Transformer.from_crs(utm, 4326, always_xy=True).transform(*centre)
    band = _MGRS_BANDS[min(max(int((lat + 80) // 8), 0), len(_MGRS_BANDS) - 1)]
    easting, northing = centre
    column = _MGRS_COLUMNS[(zone - 1) % 3][min(max(int(easting // 100_000) - 1, 0), 7)]
    row = _MGRS_ROWS[(int(northing // 100_000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone:02d}{band}{column}{row}"
