"""The job database of a split run: one row per piece (extent, process graph, job id, status), on disk.

It is the openeo client's CSV or Parquet job database (``CsvJobDatabase``, ``ParquetJobDatabase``,
the tables its ``MultiBackendJobManager`` runs from), with three changes:

- every write goes to a temporary file that then replaces the database, so that a run killed
  while writing (Ctrl-C, a crash, a reboot) leaves the previous state, never half a file;
- columns keep their types when read back (an empty text column of a CSV is not floats);
- listeners see every write (the run's progress display).

Besides the client's columns (``id``, ``status``, ``backend_name``, ``start_time``…) a row holds
the piece (``piece``, ``west``, ``south``, ``east``, ``north``, ``crs``, ``start``, ``end``,
``geometry``), the job it runs (``process``, ``title``, ``description``, ``job_options``), the run
it belongs to (``run``) and its history (``failures``, ``failed_jobs``, ``error``,
``results_bytes``). A row's ``process`` is the whole graph of its job, so the database alone can
run the pieces again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from openeo.extra.job_management import CsvJobDatabase, ParquetJobDatabase

from ..errors import XrOpenEOError
from .split import Piece

TEXT_COLUMNS = (
    "piece",
    "start",
    "end",
    "run",
    "title",
    "description",
    "job_options",
    "process",
    "failed_jobs",
    "error",
    "id",
    "backend_name",
    "status",
    "start_time",
    "running_start_time",
)
#: Statuses of a piece whose job is on its way on the backend (or about to be).
ACTIVE = ("created", "queued_for_start", "queued", "running")
#: Statuses the openeo client gives a piece whose job could not even be started.
NOT_STARTED = ("start_failed", "queued_for_start_failed", "skipped")

Listener = Callable[[Any], None]


class _Atomic:
    """What the job databases of xr_openeo add to the client's: atomic writes, stable types, listeners."""

    path: Path
    listeners: list[Listener]

    def _write(self, df: Any, path: Path) -> None:  # pragma: no cover - each format has its own
        raise NotImplementedError

    def persist(self, df: Any) -> None:
        self._merge_into_df(_forward_only(getattr(self, "_df", None), df))  # type: ignore[attr-defined]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self._write(self.df, temporary)  # type: ignore[attr-defined]
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        for listener in list(self.listeners):
            listener(self.df)  # type: ignore[attr-defined]

    def set(self, index: Any, **values: Any) -> None:
        """Change fields of row ``index`` (None clears one) and write the database."""
        df = self.df  # type: ignore[attr-defined]
        for column, value in values.items():
            if column not in df.columns:
                df[column] = None
            if isinstance(value, str | type(None)) and df[column].dtype != object:
                df[column] = df[column].astype(object)
            df.at[index, column] = value
        self.persist(df.loc[[index]])

    def frame(self) -> Any:
        """The rows as they are now (a copy)."""
        return self.df.copy()  # type: ignore[attr-defined]


def _forward_only(current: Any, update: Any) -> Any:
    """``update`` without what would move a row back: the status of a job it already passed, or a retired job.

    The client's manager applies the result of a job's start request when its thread reports it,
    which can be after the job already finished or failed (and, failed, was replaced by a new
    job); such a late ``queued`` would undo the newer state.
    """
    if "status" not in update.columns or current is None:
        return update
    keep = []
    for index in update.index:
        if index not in current.index:
            keep.append(True)
            continue
        now, new = current.loc[index], update.loc[index]
        new_id, now_id = new.get("id"), now.get("id")
        retired = str(now.get("failed_jobs") or "").split(";")
        if isinstance(new_id, str) and new_id != now_id and new_id in retired:
            keep.append(False)  # about a job the piece no longer runs
        elif new_id == now_id and _RANK.get(str(new.get("status")), 0) < _RANK.get(str(now.get("status")), 0):
            keep.append(False)  # a status the job already passed
        else:
            keep.append(True)
    return update[keep] if not all(keep) else update


_RANK = {"created": 1, "queued_for_start": 2, "queued": 3, "running": 4, "finished": 5, "error": 5, "canceled": 5}


def _typed(df: Any) -> Any:
    import pandas as pd

    for column in TEXT_COLUMNS:
        if column in df.columns:
            df[column] = df[column].astype(object).where(df[column].notna(), None)
    if "failures" in df.columns:
        # Nullable integers: the client merges partial updates with DataFrame.update, which reindexes them;
        # an int64 column would become floats there and back, under a warning pandas silences in a way that
        # is not thread-safe.
        df["failures"] = pd.to_numeric(df["failures"], errors="coerce").fillna(0).astype("Int64")
    for column in ("results_bytes", "costs", "west", "south", "east", "north"):
        if column in df.columns:
            df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    if "crs" in df.columns:
        df["crs"] = pd.to_numeric(df["crs"], errors="coerce").astype("Int64")
    for column in df.columns:  # any other integers (a backend's usage figures): nullable too, as failures
        if getattr(df[column].dtype, "kind", "") in "iu" and not isinstance(
            df[column].dtype, pd.api.extensions.ExtensionDtype
        ):
            df[column] = df[column].astype("Int64")
    if hasattr(df, "set_crs") and df.crs is None and "crs" in df.columns and df["crs"].notna().any():
        df = df.set_crs(epsg=int(df["crs"].dropna().iloc[0]))
    return df


