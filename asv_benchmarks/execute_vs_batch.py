"""``execute`` against ``compute_batch`` for the demo graph: ``python -m asv_benchmarks.execute_vs_batch``.

Starts the local backend in its own process (``--dates`` dates of ``--size``² pixels, optionally
``--latency`` seconds added to every request), and runs the demo's NDVI graph (every date, B04, B08
and NDVI, saved as GTiff) ``--repeat`` times each way, in turns, timing each until the values are
in memory:

- ``execute``: ``xr_openeo.execute(cube)`` (an answer under 16 MiB comes back loaded);
- ``execute, lazy``: ``xr_openeo.execute(cube, chunks={})``, then ``.load()``;
- ``compute_batch``: ``xr_openeo.compute_batch(cube, progress=False)``, then ``.load()``;
- ``client download``: the openeo client's ``cube.download()`` (the bytes of the same synchronous
  answer, not opened): what the synchronous request itself costs.

Prints the best and the median time of each, and the requests each sent (from the backend's log).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from asv_benchmarks.benchmarks.synchronous import demo_cube


def methods(cube: Any) -> dict[str, Callable[[], object]]:
    import xr_openeo

    def lazy() -> None:
        with xr_openeo.execute(cube, chunks={}) as ds:
            ds.load()

    return {
        "execute": lambda: xr_openeo.execute(cube).load(),
        "execute, lazy": lazy,
        "compute_batch": lambda: xr_openeo.compute_batch(cube, progress=False).load(),
        "client download": lambda: cube.download(format="GTiff"),
    }


def measure(dates: int, size: int, repeat: int, latency: float) -> dict[str, Any]:
    from xr_openeo.testing import BackendProcess

    with BackendProcess(dates=dates, size=size, faults={"latency": latency} if latency else None) as backend:
        cube = demo_cube(backend.connect())
        runs = methods(cube)
        times: dict[str, list[float]] = {name: [] for name in runs}
        requests: dict[str, int] = {}
        for run in runs.values():
            run()  # warm up: imports, connections
        for _ in range(repeat):
            for name, run in runs.items():  # in turns, so that a slow moment of the machine hits all alike
                backend.clear_requests()
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
                requests[name] = len(backend.requests())
    return {
        "dates": dates,
        "size": size,
        "latency": latency,
        "repeat": repeat,
        "methods": {
            name: {"best": min(t), "median": statistics.median(t), "requests": requests[name]}
            for name, t in times.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asv_benchmarks.execute_vs_batch", description=__doc__)
    parser.add_argument("--dates", type=int, default=6, help="dates of the collection (the demo's default: 6)")
    parser.add_argument("--size", type=int, default=256, help="width and height in pixels (the demo's default: 256)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each method")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the backend adds to every request")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    report = measure(args.dates, args.size, args.repeat, args.latency)
    print(f"demo graph: {args.dates} dates of {args.size}², latency {args.latency:g} s, best of {args.repeat}")
    print(f"{'method':<16} {'best s':>8} {'median s':>9} {'requests':>9}")
    for name, row in report["methods"].items():
        print(f"{name:<16} {row['best']:>8.2f} {row['median']:>9.2f} {row['requests']:>9}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
