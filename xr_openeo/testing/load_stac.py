"""``load_stac`` for the local backend: STAC served on this machine, read without any other network.

openeo-processes-dask's ``load_stac`` validates documents against schemas fetched from the internet,
so the local backend brings its own (as it does ``load_collection``): the document (a job's results,
through their signed canonical link, or any STAC Collection or Item) and every file it names must be
on 127.0.0.1. The results are opened with :func:`xr_openeo.open_results` and turned into the
``(t, bands, y, x)`` cube with a CRS that ``load_collection`` gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import numpy as np
import pandas as pd
import xarray as xr

from .collections import extent_bounds, in_interval

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_MAX_ITEMS = 10_000  # item documents checked before opening; a results document links far fewer


@dataclass(frozen=True)
class Loaded:
    """A loaded cube and what ``save_result`` needs to know of its source."""

    cube: xr.DataArray
    epsg: int
    nodata: float | int


def load_stac(
    url: str, spatial_extent: Any = None, temporal_extent: Any = None, bands: Any = None, *, timeout: float = 30
) -> Loaded:
    """The data of the STAC document at ``url`` as a lazy ``(t, bands, y, x)`` cube.

    ``spatial_extent`` keeps the pixels that overlap the box (as ``load_collection`` does),
    ``temporal_extent`` the dates in ``[start, end)``, ``bands`` the named bands in that order.

    Raises
    ------
    ValueError
        ``url`` or a file it names is not on 127.0.0.1, the document holds no raster on one grid,
        a band does not exist, or the extents select nothing.
    """
    import xr_openeo

    _check_local(url, "load_stac url")
    _check_document(url, timeout)
    opened = xr_openeo.open_results(url)
    if not isinstance(opened, xr.Dataset):
        raise ValueError(
            "load_stac: the STAC document at this URL holds rasters on several grids; the local backend "
            "loads one grid only. Load a document of one grid, or save the result on one grid."
        )
    names = [str(n) for n, v in opened.data_vars.items() if {"y", "x"} <= set(v.dims)]
    if not names:
        raise ValueError("load_stac: the STAC document at this URL holds no raster with x and y dimensions.")
    chosen = _bands(names, bands)
    cube = opened[chosen].to_array("bands")
    cube = cube.transpose(*(d for d in ("t", "bands", "y", "x") if d in cube.dims), ...)
    crs = opened.rio.crs
    if crs is None or crs.to_epsg() is None:
        raise ValueError("load_stac: the rasters of this STAC document have no EPSG CRS.")
    epsg = int(crs.to_epsg())
    if spatial_extent is not None:
        cube = cube.isel(y=_overlapping(cube.y.values, spatial_extent, epsg, "y"))
        cube = cube.isel(x=_overlapping(cube.x.values, spatial_extent, epsg, "x"))
    if temporal_extent is not None and "t" in cube.dims:
        keep = in_interval(pd.DatetimeIndex(cube.t.values), temporal_extent)
        if not keep.any():
            raise ValueError("load_stac: temporal_extent holds no date of the STAC document.")
        cube = cube.isel(t=np.flatnonzero(keep))
    fill = opened[chosen[0]].encoding.get("_FillValue", opened[chosen[0]].rio.nodata)
    nodata = fill if fill is not None else (np.nan if cube.dtype.kind == "f" else 0)
    return Loaded(cube.rio.write_crs(f"EPSG:{epsg}"), epsg, nodata)


def _bands(available: list[str], bands: Any) -> list[str]:
    if not bands:
        return available
    wanted = [str(b) for b in bands]
    missing = [b for b in wanted if b not in available]
    if missing:
        raise ValueError(
            f"load_stac: band(s) {', '.join(missing)} not in the STAC document; available: {', '.join(available)}"
        )
    return wanted


def _overlapping(centres: np.ndarray, spatial_extent: Any, epsg: int, axis: str) -> np.ndarray:
    """Indices of the pixels (by their centres) whose extent overlaps ``spatial_extent`` along ``axis``."""
    west, south, east, north = extent_bounds(spatial_extent, epsg)
    low, high = (west, east) if axis == "x" else (south, north)
    half = abs(float(centres[1] - centres[0])) / 2 if centres.size > 1 else 0.0
    keep = np.flatnonzero((centres + half > low + 1e-9) & (centres - half < high - 1e-9))
    if keep.size == 0:
        raise ValueError(f"load_stac: spatial_extent {[west, south, east, north]} (EPSG:{epsg}) misses the data.")
    return keep


def _check_local(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_HOSTS:
        where = f"host {parts.hostname!r}" if parts.hostname else f"a {parts.scheme or 'relative'} URL"
        raise ValueError(
            f"{what} is on {where}: the local backend's load_stac reads only STAC served on 127.0.0.1 "
            "(its own job results, or documents a test serves); copy the data there first."
        )


def _check_document(url: str, timeout: float) -> None:
    """Refuse a document whose item documents or asset files are not on 127.0.0.1, before any is read."""
    for base, href, what in _hrefs(url, timeout):
        _check_local(urljoin(base, href), what)


def _hrefs(url: str, timeout: float) -> Iterator[tuple[str, str, str]]:
    import requests

    pending, seen = [url], set[str]()
    while pending and len(seen) < _MAX_ITEMS:
        doc_url = pending.pop()
        seen.add(doc_url)
        response = requests.get(doc_url, timeout=timeout)
        if response.status_code != 200:  # the message names the host only: the URL may be signed
            raise ValueError(
                f"load_stac: HTTP {response.status_code} for a STAC document on {urlsplit(doc_url).netloc}; "
                "pass a URL that serves it without login, such as the job's signed canonical link."
            )
        doc = response.json()
        for key, asset in (doc.get("assets") or {}).items():
            if isinstance(asset, dict) and "href" in asset:
                yield doc_url, str(asset["href"]), f"load_stac asset {key!r}"
        for link in doc.get("links") or []:
            if isinstance(link, dict) and link.get("rel") in ("item", "child") and "href" in link:
                target = urljoin(doc_url, str(link["href"]))
                _check_local(target, f"load_stac {link['rel']} document")
                if target not in seen:
                    pending.append(target)
