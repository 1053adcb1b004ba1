"""One asset object of a results or item document -> :class:`AssetSpec`: href, roles, bands, dates, grid.

A malformed field of an asset that xr_openeo would read (data in a known format) raises
:class:`ResultsDocumentError` naming the field; on any other asset (a model, metadata, an unknown
format) it becomes the spec's ``problem`` instead, so that it never stops an open that did not ask
for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from ..errors import ResultsDocumentError
from ..urls import resolve
from .formats import TABULAR
from .specs import AssetSpec, Grid
from .times import NS_YEARS, parse_datetime

T = TypeVar("T")


@dataclass(frozen=True)
class Dates:
    """What the ``datetime``, ``start_datetime`` and ``end_datetime`` of an item or asset say."""

    time: np.datetime64 | None = None
    time_text: str | None = None  # the datetime as written, when there is one
    time_field: str | None = None
    start: np.datetime64 | None = None
    end: np.datetime64 | None = None
    interval: tuple[str | None, str | None] = (None, None)

    def over(self, base: Dates) -> Dates:
        """These dates where given, ``base`` (the item's) elsewhere."""
        own_time = self.time_text is not None
        return Dates(
            time=self.time if own_time else base.time,
            time_text=self.time_text if own_time else base.time_text,
            time_field=self.time_field if own_time else base.time_field,
            start=self.start if self.interval[0] is not None else base.start,
            end=self.end if self.interval[1] is not None else base.end,
            interval=(self.interval[0] or base.interval[0], self.interval[1] or base.interval[1]),
        )


@dataclass(frozen=True)
class ItemFields:
    """What an item's ``properties`` give every asset of the item, or the error that stopped reading them."""

    dates: Dates = Dates()
    grid: Grid | None = None
    error: ResultsDocumentError | None = None
    item_id: str | None = None


def item_fields(properties: Mapping[str, Any], where: str, item_id: str | None = None) -> ItemFields:
    """The dates and grid of an item's ``properties`` (``where`` names them in messages)."""
    try:
        return ItemFields(dates(properties, where), _grid(properties, where), None, item_id)
    except ResultsDocumentError as exc:
        return ItemFields(error=exc, item_id=item_id)


def asset_spec(
    key: Any, value: Any, base_url: str | None, where: str, item: ItemFields = ItemFields()
) -> tuple[AssetSpec, bool]:
    """The spec of one asset object, and whether its time is its own ``datetime`` (not the item's)."""
    if not isinstance(value, Mapping):
        error = ResultsDocumentError(f"{where} must be an object, got {type(value).__name__}", field=where)
        raise _located(error, item)
    href = value.get("href")
    if not isinstance(href, str) or not href:
        error = ResultsDocumentError(f"{where}.href must be a non-empty string, got {href!r}", field=f"{where}.href")
        raise _located(error, item)
    media_type = value.get("type")
    if media_type is not None and not isinstance(media_type, str):
        error = ResultsDocumentError(
            f"{where}.type must be a media type string, got {media_type!r}", field=f"{where}.type"
        )
        raise _located(error, item)
    roles = value.get("roles")
    if roles is None:
        roles = ["data"]
    elif isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        error = ResultsDocumentError(f"{where}.roles must be a list of strings, got {roles!r}", field=f"{where}.roles")
        raise _located(error, item)
    title = value.get("title")
    spec = AssetSpec(
        key=str(key),
        href=resolve(href, base_url) if base_url else href,
        media_type=media_type,
        roles=tuple(roles),
        title=title if isinstance(title, str) else None,
        item_id=item.item_id,
    )
    problems: list[ResultsDocumentError] = []

    def attempt(read: Callable[[], T], default: T) -> T:
        try:
            return read()
        except ResultsDocumentError as exc:
            if spec.is_readable_data:
                raise _located(exc, item) from None
            problems.append(exc)
            return default

    if item.error is not None:
        attempt(_raiser(item.error), None)
    no_bands: tuple[tuple[str, ...], float | None, str | None] = ((), None, None)
    bands, nodata, dtype = attempt(lambda: _bands(value, where), no_bands)
    own = attempt(lambda: dates(value, where), Dates())
    when = own.over(item.dates)
    if when.time is None and when.time_text is not None and when.time_field is not None:
        attempt(_raiser(_beyond_t_axis(when.time_text, when.time_field)), None)
    grid = None
    if spec.format not in TABULAR:
        # geopyspark copies job-level proj:* onto every asset; on a table they describe no grid.
        grid = attempt(lambda: _grid(value, where), None) or item.grid
    problem = _located(problems[0], item) if problems else None
    spec = replace(
        spec,
        bands=bands,
        nodata=nodata,
        dtype=dtype,
        time=when.time,
        start=when.start,
        end=when.end,
        interval=when.interval,
        grid=grid,
        problem=str(problem) if problem else None,
        problem_field=problem.field if problem else None,
    )
    return spec, own.time_text is not None


def dates(value: Mapping[str, Any], where: str) -> Dates:
    """The dates of an item's properties or of an asset; far dates (year 9999) parse, as None values."""
    time = start = end = None
    texts: dict[str, str | None] = {}
    for name in ("datetime", "start_datetime", "end_datetime"):
        if value.get(name) is None:
            texts[name] = None
            continue
        parsed, texts[name] = parse_datetime(value[name], f"{where}.{name}")
        if name == "datetime":
            time = parsed
        elif name == "start_datetime":
            start = parsed
        else:
            end = parsed
    return Dates(
        time=time,
        time_text=texts["datetime"],
        time_field=f"{where}.datetime" if texts["datetime"] is not None else None,
        start=start,
        end=end,
        interval=(texts["start_datetime"], texts["end_datetime"]),
    )


def _beyond_t_axis(text: str, name: str) -> ResultsDocumentError:
    return ResultsDocumentError(
        f"{name} {text!r} is a date the t axis cannot hold (datetime64[ns] spans the years "
        f"{NS_YEARS[0]} to {NS_YEARS[1]}); a file of data needs a datetime inside them",
        field=name,
    )


def _raiser(error: ResultsDocumentError) -> Callable[[], None]:
    def read() -> None:
        raise error

    return read


def _located(error: ResultsDocumentError, item: ItemFields) -> ResultsDocumentError:
    """``error`` prefixed with the item it is in, when it is in an item document."""
    if item.item_id is None or str(error).startswith("item "):
        return error
    return ResultsDocumentError(f"item {item.item_id!r}: {error}", field=error.field)


def _bands(value: Mapping[str, Any], where: str) -> tuple[tuple[str, ...], float | None, str | None]:
    """Band names from ``bands`` (STAC 1.1), ``eo:bands`` or named ``raster:bands``; nodata and data type."""
    names: list[str] = []
    nodata = dtype = None
    for field_name in ("bands", "eo:bands", "raster:bands"):
        entries = value.get(field_name)
        if entries is None:
            continue
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
            raise ResultsDocumentError(f"{where}.{field_name} must be a list of objects", field=f"{where}.{field_name}")
        entry_names = [e.get("name") for e in entries]
        if not names and field_name != "raster:bands":
            if not all(isinstance(n, str) and n for n in entry_names):
                raise ResultsDocumentError(
                    f"every entry of {where}.{field_name} needs a 'name' string, got {entry_names!r}",
                    field=f"{where}.{field_name}",
                )
            names = entry_names
        elif not names and entry_names and all(isinstance(n, str) and n for n in entry_names):
            names = entry_names  # raster:bands only (its names are optional)
        for e in entries:
            nodata = nodata if nodata is not None else _number(e.get("nodata"))
            dtype = dtype or (e.get("data_type") if isinstance(e.get("data_type"), str) else None)
    if nodata is None:
        nodata = _number(value.get("nodata"))
    return tuple(names), nodata, dtype


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range is no nodata value of any dtype
            return None
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf"):
        return float(value)
    return None


def _grid(value: Mapping[str, Any], where: str) -> Grid | None:
    shape = value.get("proj:shape")
    if shape is None:
        return None
    if not (isinstance(shape, list | tuple) and len(shape) == 2 and all(_positive_int(v) for v in shape)):
        raise ResultsDocumentError(
            f"{where}.proj:shape must be [rows, cols] of positive integers (< 2**31), got {shape!r}",
            field=f"{where}.proj:shape",
        )
    crs = _crs(value, where)
    if crs is None:
        return None
    rows, cols = int(shape[0]), int(shape[1])
    transform = value.get("proj:transform")
    if transform is not None:
        name = f"{where}.proj:transform"
        if not (isinstance(transform, list | tuple) and len(transform) in (6, 9) and all(map(_finite, transform))):
            raise ResultsDocumentError(f"{name} must hold 6 (or 9) finite numbers, got {transform!r}", field=name)
        grid = Grid(crs, (rows, cols), tuple(float(v) for v in transform[:6]))  # type: ignore[arg-type]
        return _checked(grid, name, transform)
    bbox = value.get("proj:bbox")
    if bbox is None:
        return None
    name = f"{where}.proj:bbox"
    if not (isinstance(bbox, list | tuple) and len(bbox) in (4, 6) and all(map(_finite, bbox))):
        raise ResultsDocumentError(
            f"{name} must be [minx, miny, maxx, maxy] (or 6 numbers with z) of finite numbers, got {bbox!r}",
            field=name,
        )
    minx, miny, maxx, maxy = (float(bbox[i]) for i in ((0, 1, 2, 3) if len(bbox) == 4 else (0, 1, 3, 4)))
    if not (maxx > minx and maxy > miny):
        raise ResultsDocumentError(
            f"{name} {bbox!r} is empty or inverted (need maxx > minx, maxy > miny)",
            field=name,
        )
    return _checked(Grid.from_bbox(crs, (rows, cols), (minx, miny, maxx, maxy)), name, bbox)


def _checked(grid: Grid, name: str, given: Any) -> Grid:
    """``grid`` if its transform is finite and invertible, else an error naming the field it came from."""
    a, b, _, d, e, _ = grid.transform
    determinant = a * e - b * d
    usable = all(math.isfinite(v) for v in grid.transform) and math.isfinite(determinant) and determinant != 0
    if usable:
        minx, miny, maxx, maxy = grid.bounds
        usable = all(math.isfinite(v) for v in grid.bounds) and minx < maxx and miny < maxy
    if not usable:
        raise ResultsDocumentError(
            f"{name} {given!r} gives no usable grid for proj:shape {list(grid.shape)} "
            "(zero, infinite or degenerate pixel size)",
            field=name,
        )
    return grid


def _finite(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _crs(value: Mapping[str, Any], where: str) -> str | None:
    code = value.get("proj:code")
    if isinstance(code, str) and code:
        return code
    epsg = value.get("proj:epsg")
    if epsg is None:
        wkt = value.get("proj:wkt2")
        return wkt if isinstance(wkt, str) and wkt else None
    if not _positive_int(epsg):
        raise ResultsDocumentError(
            f"{where}.proj:epsg must be a positive integer, got {epsg!r}", field=f"{where}.proj:epsg"
        )
    return f"EPSG:{int(epsg)}"


def _positive_int(v: Any) -> bool:
    """A positive JSON integer small enough for a raster size or an EPSG code (GDAL sizes are int32)."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**31
