"""Process execution: openeo-processes-dask's implementations plus the backend's own load/save.

``load_collection``, ``load_stac``, ``filter_spatial`` and ``save_result`` are the backend's own;
``save_result`` gets the last ``filter_spatial``'s geometries to split a result per feature
(``sample_by_feature``), as geopyspark passes them on. Graphs
run with joblib's sequential backend: xvec's zonal statistics (``aggregate_spatial``) would
otherwise start loky worker processes that outlive the job and the backend; and in threads,
rasterio's per-geometry masks toggle the process-wide warning filters concurrently, so a host that
turns warnings into errors sees a ``NotGeoreferencedWarning`` now and then.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

from .assets import WrittenAsset
from .collections import SyntheticCollection
from .compile_lock import COMPILE_LOCK

OWN_PROCESSES = ("load_collection", "load_stac", "filter_spatial", "save_result")
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


@dataclass(frozen=True)
class _Source:
    """What save_result needs to know of the data a graph loaded."""

    epsg: int
    nodata: float | int


def run_graph(
    process_graph: dict[str, Any],
    collections: Sequence[SyntheticCollection],
    save: Callable[..., list[WrittenAsset]],
    log: Callable[[str, str], None],
) -> None:
    """Execute a flat process graph; ``save(data, format, options, crs_epsg, nodata)`` writes results.

    ``save`` gets save_result's ``options`` plus, after a ``filter_spatial``, its ``geometries``.
    """
    from joblib import parallel_config
    from openeo_pg_parser_networkx import OpenEOProcessGraph, ProcessRegistry
    from openeo_pg_parser_networkx.process_registry import Process
    from openeo_processes_dask.process_implementations.core import process

    from .load_stac import load_stac as read_stac

    implementations, specs = _predefined()
    by_id = {c.id: c for c in collections}
    sources: list[_Source] = []
    features: list[Any] = []

    def load_collection(id, spatial_extent=None, temporal_extent=None, bands=None, properties=None, **_):
        if id not in by_id:
            raise ValueError(f"Collection {id!r} does not exist; available: {', '.join(sorted(by_id))}")
        collection = by_id[id]
        cube = collection.load(spatial_extent, temporal_extent, bands)
        sources.append(_Source(collection.epsg, collection.nodata))
        log("info", f"load_collection {id}: {dict(cube.sizes)}")
        return cube

    def load_stac(url, spatial_extent=None, temporal_extent=None, bands=None, properties=None, **_):
        loaded = read_stac(str(url), spatial_extent, temporal_extent, bands)
        sources.append(_Source(loaded.epsg, loaded.nodata))
        log("info", f"load_stac: {dict(loaded.cube.sizes)}")
        return loaded.cube

    def filter_spatial(data, geometries, **_):
        features.append(geometries)
        return _filter_spatial(data, geometries)

    def save_result(data, format, options=None, **_):
        if not sources:
            raise ValueError("save_result needs a cube that comes from load_collection or load_stac")
        source = sources[-1]
        options = dict(options or {})
        if features and "geometries" not in options:
            options["geometries"] = features[-1]
        save(data, format, options, crs_epsg=source.epsg, nodata=source.nodata)
        return True

    registry = ProcessRegistry(wrap_funcs=[process])
    registry.store["predefined"] = dict(implementations)
    for name, implementation in (
        ("load_collection", load_collection),
        ("load_stac", load_stac),
        ("filter_spatial", filter_spatial),
        ("save_result", save_result),
    ):
        registry[name] = Process(spec=specs[name], implementation=implementation)
    if not any(node.get("process_id") == "save_result" for node in process_graph.values()):
        raise ValueError("The process graph has no save_result node: a batch job must save its result")
    with parallel_config(backend="sequential"), COMPILE_LOCK:  # the parser builds ASTs (see compile_lock)
        OpenEOProcessGraph({"process_graph": process_graph}).to_callable(process_registry=registry)()


def _filter_spatial(data: Any, geometries: Any) -> Any:
    """openEO ``filter_spatial``: the pixels that overlap the geometries' bounds, null where no centre is inside.

    openeo-processes-dask's own warns (rioxarray's ``set_crs``) on every call, which a host process that
    turns warnings into errors would take for a failure.
    """
    import numpy as np
    import xarray as xr
    from affine import Affine
    from rasterio.features import geometry_mask

    from .writers.splits import features_frame

    frame = features_frame(geometries).to_crs(data.rio.crs)
    west, south, east, north = frame.total_bounds
    x, y = data.x.values, data.y.values
    dx = float(x[1] - x[0]) if x.size > 1 else abs(float(y[1] - y[0]))
    dy = float(y[1] - y[0]) if y.size > 1 else -abs(dx)
    keep_x = np.flatnonzero((x + abs(dx) / 2 > west) & (x - abs(dx) / 2 < east))
    keep_y = np.flatnonzero((y + abs(dy) / 2 > south) & (y - abs(dy) / 2 < north))
    if keep_x.size == 0 or keep_y.size == 0:
        raise ValueError("filter_spatial: the geometries do not overlap the data.")
    cube = data.isel(x=keep_x, y=keep_y)
    x0, y0 = float(cube.x.values[0]), float(cube.y.values[0])
    transform = Affine(dx, 0.0, x0 - dx / 2, 0.0, dy, y0 - dy / 2)
    inside = geometry_mask(
        frame.geometry, out_shape=(cube.sizes["y"], cube.sizes["x"]), transform=transform, invert=True
    )
    return cube.where(xr.DataArray(inside, dims=("y", "x"), coords={"y": cube.y, "x": cube.x}))
