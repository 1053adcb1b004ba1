"""Process execution: openeo-processes-dask's implementations plus the backend's own load/save."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache, wraps
from typing import Any

from .assets import WrittenAsset
from .collections import SyntheticCollection

OWN_PROCESSES = ("load_collection", "save_result")
# openEO arithmetic is mathematical, but openeo-processes-dask computes in the inputs' dtype, so
# B08 - B04 on uint16 bands would wrap around. These processes get integer inputs as float32.
ARITHMETIC = frozenset({"add", "subtract", "multiply", "divide", "normalized_difference", "ndvi"})
_import_lock = threading.Lock()


@lru_cache(maxsize=1)
def _predefined() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(wrapped implementations, specs) of every process openeo-processes-dask implements."""
    with _import_lock:
        # openeo-processes-dask prints a notice about its optional ML processes through logging.
        logging.getLogger("openeo_processes_dask").setLevel(logging.ERROR)
        import openeo_processes_dask.process_implementations as impl
        import openeo_processes_dask.specs as specs
        from openeo_pg_parser_networkx import ProcessRegistry
        from openeo_pg_parser_networkx.process_registry import Process
        from openeo_processes_dask.process_implementations.core import process

        registry = ProcessRegistry(wrap_funcs=[process])
        spec_docs: dict[str, dict[str, Any]] = {}
        for name, func in inspect.getmembers(impl, inspect.isfunction):
            spec = getattr(specs, name, None)
            if isinstance(spec, dict) and name not in OWN_PROCESSES:
                implementation = _on_floats(func) if name in ARITHMETIC else func
                registry[name] = Process(spec=spec, implementation=implementation)
                spec_docs[name] = spec
        for name in OWN_PROCESSES:
            spec_docs[name] = getattr(specs, name)
        return dict(registry.store["predefined"]), spec_docs


def _on_floats(func: Callable[..., Any]) -> Callable[..., Any]:
    import numpy as np

    def as_float(value: Any) -> Any:
        dtype = getattr(value, "dtype", None)
        if dtype is not None and np.issubdtype(dtype, np.integer):
            return value.astype(np.float32)
        return value

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*(as_float(a) for a in args), **{k: as_float(v) for k, v in kwargs.items()})

    return wrapper


def process_specs() -> list[dict[str, Any]]:
    """The process descriptions ``GET /processes`` lists."""
    return [_predefined()[1][name] for name in sorted(_predefined()[1])]


def run_graph(
    process_graph: dict[str, Any],
    collections: Sequence[SyntheticCollection],
    save: Callable[..., list[WrittenAsset]],
    log: Callable[[str, str], None],
) -> None:
    """Execute a flat process graph; ``save(data, format, options, crs_epsg, nodata)`` writes results."""
    from openeo_pg_parser_networkx import OpenEOProcessGraph, ProcessRegistry
    from openeo_pg_parser_networkx.process_registry import Process
    from openeo_processes_dask.process_implementations.core import process

    implementations, specs = _predefined()
    by_id = {c.id: c for c in collections}
    loaded: list[SyntheticCollection] = []

    def load_collection(id, spatial_extent=None, temporal_extent=None, bands=None, properties=None, **_):
        if id not in by_id:
            raise ValueError(f"Collection {id!r} does not exist; available: {', '.join(sorted(by_id))}")
        collection = by_id[id]
        cube = collection.load(spatial_extent, temporal_extent, bands)
        loaded.append(collection)
        log("info", f"load_collection {id}: {dict(cube.sizes)}")
        return cube

    def save_result(data, format, options=None, **_):
        if not loaded:
            raise ValueError("save_result needs a cube that comes from load_collection")
        source = loaded[-1]
        save(data, format, options or {}, crs_epsg=source.epsg, nodata=source.nodata)
        return True

    registry = ProcessRegistry(wrap_funcs=[process])
    registry.store["predefined"] = dict(implementations)
    registry["load_collection"] = Process(spec=specs["load_collection"], implementation=load_collection)
    registry["save_result"] = Process(spec=specs["save_result"], implementation=save_result)
    if not any(node.get("process_id") == "save_result" for node in process_graph.values()):
        raise ValueError("The process graph has no save_result node: a batch job must save its result")
    OpenEOProcessGraph({"process_graph": process_graph}).to_callable(process_registry=registry)()
