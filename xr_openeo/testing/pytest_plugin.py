"""pytest fixtures of the local backend (registered through the ``pytest11`` entry point).

``local_backend`` gives each test a fresh, running :class:`~xr_openeo.testing.LocalBackend`;
``local_connection`` an authenticated ``openeo.Connection`` to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def local_backend() -> Iterator[Any]:
    """A fresh local openEO backend (default collection and faults), stopped after the test."""
    from xr_openeo.testing import LocalBackend

    with LocalBackend() as backend:
        yield backend


@pytest.fixture
def local_connection(local_backend: Any) -> Any:
    """An ``openeo.Connection`` to ``local_backend``, authenticated as the test user."""
    return local_backend.connect()
