"""The xarray engine ``"openeo"``: ``xr.open_dataset(source, engine="openeo")`` = ``xr_openeo.open_results``.

Importing this module pulls in nothing heavy, and ``guess_can_open`` looks only at the object
itself (no network, no file reads). xarray chunks what the engine returns itself (``chunks=``,
with the reader's chunks as ``preferred_chunks``), so the engine hands it lazily indexed band
arrays over the same cube that ``open_results`` builds its graph on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from xarray.backends import BackendEntrypoint

_RESULTS_URL = re.compile(r"^https?://.+/jobs/[^/?#]+/results(?:[/?#].*)?$")


class OpenEOBackendEntrypoint(BackendEntrypoint):
    """Open openEO batch-job results lazily, as ``xr_openeo.open_results`` does.

    ``xr.open_dataset(job, engine="openeo", chunks={})`` with a ``BatchJob``/``JobResults``, a
    results URL, a results document (dict or path) or a pystac object; a job id needs
    ``connection=``. ``chunks`` is xarray's (``{}``: the reader's own chunks, as ``open_results``
    gives them by default). ``assets``, ``partial``, ``dtype``, ``masked``, ``pickle_token`` and
    ``on_read_error`` as for ``open_results``.
    """

    description = "Open openEO batch-job results lazily (xr_openeo)"
    url = "https://github.com/xr-openeo/xr_openeo"
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "connection",
        "assets",
        "partial",
        "dtype",
        "masked",
        "pickle_token",
        "on_read_error",
    )

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        connection: Any = None,
        assets: Any = None,
        partial: bool = False,
        dtype: str | None = None,
        masked: bool = True,
        pickle_token: bool = False,
        on_read_error: str | None = None,
    ) -> Any:
        import xarray as xr

        from ._options import get_option
        from .api import open_loaded
        from .lazy import normalize_chunks
        from .sources import load_results

        on_read_error = get_option("on_read_error", on_read_error)
        loaded = load_results(filename_or_obj, connection=connection, partial=partial, pickle_token=pickle_token)
        ds = open_loaded(
            loaded,
            chunks=normalize_chunks(None),
            assets=assets,
            dtype=dtype,
            masked=masked,
            on_read_error=on_read_error,
            engine=True,
        )
        if isinstance(ds, xr.DataTree):
            groups = ", ".join(node.path for node in ds.subtree if node.has_data)
            raise ValueError(
                f"These results hold assets on different grids ({groups}); open them with "
                "xr_openeo.open_results (which returns an xarray.DataTree), or pick one grid with assets=[...]"
            )
        if drop_variables is not None:
            names = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables)
            ds = ds.drop_vars(names, errors="ignore")
        return ds

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        for kind in type(filename_or_obj).__mro__:  # subclasses too (xr_openeo hands out its own BatchJob)
            if kind.__module__.startswith("openeo") and kind.__name__ in ("BatchJob", "JobResults"):
                return True
            if kind.__module__.startswith("pystac") and kind.__name__ in ("Collection", "Item"):
                return True
        if isinstance(filename_or_obj, dict):
            return "assets" in filename_or_obj and (
                "stac_version" in filename_or_obj or "openeo:status" in filename_or_obj
            )
        return isinstance(filename_or_obj, str) and bool(_RESULTS_URL.match(filename_or_obj))
