"""Batch jobs: graphs, submitting, reuse, waiting with progress, listing; the only code that imports ``openeo``.

It hands back ``openeo.BatchJob`` objects whose results the rest of the library opens; it reads no
results itself, and keeps no state between calls.

Modules
-------
``graphs``
    Process graphs in any form, with a ``save_result``: :func:`prepare_process_graph`, :func:`process_graph_key`.
``submit``
    Creating jobs: :func:`as_batch_job`.
``reuse``
    A finished job with the same graph and options: :func:`find_reusable`.
``schedules``
    When to poll: :class:`PollSchedule`, :func:`openeo_client_schedule`, :func:`polls_until`.
``waiting``
    :func:`wait`: start, poll, retry transient failures, time out, cancel on Ctrl-C.
``progress``
    What the user sees meanwhile: bar, widget, status lines or log records.
``client_errors``
    The client's exceptions, classified and mapped to :mod:`xr_openeo.errors`.
``status``
    A job's status and progress, validated, and how they are written.
``handles``
    :class:`LibraryErrorsBatchJob`, :func:`batch_job`, :func:`load_results_cube`.
``listing``
    :func:`list_jobs` and :func:`logs_frame`: jobs and logs as pandas tables.
``split``, ``pixelgrid``, ``tiles``, ``timeranges``
    One job as many: :class:`~xr_openeo.jobs.split.Split`, pieces on the collection's pixel grid.
``jobdb``, ``manager``, ``run_progress``
    Split runs: their job database, running its pieces (resumable, retried), one progress display.
"""

from __future__ import annotations

from .graphs import prepare_process_graph, process_graph_key
from .handles import LibraryErrorsBatchJob, batch_job, load_results_cube
from .listing import list_jobs, logs_frame
from .reuse import find_reusable
from .schedules import PollSchedule, Schedule, openeo_client_schedule, polls_until
from .status import PENDING, TERMINAL
from .submit import as_batch_job
from .waiting import wait

__all__ = [
    "PENDING",
    "TERMINAL",
    "LibraryErrorsBatchJob",
    "PollSchedule",
    "Schedule",
    "as_batch_job",
    "batch_job",
    "find_reusable",
    "list_jobs",
    "load_results_cube",
    "logs_frame",
    "openeo_client_schedule",
    "polls_until",
    "prepare_process_graph",
    "process_graph_key",
    "wait",
]
