"""Synthetic collections: deterministic pixels, and subsets that are exactly slices of the full cube."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xr_openeo.testing import SyntheticCollection, synthetic_pixels
from xr_openeo.testing.collections import MASK_MODULUS

COLLECTION = SyntheticCollection(dates=6, width=40, height=30)


def test_pixels_are_deterministic_and_depend_on_every_input():
    rows, cols = np.arange(30), np.arange(40)
    a = synthetic_pixels(42, 0, 0, rows, cols)
    assert a.dtype == np.uint16 and a.shape == (30, 40)
    np.testing.assert_array_equal(a, synthetic_pixels(42, 0, 0, rows, cols))
    for other in (
        synthetic_pixels(43, 0, 0, rows, cols),
        synthetic_pixels(42, 1, 0, rows, cols),
        synthetic_pixels(42, 0, 1, rows, cols),
    ):
        assert (a != other).mean() > 0.9
    assert a.max() <= 10000


def test_nodata_is_shared_by_all_bands_of_a_date():
    rows, cols = np.arange(200), np.arange(200)
    planes = [synthetic_pixels(1, b, 3, rows, cols) for b in range(4)]
    masks = [p == 0 for p in planes]
    assert all((m == masks[0]).all() for m in masks)
    assert 0.5 / MASK_MODULUS < masks[0].mean() < 2 / MASK_MODULUS
    scl = synthetic_pixels(1, 4, 3, rows, cols, classes=12)
    assert scl.max() <= 11 and ((scl == 0) == masks[0]).all()


@settings(max_examples=40, deadline=None)
@given(
    r0=st.integers(0, 29),
    nr=st.integers(1, 30),
    c0=st.integers(0, 39),
    nc=st.integers(1, 40),
    d0=st.integers(0, 5),
    nd=st.integers(1, 6),
    bands=st.lists(st.sampled_from(COLLECTION.band_names), min_size=1, max_size=5, unique=True),
)
def test_a_loaded_subset_is_the_same_slice_of_the_full_cube(r0, nr, c0, nc, d0, nd, bands):
    r1, c1, d1 = min(r0 + nr, 30), min(c0 + nc, 40), min(d0 + nd, 6)
    x0, y0 = COLLECTION.origin
    extent = {"west": x0 + 10 * c0, "east": x0 + 10 * c1, "north": y0 - 10 * r0, "south": y0 - 10 * r1, "crs": 32631}
    dates = COLLECTION.timestamps
    temporal = [str(dates[d0].date()), str(dates[d1].date()) if d1 < 6 else None]
    cube = COLLECTION.load(extent, temporal, bands)
    full = COLLECTION.load(None, None, None)
    assert cube.dims == ("t", "bands", "y", "x")
    assert cube.shape == (d1 - d0, len(bands), r1 - r0, c1 - c0)
    expected = full.isel(t=slice(d0, d1), y=slice(r0, r1), x=slice(c0, c1)).sel(bands=bands)
    np.testing.assert_array_equal(cube.values, expected.values)
    np.testing.assert_array_equal(cube.x.values, expected.x.values)
    assert cube.rio.crs.to_epsg() == 32631


def test_coordinates_are_pixel_centres_and_lonlat_extents_work():
    cube = COLLECTION.load({"west": 5.0, "south": 51.0, "east": 5.2, "north": 51.5}, None, ["B04"])
    assert cube.x.values[0] == COLLECTION.origin[0] + 5 and cube.y.values[0] == COLLECTION.origin[1] - 5
    assert cube.sizes["x"] == 40 and cube.sizes["y"] == 30


def test_bad_requests_say_what_is_wrong():
    with pytest.raises(ValueError, match="Band 'B99' is not in collection 'SENTINEL2_L2A'"):
        COLLECTION.load(None, None, ["B99"])
    with pytest.raises(ValueError, match="does not intersect"):
        COLLECTION.load({"west": 10, "south": 45, "east": 10.1, "north": 45.1}, None, None)
    with pytest.raises(ValueError, match="holds no date"):
        COLLECTION.load(None, ["2030-01-01", None], None)
    with pytest.raises(ValueError, match="west/south/east/north"):
        COLLECTION.load({"west": "a"}, None, None)


def test_explicit_dates_and_metadata():
    c = SyntheticCollection(dates=("2023-03-01T10:30:00Z", "2023-03-04"), width=8, height=8)
    assert [str(t) for t in c.timestamps] == ["2023-03-01 10:30:00", "2023-03-04 00:00:00"]
    meta = c.metadata()
    assert meta["cube:dimensions"]["bands"]["values"] == ["B02", "B03", "B04", "B08", "SCL"]
    assert meta["extent"]["temporal"]["interval"] == [["2023-03-01T10:30:00Z", "2023-03-04T00:00:00Z"]]
