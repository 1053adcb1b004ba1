"""Pure parsing of openEO results documents (any API version, any STAC style) into frozen asset specs.

No I/O here: :func:`parse_results` reads a ``GET /jobs/{id}/results`` document, :func:`parse_item`
an item document it links to, and :func:`merge_items` puts the items' datetimes and grids onto the
collection's assets. See ``reference/openeo-results.md`` §2 for the styles.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import numpy as np

from ..errors import ResultsDocumentError, UnsupportedMediaTypeError
from ..urls import is_signed, redact, url_expiry  # noqa: F401  (re-exported: parsing users import them from here)

FORMATS = ("geotiff", "netcdf", "json", "csv", "parquet", "geojson", "zarr")
_MEDIA_TYPES = (  # (substring of the media type, format); first match wins
    ("geotiff", "geotiff"),
    ("image/tiff", "geotiff"),
    ("netcdf", "netcdf"),
    ("x-hdf", "netcdf"),
    ("zarr", "zarr"),
    ("geo+json", "geojson"),
    ("parquet", "parquet"),
    ("csv", "csv"),
    ("json", "json"),
)
_EXTENSIONS = {
    ".tif": "geotiff",
    ".tiff": "geotiff",
    ".nc": "netcdf",
    ".nc4": "netcdf",
    ".h5": "netcdf",
    ".json": "json",
    ".geojson": "geojson",
    ".csv": "csv",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
    ".zarr": "zarr",
}
_TABULAR = frozenset({"json", "csv", "parquet", "geojson"})  # formats whose proj:* fields are not a grid
_FORMAT_ALIASES = {"gtiff": "geotiff", "cog": "geotiff", "tiff": "geotiff", "tif": "geotiff", "nc": "netcdf"}
# openEO/geopyspark file names: openEO_2023-01-03Z.tif, openEO_20231231T214100Z.tif
_NAME_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):?(\d{2}):?(\d{2}))?Z|(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z"
)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS (``EPSG:n`` or WKT), ``shape`` (rows, cols) and an affine ``transform``.

    ``transform`` is ``(a, b, c, d, e, f)`` as in rasterio/affine: x = a·col + b·row + c,
    y = d·col + e·row + f.
    """

    crs: str
    shape: tuple[int, int]
    transform: tuple[float, float, float, float, float, float]

    @classmethod
    def from_bbox(cls, crs: str, shape: Sequence[int], bbox: Sequence[float]) -> Grid:
        rows, cols = int(shape[0]), int(shape[1])
        minx, miny, maxx, maxy = (float(v) for v in bbox)
        return cls(crs, (rows, cols), ((maxx - minx) / cols, 0.0, minx, 0.0, -(maxy - miny) / rows, maxy))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the pixel edges (of all four corners, for rotated grids)."""
        a, b, c, d, e, f = self.transform
        rows, cols = self.shape
        corners = [(col, row) for col in (0, cols) for row in (0, rows)]
        xs = [a * col + b * row + c for col, row in corners]
        ys = [d * col + e * row + f for col, row in corners]
        return min(xs), min(ys), max(xs), max(ys)

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre ``y`` and ``x`` coordinates (for axis-aligned grids)."""
        a, _, c, _, e, f = self.transform
        rows, cols = self.shape
        return f + e * (np.arange(rows) + 0.5), c + a * (np.arange(cols) + 0.5)


@dataclass(frozen=True)
class AssetSpec:
    """One result file as the results document describes it; small, frozen and picklable.

    ``key`` is the collection-level asset key (stable across re-fetches of the document, so a
    renewed href can be found by it). ``time`` is the asset's datetime as numpy ``datetime64[ns]``
    (UTC, naive) or None; ``start``/``end`` bound it when there is no single datetime.
    """

    key: str
    href: str
    media_type: str | None = None
    roles: tuple[str, ...] = ("data",)
    bands: tuple[str, ...] = ()
    time: np.datetime64 | None = None
    start: np.datetime64 | None = None
    end: np.datetime64 | None = None
    grid: Grid | None = None
    nodata: float | None = None
    dtype: str | None = None
    item_id: str | None = None
    title: str | None = None

    @property
    def format(self) -> str | None:
        """``geotiff``, ``netcdf``, ``json``, ``csv``, ``parquet``, ``geojson``, ``zarr`` or None if unknown."""
        return asset_format(self.media_type, self.href, self.key)

    @property
    def filename(self) -> str:
        """The last segment of the href's path (percent-decoded), else the key."""
        return unquote(urlsplit(self.href).path).rsplit("/", 1)[-1] or self.key