class CsvJobDb(_Atomic, CsvJobDatabase):
    """The client's CSV job database, written atomically (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(Path(path))
        self.listeners = []

    def read(self) -> Any:
        import pandas as pd

        # The client's read leaves text columns to pandas' guess (a run key of digits would become a number).
        df = pd.read_csv(self.path, dtype={name: str for name in TEXT_COLUMNS})
        if "geometry" in df.columns and df["geometry"].notna().all():
            import geopandas

            df = geopandas.GeoDataFrame(df, geometry=geopandas.GeoSeries.from_wkt(df["geometry"]))
        return _typed(df)

    def _write(self, df: Any, path: Path) -> None:
        df.to_csv(path, index=False)


class ParquetJobDb(_Atomic, ParquetJobDatabase):
    """The client's Parquet (GeoParquet) job database, written atomically (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(Path(path))
        self.listeners = []

    def read(self) -> Any:
        return _typed(super().read())

    def _write(self, df: Any, path: Path) -> None:
        df.to_parquet(path, index=False)


JobDb = CsvJobDb | ParquetJobDb


def open_job_db(path: str | os.PathLike[str]) -> JobDb:
    """The job database at ``path``: CSV (``.csv``) or Parquet (``.parquet``, ``.geoparquet``), existing or not."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return CsvJobDb(path)
    if suffix in (".parquet", ".geoparquet"):
        return ParquetJobDb(path)
    raise ValueError(f"job_db must be a .csv or .parquet file (the format follows the name), got {str(path)!r}")


def pieces_frame(
    pieces: Sequence[Piece],
    graphs: Sequence[Mapping[str, Any]],
    *,
    run: str,
    title: str | None,
    description: str | None,
    job_options: Mapping[str, Any] | None,
) -> Any:
    """The rows of a new job database: one per piece, ``not_started``; a GeoDataFrame when pieces have boxes."""
    import pandas as pd

    rows = []
    for piece, graph in zip(pieces, graphs, strict=True):
        west, south, east, north = piece.bbox if piece.bbox is not None else (None,) * 4
        rows.append(
            {
                "piece": piece.name,
                "west": west,
                "south": south,
                "east": east,
                "north": north,
                "crs": piece.epsg,
                "start": piece.start,
                "end": piece.end,
                "run": run,
                "title": f"{title or 'xr_openeo split'} [{piece.name}]",
                "description": description,
                "job_options": json.dumps(job_options) if job_options else None,
                "process": json.dumps(graph),
                "failures": 0,
                "failed_jobs": None,
                "error": None,
                "results_bytes": None,
                "status": "not_started",
            }
        )
    frame = _typed(pd.DataFrame(rows))
    boxes = [p.bbox for p in pieces]
    if all(b is not None for b in boxes) and pieces and pieces[0].epsg is not None:
        import geopandas
        from shapely.geometry import box

        shapes = [box(*b) for b in boxes if b is not None]
        frame = geopandas.GeoDataFrame(frame, geometry=shapes, crs=f"EPSG:{pieces[0].epsg}")
    return frame


def create_or_resume(path: str | os.PathLike[str], frame: Any, run: str) -> tuple[JobDb, bool]:
    """The job database at ``path``: created from ``frame``, or the existing one of the same run.

    Returns ``(db, resumed)``. Raises :class:`~xr_openeo.errors.XrOpenEOError` when the file
    holds another run (another graph, split or job options) or is not a job database.
    """
    db = open_job_db(path)
    if not db.exists():
        db.initialize_from_df(frame)
        return db, False
    try:
        existing = db.df
    except Exception as exc:
        raise XrOpenEOError(f"The job database {str(path)!r} cannot be read ({type(exc).__name__}: {exc})") from None
    runs = set(existing["run"].dropna()) if "run" in existing.columns else set()
    pieces = list(existing["piece"]) if "piece" in existing.columns else []
    if runs != {run} or pieces != list(frame["piece"]):
        raise XrOpenEOError(
            f"The job database {str(path)!r} belongs to another run (another graph, split or job options"
            f"{': run ' + ', '.join(sorted(map(str, runs))) if runs else ''}; this one is {run}). Pass another "
            "job_db path, or delete that file to start over (its jobs stay on the backend)."
        )
    return db, True


def row_graph(row: Mapping[str, Any]) -> dict[str, Any]:
    """The process graph of a row's job."""
    return dict(json.loads(str(row["process"])))


def row_options(row: Mapping[str, Any]) -> dict[str, Any] | None:
    text = row.get("job_options")
    return dict(json.loads(text)) if isinstance(text, str) and text else None


def row_piece(row: Mapping[str, Any]) -> Piece:
    """The :class:`Piece` a row describes, with its failures so far."""
    bbox = None
    if all(isinstance(row.get(k), float) and row[k] == row[k] for k in ("west", "south", "east", "north")):
        bbox = (float(row["west"]), float(row["south"]), float(row["east"]), float(row["north"]))
    import pandas as pd

    crs = row.get("crs")
    return Piece(
        name=str(row["piece"]),
        bbox=bbox,
        epsg=int(crs) if bbox is not None and crs is not None and pd.notna(crs) else None,
        start=row.get("start") or None,
        end=row.get("end") or None,
        failures=int(row.get("failures") or 0),
    )
