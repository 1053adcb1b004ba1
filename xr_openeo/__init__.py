"""xr_openeo: run openEO batch jobs from xarray and get their results back as lazy Datasets.

``open_results`` opens any batch job's results lazily; ``open_dataframe`` gives tabular results
as pandas objects; ``xr.open_dataset(source, engine="openeo")`` does what ``open_results`` does.
The local openEO backend for tests and demos lives in :mod:`xr_openeo.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"
__all__ = ["__version__", "open_results", "open_dataframe"]

if TYPE_CHECKING:
    from .api import open_dataframe, open_results


def __getattr__(name: str) -> Any:
    # The public functions load lazily: importing xr_openeo stays cheap (no rasterio, h5py, openeo).
    if name in ("open_results", "open_dataframe"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
