"""``python -m xr_openeo.testing --port N``: run the local openEO backend as a process."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xr_openeo.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--dates", type=int, default=3, help="dates in the synthetic collection")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--results-style", default="stac-1.0", choices=("stac-1.0", "stac-1.1", "item"))
    parser.add_argument("--blocksize", type=int, default=256, help="tile size of the COGs written")
    parser.add_argument("--faults", default="{}", help="server-wide fault switches as JSON, e.g. '{\"latency\": 0.02}'")
    parser.add_argument("--workdir", default=None, help="folder for job results (default: a temporary one)")
    args = parser.parse_args(argv)

    from .backend import TEST_USER, LocalBackend
    from .collections import SyntheticCollection
    from .faults import Faults

    collection = SyntheticCollection(dates=args.dates, width=args.size[0], height=args.size[1], seed=args.seed)
    backend = LocalBackend(
        [collection],
        faults=Faults().merged(json.loads(args.faults)),
        results_style=args.results_style,
        port=args.port,
        blocksize=args.blocksize,
        workdir=args.workdir,
    ).start()
    print(
        f"openEO API 1.2 at {backend.url} (user {TEST_USER[0]!r}, password {TEST_USER[1]!r}); Ctrl-C stops", flush=True
    )
    try:
        backend.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
