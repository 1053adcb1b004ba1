"""xr_openeo: run openEO batch jobs from xarray and get their results back as lazy Datasets.

The local openEO backend for tests and demos lives in :mod:`xr_openeo.testing`.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"
__all__ = ["__version__"]
