"""xr_openeo: run openEO batch jobs from xarray and get their results back as lazy Datasets.

``compute_batch`` runs a graph and opens its results; ``execute`` runs a small graph synchronously
(no batch job) and opens its answer the same way; ``from_cube`` makes a deferred Dataset bound
to a graph (``ds.openeo.compute_batch()`` runs it); ``open_results`` opens any batch job's results
lazily; ``open_dataframe`` gives tabular results as pandas objects; ``list_jobs`` lists a user's
jobs; ``xr.open_dataset(source, engine="openeo")`` does what ``open_results`` does. Importing
registers the ``.openeo`` Dataset accessor. The local openEO backend for tests and demos lives in
:mod:`xr_openeo.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import accessor as _accessor  # noqa: F401  (registers ds.openeo)
from ._options import set_options
from .downloads import download

__version__ = "0.1.0.dev0"
__all__ = [
    "__version__",
    "clear_caches",
    "compute_batch",
    "download",
    "execute",
    "from_cube",
    "list_jobs",
    "open_dataframe",
    "open_results",
    "set_options",
    "Split",
]

if TYPE_CHECKING:
    from .api import compute_batch, execute, from_cube, open_dataframe, open_results
    from .jobs import list_jobs
    from .jobs.split import Split

_LAZY = {
    "compute_batch": "api",
    "execute": "api",
    "from_cube": "api",
    "open_dataframe": "api",
    "open_results": "api",
    "list_jobs": "jobs",
    "Split": "jobs.split",
}


def clear_caches() -> None:
    """Empty xr_openeo's in-memory caches in this process (file headers and blocks, shared band windows).

    Each is bounded by the ``cache_bytes`` option; nothing else is kept between calls.
    """
    from .engine_arrays import clear_shares
    from .http import clear_caches as clear_http

    clear_http()
    clear_shares()


def __getattr__(name: str) -> Any:
    # The public functions load lazily: importing xr_openeo stays cheap (no rasterio, h5py, openeo).
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
