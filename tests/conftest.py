"""Shared fixtures: a local backend whose every JSON answer is checked against the openEO API 1.2 spec."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from xr_openeo.testing import LocalBackend, ManualClock, SyntheticCollection, synthetic_pixels

SPEC = Path(__file__).parent / "data" / "openeo-api-1.2.0.yaml"

# A small cube: 3 dates of 256 × 256 pixels, written as COGs with 128-pixel tiles (GDAL's smallest;
# 4 tiles per file).
SMALL = SyntheticCollection(dates=3, width=256, height=256)
SMALL_BLOCKSIZE = 128
# The whole SMALL grid, in its own CRS, for load_collection(spatial_extent=...).
SMALL_EXTENT = {"west": 640000, "south": 5687440, "east": 642560, "north": 5690000, "crs": 32631}


def two_polygons() -> dict:
    """Two rectangles inside the SMALL grid (EPSG:32631), as GeoJSON in EPSG:4326 (what aggregate_spatial takes)."""
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(32631, 4326, always_xy=True)

    def rect(x0, y0, x1, y1):
        ring = [to_lonlat.transform(x, y) for x, y in [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]]
        return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}

    return {
        "type": "FeatureCollection",
        "features": [rect(640100, 5689100, 640400, 5689400), rect(640700, 5688900, 641100, 5689800)],
    }


def expected_ndvi(date_index: int) -> np.ndarray:
    """NDVI of the whole SMALL grid on one date, computed from the seed (not asked from the server)."""
    rows, cols = np.arange(SMALL.height), np.arange(SMALL.width)
    red = synthetic_pixels(SMALL.seed, 2, date_index, rows, cols).astype("float64")
    nir = synthetic_pixels(SMALL.seed, 3, date_index, rows, cols).astype("float64")
    with np.errstate(invalid="ignore"):
        return (nir - red) / (nir + red)


def until(condition: Callable[[], object], what: str, limit: float = 60.0):
    """Poll ``condition()`` until it returns something true, and return that.

    For states that the backend's threads reach in their own time (a job's thread, a closed response);
    ``limit`` seconds of real time only bound a broken run, no outcome depends on them.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {limit:g} s waiting for {what}")


@lru_cache(maxsize=1)
def openapi():
    import yaml
    from openapi_core import OpenAPI

    spec = yaml.safe_load(SPEC.read_text())
    spec["servers"] = [{"url": "http://127.0.0.1/openeo/1.2"}]
    # /.well-known/openeo lives at the server root: the spec says so with its own `servers`.
    spec["paths"]["/.well-known/openeo"]["get"]["servers"] = [{"url": "http://127.0.0.1"}]
    # A known quirk of the 1.2.0 spec: process_json_schema says oneOf [Generic (anything),
    # process-graph schema, datacube schema], and a plain {"type": "boolean"} matches all three,
    # so no process list could ever validate. The intent is "any of these".
    json_schema = spec["components"]["schemas"]["process_json_schema"]
    json_schema["anyOf"] = json_schema.pop("oneOf")
    # Another: `nullable: true` next to `allOf` (the results Item's geometry, which the spec's own text
    # allows to be null) means nothing in OpenAPI 3.0, so null would be refused. Say it with anyOf.
    _nullable_allof_to_anyof(spec)
    return OpenAPI.from_dict(spec)


def _nullable_allof_to_anyof(node) -> None:
    if isinstance(node, dict):
        if node.get("nullable") is True and "allOf" in node and "type" not in node:
            node.pop("nullable")
            node["anyOf"] = [{"allOf": node.pop("allOf")}, {"type": "object", "nullable": True, "enum": [None]}]
        for value in node.values():
            _nullable_allof_to_anyof(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_allof_to_anyof(value)


def is_spec_path(path: str) -> bool:
    """API 1.2 routes the spec describes (signed result URLs and asset downloads are backend-defined)."""
    if path == "/.well-known/openeo":
        return True
    if not path.startswith("/openeo/1.2"):
        return False
    parts = path.split("/")
    return not ("results" in parts and parts.index("results") < len(parts) - 1)


def validate_responses(backend: LocalBackend) -> int:
    """Check every recorded JSON response of a spec'd route against the spec; returns how many were checked."""
    from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound, ServerNotFound
    from openapi_core.testing import MockRequest, MockResponse

    checked = 0
    for record in backend.requests:
        if record.json_body is None or not is_spec_path(record.path):
            continue
        request = MockRequest("http://127.0.0.1", record.method.lower(), record.path, args=None)
        response = MockResponse(
            json.dumps(record.json_body).encode(), status_code=record.status, content_type="application/json"
        )
        try:
            openapi().validate_response(request, response)
        except (PathNotFound, ServerNotFound):
            if record.status == 404:  # a 404 for a route the API does not have (clients probe some)
                continue
            raise
        except OperationNotFound:
            if record.status == 405:  # a 405 for a method the API does not have on a route
                continue
            raise
        except Exception as exc:
            cause = exc.__cause__ or exc
            raise AssertionError(
                f"{record.method} {record.path} -> {record.status} violates the openEO API 1.2 spec: "
                f"{str(cause)[:2000]}"
            ) from exc
        checked += 1
    return checked


@pytest.fixture(scope="session", autouse=True)
def own_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A temporary directory of this test process's own: the tests that check what xr_openeo leaves
    in it (execute's spilled answers) must not see the files of the other pytest-xdist workers."""
    tempfile.tempdir = str(tmp_path_factory.mktemp("tmp"))
    yield
    tempfile.tempdir = None


@pytest.fixture(params=["function", "engine"])
def open_results(request):
    """Both fronts: xr_openeo.open_results and xr.open_dataset(..., engine="openeo")."""
    if request.param == "function":
        import xr_openeo

        return xr_openeo.open_results

    def via_engine(source, *, chunks=None, **kwargs):
        # chunks={}: dask-backed with the reader's own chunks (chunks=None would give xarray's lazy arrays).
        import xarray as xr

        return xr.open_dataset(source, engine="openeo", chunks={} if chunks is None else chunks, **kwargs)

    return via_engine


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    """A fresh local backend serving SMALL; on teardown, all its JSON answers must match the API spec."""
    with LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE, record_json=True) as b:
        yield b
        validate_responses(b)


@pytest.fixture
def connection(backend: LocalBackend):
    return backend.connect()


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so (``clock.advance(seconds)``), starting at the real time."""
    return ManualClock()


@pytest.fixture
def clocked_backend(clock: ManualClock) -> Iterator[LocalBackend]:
    """Like ``backend``, on ``clock``: links expire and job durations pass when the test moves it."""
    with LocalBackend([SMALL], blocksize=SMALL_BLOCKSIZE, record_json=True, clock=clock) as b:
        yield b
        validate_responses(b)