@dataclass(frozen=True)
class ResultsInfo:
    """What a results document says: the job, its status, links, and its (collection-level) assets."""

    job_id: str | None
    status: str
    kind: str  # "item" (API 1.0 STAC Item) or "collection"
    stac_version: str | None
    assets: tuple[AssetSpec, ...]
    item_links: tuple[str, ...] = ()
    self_url: str | None = None
    canonical_url: str | None = None
    process_graph: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def expires(self) -> float | None:
        """The earliest ``expires=`` (unix seconds) among the asset hrefs, if any."""
        values = [v for v in (url_expiry(a.href) for a in self.assets) if v is not None]
        return min(values) if values else None


# -- public functions -----------------------------------------------------------------------------


def parse_results(doc: Any, *, base_url: str | None = None) -> ResultsInfo:
    """Parse a results document (API 1.0 Item or 1.1+/1.2 Collection, either geopyspark style).

    Relative hrefs are resolved against ``base_url``. Raises :class:`ResultsDocumentError` naming
    the field when the document is malformed.
    """
    if not isinstance(doc, Mapping):
        raise ResultsDocumentError(f"a results document must be a JSON object, got {type(doc).__name__}")
    kind = _kind(doc)
    status = _status(doc, kind)
    assets_doc = doc.get("assets")
    if assets_doc is None:
        assets_doc = {}
    if not isinstance(assets_doc, Mapping):
        raise ResultsDocumentError(
            f"'assets' must be an object keyed by asset key, got {type(assets_doc).__name__}", field="assets"
        )
    properties = doc.get("properties") if kind == "item" else None
    if properties is not None and not isinstance(properties, Mapping):
        raise ResultsDocumentError("'properties' of a results Item must be an object", field="properties")
    defaults = _item_defaults(properties or {}, "properties") if kind == "item" else {}
    assets = tuple(_asset(key, value, base_url, f"assets.{key}", defaults) for key, value in assets_doc.items())
    links = _links(doc.get("links"), base_url)
    providers = doc.get("providers") or []
    graph = None
    for provider in providers if isinstance(providers, list) else []:
        expression = isinstance(provider, Mapping) and provider.get("processing:expression")
        if isinstance(expression, Mapping) and isinstance(expression.get("expression"), Mapping):
            graph = expression["expression"]
    return ResultsInfo(
        job_id=_optional_str(doc, "id"),
        status=status,
        kind=kind,
        stac_version=_optional_str(doc, "stac_version"),
        assets=assets,
        item_links=tuple(href for rel, href in links if rel == "item"),
        self_url=next((href for rel, href in links if rel == "self"), None),
        canonical_url=next((href for rel, href in links if rel == "canonical"), None),
        process_graph=graph,
    )


def parse_item(doc: Any, *, base_url: str | None = None) -> list[AssetSpec]:
    """The assets of a STAC Item document, with the item's datetime, grid and id on each."""
    if not isinstance(doc, Mapping):
        raise ResultsDocumentError(f"an item document must be a JSON object, got {type(doc).__name__}")
    if doc.get("type") != "Feature":
        raise ResultsDocumentError(f"an item document must have type 'Feature', got {doc.get('type')!r}", field="type")
    properties = doc.get("properties")
    if not isinstance(properties, Mapping):
        raise ResultsDocumentError("an item document needs a 'properties' object", field="properties")
    assets = doc.get("assets")
    if not isinstance(assets, Mapping):
        raise ResultsDocumentError("an item document needs an 'assets' object", field="assets")
    item_id = _optional_str(doc, "id")
    try:
        defaults = _item_defaults(properties, "properties") | {"item_id": item_id}
        return [_asset(key, value, base_url, f"assets.{key}", defaults) for key, value in assets.items()]
    except ResultsDocumentError as exc:
        raise ResultsDocumentError(f"item {item_id!r}: {exc}", field=exc.field) from None


