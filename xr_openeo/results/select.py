"""Which assets an open reads, and why each of the others is skipped."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ResultsDocumentError
from .formats import FORMAT_ALIASES, PURPOSES, require_format
from .specs import AssetSpec

Purpose = Literal["raster", "table"]
_READERS = {"raster": "xr_openeo.open_results", "table": "xr_openeo.open_dataframe"}


@dataclass(frozen=True)
class Selection:
    """The assets an open reads (``chosen``, in document order) and the others with why (``skipped``).

    ``skipped`` maps asset key to a short reason (``"role metadata"``, ``"a machine-learning model
    (roles data, ml-model:checkpoint)"``, ``"a table (csv): xr_openeo.open_dataframe reads it"``…),
    in document order. ``other_purpose`` lists the skipped keys that the other front reads, to
    point users at it when ``chosen`` is empty.
    """

    chosen: tuple[AssetSpec, ...]
    skipped: Mapping[str, str] = field(default_factory=dict, hash=False)
    purpose: Purpose | None = None
    other_purpose: tuple[str, ...] = ()

    def summary(self) -> str:
        """The skipped assets and their reasons on one line: ``'a.json' (role metadata); …``, or ``""``."""
        return "; ".join(f"{key!r} ({why})" for key, why in self.skipped.items())


def select(
    assets: Iterable[AssetSpec], wanted: str | Sequence[str] | None, *, purpose: Purpose | None = None
) -> Selection:
    """The assets to read for ``purpose``, and why each of the others is skipped.

    Parameters
    ----------
    assets
        Every asset of the results (after :func:`merge_items` and :func:`with_file_name_times`).
    wanted
        Asset keys, roles, media types or format names (``"geotiff"``, ``"GTiff"``, ``"netCDF"``…)
        that the caller named, or None for the default choice.
    purpose
        ``"raster"`` (``open_results``): by default GeoTIFF, netCDF, Zarr and JSON (which may hold a
        raster or a time series: its content decides later). ``"table"`` (``open_dataframe``): JSON,
        CSV, Parquet and GeoJSON. None (downloads, listings): every data asset, whatever its format.

    Returns
    -------
    Selection
        With ``wanted=None``: the data assets (role ``data`` or no roles) of the purpose's formats;
        skipped are models, other roles, malformed assets of those kinds, formats xr_openeo does not
        read, formats of the other purpose, and for rasters a GeoTIFF with no date among GeoTIFFs
        that have one. ``chosen`` may be empty: the caller decides what that means.

    Raises
    ------
    ResultsDocumentError
        ``wanted`` matches no asset (the message lists them), or names a malformed one, or a
        malformed asset of the purpose's own kind would be read by default.
    UnsupportedMediaTypeError
        ``wanted`` names an asset in a format xr_openeo cannot read (with a ``purpose``).
    """
    assets = tuple(assets)
    if wanted is not None:
        return _named(assets, wanted, purpose)
    chosen: list[AssetSpec] = []
    skipped: dict[str, str] = {}
    other: list[str] = []
    for a in assets:
        why = _why_not(a, purpose)
        if why is None:
            if a.problem is not None:
                raise ResultsDocumentError(f"Asset {a.key!r} cannot be opened: {a.problem}", field=a.problem_field)
            chosen.append(a)
            continue
        skipped[a.key] = why
        if purpose is not None and a.is_readable_data and a.format in PURPOSES[_other(purpose)]:
            other.append(a.key)
    if purpose == "raster":
        chosen = _drop_undated_geotiffs(chosen, skipped)
    in_order = {a.key: skipped[a.key] for a in assets if a.key in skipped}
    return Selection(tuple(chosen), in_order, purpose, tuple(other))


def _why_not(a: AssetSpec, purpose: Purpose | None) -> str | None:
    """Why ``a`` is not read by default for ``purpose``, or None if it is."""
    roles = ", ".join(a.roles)
    if purpose is not None and a.is_model:
        return f"a machine-learning model (roles {roles})"
    if not a.is_data:
        return f"role {roles}" if len(a.roles) == 1 else f"roles {roles}"
    if a.problem is not None and not a.is_readable_data:
        return f"malformed: {a.problem}"
    if purpose is None:
        return None
    fmt = a.format
    if fmt is None:
        if a.media_type:
            return f"media type {a.media_type}, which xr_openeo does not read"
        return f"no media type, and no file extension xr_openeo reads in {a.filename!r}"
    if fmt not in PURPOSES[purpose]:
        kind = "a table" if purpose == "raster" else "a raster"
        return f"{kind} ({fmt}): {_READERS[_other(purpose)]} reads it"
    return None


def _drop_undated_geotiffs(chosen: list[AssetSpec], skipped: dict[str, str]) -> list[AssetSpec]:
    """GeoTIFFs without a date are skipped when other GeoTIFFs have one: there is no place for them on ``t``."""
    geotiffs = [a for a in chosen if a.format == "geotiff"]
    dated = [a for a in geotiffs if a.time is not None or a.start is not None]
    if not dated or len(dated) == len(geotiffs):
        return chosen
    keep = []
    for a in chosen:
        if a.format == "geotiff" and a.time is None and a.start is None:
            skipped[a.key] = (
                f"a GeoTIFF with no date (none in its asset, item or file name) while {len(dated)} others have one; "
                "name it in assets=[...] to open it alone"
            )
        else:
            keep.append(a)
    return keep


def _named(assets: tuple[AssetSpec, ...], wanted: str | Sequence[str], purpose: Purpose | None) -> Selection:
    names = (wanted,) if isinstance(wanted, str) else tuple(wanted)
    formats = {FORMAT_ALIASES.get(n.lower(), n.lower()) for n in names if isinstance(n, str)}
    chosen = tuple(
        a
        for a in assets
        if a.key in names or set(a.roles) & set(names) or a.media_type in names or (a.format or "") in formats
    )
    if not chosen:
        summary = ", ".join(f"{a.key} ({a.media_type}, roles {list(a.roles)})" for a in assets) or "none"
        raise ResultsDocumentError(
            f"assets={list(names)} matches no asset; the results have: {summary}. "
            "Select by asset key, role (e.g. 'data') or media type.",
            field="assets",
        )
    for a in chosen:
        if a.problem is not None:
            raise ResultsDocumentError(f"Asset {a.key!r} cannot be opened: {a.problem}", field=a.problem_field)
        if purpose is not None:
            require_format(a)
    keys = {a.key for a in chosen}
    skipped = {a.key: f"not among assets={list(names)}" for a in assets if a.key not in keys}
    return Selection(chosen, skipped, purpose)


def _other(purpose: Purpose) -> Purpose:
    return "table" if purpose == "raster" else "raster"
