"""Specs + lazy arrays -> Datasets with coordinates, CRS, nodata encoding and provenance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .results import AssetSpec, Grid, redact

PROVENANCE_PREFIX = "openeo:"


@dataclass(frozen=True)
class Provenance:
    """Where a Dataset came from; stored in ``ds.attrs`` (signatures redacted) for the accessor."""

    backend: str | None
    job_id: str | None
    results_url: str | None
    asset_keys: tuple[str, ...]
    status: str = "finished"

    def attrs(self) -> dict[str, Any]:
        out = {
            "openeo:backend": self.backend or "",
            "openeo:job_id": self.job_id or "",
            "openeo:results_url": redact(self.results_url) if self.results_url else "",
            "openeo:assets": list(self.asset_keys),
            "openeo:status": self.status,
        }
        return out


def time_steps(specs: Sequence[AssetSpec]) -> tuple[list[np.datetime64 | None], list[tuple[AssetSpec, ...]]]:
    """Group same-datetime assets (to be merged), sorted by time; assets without time form one step."""
    groups: dict[Any, list[AssetSpec]] = {}
    for spec in specs:
        when = spec.time if spec.time is not None else spec.start
        groups.setdefault(when, []).append(spec)
    if None in groups and len(groups) > 1:
        undated = ", ".join(s.key for s in groups[None])
        from .errors import ResultsDocumentError

        raise ResultsDocumentError(
            f"Assets {undated} have no datetime (not in their items, properties or file names) while the others "
            "have one; open them separately with assets=[...]",
            field="datetime",
        )
    times = sorted(groups, key=lambda t: (t is None, t if t is not None else np.datetime64(0, "ns")))
    return times, [tuple(groups[t]) for t in times]


def raster_dataset(
    variables: Mapping[str, Any],
    grid: Grid,
    times: Sequence[np.datetime64 | None],
    nodata: float | None,
    provenance: Provenance,
    preferred_chunks: Mapping[str, int],
) -> Any:
    """Dataset of one ``(t, y, x)`` (or ``(y, x)`` when dateless) variable per band."""
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    y, x = grid.coords()
    with_time = not (len(times) == 1 and times[0] is None)
    coords: dict[str, Any] = {"y": y, "x": x}
    if with_time:
        coords["t"] = np.array(times, dtype="datetime64[ns]")
    data_vars = {}
    for name, array in variables.items():
        var = xr.Variable(("t", "y", "x"), array)
        if not with_time:
            var = var.isel(t=0)
        var.attrs["grid_mapping"] = "spatial_ref"
        if nodata is not None:
            var.encoding["_FillValue"] = nodata
        # So that xr.open_dataset(..., engine="openeo", chunks={}) keeps the chunks the reader chose.
        var.encoding["preferred_chunks"] = {d: preferred_chunks[str(d)] for d in var.dims}
        data_vars[name] = var
    ds = xr.Dataset(data_vars, coords=coords)
    ds = ds.rio.write_crs(grid.crs)
    ds = ds.rio.write_transform(_affine(grid))
    ds.attrs.update(provenance.attrs())
    return ds


def _affine(grid: Grid) -> Any:
    from affine import Affine

    return Affine(*grid.transform)


def band_names(spec: AssetSpec, count: int, descriptions: Sequence[str | None] = ()) -> list[str]:
    """Names from the metadata (``bands``/``eo:bands``), else the file's band descriptions, else ``band_N``."""
    if len(spec.bands) == count:
        return list(spec.bands)
    if len(descriptions) == count and all(descriptions):
        return [str(d) for d in descriptions]
    return [f"band_{i + 1}" for i in range(count)]


def unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        out.append(name if n == 0 else f"{name}_{n}")
        seen[name] = n + 1
    return out


def as_tree(groups: Mapping[str, Any]) -> Any:
    """Several datasets (assets on different grids) as an ``xarray.DataTree``, one group each."""
    import xarray as xr

    return xr.DataTree.from_dict({f"/{name}": ds for name, ds in groups.items()})