def merge_items(assets: Sequence[AssetSpec], items: Iterable[Sequence[AssetSpec]]) -> tuple[AssetSpec, ...]:
    """The collection's assets completed with what their items say (datetime, grid, bands, item id).

    An item asset matches a collection asset by href path (signatures differ between documents),
    else by key (STAC 1.0 style: same file name; STAC 1.1 style: ``{item_id}_{item key}``).
    Item assets that match no collection asset are added (the spec says they MUST be copied to the
    collection, but some backends forget).
    """
    by_path = {urlsplit(a.href).path: i for i, a in enumerate(assets)}
    by_name = {a.filename: i for i, a in enumerate(assets)}
    by_key = {a.key: i for i, a in enumerate(assets)}
    unique_names = len(by_name) == len(assets)
    keys = set(by_key)
    merged = list(assets)
    for item_assets in items:
        for ia in item_assets:
            # Signed hrefs can differ in their signature path segment between documents, so fall back
            # from the whole path to the key, then to the file name. Only the collection's own assets
            # match by key or name: items reuse keys (``openEO`` in every STAC 1.1 item).
            path = urlsplit(ia.href).path
            i = by_path.get(path)
            if i is None and ia.item_id is not None:
                i = by_key.get(f"{ia.item_id}_{ia.key}")
            if i is None:
                i = by_key.get(ia.key)
            if i is None and unique_names:
                i = by_name.get(ia.filename)
            if i is None:
                key = ia.key
                if key in keys and ia.item_id is not None:
                    key = f"{ia.item_id}_{ia.key}"
                n = 1
                while key in keys:
                    n += 1
                    key = f"{ia.key}_{n}"
                keys.add(key)
                by_path[path] = len(merged)
                merged.append(replace(ia, key=key))
                continue
            base = merged[i]
            merged[i] = replace(
                base,
                media_type=base.media_type or ia.media_type,
                time=base.time if base.time is not None else ia.time,
                start=base.start if base.start is not None else ia.start,
                end=base.end if base.end is not None else ia.end,
                grid=base.grid or ia.grid,
                bands=base.bands or ia.bands,
                nodata=base.nodata if base.nodata is not None else ia.nodata,
                dtype=base.dtype or ia.dtype,
                item_id=base.item_id or ia.item_id,
            )
    return tuple(merged)


def with_file_name_times(assets: Iterable[AssetSpec]) -> tuple[AssetSpec, ...]:
    """Assets without a datetime get one from their file name (``openEO_2023-01-03Z.tif``) or key, if it has one."""
    out = []
    for a in assets:
        if a.time is None:
            time = time_from_name(a.filename)
            a = replace(a, time=time if time is not None else time_from_name(a.key))
        out.append(a)
    return tuple(out)


def select(assets: Iterable[AssetSpec], wanted: str | Sequence[str] | None) -> tuple[AssetSpec, ...]:
    """Assets whose key, role or media type (or format name) is in ``wanted``; None: every data asset."""
    assets = tuple(assets)
    if wanted is None:
        data = tuple(a for a in assets if "data" in a.roles or not a.roles)
        return data
    names = (wanted,) if isinstance(wanted, str) else tuple(wanted)
    formats = {_FORMAT_ALIASES.get(n.lower(), n.lower()) for n in names if isinstance(n, str)}
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
    return chosen


def asset_format(media_type: str | None, href: str = "", key: str = "") -> str | None:
    """The format family of a media type, falling back to the file extension of href or key."""
    if media_type:
        lowered = media_type.lower()
        for token, fmt in _MEDIA_TYPES:
            if token in lowered:
                return fmt
    for name in (urlsplit(href).path, key):
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in _EXTENSIONS:
            return _EXTENSIONS[suffix]
    return None


def require_format(spec: AssetSpec) -> str:
    """``spec.format``, or :class:`UnsupportedMediaTypeError` naming the asset and its media type."""
    fmt = spec.format
    if fmt is None:
        raise UnsupportedMediaTypeError(
            f"Asset {spec.key!r} has media type {spec.media_type!r}, which xr_openeo cannot open "
            f"(supported: GeoTIFF/COG, netCDF, JSON, CSV, Parquet, GeoJSON, Zarr). "
            "Pass assets=[...] to open the others.",
            key=spec.key,
            media_type=spec.media_type,
        )
    return fmt


def time_from_name(name: str) -> np.datetime64 | None:
    """``2023-01-03`` from ``openEO_2023-01-03Z.tif``, ``2023-12-31T21:41:00`` from ``…_20231231T214100Z…``."""
    for match in _NAME_DATE.finditer(name):
        groups = match.groups()
        parts = groups[:6] if groups[0] is not None else groups[6:]
        value = _datetime64(*parts)
        if value is not None:
            return value
    return None


# -- helpers --------------------------------------------------------------------------------------


def _kind(doc: Mapping[str, Any]) -> str:
    kind = doc.get("type")
    if kind == "Feature":
        return "item"
    if kind == "Collection" or (kind is None and "extent" in doc):
        return "collection"
    if kind is None and "assets" in doc:  # very old documents without a type
        return "item" if "properties" in doc else "collection"
    raise ResultsDocumentError(
        f"'type' must be 'Collection' (API 1.1+) or 'Feature' (API 1.0 Item), got {kind!r}", field="type"
    )


