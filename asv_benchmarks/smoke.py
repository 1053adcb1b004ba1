"""Run every asv benchmark once, at tiny sizes, without timing anything: ``python -m asv_benchmarks.smoke``.

Sets ``XR_OPENEO_BENCH_SMOKE=1`` before importing the benchmarks, then for each benchmark class and
parameter combination calls ``setup_cache``/``setup``, every ``time_``, ``track_``, ``peakmem_`` and
``mem_`` method, the code of every ``timeraw_`` method in a fresh interpreter, and ``teardown``.
Prints one line per benchmark run and exits non-zero on the first failure. The CI smoke test runs it,
so a broken benchmark fails CI; real measurements are ``asv run`` (see the README).
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import os
import pkgutil
import subprocess
import sys
from typing import Any

PREFIXES = ("time_", "track_", "peakmem_", "mem_", "timeraw_")


def benchmark_classes() -> list[type]:
    import asv_benchmarks.benchmarks as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and any(n.startswith(PREFIXES) for n in dir(cls)):
                found.append(cls)
    return found


def run_class(cls: type) -> list[str]:
    params = getattr(cls, "params", [])
    if params and not isinstance(params[0], list):
        params = [params]
    combos = list(itertools.product(*params)) if params else [()]
    instance = cls()
    cache = (instance.setup_cache(),) if hasattr(instance, "setup_cache") else ()
    ran = []
    for combo in combos:
        args: tuple[Any, ...] = (*cache, *combo)
        if hasattr(instance, "setup"):
            instance.setup(*args)
        try:
            for name in sorted(n for n in dir(cls) if n.startswith(PREFIXES)):
                result = getattr(instance, name)(*args)
                if name.startswith("timeraw_"):
                    subprocess.run([sys.executable, "-c", result], check=True)
                    result = None
                ran.append(f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}.{name}{list(combo)} -> {result!r}")
                print(ran[-1], flush=True)
        finally:
            if hasattr(instance, "teardown"):
                instance.teardown(*args)
    return ran


def main() -> int:
    os.environ["XR_OPENEO_BENCH_SMOKE"] = "1"
    classes = benchmark_classes()
    if not classes:
        print("no benchmarks found", file=sys.stderr)
        return 1
    for cls in classes:
        run_class(cls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
