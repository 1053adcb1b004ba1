"""Many jobs, one dataset: a graph split into pieces, run resumably, and their results opened as one lazy mosaic.

:func:`compute_split` is what ``compute_batch(cube, split=...)`` hands over to: it plans the pieces
(:mod:`xr_openeo.jobs.split`), records them in the job database (:mod:`xr_openeo.jobs.jobdb`),
runs them (:mod:`xr_openeo.jobs.manager`) and opens what they wrote with :func:`open_split`.

The mosaic goes through the same read path as one job's results: the asset specs of every piece
(keys ``"{piece}/{asset key}"``, hrefs behind one :class:`~xr_openeo.http.multi.MultiLinks`) are
planned together by :func:`xr_openeo.mosaic.plan`, so files on one pixel grid make one cube on the
union of their extents, overlaps take the first valid pixel, and pixels no piece covers are NaN.
Opening reads the pieces' results documents (concurrently) and no asset where the documents give
the grid.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._options import get_option
from .errors import JobError, JobFailedError, NoJobError, XrOpenEOError, XrOpenEOWarning

log = logging.getLogger("xr_openeo")

#: Results documents of pieces fetched at once when opening a mosaic (each fetches its items concurrently too).
DOCUMENT_CONCURRENCY = 8


class PartialMosaicWarning(XrOpenEOWarning):
    """A mosaic was opened without some pieces (``allow_partial=True``); ``pieces`` names them."""

    def __init__(self, message: str, *, pieces: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.pieces = tuple(pieces)


def compute_split(
    cube: Any,
    *,
    connection: Any = None,
    split: Any = None,
    job_db: str | os.PathLike[str] | None = None,
    parallel_jobs: int = 2,
    allow_partial: bool = False,
    title: str | None = None,
    description: str | None = None,
    out_format: str | None = None,
    job_options: Mapping[str, Any] | Callable[[Any], Any] | None = None,
    progress: bool | str = True,
    timeout: float | None = None,
    **open_kwargs: Any,
) -> Any:
    """Run ``cube`` as one job per piece of ``split`` (resumably, through ``job_db``) and open the mosaic.

    See :func:`xr_openeo.compute_batch` for the parameters. ``job_db`` defaults to
    ``openeo-split-<run>.csv`` in the working directory, ``<run>`` a digest of the graph, the
    pieces and the job options, so that the same call finds it again.
    """
    _require_split_extras()
    from .jobs import prepare_process_graph
    from .jobs.jobdb import create_or_resume, pieces_frame
    from .jobs.manager import run_pieces
    from .jobs.split import Piece, Split, plan_pieces, run_key

    conn, nodes = prepare_process_graph(cube, connection=connection, out_format=out_format)
    static = None if callable(job_options) else job_options
    dynamic = job_options if callable(job_options) else None
    pieces = plan_pieces(nodes, conn, Split.of(split)) if split is not None else [Piece("all")]
    graphs = [piece.graph(nodes) for piece in pieces]
    run = run_key(nodes, pieces, static)
    path = Path(job_db) if job_db is not None else Path(f"openeo-split-{run}.csv")
    frame = pieces_frame(pieces, graphs, run=run, title=title, description=description, job_options=static)
    db, resumed = create_or_resume(path, frame, run)
    log.info(
        "%s split run %s: %d pieces, job database %s", "Resuming" if resumed else "Starting", run, len(pieces), path
    )
    run_pieces(
        db,
        conn,
        parallel_jobs=parallel_jobs,
        retries=get_option("split_retries"),
        poll_interval=get_option("split_poll_interval"),
        progress=progress,
        timeout=timeout,
        job_options=dynamic,
    )
    return open_split(path, connection=conn, allow_partial=allow_partial, **open_kwargs)


def _require_split_extras() -> None:
    import importlib.util

    missing = [name for name in ("geopandas", "shapely") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"Split runs need {' and '.join(missing)} (the openeo client's job management imports them): "
            "pip install 'xr_openeo[split]'"
        )


def open_split(
    job_db: str | os.PathLike[str],
    *,
    connection: Any,
    allow_partial: bool = False,
    chunks: Any = None,
    assets: str | Sequence[str] | None = None,
    dtype: str | None = None,
    masked: bool = True,
    pickle_token: bool = False,
    on_read_error: str | None = None,
) -> Any:
    """Open the results of the finished pieces of a split run, as one lazy mosaic; nothing is submitted.

    Parameters
    ----------
    job_db
        The run's job database (``.csv`` or ``.parquet``).
    connection
        An authenticated ``openeo.Connection`` to the backend that ran the jobs.
    allow_partial
        Open the mosaic without the pieces that did not finish (with a :class:`PartialMosaicWarning`
        naming them); otherwise they raise :class:`~xr_openeo.errors.JobFailedError`.
    chunks, assets, dtype, masked, pickle_token, on_read_error
        As for :func:`xr_openeo.open_results`; ``assets`` may name an asset key of the pieces
        (``"openEO_2023-01-01Z.tif"``) for that asset of every piece.

    Returns
    -------
    xarray.Dataset
        Its ``openeo:job_db``, ``openeo:jobs``, ``openeo:pieces`` and ``openeo:missing_pieces``
        attributes say where it came from; ``ds.openeo.jobs`` reads the job database.
    """
    _require_split_extras()
    from .api import open_loaded
    from .lazy import normalize_chunks

    on_read_error = get_option("on_read_error", on_read_error)
    wanted = normalize_chunks(chunks)
    path = Path(job_db)
    frame, done, missing = _pieces(path)
    if len(missing) and not allow_partial:
        raise failed_pieces_error(missing, len(frame), path)
    if done.empty:
        raise _nothing_finished(path)
    loaded = _load_pieces(done, connection, pickle_token)
    combined = _combine(loaded, connection, "partial" if len(missing) else "finished")
    ds = open_loaded(
        combined,
        chunks=wanted,
        assets=_expand(assets, loaded),
        dtype=dtype,
        masked=masked,
        on_read_error=on_read_error,
    )
    extra = {
        "openeo:job_db": str(path.resolve()),
        "openeo:jobs": [str(i) for i in done["id"]],
        "openeo:pieces": [str(p) for p in done["piece"]],
        "openeo:missing_pieces": [str(p) for p in missing["piece"]],
    }
    _mark(ds, extra)
    if len(missing):
        names = ", ".join(
            f"{p} ({_why(row)})" for p, row in zip(missing["piece"], missing.to_dict("records"), strict=True)
        )
        warnings.warn(
            PartialMosaicWarning(
                f"Opened the mosaic of {len(done)} of {len(frame)} pieces without {names}: their area is NaN (or "
                "outside the grid, for pieces on its edge). ds.openeo.rerun_failed() runs them again.",
                pieces=list(missing["piece"]),
            ),
            stacklevel=3,
        )
    if not hasattr(ds, "data_vars"):
        warnings.warn(
            XrOpenEOWarning(
                "The pieces' results do not share one pixel grid (another CRS, pixel size or a shift of part of a "
                "pixel), so they open as a DataTree with one group per grid instead of one mosaic."
            ),
            stacklevel=3,
        )
    return ds


def failed_pieces_error(missing: Any, total: int, path: Path) -> JobFailedError:
    """The error of a run whose pieces ``missing`` (rows of its job database) did not all finish."""
    rows = missing.to_dict("records")
    listed = "; ".join(f"{row['piece']}: {_why(row)}" for row in rows[:10])
    more = f" (and {len(rows) - 10} more)" if len(rows) > 10 else ""
    logs = [
        {"piece": str(row["piece"]), "job_id": row.get("id"), "level": "error", "message": _why(row)} for row in rows
    ]
    return JobFailedError(
        f"{len(rows)} of {total} pieces of the split run did not finish: {listed}{more}. Run the same call again to "
        "retry them (finished pieces are kept), or pass allow_partial=True to open the mosaic without them. The job "
        f"database {str(path)!r} lists every piece, its jobs and errors.",
        status="error",
        logs=logs,
    )


def _why(row: Mapping[str, Any]) -> str:
    status = row.get("status") or "not_started"
    error = row.get("error")
    if status in ("error", "canceled") and error:
        return str(error)
    return f"{status}" + (f", last error: {error}" if error else "")


def mosaic_results(job_db: str | os.PathLike[str], connection: Any) -> Any:
    """The finished pieces' results of a split run as one ``LoadedResults`` (asset keys ``"{piece}/{key}"``)."""
    _, done, _ = _pieces(Path(job_db))
    if done.empty:
        raise _nothing_finished(Path(job_db))
    return _combine(_load_pieces(done, connection, False), connection, "finished")


