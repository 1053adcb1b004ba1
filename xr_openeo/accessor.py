"""``ds.openeo``: the job behind a Dataset, its status and logs, its assets, and running it again.

The accessor keeps no state of its own: everything comes from the dataset's ``openeo:*``
attributes and the connection the dataset was opened with (kept in ``ds.encoding``, never pickled),
or an explicit ``connection=``.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from .errors import XrOpenEOError

#: Where a Dataset keeps the openeo Connection it was opened with: ``ds.encoding`` (attrs are written to files).
CONNECTION_KEY = "openeo:connection"


class _HeldConnection:
    """A dataset's connection in its encoding; copies share it, pickles leave it out (no token in a pickle)."""

    __slots__ = ("connection",)

    def __init__(self, connection: Any = None) -> None:
        self.connection = connection

    def __reduce__(self) -> tuple[Any, ...]:
        return (_HeldConnection, ())

    def __deepcopy__(self, memo: dict[int, Any]) -> _HeldConnection:
        return self

    def __repr__(self) -> str:
        return "<openeo connection (not pickled)>"


def with_connection(ds: Any, connection: Any) -> Any:
    """``ds`` carrying ``connection`` for its accessor (a Dataset; other objects are returned as they are)."""
    if connection is not None and isinstance(ds, xr.Dataset):
        ds.encoding[CONNECTION_KEY] = _HeldConnection(connection)
    return ds


