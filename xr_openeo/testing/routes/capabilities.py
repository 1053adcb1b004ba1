"""Capabilities, ``/.well-known/openeo``, output formats and authentication (``/credentials/basic``, ``/me``)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..state import API_VERSIONS, USERS, ApiError, api_root, api_version, authenticated_user, current_state

api = Blueprint("capabilities", __name__)
root = Blueprint("well_known", __name__)

OUTPUT_FORMATS = {
    "GTiff": ("raster", "Cloud-optimized GeoTIFF, one file per date with all bands"),
    "netCDF": ("raster", "CF netCDF, one file, one variable per band"),
    "JSON": ("raster", "Time series of aggregate_spatial, or xarray JSON of a raster"),
    "CSV": ("vector", "Time series of aggregate_spatial as a table"),
    "Parquet": ("vector", "Time series joined with their geometries (GeoParquet)"),
    "GeoJSON": ("vector", "Vector cube as a FeatureCollection in EPSG:4326"),
    "Zarr": ("raster", "Zarr v2 store (a folder), one variable per band"),
}

ENDPOINTS = [
    ("/", ["GET"]),
    ("/credentials/basic", ["GET"]),
    ("/me", ["GET"]),
    ("/collections", ["GET"]),
    ("/collections/{collection_id}", ["GET"]),
    ("/processes", ["GET"]),
    ("/file_formats", ["GET"]),
    ("/result", ["POST"]),
    ("/jobs", ["GET", "POST"]),
    ("/jobs/{job_id}", ["GET", "DELETE"]),
    ("/jobs/{job_id}/results", ["GET", "POST", "DELETE"]),
    ("/jobs/{job_id}/logs", ["GET"]),
]


@root.get("/.well-known/openeo")
def well_known() -> Response:
    host = request.host_url.rstrip("/")
    versions = [
        {"url": f"{host}/openeo/{v}/", "api_version": full, "production": False} for v, full in API_VERSIONS.items()
    ]
    return jsonify({"versions": versions})


@api.get("/")
def capabilities() -> Response:
    return jsonify(
        {
            "api_version": API_VERSIONS[api_version()],
            "backend_version": "xr_openeo-local",
            "stac_version": "1.0.0",
            "type": "Catalog",
            "id": "xr-openeo-local",
            "title": "xr_openeo local backend",
            "description": (
                "A real openEO backend on 127.0.0.1 for tests and demos: runs batch jobs and synchronous "
                "requests with openeo-processes-dask over synthetic collections."
            ),
            "production": False,
            "endpoints": [{"path": p, "methods": m} for p, m in ENDPOINTS],
            "links": [
                {"rel": "self", "href": f"{api_root()}/", "type": "application/json"},
                {"rel": "data", "href": f"{api_root()}/collections", "type": "application/json"},
            ],
        }
    )


@api.get("/file_formats")
def file_formats() -> Response:
    output = {
        name: {"title": title, "gis_data_types": [kind], "parameters": {}}
        for name, (kind, title) in OUTPUT_FORMATS.items()
    }
    return jsonify({"input": {}, "output": output})


@api.get("/credentials/basic")
def credentials_basic() -> Response:
    """A bearer token for HTTP basic credentials: 401 without them, 403 when they are wrong."""
    if "Authorization" not in request.headers:
        raise ApiError(
            401,
            "AuthenticationRequired",
            "Unauthorized: send HTTP basic credentials (test users: alice/alice123, bob/bob123)",
            headers={"WWW-Authenticate": 'Basic realm="openEO"'},
        )
    auth = request.authorization
    if auth is None or auth.type != "basic":
        raise ApiError(403, "AuthenticationSchemeInvalid", "GET /credentials/basic takes HTTP basic credentials only")
    if USERS.get(auth.username or "") != auth.password:
        raise ApiError(
            403, "CredentialsInvalid", "Credentials are not correct (test users: alice/alice123, bob/bob123)"
        )
    return jsonify({"access_token": current_state().issue_token(auth.username or "")})


@api.get("/me")
def me() -> Response:
    return jsonify({"user_id": authenticated_user(), "links": []})
