"""Split outputs of the local backend's writers: tile-grid cells and per-feature windows, as pure logic."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from xr_openeo.testing.writers.grid import Grid
from xr_openeo.testing.writers.options import output_options
from xr_openeo.testing.writers.splits import Piece, feature_pieces, tile_grid_pieces

# The SMALL collection of the suite: 256 x 256 pixels of 10 m from (640000, 5690000), UTM 31N.
SMALL_GRID = Grid(Affine(10, 0, 640000, 0, -10, 5690000), (256, 256), 32631)


def ownership(pieces: list[Piece], shape: tuple[int, int]) -> np.ndarray:
    """How many pieces own each pixel of the full grid."""
    count = np.zeros(shape, dtype=int)
    for piece in pieces:
        owned = np.ones((piece.rows.stop - piece.rows.start, piece.cols.stop - piece.cols.start), bool)
        count[piece.rows, piece.cols] += owned if piece.mask is None else piece.mask
    return count


def test_utm_cells_are_named_by_mgrs_square_column_and_row_from_the_top():
    pieces = tile_grid_pieces("utm-1km", SMALL_GRID)

    # 100 km aligned grid from x=600000 and y=5700000: 1 km cells 40..42 east, 10..12 down.
    assert [p.name for p in pieces] == [f"31UFS_{c}_{r}" for r in (10, 11, 12) for c in (40, 41, 42)]
    first, last = pieces[0], pieces[-1]
    assert (first.rows, first.cols, first.mask) == (slice(0, 100), slice(0, 100), None)
    assert (last.rows, last.cols, last.mask) == (slice(200, 256), slice(200, 256), None)
    assert (ownership(pieces, SMALL_GRID.shape) == 1).all()


def test_geopysparks_10km_grid_names():
    (piece,) = tile_grid_pieces("utm-10km", SMALL_GRID)
    assert piece.name == "31UFS_4_1"  # x 640000-650000 is column 4 from 600000; y 5690000-5680000 row 1 from 5700000
    assert (piece.rows, piece.cols, piece.mask) == (slice(0, 256), slice(0, 256), None)


@pytest.mark.parametrize(
    ("lon", "lat", "square"),
    [
        (4.5, 51.3, "31UFS"),  # Belgium, a zone of the first letter set
        (9.0, 45.5, "32TNR"),  # Milan: even zone, rows offset by five letters
        (-58.4, -34.6, "21HUB"),  # Buenos Aires: south, false northing
        (151.2, -33.9, "56HLH"),  # Sydney
    ],
)
def test_mgrs_squares_of_known_places(lon, lat, square):
    zone = int((lon + 180) // 6) + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    grid = Grid(Affine(10, 0, x - x % 10, 0, -10, y - y % 10 + 10), (4, 4), epsg)
    names = {p.name.split("_")[0] for p in tile_grid_pieces("utm-1km", grid)}
    assert names == {square}


def test_degree_cells_of_a_utm_raster_overlap_and_mask_what_is_not_theirs():
    grid = Grid(Affine(100, 0, 690000, 0, -100, 5600000), (256, 256), 32631)  # straddles 6°E

    pieces = tile_grid_pieces("wgs84-1degree", grid)

    assert [p.name for p in pieces] == ["N50E005", "N50E006"]
    west, east = pieces
    assert west.cols.stop > east.cols.start  # bounding windows of a slanted meridian overlap
    assert west.mask is not None and east.mask is not None
    assert (ownership(pieces, grid.shape) == 1).all()
    to_lonlat = Transformer.from_crs(32631, 4326, always_xy=True)
    for piece, (lo, hi) in zip(pieces, [(5, 6), (6, 7)], strict=True):
        rows, cols = np.nonzero(piece.mask)
        x = 690000 + 100 * (cols + piece.cols.start + 0.5)
        y = 5600000 - 100 * (rows + piece.rows.start + 0.5)
        lon, _ = to_lonlat.transform(x, y)
        assert ((lon >= lo) & (lon < hi)).all()


def test_lonlat_raster_on_a_degree_grid_needs_no_mask():
    grid = Grid(Affine(0.01, 0, -0.5, 0, -0.01, 51.5), (100, 150), 4326)
    pieces = tile_grid_pieces("wgs84-1degree", grid)
    assert [p.name for p in pieces] == ["N51W001", "N51E000", "N50W001", "N50E000"]
    assert all(p.mask is None for p in pieces)
    assert (ownership(pieces, grid.shape) == 1).all()


@settings(max_examples=60, deadline=None)
@given(
    x0=st.integers(-15_000, 15_000).map(lambda v: 500_000.0 + 10 * v),  # well inside zone 31
    y0=st.integers(-30_000, 30_000).map(lambda v: 5_000_000.0 + 10 * v),
    rows=st.integers(1, 120),
    cols=st.integers(1, 120),
    res=st.sampled_from([10.0, 20.0, 60.0]),
    cell=st.sampled_from(["utm-1km", "utm-500m", "utm-1280m", "utm-10km"]),
)
def test_metre_cells_partition_the_raster(x0, y0, rows, cols, res, cell):
    grid = Grid(Affine(res, 0, x0, 0, -res, y0), (rows, cols), 32631)

    pieces = tile_grid_pieces(cell, grid)

    assert (ownership(pieces, grid.shape) == 1).all()
    assert all(p.mask is None for p in pieces)
    assert len({p.name for p in pieces}) == len(pieces)
    values = np.arange(rows * cols).reshape(1, rows, cols)
    mosaic = np.full_like(values, -1)
    for piece in pieces:
        mosaic[:, piece.rows, piece.cols] = piece.take(values, -1)
    np.testing.assert_array_equal(mosaic, values)


def test_piece_take_fills_what_it_does_not_own():
    mask = np.array([[True, False], [False, True]])
    piece = Piece("a", slice(1, 3), slice(0, 2), mask)
    values = np.arange(2 * 3 * 3, dtype="float32").reshape(2, 3, 3)
    taken = piece.take(values, np.nan)
    assert taken.shape == (2, 2, 2) and taken.dtype == np.float32
    np.testing.assert_array_equal(taken[:, [0, 1], [0, 1]], values[:, [1, 2], [0, 1]])
    assert np.isnan(taken[:, [0, 1], [1, 0]]).all()


def test_feature_windows_cover_their_feature_and_mask_outside_it():
    to_lonlat = Transformer.from_crs(32631, 4326, always_xy=True)

    def lonlat(geometry):
        return shapely.transform(geometry, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))

    triangle = shapely.Polygon([(640100, 5689900), (640600, 5689900), (640100, 5689400)])
    square = shapely.box(641000, 5688000, 641500, 5688500)
    features = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"name": n}, "geometry": shapely.geometry.mapping(lonlat(g))}
            for n, g in (("tri", triangle), ("sq", square))
        ],
    }

    by_index = feature_pieces(features, SMALL_GRID, None)
    by_name = feature_pieces(features, SMALL_GRID, "name")

    assert [p.name for p in by_index] == ["0", "1"] and [p.name for p in by_name] == ["tri", "sq"]
    tri, sq = by_index
    # windows snap outward to whole pixels (the reprojected feature is not exactly on pixel edges)
    assert tri.rows.start <= 10 and tri.rows.stop >= 60 and tri.cols.start <= 10 and tri.cols.stop >= 60
    assert tri.mask is not None and 0.4 < tri.mask.mean() < 0.6
    assert abs((sq.rows.stop - sq.rows.start) - 50) <= 2 and abs((sq.cols.stop - sq.cols.start) - 50) <= 2


def test_feature_pieces_need_features_inside_the_raster():
    with pytest.raises(ValueError, match="filter_spatial"):
        feature_pieces(None, SMALL_GRID, None)
    far = {"type": "Polygon", "coordinates": [[[10, 10], [11, 10], [11, 11], [10, 10]]]}
    with pytest.raises(ValueError, match="does not overlap"):
        feature_pieces(far, SMALL_GRID, None)
    here = {"type": "Point", "coordinates": list(Transformer.from_crs(32631, 4326).transform(640005, 5689995))[::-1]}
    with pytest.raises(ValueError, match="feature_id_property 'id'"):
        feature_pieces(here, SMALL_GRID, "id")
    (point,) = feature_pieces(here, SMALL_GRID, None)
    assert (point.rows, point.cols) == (slice(0, 1), slice(0, 1))
    lat, lon = Transformer.from_crs(32631, 4326).transform(640005, 5687440 - 8)  # 8 m south of the raster
    with pytest.raises(ValueError, match="does not overlap"):
        feature_pieces({"type": "Point", "coordinates": [lon, lat]}, SMALL_GRID, None)


@pytest.mark.parametrize(
    ("options", "job_options", "message"),
    [
        ({"tile_grid": "utm-0km"}, None, "tile_grid must be"),
        (None, {"tile_grid": "10km"}, "tile_grid must be"),
        (None, {"tile_grid": "utm-1km", "tile_grid_proj": "asset"}, "tile_grid_proj must be 'tile' or 'job'"),
        ({"sample_by_feature": True}, {"tile_grid": "utm-1km"}, "not both"),
        (None, {"attach_gdalinfo_assets": "yes"}, "attach_gdalinfo_assets must be true or false"),
        (None, {"ml_model": "svm"}, "ml_model must be true or one of random-forest, catboost"),
    ],
)
def test_bad_output_options_are_named(options, job_options, message):
    with pytest.raises(ValueError, match=message):
        output_options(options, job_options)


def test_format_options_win_over_job_options():
    opts = output_options({"tile_grid": "utm-2km"}, {"tile_grid": "utm-1km", "tile_grid_proj": "job", "ml_model": True})
    assert (opts.tile_grid, opts.tile_grid_proj, opts.ml_model) == ("utm-2km", "job", "random-forest")
    assert output_options(None, {"attach_gdalinfo_assets": "true"}).attach_gdalinfo_assets is True
    assert not output_options(None, None).splits
