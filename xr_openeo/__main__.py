"""``python -m xr_openeo demo``: the main job, end to end, on the local openEO backend.

An NDVI batch job runs on the local backend, its results open lazily as an xarray Dataset, a
statistic is computed from them (reading only then) and a PNG plot is written.
"""

from __future__ import annotations

import argparse
import sys
import time


def _asset_bytes(backend: object, job_id: str) -> str:
    if backend is None:
        return "from the backend's asset URLs"
    served = [r for r in backend.requests if "/results/assets/" in r.path]  # type: ignore[attr-defined]
    return f"{sum(r.bytes_sent for r in served) / 1e6:.1f} MB in {len(served)} requests"


def _plot(data: object, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    data.plot(ax=ax, cmap="RdYlGn", vmin=-1, vmax=1)  # type: ignore[attr-defined]
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def demo(dates: int, size: int, url: str | None, plot: str = "xr_openeo-demo.png") -> int:
    """Run an NDVI batch job on the local backend (or ``url``), open it lazily, compute and plot."""
    import openeo

    from . import compute_batch
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
        cube = cube.ndvi(red="B04", nir="B08", target_band="NDVI")
        print("Running the NDVI graph as a batch job: xr_openeo.compute_batch(cube)")
        started = time.monotonic()
        ds = compute_batch(cube, title="xr_openeo demo: NDVI")  # a progress bar, or status lines without a terminal
        print(f"Job {ds.openeo.job_id} finished in {time.monotonic() - started:.1f} s.")
        print("\nThe results, opened lazily (nothing read yet):")
        print(ds)
        ndvi = "NDVI"  # ndvi(target_band=...) appends the NDVI band to B04 and B08
        mean = ds[ndvi].mean(("y", "x")).compute()
        print(f"\nMean {ndvi} per date (reads the files now):")
        for t, value in zip(mean.t.values, mean.values, strict=True):
            print(f"  {str(t)[:10]}  {value:.4f}")
        print(f"Read {_asset_bytes(backend, ds.openeo.job_id)}")
        print(f"Plot written to {_plot(ds[ndvi].isel(t=0), plot)}")
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
    p_demo.add_argument("--plot", default="xr_openeo-demo.png", help="where to write the PNG plot")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.dates, args.size, args.url, args.plot)
    return 2


if __name__ == "__main__":
    sys.exit(main())
