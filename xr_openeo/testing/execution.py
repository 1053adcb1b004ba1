"""Running a process graph into a folder: the one code path of batch jobs and synchronous requests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .assets import WrittenAsset
from .collections import SyntheticCollection
from .faults import Faults
from .graphs import IMPLICIT_FORMAT
from .processes import run_graph


class Canceled(Exception):
    """Raised inside a run when it was canceled (a canceled or restarted job, a request given up)."""


class InjectedFailure(Exception):
    """The failure a run was told to have (fault switch ``fail``)."""


def execute_graph(
    process_graph: dict[str, Any],
    *,
    collections: Sequence[SyntheticCollection],
    out_dir: Path,
    job_options: dict[str, Any],
    faults: Faults,
    blocksize: int,
    log: Callable[[str, str], None],
    checkpoint: Callable[[], None],
    on_failure: Callable[[list[WrittenAsset]], None] | None = None,
) -> list[WrittenAsset]:
    """Run ``process_graph`` over ``collections`` and write its result files into ``out_dir``.

    Parameters
    ----------
    process_graph
        The flat graph; its ``save_result`` decides the format (:data:`~.graphs.IMPLICIT_FORMAT`
        means GTiff for a raster cube, JSON for a vector cube).
    job_options
        Passed on to the writer as ``job_options=`` when it takes them (``tile_grid`` and friends).
    faults
        ``fail`` / ``fail_after_assets`` make the run fail on purpose, after that many files.
    log
        ``log(level, message)`` for the run's log entries.
    checkpoint
        Called before each file is kept; raises :class:`Canceled` to stop the run.
    on_failure
        Called with the files kept so far when an injected failure strikes after some were written
        (a batch job publishes them as partial results).

    Returns
    -------
    list of WrittenAsset
        The files written, in the order they were completed.

    Raises
    ------
    InjectedFailure
        The ``fail`` switch. Any other exception is the graph's own failure.
    """
    staged: list[WrittenAsset] = []

    def on_asset(asset: WrittenAsset) -> None:
        checkpoint()
        staged.append(asset)
        if faults.fail is not None and len(staged) >= max(faults.fail_after_assets, 1):
            if on_failure is not None:
                on_failure(staged[: faults.fail_after_assets])
            raise InjectedFailure(faults.fail)

    def save(data: Any, format: str, options: dict[str, Any], *, crs_epsg: int, nodata: float) -> list[WrittenAsset]:
        from .writers import save_result

        if format == IMPLICIT_FORMAT:
            format = "JSON" if "geometry" in getattr(data, "dims", ()) else "GTiff"
        out_dir.mkdir(parents=True, exist_ok=True)
        log("info", f"save_result: format {format}")
        return save_result(
            data,
            format,
            options,
            out_dir,
            crs_epsg=crs_epsg,
            nodata=nodata,
            blocksize=blocksize,
            on_asset=on_asset,
            job_options=job_options,
        )

    if faults.fail is not None and faults.fail_after_assets == 0:
        raise InjectedFailure(faults.fail)
    # Floating-point warnings (0/0 on nodata pixels) are a run's business, not the host process's:
    # without this, a test session running with -W error would fail every NDVI job.
    # dask runs its threaded tasks in a copy of this context, so the setting reaches every task.
    with np.errstate(all="ignore"):
        run_graph(process_graph, collections, save, log)
    return staged