def _status(doc: Mapping[str, Any], kind: str) -> str:
    status = doc.get("openeo:status")
    if status is None and kind == "item" and isinstance(doc.get("properties"), Mapping):
        status = doc["properties"].get("openeo:status")
    if status is None:
        return "finished"
    if status in ("created", "queued"):  # job statuses some backends copy; the API maps them to running
        return "running"
    if status not in ("running", "canceled", "finished", "error"):
        raise ResultsDocumentError(
            f"'openeo:status' must be one of running/canceled/finished/error, got {status!r}", field="openeo:status"
        )
    return str(status)


def _item_defaults(properties: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, target in (("datetime", "time"), ("start_datetime", "start"), ("end_datetime", "end")):
        if properties.get(name) is not None:
            out[target] = _datetime(properties[name], f"{where}.{name}")
    grid = _grid(properties, where)
    if grid is not None:
        out["grid"] = grid
    return out


def _asset(key: Any, value: Any, base_url: str | None, where: str, defaults: Mapping[str, Any]) -> AssetSpec:
    if not isinstance(value, Mapping):
        raise ResultsDocumentError(f"{where} must be an object, got {type(value).__name__}", field=where)
    href = value.get("href")
    if not isinstance(href, str) or not href:
        raise ResultsDocumentError(f"{where}.href must be a non-empty string, got {href!r}", field=f"{where}.href")
    media_type = value.get("type")
    if media_type is not None and not isinstance(media_type, str):
        raise ResultsDocumentError(
            f"{where}.type must be a media type string, got {media_type!r}", field=f"{where}.type"
        )
    roles = value.get("roles")
    if roles is None:
        roles = ["data"]
    elif isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ResultsDocumentError(f"{where}.roles must be a list of strings, got {roles!r}", field=f"{where}.roles")
    bands, nodata, dtype = _bands(value, where)
    fields: dict[str, Any] = dict(defaults)
    for name, target in (("datetime", "time"), ("start_datetime", "start"), ("end_datetime", "end")):
        if value.get(name) is not None:
            fields[target] = _datetime(value[name], f"{where}.{name}")
    if asset_format(media_type, href, str(key)) in _TABULAR:
        # geopyspark copies job-level proj:* onto every asset; on a table they describe no grid.
        fields.pop("grid", None)
    else:
        grid = _grid(value, where)
        if grid is not None:
            fields["grid"] = grid
    title = value.get("title")
    return AssetSpec(
        key=str(key),
        href=urljoin(base_url, href) if base_url else href,
        media_type=media_type,
        roles=tuple(roles),
        bands=bands,
        nodata=nodata,
        dtype=dtype,
        title=title if isinstance(title, str) else None,
        **fields,
    )


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


def _datetime(value: Any, where: str) -> np.datetime64:
    if not isinstance(value, str):
        raise ResultsDocumentError(f"{where} must be an RFC 3339 string, got {value!r}", field=where)
    match = _RFC3339.fullmatch(value.strip())
    result = _datetime64(*match.groups()) if match else None
    if result is None:
        raise ResultsDocumentError(
            f"{where} is not an RFC 3339 datetime between the years 1678 and 2261: {value!r}", field=where
        )
    return result


def _datetime64(
    year: str,
    month: str,
    day: str,
    hour: str | None = None,
    minute: str | None = None,
    second: str | None = None,
    fraction: str | None = None,
    zone: str | None = None,
) -> np.datetime64 | None:
    """UTC ``datetime64[ns]`` from the parts of an RFC 3339 datetime; None if invalid or out of ns range."""
    seconds = int(second or 0)
    leap = seconds == 60  # RFC 3339 leap second: the next second
    try:
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), seconds - leap)
    except ValueError:
        return None
    if not 1678 <= moment.year <= 2261:  # datetime64[ns] spans 1677-09-21 .. 2262-04-11
        return None
    result = np.datetime64(moment.isoformat(), "ns") + np.timedelta64(int(leap), "s")
    if fraction:
        result += np.timedelta64(int(fraction[:9].ljust(9, "0")), "ns")
    if zone and zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        if hours > 23 or minutes > 59:
            return None
        offset = np.timedelta64(hours * 60 + minutes, "m")
        result = result - offset if zone[0] == "+" else result + offset
    return result


def _links(links: Any, base_url: str | None) -> list[tuple[str, str]]:
    if links is None:
        return []
    if not isinstance(links, list):
        raise ResultsDocumentError(f"'links' must be a list, got {type(links).__name__}", field="links")
    out = []
    for i, link in enumerate(links):
        if not isinstance(link, Mapping) or not isinstance(link.get("href"), str):
            raise ResultsDocumentError(f"links[{i}] must be an object with an 'href' string", field=f"links[{i}]")
        href = urljoin(base_url, link["href"]) if base_url else link["href"]
        out.append((str(link.get("rel", "")), href))
    return out


def _optional_str(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return value if isinstance(value, str) else None
