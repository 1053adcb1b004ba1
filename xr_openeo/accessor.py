"""``ds.openeo``: the job behind a Dataset, its status and logs, its assets, and running it again.

The accessor keeps no state of its own: everything comes from the dataset's ``openeo:*``
attributes and the connection remembered for its backend in this process.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr


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

    # -- the job ---------------------------------------------------------------------------------

    @property
    def job(self) -> Any:
        """The ``openeo.BatchJob`` behind the data."""
        from .jobs import batch_job, connection_for

        if not self.job_id:
            raise ValueError("This dataset has no batch job yet: run it with ds.openeo.compute_batch()")
        return batch_job(connection_for(self.backend), self.job_id)

    def status(self) -> str:
        """The job's current status on the backend (one request)."""
        return str(self.job.status())

    def logs(self, level: str = "info") -> list[dict[str, Any]]:
        """The job's log entries at ``level`` or above."""
        return [dict(entry) for entry in self.job.logs(level=level)]

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
        from .jobs import connection_for
        from .results import redact

        results = load_results(self.job_id, connection=connection_for(self.backend))
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

    def refresh(self) -> xr.Dataset:
        """The same data with fresh (renewed) signed asset URLs: the results opened again, lazily."""
        from .api import open_results
        from .jobs import connection_for

        keys = list(self._ds.attrs.get("openeo:assets", [])) or None
        fresh = open_results(self.job_id, connection=connection_for(self.backend), assets=keys)
        return fresh

    def download(
        self,
        directory: str | os.PathLike[str],
        *,
        assets: str | Sequence[str] | None = None,
        max_workers: int = 8,
        overwrite: bool = False,
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

        Returns
        -------
        dict
            ``{asset key: Path}`` of the written files.
        """
        from .downloads import download
        from .jobs import connection_for

        if not self.job_id:
            raise ValueError(
                "This dataset names no batch job: run a deferred one with ds.openeo.compute_batch(); for results "
                "opened from a URL or document, call xr_openeo.download(source, directory) with that source"
            )
        keys = assets if assets is not None else (list(self._ds.attrs.get("openeo:assets", [])) or None)
        connection = connection_for(self.backend)
        return download(
            self.job_id, directory, assets=keys, connection=connection, max_workers=max_workers, overwrite=overwrite
        )

    @property
    def cube(self) -> Any:
        """An ``openeo`` DataCube that loads these results on the backend, to keep computing remotely."""
        from .jobs import connection_for, load_results_cube

        connection = connection_for(self.backend)
        doc = connection.get(f"/jobs/{self.job_id}/results").json()
        canonical = next((link["href"] for link in doc.get("links", []) if link.get("rel") == "canonical"), None)
        url = canonical or f"{connection.root_url.rstrip('/')}/jobs/{self.job_id}/results"
        return load_results_cube(connection, url)

    def compute_batch(self, **kwargs: Any) -> Any:
        """Run the dataset's graph as a new batch job (same keywords as :func:`xr_openeo.compute_batch`)."""
        from .api import compute_batch
        from .jobs import connection_for

        return compute_batch(self.process_graph, connection=connection_for(self.backend), **kwargs)

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
