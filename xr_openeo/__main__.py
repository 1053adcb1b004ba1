"""``python -m xr_openeo demo``: the main job, end to end, on the local openEO backend."""

from __future__ import annotations

import argparse
import sys
import time


def demo(dates: int, size: int, url: str | None) -> int:
    """Run an NDVI batch job on the local backend (or ``url``) and list what it produced."""
    import openeo

    from .testing import LocalBackend, SyntheticCollection

    backend = None
    if url is None:
        backend = LocalBackend([SyntheticCollection(dates=dates, width=size, height=size)]).start()
        connection = backend.connect()
        print(f"Local openEO backend running at {backend.url}")
    else:
        connection = openeo.connect(url).authenticate_oidc()
    try:
        cube = connection.load_collection(
            "SENTINEL2_L2A",
            temporal_extent=["2023-01-01", "2024-01-01"],
            bands=["B04", "B08"],
        )
        ndvi = cube.ndvi(red="B04", nir="B08")
        job = ndvi.create_job(out_format="GTiff", title="xr_openeo demo: NDVI")
        print(f"Created batch job {job.job_id}; starting it")
        started = time.monotonic()
        job.start_and_wait(max_poll_interval=1, print=lambda msg: print(f"  {msg}"))
        print(f"Job finished in {time.monotonic() - started:.1f} s. Its assets:")
        for asset in job.get_results().get_assets():
            bands = ", ".join(b["name"] for b in asset.metadata.get("eo:bands", []))
            print(f"  {asset.key:32s} {asset.media_type:58s} bands: {bands}")
    finally:
        if backend is not None:
            backend.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xr_openeo", description="xr_openeo command line")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run an NDVI batch job on the local openEO backend and list its results")
    p_demo.add_argument("--dates", type=int, default=6, help="dates in the local backend's collection")
    p_demo.add_argument("--size", type=int, default=256, help="width and height of its rasters, in pixels")
    p_demo.add_argument("--url", default=None, help="a real openEO backend instead of the local one (OIDC login)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.dates, args.size, args.url)
    return 2


if __name__ == "__main__":
    sys.exit(main())
