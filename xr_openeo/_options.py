"""Library-wide defaults: ``xr_openeo.set_options(...)``, as a call or as a context manager.

An explicit keyword of a function beats :func:`set_options`, which beats the environment
(``XR_OPENEO_<NAME>``, e.g. ``XR_OPENEO_RETRIES=8``), which beats the built-in default. The
environment is read when a value is needed, not at import.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

ON_READ_ERROR = ("raise", "fill")


@dataclass(frozen=True)
class _Option:
    default: Any
    parse: Callable[[str], Any]  # from the environment's text
    check: Callable[[Any], bool]
    allowed: str  # what ``check`` accepts, for messages
    doc: str


def _choice(*values: str) -> tuple[Callable[[str], Any], Callable[[Any], bool], str]:
    return str, lambda v: isinstance(v, str) and v in values, "one of " + ", ".join(map(repr, values))


def _count() -> tuple[Callable[[str], Any], Callable[[Any], bool], str]:
    return int, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"


def _positive_int() -> tuple[Callable[[str], Any], Callable[[Any], bool], str]:
    return int, lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "an integer > 0"


def _seconds() -> tuple[Callable[[str], Any], Callable[[Any], bool], str]:
    return (
        float,
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v == v and 0 <= v < float("inf"),
        "a number of seconds >= 0",
    )


def _positive_seconds() -> tuple[Callable[[str], Any], Callable[[Any], bool], str]:
    return (
        float,
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v == v and 0 < v < float("inf"),
        "a number of seconds > 0",
    )


_MiB = 2**20
OPTIONS: dict[str, _Option] = {
    "on_read_error": _Option(
        "raise",
        *_choice(*ON_READ_ERROR),
        doc='What a read that fails after the retries does: "raise" an AssetReadError, or "fill" the chunk '
        "with nodata and warn with FailedReadWarning.",
    ),
    "retries": _Option(4, *_count(), doc="Retries of an HTTP request after a transient failure."),
    "retry_backoff": _Option(
        0.1, *_seconds(), doc="Seconds before the first retry; each further retry waits twice as long."
    ),
    "retry_max_backoff": _Option(2.0, *_seconds(), doc="Longest wait between two retries of a request."),
    "connect_timeout": _Option(10.0, *_positive_seconds(), doc="Seconds to wait for a connection."),
    "read_timeout": _Option(120.0, *_positive_seconds(), doc="Seconds to wait for an answer to a request."),
    "job_retries": _Option(
        10, *_count(), doc="Transient errors in a row tolerated while waiting for a job (about 5 min of outage)."
    ),
    "job_max_backoff": _Option(60.0, *_seconds(), doc="Longest pause between retries while waiting for a job."),
    "load_in_flight_bytes": _Option(
        256 * _MiB,
        *_positive_int(),
        doc="Bytes of reads ds.openeo.load() runs at once, counted as the pixels they produce (one read at least).",
    ),
    "header_bytes": _Option(
        64 * 1024, *_positive_int(), doc="Bytes of a GeoTIFF fetched by its first request (its header)."
    ),
    "block_bytes": _Option(
        4 * _MiB,
        *_positive_int(),
        doc="Bytes per block of netCDF files read in parts (HDF5 chunks of a window come by their own ranges).",
    ),
    "download_threshold": _Option(
        16 * _MiB, *_count(), doc="netCDF files smaller than this are downloaded whole instead of read in parts."
    ),
    "cache_bytes": _Option(
        256 * _MiB,
        *_count(),
        doc="Upper bound of each of xr_openeo's in-memory caches (file headers, blocks); clear_caches() empties them.",
    ),
    "item_concurrency": _Option(
        64, *_positive_int(), doc="Item documents of a results document fetched at once when opening."
    ),
    "execute_timeout": _Option(
        1800.0,
        *_positive_seconds(),
        doc="Seconds xr_openeo.execute waits for the backend's answer (and between its bytes); as the openeo client.",
    ),
    "execute_memory_bytes": _Option(
        16 * _MiB,
        *_count(),
        doc="Results of xr_openeo.execute up to this size are held in memory and come back loaded; larger ones "
        "are spilled to a temporary directory and opened lazily.",
    ),
    "split_retries": _Option(2, *_count(), doc="New jobs a failing piece of a split run gets, after its first."),
    "split_poll_interval": _Option(
        10.0, *_positive_seconds(), doc="Seconds between two rounds of status requests of a split run."
    ),
}
_ENV_PREFIX = "XR_OPENEO_"
_UNSET = object()
_lock = threading.Lock()
_set: dict[str, Any] = {}  # what set_options set; absent names fall back to the environment


def _check(name: str, value: Any, where: str) -> Any:
    option = OPTIONS[name]
    if not option.check(value):
        raise ValueError(f"{where} must be {option.allowed}; got {value!r}")
    return value


def _unknown(names: Any) -> ValueError:
    return ValueError(f"unknown option(s) {sorted(names)}; xr_openeo has {sorted(OPTIONS)}")


class set_options:  # noqa: N801 - used like a function, as xarray.set_options is
    """Set xr_openeo's defaults, for the rest of the session or (as a context manager) for a block.

    Parameters
    ----------
    on_read_error : {"raise", "fill"}
        What a read that fails after the retries does in a computation: ``"raise"`` (default)
        raises :class:`~xr_openeo.errors.AssetReadError` naming the asset; ``"fill"`` fills that
        chunk with the variable's nodata (NaN for floats) and warns with
        :class:`~xr_openeo.errors.FailedReadWarning`.
    retries, retry_backoff, retry_max_backoff : int, float, float
        Retries of an HTTP request after a transient failure (connection error, cut-short body,
        HTTP 429/5xx), the first pause (doubling each time) and the longest pause, in seconds.
        Defaults 4, 0.1, 2.0.
    connect_timeout, read_timeout : float
        Seconds to wait for a connection (10) and for an answer (120).
    job_retries, job_max_backoff : int, float
        While waiting for a batch job: transient errors tolerated in a row (10) and the longest
        pause between them (60 s); together about five minutes of backend outage.
    header_bytes, block_bytes, download_threshold : int
        Bytes of a GeoTIFF's first request (64 KiB); bytes per block of netCDF files read in
        parts (4 MiB; the HDF5 chunks a window touches come by their own ranges); netCDF files
        under ``download_threshold`` (16 MiB) are downloaded whole.
    cache_bytes : int
        Upper bound, in bytes, of each in-memory cache (file headers and blocks; 256 MiB).
        :func:`xr_openeo.clear_caches` empties them.
    item_concurrency : int
        Item documents fetched at once when opening results (64).
    load_in_flight_bytes : int
        Reads ``ds.openeo.load()`` runs at once, counted as the bytes of pixels they produce
        (256 MiB; one read always runs): what memory holds beyond the loaded result.
    execute_timeout : float
        Seconds :func:`xr_openeo.execute` waits for the backend to answer, and then between two
        reads of the answer's body (1800, as the openeo client).
    execute_memory_bytes : int
        Answers of :func:`xr_openeo.execute` up to this size (16 MiB) are held in memory and the
        result comes back loaded; larger ones are spilled to a temporary directory, opened lazily,
        and removed when the Dataset is closed or no longer referenced.
    split_retries, split_poll_interval : int, float
        Runs split into pieces (``compute_batch(..., split=...)``): new jobs a failing piece gets
        per run (2), and seconds between two rounds of status requests (10).

    Every option can also come from the environment as ``XR_OPENEO_<NAME>`` (upper case), read
    when the value is needed. ``None`` removes a value set before.

    Examples
    --------
    >>> import xr_openeo
    >>> with xr_openeo.set_options(on_read_error="fill", retries=8):
    ...     pass  # open_results(...) here fills failed reads, after up to 8 retries
    """

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise _unknown(unknown)
        for name, value in options.items():
            if value is not None:
                _check(name, value, f"set_options({name}=...)")
        with _lock:
            self._previous = {name: _set.get(name, _UNSET) for name in options}
            for name, value in options.items():
                if value is None:
                    _set.pop(name, None)
                else:
                    _set[name] = value

    def __enter__(self) -> set_options:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        with _lock:
            for name, old in self._previous.items():
                if old is _UNSET:
                    _set.pop(name, None)
                else:
                    _set[name] = old


def env_name(name: str) -> str:
    """The environment variable of option ``name``."""
    return _ENV_PREFIX + name.upper()


def get_option(name: str, explicit: Any = None) -> Any:
    """Option ``name``: ``explicit`` if not None, else what set_options set, else the environment, else the default."""
    if name not in OPTIONS:
        raise _unknown([name])
    if explicit is not None:
        return _check(name, explicit, name)
    with _lock:
        if name in _set:
            return _set[name]
    text = os.environ.get(env_name(name), "").strip()
    if text:
        option = OPTIONS[name]
        where = f"The environment variable {env_name(name)}"
        try:
            value = option.parse(text)
        except ValueError:
            raise ValueError(f"{where} must be {option.allowed}; got {text!r}") from None
        return _check(name, value, where)
    return OPTIONS[name].default


def options() -> dict[str, Any]:
    """Every option's value now (for reprs and to carry settings into a dask task)."""
    return {name: get_option(name) for name in OPTIONS}