@xr.register_dataset_accessor("openeo")
class OpenEOAccessor:
    """openEO provenance and control of a Dataset from :func:`xr_openeo.open_results`,
    :func:`xr_openeo.compute_batch` or :func:`xr_openeo.from_cube`."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    # -- what the dataset says ------------------------------------------------------------------

    @property
    def job_id(self) -> str | None:
        """The batch job the data came from (None for a deferred dataset)."""
        return self._ds.attrs.get("openeo:job_id") or None

    @property
    def results_url(self) -> str | None:
        """The results document's URL, signatures redacted."""
        return self._ds.attrs.get("openeo:results_url") or None

    @property
    def backend(self) -> str | None:
        return self._ds.attrs.get("openeo:backend") or None

    @property
    def is_deferred(self) -> bool:
        return "openeo:process_graph" in self._ds.attrs and not self.job_id

    def _connection(self, connection: Any = None) -> Any:
        """``connection``, else the one the dataset carries, else an error that says how to give one."""
        if connection is not None:
            return connection
        held = self._ds.encoding.get(CONNECTION_KEY)
        if isinstance(held, _HeldConnection) and held.connection is not None:
            return held.connection
        raise XrOpenEOError(
            f"This dataset carries no connection to {self.backend or 'its backend'} (it was opened from a URL or a "
            "document, or unpickled): pass connection=openeo.connect(url).authenticate_…() to ds.openeo.status(), "
            ".logs(), .refresh(), .download() or .compute_batch(), or open the results with connection= (or from a "
            "BatchJob)"
        )

    # -- the job ---------------------------------------------------------------------------------

    @property
    def job(self) -> Any:
        """The ``openeo.BatchJob`` behind the data."""
        return self._job()

    def _job(self, connection: Any = None) -> Any:
        from .jobs import batch_job

        if not self.job_id:
            raise ValueError("This dataset has no batch job yet: run it with ds.openeo.compute_batch()")
        return batch_job(self._connection(connection), self.job_id)

    def status(self, *, connection: Any = None) -> str:
        """The job's current status on the backend (one request)."""
        return str(self._job(connection).status())

    def logs(self, level: str = "info", *, connection: Any = None) -> list[dict[str, Any]]:
        """The job's log entries at ``level`` or above."""
        return [dict(entry) for entry in self._job(connection).logs(level=level)]

    @property
    def process_graph(self) -> dict[str, Any]:
        """The process graph: the deferred one, or the job's (from the backend)."""
        if "openeo:process_graph" in self._ds.attrs:
            return dict(json.loads(self._ds.attrs["openeo:process_graph"]))
        return dict(self.job.describe()["process"]["process_graph"])

    @property
    def assets(self) -> Any:
        """The job's assets as a table: key, media type, roles, bands, datetime, redacted href."""
        import pandas as pd

        from .api import load_results
        from .results import redact

        results = load_results(self.job_id, connection=self._connection())
        rows = [
            {
                "key": a.key,
                "media_type": a.media_type,
                "roles": list(a.roles),
                "bands": list(a.bands),
                "datetime": a.time if a.time is not None else a.start,
                "href": redact(a.href),
            }
            for a in results.assets
        ]
        return pd.DataFrame(rows, columns=["key", "media_type", "roles", "bands", "datetime", "href"]).set_index("key")

    def refresh(self, *, connection: Any = None) -> xr.Dataset:
        """The same data with fresh (renewed) signed asset URLs: the results opened again, lazily."""
        from .api import open_results

        keys = list(self._ds.attrs.get("openeo:assets", [])) or None
        fresh = open_results(self.job_id, connection=self._connection(connection), assets=keys)
        return fresh

    def download(
        self,
        directory: str | os.PathLike[str],
        *,
        assets: str | Sequence[str] | None = None,
        max_workers: int = 8,
        overwrite: bool = False,
        connection: Any = None,
    ) -> dict[str, Path]:
        """Download the job's result files into ``directory`` (see :func:`xr_openeo.download`).

        Parameters
        ----------
        directory
            Where the files go; created if missing.
        assets
            Asset keys, roles, media types or format names; default the assets this dataset was
            opened from (all data assets when it does not say).
        max_workers, overwrite
            As for :func:`xr_openeo.download`.
        connection
            The connection to use when the dataset carries none.

        Returns
        -------
        dict
            ``{asset key: Path}`` of the written files.
        """
        from .downloads import download

        if not self.job_id:
            raise ValueError(
                "This dataset names no batch job: run a deferred one with ds.openeo.compute_batch(); for results "
                "opened from a URL or document, call xr_openeo.download(source, directory) with that source"
            )
        keys = assets if assets is not None else (list(self._ds.attrs.get("openeo:assets", [])) or None)
        connection = self._connection(connection)
        return download(
            self.job_id, directory, assets=keys, connection=connection, max_workers=max_workers, overwrite=overwrite
        )

    @property
    def cube(self) -> Any:
        """An ``openeo`` DataCube that loads these results on the backend, to keep computing remotely."""
        from .jobs import load_results_cube

        connection = self._connection()
        doc = connection.get(f"/jobs/{self.job_id}/results").json()
        canonical = next((link["href"] for link in doc.get("links", []) if link.get("rel") == "canonical"), None)
        url = canonical or f"{connection.root_url.rstrip('/')}/jobs/{self.job_id}/results"
        return load_results_cube(connection, url)

    def compute_batch(self, **kwargs: Any) -> Any:
        """Run the dataset's graph as a new batch job (same keywords as :func:`xr_openeo.compute_batch`)."""
        from .api import compute_batch

        connection = self._connection(kwargs.pop("connection", None))
        return compute_batch(self.process_graph, connection=connection, **kwargs)

    # -- notebooks -------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        rows = [("backend", self.backend or "")]
        if self.job_id:
            rows += [
                ("job", self.job_id),
                ("status", str(self._ds.attrs.get("openeo:status", ""))),
            ]
            rows += [
                (name, str(self._ds.attrs[f"openeo:{name}"]))
                for name in ("created", "updated")
                if f"openeo:{name}" in self._ds.attrs
            ]
            rows += [("results", self.results_url or "")]
            rows += [("assets", ", ".join(self._ds.attrs.get("openeo:assets", [])))]
        else:
            rows += [("status", "not computed yet"), ("run it", "ds.openeo.compute_batch()")]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
        )
        return f"<div><strong>openEO</strong><table>{body}</table></div>"

    def __repr__(self) -> str:
        if not self.job_id:
            return f"<openEO deferred graph on {self.backend or '?'}: not computed yet>"
        return f"<openEO job {self.job_id} on {self.backend} ({self._ds.attrs.get('openeo:status', '?')})>"