def _pieces(path: Path) -> tuple[Any, Any, Any]:
    """The job database's rows: all, the finished pieces', the others'."""
    from .jobs.jobdb import open_job_db

    db = open_job_db(path)
    if not db.exists():
        raise XrOpenEOError(f"There is no job database at {str(path)!r}")
    frame = db.frame()
    finished = frame["status"] == "finished"
    return frame, frame[finished], frame[~finished]


def _nothing_finished(path: Path) -> JobFailedError:
    return JobFailedError(
        f"No piece of the split run in {str(path)!r} finished: there is nothing to open", status="error"
    )


def _load_pieces(done: Any, connection: Any, pickle_token: bool) -> dict[str, Any]:
    """The results of the finished pieces, by piece: their documents fetched concurrently.

    The first piece is loaded as one job's results are, item documents and all. When its items
    add nothing to what its results document says of its assets (grids, bands, dates, dtype,
    nodata), the other pieces, written by the same graph on the same backend, are loaded from
    their results documents alone: one request per piece instead of one per file.
    """
    from .jobs import batch_job
    from .sources import load_results

    names = [str(p) for p in done["piece"]]
    ids = [str(i) for i in done["id"]]

    def full(i: int) -> Any:
        return load_results(batch_job(connection, ids[i]), connection=connection, pickle_token=pickle_token)

    def light(i: int) -> Any:
        return _document_only(connection, ids[i], pickle_token)

    def guarded(load: Callable[[int], Any]) -> Callable[[int], Any]:
        def run(i: int) -> Any:
            try:
                return load(i)
            except XrOpenEOError as exc:
                raise JobError(
                    f"Could not open the results of piece {names[i]!r} (batch job {ids[i]!r}): {exc}",
                    job_id=ids[i],
                    http_status=getattr(exc, "http_status", None) or getattr(exc, "status", None),
                ) from exc

        return run

    first = guarded(full)(0)
    rest = guarded(light if _items_add_nothing(first) else full)
    workers = min(len(names) - 1, DOCUMENT_CONCURRENCY)
    if workers <= 1:
        others = [rest(i) for i in range(1, len(names))]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="xr-openeo-pieces") as pool:
            others = list(pool.map(rest, range(1, len(names))))
    return dict(zip(names, [first, *others], strict=True))


