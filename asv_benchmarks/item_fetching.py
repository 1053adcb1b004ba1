"""How opening results grows with the number of item documents, against the floor of plain requests.

Run from the repository root::

    python -m asv_benchmarks.item_fetching [--items 50 200 1000] [--latency 0.02] [--repeat 3] [--threads 64]

The local backend serves, in its own thread, STAC 1.1 style results of tiny GeoTIFFs: one item
document per date, every request delayed by ``--latency`` seconds (the job's ``Faults(latency=...)``). For each
item count it times, best of ``--repeat``:

- ``floor``: plain ``requests`` with ``--threads`` threads (one keep-alive session each) fetching and
  parsing (``.json()``) every item document of the results document: what the link allows;
- ``load_results``: :func:`xr_openeo.sources.load_results` of the job (the results document, then the
  item documents, parsed and merged into asset specs);
- ``open_results``: :func:`xr_openeo.open_results` (the same, plus the lazy Dataset).

Then prints the cost beyond the smallest count (``load_results(n) - load_results(smallest)``) divided
by the floor of ``n`` items: issue 13 asks for at most 1.5 beyond a 50-item open. One JSON line per
server and count, then a summary line per server and count.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

import xr_openeo
from xr_openeo.sources import load_results
from xr_openeo.testing import LocalBackend, SyntheticCollection


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def floor(item_links: list[str], threads: int) -> None:
    """Every item document fetched and parsed by plain requests, ``threads`` at a time, one session per thread."""
    local = threading.local()

    def get(url: str) -> Any:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        return session.get(url, timeout=60).json()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(get, item_links))


def run_job(connection: Any, latency: float) -> Any:
    cube = connection.load_collection("SENTINEL2_L2A", bands=["B04"])
    options = {"stac-version": "1.1", "faults": {"latency": latency}}
    job = cube.create_job(out_format="GTiff", job_options=options)
    job.start_and_wait(max_poll_interval=0.2, print=lambda *a: None)
    return job


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # 64 connections at once must not overflow the listen backlog
    daemon_threads = True


def serve(directory: Path, latency: float) -> None:
    """Serve the files of ``directory`` (``/items/0.json``…) on 127.0.0.1, each request after ``latency`` s.

    Prints the root URL on its first line of output, then serves until killed.
    """
    documents = {f"/{p.relative_to(directory).as_posix()}": p.read_bytes() for p in directory.rglob("*.json")}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            time.sleep(latency)
            body = documents.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = _Server(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    httpd.serve_forever()


@contextmanager
def static_server(job: Any, links: list[str], latency: float) -> Iterator[str]:
    """The job's results document and item documents, served from another process; the results URL there.

    The results document links its items relatively (``items/0.json``), as a static catalog would.
    """
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "items").mkdir()
        for i, link in enumerate(links):
            (directory / "items" / f"{i}.json").write_bytes(requests.get(link, timeout=60).content)
        doc = job.get_results().get_metadata()
        doc["links"] = [link for link in doc["links"] if link["rel"] not in ("item", "self", "canonical")]
        doc["links"] += [
            {"rel": "item", "href": f"items/{i}.json", "type": "application/geo+json"} for i in range(len(links))
        ]
        (directory / "results.json").write_text(json.dumps(doc))
        command = [sys.executable, "-m", "asv_benchmarks.item_fetching", "--serve", tmp, "--latency", str(latency)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            yield process.stdout.readline().strip() + "/results.json"
        finally:
            process.terminate()
            process.wait(timeout=30)


def measure(source: Any, links: list[str], args: argparse.Namespace) -> dict[str, float]:
    load_results(source)  # warm: imports, connections
    xr_openeo.open_results(source)
    return {
        "floor": best(lambda: floor(links, args.threads), args.repeat),
        "load_results": best(lambda: load_results(source), args.repeat),
        "open_results": best(lambda: xr_openeo.open_results(source), args.repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--servers", nargs="+", choices=["backend", "static"], default=["backend", "static"])
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the static server's own process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.latency)
        return
    counts = sorted(args.items)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for n in counts:
        collection = SyntheticCollection(dates=n, width=16, height=16, step_days=1)
        with LocalBackend([collection], blocksize=16) as backend:
            job = run_job(backend.connect(), args.latency)
            links = list(load_results(job).info.item_links)
            assert len(links) == n, (len(links), n)
            for server in args.servers:
                if server == "backend":
                    row = measure(job, links, args)
                else:
                    with static_server(job, links, args.latency) as url:
                        root = url.rsplit("/", 1)[0]
                        row = measure(url, [f"{root}/items/{i}.json" for i in range(n)], args)
                rows[(server, n)] = row
                shown = {k: round(v, 3) for k, v in row.items()}
                print(json.dumps({"server": server, "items": n, "latency": args.latency, **shown}), flush=True)
    for server in args.servers:
        smallest = rows[(server, counts[0])]
        for n in counts[1:]:
            row = rows[(server, n)]
            beyond = row["load_results"] - smallest["load_results"]
            beyond_open = row["open_results"] - smallest["open_results"]
            summary = {
                "server": server,
                "items": n,
                "beyond_smallest": round(beyond, 3),
                "floor": round(row["floor"], 3),
                "ratio_load_results": round(beyond / row["floor"], 2),
                "ratio_open_results": round(beyond_open / row["floor"], 2),
            }
            print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
