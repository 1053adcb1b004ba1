"""The raster half of the orchestrator: chosen raster assets → readers → cubes → Datasets.

Header reads happen here, and only where the results document does not give what is needed
(the grid, the bands, a dtype or nodata value the options call for), or where it cannot be
right (several files of one date with the same grid). They go out concurrently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ._options import get_option
from .assemble import Provenance, as_tree, raster_dataset
from .cube import RasterCube
from .engine_arrays import band_variables
from .lazy import band_arrays, resolve_chunks
from .mosaic import Layout, Source, duplicated_grids, plan
from .readers import raster_reader
from .readers.base import FileInfo, Reader
from .readers.nodata import fill_value, is_float, output_dtype
from .results import AssetSpec

_T = TypeVar("_T")


@dataclass(frozen=True)
class RasterOptions:
    """How to read: chunks (normalized), output dtype, masking, failed reads, and for which front."""

    chunks: Mapping[str, Any]
    dtype: str | None = None
    masked: bool = True
    on_read_error: str = "raise"
    engine: bool = False  # the xarray engine gets lazily indexed arrays, not dask arrays


def open_rasters(specs: Sequence[AssetSpec], links: Any, provenance: Provenance, options: RasterOptions) -> Any:
    """A Dataset of the raster assets ``specs``, or a DataTree with one group per pixel grid."""
    datasets: dict[str, Any] = {}
    by_format: dict[str, list[AssetSpec]] = {}
    for spec in specs:
        by_format.setdefault(spec.format or "", []).append(spec)
    for fmt, group in by_format.items():
        reader = raster_reader(fmt, links, masked=options.masked)
        plain: dict[str, Any] = {}
        if fmt == "geotiff":
            sources = geotiff_sources(group, reader, options)
        else:
            sources, plain = cf_sources(group, reader)
        for layout in plan(sources):
            datasets[f"grid_{len(datasets)}"] = _dataset(layout, reader, provenance, options)
        for key, ds in plain.items():
            datasets[key] = provenance.apply(ds if options.engine else ds.chunk())
    if len(datasets) == 1:
        return next(iter(datasets.values()))
    return as_tree(datasets)


# -- sources ----------------------------------------------------------------------------------------


def described(spec: AssetSpec) -> FileInfo | None:
    """What the results document says of a GeoTIFF, when it says enough (grid and bands)."""
    if spec.grid is None or not spec.bands:
        return None
    return FileInfo(
        grid=spec.grid,
        bands=tuple(range(len(spec.bands))),
        names=tuple(spec.bands),
        dtype=spec.dtype or "",
        nodata=spec.nodata,
    )


def geotiff_sources(specs: Sequence[AssetSpec], reader: Reader, options: RasterOptions) -> list[Source]:
    """GeoTIFF specs with their file infos: from the document where it suffices, else from headers."""
    infos: list[FileInfo | None] = [described(spec) for spec in specs]
    headers: dict[int, FileInfo] = {}
    unknown = [i for i, info in enumerate(infos) if info is None]
    if unknown:
        per_date = Counter(_when(specs[i]) for i in unknown)
        # One file per date: their grids are assumed alike (one header; every read checks its own).
        wanted = unknown if max(per_date.values()) > 1 else unknown[:1]
        headers.update(_headers(reader, specs, wanted))
    needs_dtype = not options.masked and not options.dtype and not specs[0].dtype
    # Failed reads of integer output are filled with nodata: the file's, when the document has none.
    integer = needs_dtype or not is_float(options.dtype or specs[0].dtype or "float32")
    needs_nodata = options.on_read_error == "fill" and specs[0].nodata is None and integer
    if (needs_dtype or needs_nodata) and not headers:
        headers.update(_headers(reader, specs, [0]))
    assumed = next(iter(headers.values()), None)
    sources = []
    for i, spec in enumerate(specs):
        info = headers.get(i) or infos[i] or assumed
        assert info is not None
        sources.append(Source(spec, info, from_header=i in headers))
    suspicious = duplicated_grids(sources)
    if suspicious:
        index = {s.spec.key: i for i, s in enumerate(sources)}
        read = _headers(reader, specs, [index[k] for k in suspicious])
        for i, info in read.items():
            sources[i] = Source(specs[i], info, from_header=True)
    return sources


def cf_sources(specs: Sequence[AssetSpec], reader: Any) -> tuple[list[Source], dict[str, Any]]:
    """netCDF/Zarr specs with their infos (each file's metadata is read); files that are not
    gridded rasters come back as plain lazily opened datasets, by asset key."""
    from .readers.cf import NotGridded

    def info(spec: AssetSpec) -> FileInfo | None:
        try:
            return reader.info(spec.key)  # type: ignore[no-any-return]
        except NotGridded:
            return None

    infos = _concurrently(info, specs)
    sources = [Source(spec, i, from_header=True) for spec, i in zip(specs, infos, strict=True) if i is not None]
    plain = {spec.key: reader.dataset(spec.key) for spec, i in zip(specs, infos, strict=True) if i is None}
    return sources, plain


def _when(spec: AssetSpec) -> object:
    return spec.time if spec.time is not None else spec.start


def _headers(reader: Reader, specs: Sequence[AssetSpec], indexes: Sequence[int]) -> dict[int, FileInfo]:
    infos = _concurrently(lambda i: reader.info(specs[i].key), list(indexes))
    return dict(zip(indexes, infos, strict=True))


def _concurrently(fn: Callable[[Any], _T], items: Sequence[Any]) -> list[_T]:
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), get_option("item_concurrency"))) as pool:
        return list(pool.map(fn, items))


# -- one cube ---------------------------------------------------------------------------------------


def _dataset(layout: Layout, reader: Reader, provenance: Provenance, options: RasterOptions) -> Any:
    first = layout.sources[0]
    from_files = reader.format != "geotiff" or first.from_header
    dtype = output_dtype(
        options.dtype,
        first.spec.dtype if reader.format == "geotiff" else None,
        first.info.dtype if from_files else None,
        masked=options.masked,
    )
    nodata = next((s.spec.nodata for s in layout.sources if s.spec.nodata is not None), None)
    if nodata is None:
        nodata = next((s.info.nodata for s in layout.sources if s.info.nodata is not None), None)
    fill = fill_value(dtype, nodata, masked=options.masked)
    if nodata is None and options.masked and is_float(dtype):
        nodata = float("nan")  # unknown without a header: missing pixels are NaN, and say so to GIS tools
    if fill is None and (options.on_read_error == "fill" or _has_holes(layout)):
        why = "failed reads" if options.on_read_error == "fill" else "the pixels no file covers"
        raise ValueError(
            f"on_read_error='fill' has nothing to fill {why} of {dtype} data with: asset {first.spec.key!r} has no "
            f"{dtype} nodata value. Pass dtype='float32' (missing pixels become NaN), have the job write a nodata "
            "value, or use on_read_error='raise'."
            if options.on_read_error == "fill"
            else f"The files of these results leave holes in their mosaic, and {dtype} data without a nodata value "
            "cannot mark them. Pass dtype='float32' (holes become NaN)."
        )
    cube = RasterCube(
        reader,
        layout.grid,
        len(layout.times),
        len(layout.names),
        layout.placements,
        dtype,
        fill,
        masked=options.masked,
        on_read_error=options.on_read_error,
    )
    chunks = resolve_chunks(
        options.chunks, (len(layout.times), *layout.grid.shape), dtype=dtype, tile=layout.tile, extent=layout.extent
    )
    variables = band_variables(cube) if options.engine else band_arrays(cube, chunks)
    preferred = {
        dim: sizes[0] if len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0] else sizes
        for dim, sizes in zip(("t", "y", "x"), chunks, strict=True)
    }
    attrs = {name: _band_attrs(layout, name) for name in layout.names}
    ds = raster_dataset(
        layout, variables, provenance, nodata=nodata, masked=options.masked, preferred_chunks=preferred, attrs=attrs
    )
    close = getattr(reader, "close", None)
    if close is not None:
        ds.set_close(close)
    return ds


def _band_attrs(layout: Layout, name: str) -> dict[str, Any]:
    for source in layout.sources:
        for band, band_name in zip(source.info.bands, source.info.names, strict=False):
            if band_name == name and band in source.info.attrs:
                return dict(source.info.attrs[band])
    return {}


def _has_holes(layout: Layout) -> bool:
    area = layout.grid.shape[0] * layout.grid.shape[1]
    covered = Counter[int]()
    for p in layout.placements:
        for step in p.steps:
            covered[step] += p.shape[0] * p.shape[1]
    return any(covered[t] < area for t in range(len(layout.times)))


def _with_key(spec: AssetSpec, key: str) -> AssetSpec:
    return replace(spec, key=key)