_COMPARED = ("key", "media_type", "roles", "bands", "time", "start", "end", "grid", "nodata", "dtype")


def _items_add_nothing(loaded: Any) -> bool:
    from .results import merge_items, with_file_name_times

    if not loaded.info.item_links:
        return True
    alone = with_file_name_times(merge_items(loaded.info.assets, []))

    def described(specs: Sequence[Any]) -> list[tuple[Any, ...]]:
        return sorted((tuple(str(getattr(s, f)) for f in _COMPARED) for s in specs), key=str)

    return described(alone) == described(loaded.specs)


def _document_only(connection: Any, job_id: str, pickle_token: bool) -> Any:
    """A finished job's results from its results document alone (see :func:`_load_pieces`)."""
    from .errors import JobNotFinishedError
    from .http import Auth, Links, get_json
    from .results import merge_items, parse_results, with_file_name_times
    from .sources import LoadedResults
    from .urls import is_http

    auth = Auth.from_connection(connection)
    url = f"{auth.root}/jobs/{job_id}/results"
    info = parse_results(get_json(url, auth, what="results document"), base_url=url)
    if info.status != "finished":
        raise JobNotFinishedError(f"Job {job_id!r} is {info.status}, not finished", job_id=job_id)
    specs = with_file_name_times(merge_items(info.assets, []))
    sources = tuple(dict.fromkeys(u for u in (url, info.self_url, info.canonical_url) if u and is_http(u)))
    links = Links({a.key: a.href for a in specs}, auth, sources, pickle_token=pickle_token)
    return LoadedResults(info, specs, links, auth, url, auth.root, connection)


