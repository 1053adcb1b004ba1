"""Shared by the examples: a connection to the local backend (default) or to a real one (--url).

The local backend needs the ``local`` extra: pip install "xr_openeo[local]".
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", help="a real openEO backend (OIDC login); default: the local backend")
    parser.add_argument("--collection", default="SENTINEL2_L2A", help="collection with B04 and B08 bands")
    parser.add_argument(
        "--extent",
        type=float,
        nargs=4,
        default=(5.01, 51.325, 5.04, 51.34),
        metavar=("WEST", "SOUTH", "EAST", "NORTH"),
        help="lon/lat bounding box",
    )
    parser.add_argument("--dates", nargs=2, default=("2023-01-01", "2023-01-31"), metavar=("START", "END"))
    return parser.parse_args()


@contextlib.contextmanager
def connection(args: argparse.Namespace, **backend_options: Any) -> Iterator[Any]:
    """An authenticated openeo.Connection; a local backend runs for the duration when no --url."""
    if args.url:
        import openeo

        yield openeo.connect(args.url).authenticate_oidc()
        return
    from xr_openeo.testing import LocalBackend

    with LocalBackend(**backend_options) as backend:
        print(f"(local openEO backend at {backend.url})")
        yield backend.connect()


def ndvi(conn: Any, args: argparse.Namespace) -> Any:
    west, south, east, north = args.extent
    cube = conn.load_collection(
        args.collection,
        bands=["B04", "B08"],
        temporal_extent=list(args.dates),
        spatial_extent={"west": west, "south": south, "east": east, "north": north},
    )
    return cube.ndvi(red="B04", nir="B08", target_band="NDVI")
