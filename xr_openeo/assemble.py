"""Cubes + lazy arrays → Datasets with coordinates, CRS, nodata encoding and provenance.

Provenance (job id, backend, results URL, status, assets) goes into ``ds.attrs`` and, in part,
into every data variable's attrs, where xarray keeps it through ``ds.NDVI.isel(t=0).to_dataset()``
and ``ds[["B04"]]``. The openeo Connection a Dataset came from travels in its ``encoding`` inside
a :class:`ConnectionRef`, which is never pickled nor deep-copied with it (it holds a token).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .mosaic import Layout
from .urls import redact

PREFIX = "openeo:"
CONNECTION = "openeo:connection"  # the encoding key holding a ConnectionRef
SHARE_URL = "openeo:share_url"  # the encoding key holding the signed canonical link (a SignedLink)
VARIABLE_ATTRS = ("openeo:job_id", "openeo:backend", "openeo:results_url")


class ConnectionRef:
    """The ``openeo.Connection`` a Dataset came from, kept in its encoding for the accessor.

    Pickles as an empty reference and deep-copies as itself, so a token never leaves the process
    inside a Dataset and copies still reach their job.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConnectionRef, (None,))

    def __deepcopy__(self, memo: dict[int, Any]) -> ConnectionRef:
        return self

    def __repr__(self) -> str:
        root = getattr(self.connection, "root_url", None)
        if root is None:
            return "<openeo connection: none (not pickled)>"
        return f"<openeo connection to {root} (kept in this process, not pickled)>"


class SignedLink:
    """A signed URL kept in a Dataset's encoding: usable by the accessor, redacted in every repr."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"<signed link {redact(self.url)}>"


@dataclass(frozen=True)
class Provenance:
    """Where a Dataset came from; stored in its attrs (signatures redacted) for the accessor."""

    backend: str | None
    job_id: str | None
    results_url: str | None
    asset_keys: tuple[str, ...]
    status: str = "finished"
    skipped: Mapping[str, str] = field(default_factory=dict)
    connection: Any = field(default=None, compare=False, repr=False)
    share_url: str | None = field(default=None, compare=False, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "openeo:backend": self.backend or "",
            "openeo:job_id": self.job_id or "",
            "openeo:results_url": redact(self.results_url) if self.results_url else "",
            "openeo:assets": list(self.asset_keys),
            "openeo:status": self.status,
        }
        if self.skipped:
            out["openeo:skipped"] = [f"{key}: {why}" for key, why in self.skipped.items()]
        out.update({f"openeo:{k}": v for k, v in self.extra.items()})
        return out

    def apply(self, ds: Any) -> Any:
        """``ds`` with this provenance in its attrs, its variables' attrs and (the connection) its encoding."""
        attrs = self.attrs()
        ds.attrs.update(attrs)
        carried: dict[str, Any] = {}
        if self.connection is not None:
            carried[CONNECTION] = ConnectionRef(self.connection)
        if self.share_url:
            carried[SHARE_URL] = SignedLink(self.share_url)
        for var in ds.data_vars.values():
            var.attrs.update({k: attrs[k] for k in VARIABLE_ATTRS})
            var.encoding.update(carried)
        ds.encoding.update(carried)
        return ds


def raster_dataset(
    layout: Layout,
    variables: Sequence[Any],
    provenance: Provenance,
    *,
    nodata: float | None,
    masked: bool,
    preferred_chunks: Mapping[str, Any],
    attrs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Any:
    """A Dataset of one ``(t, y, x)`` (or ``(y, x)`` when dateless) variable per band of ``layout``."""
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    y, x = layout.grid.coords()
    coords: dict[str, Any] = {"y": y, "x": x}
    if not layout.dateless:
        coords["t"] = np.array(layout.times, dtype="datetime64[ns]")
    data_vars = {}
    for name, array in zip(layout.names, variables, strict=True):
        var = xr.Variable(("t", "y", "x"), array, attrs=dict((attrs or {}).get(name, {})))
        if layout.dateless:
            var = var.isel(t=0)
        # So that xr.open_dataset(..., engine="openeo", chunks={}) keeps the chunks the reader chose.
        var.encoding["preferred_chunks"] = {d: preferred_chunks[str(d)] for d in var.dims}
        data_vars[name] = var
    ds = xr.Dataset(data_vars, coords=coords)
    # In place: rioxarray's copies are deep, and would give each band a reader of its own.
    ds.rio.write_crs(layout.grid.crs, inplace=True)
    ds.rio.write_transform(_affine(layout.grid), inplace=True)
    if nodata is not None:
        # NaN is a value of the data (nothing to encode); another nodata is what masking replaced by NaN.
        encoded = masked and not np.isnan(nodata)
        for band in ds.data_vars:
            ds[band].rio.write_nodata(nodata, encoded=encoded, inplace=True)
    return provenance.apply(ds)


def _affine(grid: Any) -> Any:
    from affine import Affine

    return Affine(*grid.transform)


def as_tree(groups: Mapping[str, Any]) -> Any:
    """Several datasets (assets on different grids) as an ``xarray.DataTree``, one group each."""
    import xarray as xr

    return xr.DataTree.from_dict({f"/{name}": ds for name, ds in groups.items()})


def empty_dataset(provenance: Provenance) -> Any:
    import xarray as xr

    return provenance.apply(xr.Dataset())
