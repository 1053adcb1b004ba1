"""Library-wide defaults: ``xr_openeo.set_options(...)``, as a call or as a context manager.

An explicit keyword of a function beats :func:`set_options`, which beats the environment
(``XR_OPENEO_ON_READ_ERROR``), which beats the built-in default. The environment is read when a
value is needed, not at import.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType
from typing import Any

ON_READ_ERROR = ("raise", "fill")

_DEFAULTS: dict[str, Any] = {"on_read_error": "raise"}
_ALLOWED: dict[str, tuple[Any, ...]] = {"on_read_error": ON_READ_ERROR}
_ENV = {"on_read_error": "XR_OPENEO_ON_READ_ERROR"}
_UNSET = object()
_lock = threading.Lock()
_set: dict[str, Any] = {}  # what set_options set; absent names fall back to the environment


def _check(name: str, value: Any, where: str) -> Any:
    allowed = _ALLOWED[name]
    if value not in allowed:
        raise ValueError(f"{where} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


class set_options:  # noqa: N801 - used like a function, as xarray.set_options is
    """Set xr_openeo's defaults, for the rest of the session or (as a context manager) for a block.

    Parameters
    ----------
    on_read_error : {"raise", "fill"}
        What a read that fails after the retries does in a computation: ``"raise"`` (default)
        raises :class:`~xr_openeo.errors.AssetReadError` naming the asset; ``"fill"`` fills that
        chunk with the variable's nodata (NaN for floats) and warns with
        :class:`~xr_openeo.errors.FailedReadWarning`. Environment: ``XR_OPENEO_ON_READ_ERROR``.
        ``None`` removes a value set before (the environment or the default applies again).

    Examples
    --------
    >>> import xr_openeo
    >>> with xr_openeo.set_options(on_read_error="fill"):
    ...     pass  # open_results(...) here fills failed reads
    """

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; xr_openeo has {sorted(_DEFAULTS)}")
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


def get_option(name: str, explicit: Any = None) -> Any:
    """Option ``name``: ``explicit`` if not None, else what set_options set, else the environment, else the default."""
    if name not in _DEFAULTS:
        raise ValueError(f"unknown option {name!r}; xr_openeo has {sorted(_DEFAULTS)}")
    if explicit is not None:
        return _check(name, explicit, name)
    with _lock:
        if name in _set:
            return _set[name]
    env = os.environ.get(_ENV[name], "").strip()
    if env:
        return _check(name, env, f"The environment variable {_ENV[name]}")
    return _DEFAULTS[name]
