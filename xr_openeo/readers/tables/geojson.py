"""GeoJSON results: a FeatureCollection (or one Feature) holding a vector cube."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ...results import AssetSpec
from ._common import asset_error, load_json, optional_import, reason, short
from .json_series import is_geojson
from .shape import GEOMETRY
from .vector import vector_frame


def read_geojson(data: bytes, spec: AssetSpec) -> pd.DataFrame:
    """Read a GeoJSON result (a vector cube) as a tidy time series.

    Parameters
    ----------
    data
        The asset's bytes: a FeatureCollection (or a single Feature).
    spec
        The asset; ``spec.bands`` names the value columns when their count matches.

    Returns
    -------
    geopandas.GeoDataFrame
        Indexed by ``(t, feature)`` (``feature`` alone without ``date~band`` properties): one float
        column per band, the features' other properties, and ``geometry``, in EPSG:4326 (RFC 7946;
        a legacy ``crs`` member is honoured). ``feature`` is the ``feature_index`` property when it
        holds unique integers, else the feature's position.

    Raises
    ------
    AssetReadError
        Not GeoJSON, a feature or geometry that is not valid, a ``geometry`` property, an unknown
        ``crs`` member, or a non-numeric value in a ``date~band`` property.
    """
    return geojson_frame(load_json(data, spec), spec)


def geojson_frame(doc: Any, spec: AssetSpec) -> pd.DataFrame:
    """The tidy frame of a parsed GeoJSON document."""
    optional_import("geopandas", "GeoJSON", "geopandas")
    from shapely.geometry import shape

    if not is_geojson(doc):
        raise asset_error(spec, f"is not GeoJSON: expected a FeatureCollection, got {short(doc)}")
    features = [doc] if doc["type"] == "Feature" else doc.get("features")
    if not isinstance(features, list):
        raise asset_error(spec, "is a FeatureCollection without a 'features' list")
    geometries, rows = [], []
    for i, feature in enumerate(features):
        if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
            raise asset_error(spec, f"features[{i}] is not a GeoJSON Feature: {short(feature)}")
        properties = feature.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise asset_error(spec, f"features[{i}].properties must be an object, got {short(properties)}")
        try:
            geometries.append(shape(feature["geometry"]) if feature.get("geometry") else None)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise asset_error(spec, f"features[{i}].geometry is not a valid GeoJSON geometry: {reason(exc)}") from None
        rows.append(properties)
    table = pd.DataFrame(rows, index=pd.RangeIndex(len(rows)))
    if GEOMETRY in table.columns:
        raise asset_error(spec, "has a property named 'geometry', which clashes with the feature geometries")
    return vector_frame(table, spec, geometry=geometries, crs=_crs(doc, spec))


def geojson_crs(doc: Mapping[str, Any]) -> str | None:
    """The CRS of a GeoJSON document: EPSG:4326 (RFC 7946) unless a legacy ``crs`` member names another;
    None when that member names something unknown."""
    member = doc.get("crs")
    properties = member.get("properties") if isinstance(member, Mapping) else None
    name = properties.get("name") if isinstance(properties, Mapping) else None
    if not isinstance(name, str):
        return "EPSG:4326"
    if name.upper().endswith(("CRS84", "CRS:84")):
        return "OGC:CRS84"
    code = name.rsplit(":", 1)[-1]
    if "EPSG" in name.upper() and code.isdigit():
        return f"EPSG:{code}"
    return None


def _crs(doc: Mapping[str, Any], spec: AssetSpec) -> str:
    crs = geojson_crs(doc)
    if crs is None:
        name = doc["crs"]["properties"]["name"]
        raise asset_error(spec, f"has a 'crs' member xr_openeo does not understand: {name!r}")
    return crs
