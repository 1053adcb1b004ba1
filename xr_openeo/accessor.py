"""``ds.openeo``: the job behind a Dataset, its status and logs, its assets, and running it again.

The accessor keeps no state of its own and looks nothing up elsewhere: it reads the dataset's
``openeo:*`` attributes (on the Dataset, else on its variables, where xarray keeps them through
``ds.NDVI.isel(t=0).to_dataset()``) and the connection and signed link it carries in its
encoding. Methods that talk to the backend take an explicit ``connection=`` too.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from .assemble import CONNECTION, SHARE_URL
from .errors import NoJobError, XrOpenEOError

NOT_BOUND = (
    "This Dataset is not bound to an openEO graph or job (it did not come from xr_openeo). Make one with "
    "xr_openeo.from_cube(cube) (a graph to run: ds.openeo.compute_batch()), or open results with "
    "xr_openeo.open_results(job)."
)


@xr.register_dataset_accessor("openeo")
class OpenEOAccessor:
    """openEO provenance and control of a Dataset from :func:`xr_openeo.open_results`,
    :func:`xr_openeo.compute_batch`, :func:`xr_openeo.execute` or :func:`xr_openeo.from_cube`."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    # -- what the dataset says ------------------------------------------------------------------

    def _attr(self, name: str) -> Any:
        key = f"openeo:{name}"
        if key in self._ds.attrs:
            return self._ds.attrs[key]
        for var in self._ds.data_vars.values():
            if key in var.attrs:
                return var.attrs[key]
        return None

    def _encoded(self, name: str) -> Any:
        if name in self._ds.encoding:
            return self._ds.encoding[name]
        for var in self._ds.data_vars.values():
            if name in var.encoding:
                return var.encoding[name]
        return None

    @property
    def job_id(self) -> str | None:
        """The batch job the data came from (None for a deferred dataset)."""
        return self._attr("job_id") or None

    @property
    def results_url(self) -> str | None:
        """The results document's URL, signatures redacted."""
        return self._attr("results_url") or None

    @property
    def backend(self) -> str | None:
        """The backend's API root URL."""
        return self._attr("backend") or None

    @property
    def is_deferred(self) -> bool:
        """Bound to a graph that has not run (from :func:`xr_openeo.from_cube`)."""
        return self._attr("process_graph") is not None and not self.job_id and not self.is_executed

    @property
    def is_executed(self) -> bool:
        """The answer of synchronous processing (:func:`xr_openeo.execute`): no batch job behind it."""
        return self._attr("request_id") is not None

    @property
    def request_id(self) -> str | None:
        """The id of the synchronous request that made the data (its ``OpenEO-Identifier``), when sent."""
        return self._attr("request_id") or None

    @property
    def costs(self) -> float | None:
        """What the backend said the synchronous request cost (``OpenEO-Costs``), when it said."""
        costs = self._attr("costs")
        return float(costs) if costs is not None else None

    @property
    def is_bound(self) -> bool:
        """Whether this Dataset came from openEO at all."""
        return bool(self.job_id or self.is_deferred or self.is_executed or self.backend)

    @property
    def connection(self) -> Any:
        """The ``openeo.Connection`` the data came with (None when opened without one, or after pickling)."""
        ref = self._encoded(CONNECTION)
        return getattr(ref, "connection", None)

    @property
    def share_url(self) -> str | None:
        """The signed canonical link of the results, when the backend gives one.

        Anyone holding it can open the results with ``xr_openeo.open_results(url)``, without a
        login, until it expires: share it like a password.
        """
        link = self._encoded(SHARE_URL)
        return getattr(link, "url", None)

    def _require_job(self) -> str:
        if self.job_id:
            return self.job_id
        if self._attr("job_db"):
            raise NoJobError(
                f"This Dataset is the mosaic of {len(self._attr('jobs') or [])} batch jobs of a split run: "
                "ds.openeo.jobs lists them, ds.openeo.piece_job(piece) and ds.openeo.piece_logs(piece) give one."
            )
        if self.is_deferred:
            raise NoJobError(
                "This Dataset names no batch job yet: it is a deferred graph that has not run. Run it with "
                "ds.openeo.compute_batch()."
            )
        if self.is_executed:
            raise NoJobError(
                f"This Dataset is the answer of synchronous processing (request {self.request_id or 'without an id'}), "
                "which has no batch job, logs or results URL. Run its graph as a batch job with "
                "ds.openeo.compute_batch()."
            )
        if self.is_bound:
            raise NoJobError(
                "This Dataset names no batch job (its results document has none); open or download the results "
                "from the source they came from: xr_openeo.open_results(source), xr_openeo.download(source, dir)."
            )
        raise NoJobError(NOT_BOUND)

    def _connection(self, connection: Any, doing: str) -> Any:
        connection = connection if connection is not None else self.connection
        if connection is None:
            raise XrOpenEOError(
                f"To {doing}, xr_openeo needs a connection to {self.backend or 'the backend'}, and this Dataset "
                "carries no connection (it was opened from a URL or document, or unpickled): pass "
                "connection=openeo.connect(url).authenticate_…()."
            )
        return connection

    # -- the job ---------------------------------------------------------------------------------

    @property
    def job(self) -> Any:
        """The ``openeo.BatchJob`` behind the data (its requests raise xr_openeo's errors)."""
        return self.get_job()

    def get_job(self, connection: Any = None) -> Any:
        """:attr:`job`, with an explicit ``connection``."""
        from .jobs import batch_job

        job_id = self._require_job()
        return batch_job(self._connection(connection, "reach its job"), job_id)

    def status(self, connection: Any = None) -> str:
        """The job's current status on the backend (one request)."""
        return str(self.get_job(connection).status())

    def logs(self, level: str = "info", connection: Any = None) -> Any:
        """The job's log entries at ``level`` or above, as a DataFrame (``time``, ``level``, ``message``, …).

        The entries as the backend sent them: ``ds.openeo.job.logs(level=...)``.
        """
        from .jobs import logs_frame

        return logs_frame(self.get_job(connection).logs(level=level))

    @property
    def process_graph(self) -> dict[str, Any]:
        """The process graph: the deferred one, or the job's (from the backend)."""
        graph = self._attr("process_graph")
        if graph is not None:
            return dict(json.loads(graph))
        return dict(self.get_job().describe()["process"]["process_graph"])

    def _source(self, connection: Any, doing: str) -> tuple[Any, Any]:
        """(source, connection) to load the results again: the job with a connection, else the signed link."""
        self._require_job()
        connection = connection if connection is not None else self.connection
        if connection is not None:
            return self.job_id, connection
        if self.share_url:
            return self.share_url, None
        return self.job_id, self._connection(None, doing)

    @property
    def assets(self) -> Any:
        """Every asset of the results as a table: key, media type, roles, bands, datetime, redacted href,
        and whether it was opened (or why it was skipped)."""
        return self.asset_table()

    def asset_table(self, connection: Any = None) -> Any:
        """:attr:`assets`, with an explicit ``connection``."""
        import pandas as pd

        from .sources import load_results
        from .urls import redact

        if self._attr("job_db"):  # a split run's mosaic: the assets of every piece, as "{piece}/{key}"
            from .many import mosaic_results

            loaded = mosaic_results(self._attr("job_db"), self._connection(connection, "list its assets"))
        else:
            source, connection = self._source(connection, "list its assets")
            loaded = load_results(source, connection=connection)
        opened = set(self._attr("assets") or ())
        skipped = dict(line.split(": ", 1) for line in (self._attr("skipped") or ()) if ": " in line)
        rows = [
            {
                "key": a.key,
                "media_type": a.media_type,
                "roles": list(a.roles),
                "bands": list(a.bands),
                "datetime": a.time if a.time is not None else a.start,
                "href": redact(a.href),
                "opened": a.key in opened,
                "skipped": skipped.get(a.key, ""),
            }
            for a in loaded.specs
        ]
        columns = ["key", "media_type", "roles", "bands", "datetime", "href", "opened", "skipped"]
        return pd.DataFrame(rows, columns=columns).set_index("key")

    def refresh(self, connection: Any = None) -> xr.Dataset:
        """The same data with fresh (renewed) signed asset URLs: the results opened again, lazily."""
        from .api import open_results

        source, connection = self._source(connection, "renew its links")
        keys = list(self._attr("assets") or []) or None
        return open_results(source, connection=connection, assets=keys)  # type: ignore[no-any-return]

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

        ``assets`` defaults to the assets this dataset was opened from.
        """
        from .downloads import download

        source, connection = self._source(connection, "download its files")
        keys = assets if assets is not None else (list(self._attr("assets") or []) or None)
        return download(
            source, directory, assets=keys, connection=connection, max_workers=max_workers, overwrite=overwrite
        )

    @property
    def cube(self) -> Any:
        """An ``openeo`` DataCube that loads these results on the backend, to keep computing remotely."""
        return self.as_cube()

    def as_cube(self, connection: Any = None) -> Any:
        """:attr:`cube`, with an explicit ``connection``."""
        from .jobs import load_results_cube

        job_id = self._require_job()
        connection = self._connection(connection, "build a cube on its results")
        url = self.share_url or f"{connection.root_url.rstrip('/')}/jobs/{job_id}/results"
        return load_results_cube(connection, url)

    def load(self, *, in_flight_bytes: int | None = None) -> xr.Dataset:
        """Load every variable into memory, in place, and return this Dataset, as ``ds.load()`` does, at
        about the result's size instead of twice it: the arrays are made first and each read writes
        into them (each GeoTIFF fetched whole and decoded into place).

        ``in_flight_bytes``: how much output the reads running at once may produce (default the
        ``load_in_flight_bytes`` option, 256 MiB; one read always runs); memory holds the result
        plus those reads' compressed bytes. Under a ``dask.distributed`` client the chunks are
        computed on the cluster and copied into place as they arrive; under dask's process pool
        this is ``ds.load()``. For one variable: ``ds[["NDVI"]].openeo.load()``.
        """
        from .loading import load

        return load(self._ds, in_flight_bytes=in_flight_bytes)

    def compute_batch(self, connection: Any = None, **kwargs: Any) -> Any:
        """Run the dataset's graph as a new batch job (same keywords as :func:`xr_openeo.compute_batch`)."""
        from .api import compute_batch

        if not self.is_bound:
            raise NoJobError(NOT_BOUND)
        return compute_batch(self.process_graph, connection=self._connection(connection, "run its graph"), **kwargs)

    def execute(self, connection: Any = None, **kwargs: Any) -> Any:
        """Run the dataset's graph synchronously, without a batch job (same keywords as :func:`xr_openeo.execute`)."""
        from .api import execute

        if not self.is_bound:
            raise NoJobError(NOT_BOUND)
        return execute(self.process_graph, connection=self._connection(connection, "run its graph"), **kwargs)

    # -- split runs (compute_batch(..., split=...)) ----------------------------------------------

    @property
    def jobs(self) -> Any:
        """The job database of a mosaic of many jobs, as it is now: one row per piece (extent, job id,
        status, failures, error, bytes of results), indexed by piece."""
        from .many import job_table

        return job_table(self._attr)

    def piece_job(self, piece: str, connection: Any = None) -> Any:
        """The ``openeo.BatchJob`` of a piece of the mosaic (its last job)."""
        from .many import piece_job

        return piece_job(self._attr, piece, self._connection(connection, "reach the job of a piece"))

    def piece_logs(self, piece: str, level: str = "info", connection: Any = None) -> Any:
        """The log entries of a piece's job at ``level`` or above, as a DataFrame (as :meth:`logs`)."""
        from .jobs import logs_frame

        return logs_frame(self.piece_job(piece, connection).logs(level=level))

    def rerun_failed(self, connection: Any = None, **kwargs: Any) -> Any:
        """Run the pieces of the mosaic's split run that did not finish, and return the mosaic opened again.

        Keywords: ``parallel_jobs``, ``progress``, ``timeout``, ``job_options`` (a callable of the
        piece) for the run, and those of :func:`xr_openeo.many.open_split` for the opening.
        """
        from .many import rerun_failed

        return rerun_failed(self._attr, self._connection(connection, "run the failed pieces"), **kwargs)

    # -- notebooks -------------------------------------------------------------------------------

    def _rows(self) -> list[tuple[str, str]]:
        rows = [("backend", self.backend or "")]
        if self.job_id:
            rows += [("job", self.job_id), ("status", str(self._attr("status") or ""))]
            rows += [(name, str(self._attr(name))) for name in ("created", "updated") if self._attr(name)]
            rows += [("results", self.results_url or ""), ("assets", ", ".join(self._attr("assets") or []))]
            if self._attr("skipped"):
                rows += [("skipped", "; ".join(self._attr("skipped")))]
        elif self.is_executed:
            rows += [("made by", "synchronous processing (POST /result), no batch job")]
            rows += [("request", self.request_id or "(no id sent)"), ("assets", ", ".join(self._attr("assets") or []))]
            rows += [(name, str(self._attr(name))) for name in ("costs", "usage", "logs_url") if self._attr(name)]
        elif self.is_deferred:
            rows += [("status", "not computed yet"), ("run it", "ds.openeo.compute_batch()")]
        return rows

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in self._rows()
        )
        return f"<div><strong>openEO</strong><table>{body}</table></div>"

    def __repr__(self) -> str:
        if self._attr("job_db"):
            return f"<openEO mosaic of {len(self._attr('jobs') or [])} jobs on {self.backend} ({self._attr('status')})>"
        if self.job_id:
            return f"<openEO job {self.job_id} on {self.backend or 'an unknown backend'} ({self._attr('status')})>"
        if self.is_executed:
            costs = f", costs {self.costs:g}" if self.costs is not None else ""
            request = self.request_id or "without an id"
            return f"<openEO synchronous result (request {request}) from {self.backend or 'an unknown backend'}{costs}>"
        if self.is_deferred:
            return f"<openEO deferred graph on {self.backend or 'no backend yet'}: not computed yet>"
        return "<not from openEO: use xr_openeo.from_cube(cube) or xr_openeo.open_results(job)>"