def _combine(loaded: Mapping[str, Any], connection: Any, status: str) -> Any:
    from .http import Auth
    from .http.multi import MultiLinks
    from .results import ResultsInfo
    from .sources import LoadedResults

    specs = tuple(replace(s, key=MultiLinks.key(name, s.key)) for name, part in loaded.items() for s in part.specs)
    first = next(iter(loaded.values()))
    info = ResultsInfo(job_id=None, status=status, kind="collection", stac_version=None, assets=specs)
    return LoadedResults(
        info=info,
        specs=specs,
        links=MultiLinks({name: part.links for name, part in loaded.items()}),  # type: ignore[arg-type]
        auth=Auth.from_connection(connection) if connection is not None else first.auth,
        results_url=None,
        backend=first.backend,
        connection=connection,
    )


def _expand(assets: Any, loaded: Mapping[str, Any]) -> Any:
    """``assets`` with every plain asset key of the pieces standing for that asset of each piece."""
    if assets is None:
        return None
    from .http.multi import MultiLinks

    wanted = [assets] if isinstance(assets, str) else list(assets)
    out: list[str] = []
    for name in wanted:
        matches = [MultiLinks.key(p, s.key) for p, part in loaded.items() for s in part.specs if s.key == name]
        out.extend(matches or [name])
    return out


def _mark(ds: Any, extra: Mapping[str, Any]) -> None:
    datasets = [ds] if hasattr(ds, "data_vars") else [node.ds for node in ds.subtree]
    if not hasattr(ds, "data_vars"):
        ds.attrs.update(extra)
    for part in datasets:
        part.attrs.update(extra)
        for var in part.data_vars.values():
            var.attrs["openeo:job_db"] = extra["openeo:job_db"]


# -- the accessor's side ------------------------------------------------------------------------------


def job_db_of(attr: Callable[[str], Any]) -> Path:
    """The job database a mosaic names (``attr`` reads its ``openeo:*`` attributes)."""
    path = attr("job_db")
    if not path:
        raise NoJobError(
            "This Dataset is not the mosaic of a split run (compute_batch(..., split=...)): it names no job database"
        )
    return Path(str(path))


def job_table(attr: Callable[[str], Any]) -> Any:
    """The mosaic's job database as it is now, indexed by piece."""
    from .jobs.jobdb import open_job_db

    path = job_db_of(attr)
    db = open_job_db(path)
    if not db.exists():
        raise XrOpenEOError(f"The job database of this mosaic, {str(path)!r}, is gone")
    return db.frame().set_index("piece")


def piece_job(attr: Callable[[str], Any], piece: str, connection: Any) -> Any:
    """The ``openeo.BatchJob`` of ``piece`` (its last job)."""
    from .jobs import batch_job

    table = job_table(attr)
    if piece not in table.index:
        raise KeyError(f"No piece {piece!r} in this split run; its pieces are {list(table.index)[:20]}")
    job_id = table.loc[piece, "id"]
    if not job_id:
        raise NoJobError(f"Piece {piece!r} has no job (status {table.loc[piece, 'status']!r})")
    return batch_job(connection, str(job_id))


def rerun_failed(attr: Callable[[str], Any], connection: Any, **kwargs: Any) -> Any:
    """Run the pieces of the mosaic's split run that did not finish, and open the mosaic again."""
    from .jobs.jobdb import open_job_db
    from .jobs.manager import run_pieces

    path = job_db_of(attr)
    db = open_job_db(path)
    run = {k: kwargs.pop(k) for k in ("parallel_jobs", "progress", "timeout", "job_options") if k in kwargs}
    run_pieces(
        db,
        connection,
        parallel_jobs=run.get("parallel_jobs", 2),
        retries=get_option("split_retries"),
        poll_interval=get_option("split_poll_interval"),
        progress=run.get("progress", True),
        timeout=run.get("timeout"),
        job_options=run.get("job_options"),
    )
    return open_split(path, connection=connection, **kwargs)
