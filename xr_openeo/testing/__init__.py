"""A real openEO backend on 127.0.0.1 for tests, demos and benchmarks, and its pytest fixture.

``with LocalBackend() as backend:`` serves the openEO API 1.2 from a thread; ``backend.connect()``
returns an authenticated ``openeo.Connection``. ``python -m xr_openeo.testing --port N`` runs it as a
process. Needs the ``local`` extra: ``pip install "xr_openeo[local]"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "LocalBackend",
    "BackendProcess",
    "SyntheticCollection",
    "Band",
    "Faults",
    "ManualClock",
    "synthetic_pixels",
    "TEST_USER",
    "OTHER_USER",
]

if TYPE_CHECKING:
    from .backend import OTHER_USER, TEST_USER, LocalBackend
    from .clock import ManualClock
    from .collections import Band, SyntheticCollection, synthetic_pixels
    from .faults import Faults
    from .process import BackendProcess

_WHERE = {
    "LocalBackend": "backend",
    "BackendProcess": "process",
    "TEST_USER": "backend",
    "OTHER_USER": "backend",
    "SyntheticCollection": "collections",
    "Band": "collections",
    "synthetic_pixels": "collections",
    "Faults": "faults",
    "ManualClock": "clock",
}


def __getattr__(name: str) -> Any:
    # Lazy, so the pytest plugin and `import xr_openeo.testing` stay cheap and need no Flask.
    if name in _WHERE:
        from importlib import import_module

        try:
            module = import_module(f"{__name__}.{_WHERE[name]}")
        except ImportError as exc:
            raise ImportError(
                f"xr_openeo.testing.{name} needs the local backend's dependencies: "
                f"pip install 'xr_openeo[local]' ({exc})"
            ) from exc
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
