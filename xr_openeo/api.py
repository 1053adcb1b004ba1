"""The orchestrator behind every front: results source -> document -> specs -> readers -> Dataset/DataFrame."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import JobFailedError, JobNotFinishedError, ResultsDocumentError, XrOpenEOError
from .http import Auth, ResultsLocator, get_json
from .results import (
    AssetSpec,
    ResultsInfo,
    merge_items,
    parse_item,
    parse_results,
    redact,
    require_format,
    select,
    with_file_name_times,
)

RASTER_FORMATS = ("geotiff", "netcdf", "zarr")
TABLE_FORMATS = ("json", "csv", "parquet", "geojson")


@dataclass(frozen=True)
class Results:
    """A results document resolved from any source, with what is needed to read its assets."""

    info: ResultsInfo
    assets: tuple[AssetSpec, ...]
    auth: Auth
    results_url: str | None
    locator: ResultsLocator


def load_results(
    source: Any, *, connection: Any = None, partial: bool = False, assets: Any = None, pickle_token: bool = False
) -> Results:
    """Fetch and parse the results document of ``source`` and its item documents (concurrently)."""
    doc, auth, url = _document(source, connection, partial)
    info = parse_results(doc, base_url=url)
    if info.status != "finished" and not partial:
        raise JobNotFinishedError(
            f"Job {info.job_id!r} is {info.status}: its results are not complete. Wait for it to finish, "
            "or pass partial=True to open what it has written so far.",
            job_id=info.job_id,
        )
    specs = info.assets
    if info.item_links:
        with ThreadPoolExecutor(max_workers=min(16, len(info.item_links))) as pool:
            items = list(
                pool.map(
                    lambda href: parse_item(get_json(href, auth, what="item document"), base_url=href), info.item_links
                )
            )
        specs = merge_items(specs, items)
    specs = with_file_name_times(specs)
    chosen = select(specs, assets)
    sources = tuple(s for s in (url if url and url.startswith("http") else None, info.canonical_url) if s)
    locator = ResultsLocator({a.key: a.href for a in specs}, auth, sources, pickle_token=pickle_token)
    return Results(info=info, assets=chosen, auth=auth, results_url=url, locator=locator)


def _document(source: Any, connection: Any, partial: bool) -> tuple[Any, Auth, str | None]:
    """(document, auth, URL it came from) for every kind of source open_results accepts."""
    auth = Auth.from_connection(connection) if connection is not None else Auth()
    if connection is not None:
        from .jobs import remember_connection

        remember_connection(connection)
    kind = type(source).__name__
    module = type(source).__module__
    if _is_openeo(source, "JobResults"):
        source = source.get_job() if hasattr(source, "get_job") else source._job
    if _is_openeo(source, "BatchJob"):
        from .jobs import remember_connection

        remember_connection(source.connection)
        auth = Auth.from_connection(source.connection)
        return _fetch_results(f"{auth.root}/jobs/{source.job_id}/results", auth, partial, source.job_id)
    if module.startswith("pystac"):
        return source.to_dict(), auth, _pystac_self(source)
    if isinstance(source, Mapping):
        return source, auth, None
    if isinstance(source, os.PathLike) or (isinstance(source, str) and not _is_url(source) and Path(source).is_file()):
        path = Path(source)
        try:
            return json.loads(path.read_text()), auth, path.resolve().as_uri()
        except (OSError, ValueError) as exc:
            raise ResultsDocumentError(f"{path} is not a readable results document (JSON): {exc}") from None
    if isinstance(source, str) and _is_url(source):
        return _fetch_results(source, auth, partial, None)
    if isinstance(source, str):
        if connection is None:
            raise XrOpenEOError(
                f"{source!r} is neither a URL nor a file; to open the results of job {source!r}, "
                "also pass connection=<openeo.Connection>"
            )
        return _fetch_results(f"{auth.root}/jobs/{source}/results", auth, partial, source)
    raise TypeError(
        f"open_results cannot open a {kind}: pass an openeo BatchJob or JobResults, a job id with connection=, "
        "a results URL, a results document (dict or path), or a pystac Collection/Item"
    )


def _fetch_results(url: str, auth: Auth, partial: bool, job_id: str | None) -> tuple[Any, Auth, str]:
    from .errors import JobError

    request_url = f"{url}{'&' if '?' in url else '?'}partial=true" if partial else url
    try:
        return get_json(request_url, auth, what="results document"), auth, url
    except JobError as exc:
        if exc.http_status == 424:
            raise JobFailedError(f"{exc} (job {job_id or redact(url)})", job_id=job_id, http_status=424) from None
        if exc.job_id is None and job_id is not None:  # keep the job id (and the HTTP status) on the error
            raise type(exc)(str(exc), job_id=job_id, http_status=exc.http_status) from None
        raise


def _is_openeo(source: Any, name: str) -> bool:
    """``source`` is an ``openeo`` client ``name`` (BatchJob, JobResults) or a subclass of one."""
    return any(c.__name__ == name and c.__module__.startswith("openeo") for c in type(source).__mro__)


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _pystac_self(obj: Any) -> str | None:
    href = obj.get_self_href() if hasattr(obj, "get_self_href") else None
    return href if isinstance(href, str) and _is_url(href) else None


# -- rasters --------------------------------------------------------------------------------------


def open_rasters(
    results: Results,
    *,
    chunks: Any = None,
    dtype: str | None = None,
    lazy_arrays: bool = False,
    on_read_error: str = "raise",
) -> Any:
    """The raster assets as a Dataset (or a DataTree when they sit on different grids).

    ``lazy_arrays``: variables are xarray lazily indexed arrays (for the xarray engine, which makes
    the dask graph itself) instead of dask arrays. ``on_read_error``: as for :func:`open_results`.
    """
    from .assemble import Provenance

    specs = [a for a in results.assets if require_format(a) in RASTER_FORMATS]
    if not specs:
        tables = ", ".join(f"{a.key} ({a.media_type})" for a in results.assets) or "none"
        raise XrOpenEOError(
            f"These results hold no raster assets (they have: {tables}); use xr_openeo.open_dataframe for tables."
        )
    provenance = Provenance(
        backend=results.auth.root,
        job_id=results.info.job_id,
        results_url=results.results_url,
        asset_keys=tuple(a.key for a in specs),
        status=results.info.status,
    )
    groups: dict[str, Any] = {}
    geotiffs = [a for a in specs if a.format == "geotiff"]
    for name, members in _grid_groups(geotiffs).items():
        groups[name] = _geotiff_dataset(members, results, chunks, dtype, provenance, lazy_arrays, on_read_error)
    netcdfs = [a for a in specs if a.format == "netcdf"]
    if netcdfs:
        groups["netcdf" if groups else "data"] = _netcdf_dataset(netcdfs, results, chunks, provenance, on_read_error)
    zarrs = [a for a in specs if a.format == "zarr"]
    for spec in zarrs:
        groups[spec.key] = _zarr_dataset(spec, results, chunks, provenance, on_read_error)
    if len(groups) == 1:
        return next(iter(groups.values()))
    from .assemble import as_tree

    return as_tree(groups)


def _grid_groups(specs: Sequence[AssetSpec]) -> dict[str, list[AssetSpec]]:
    """GeoTIFF assets grouped by grid and band layout (unknown grids together: one header read for them)."""
    keyed: dict[Any, list[AssetSpec]] = {}
    for spec in specs:
        keyed.setdefault((spec.grid, spec.bands), []).append(spec)
    if len(keyed) == 1:
        return {"data": next(iter(keyed.values()))}
    return {f"grid_{i}": members for i, members in enumerate(keyed.values())}


def _geotiff_dataset(
    specs: Sequence[AssetSpec],
    results: Results,
    chunks: Any,
    dtype: str | None,
    provenance: Any,
    lazy_arrays: bool,
    on_read_error: str = "raise",
) -> Any:
    from dataclasses import replace

    from .assemble import band_names, raster_dataset, time_steps, unique_names
    from .lazy import DEFAULT_TILE, band_variable, normalize_chunks, raster_array, spatial_chunks, time_chunks
    from .readers.geotiff import GeoTIFFReader, file_info

    first = specs[0]
    grid, tile, nodata = first.grid, DEFAULT_TILE, first.nodata
    descriptions: tuple[str | None, ...] = ()
    count = len(first.bands)
    header_read = False
    if grid is None or not count:
        header_read = True
        info = file_info(first, results.locator)  # one header for the whole group
        grid, tile, descriptions, count = info.grid, info.block_shape[0], info.descriptions, info.count
        nodata = nodata if nodata is not None else info.nodata
    names = unique_names(band_names(first, count, descriptions))
    out_dtype = dtype or first.dtype or "float32"  # the same whether or not a header was read
    if on_read_error == "fill" and not _is_float(out_dtype):
        if nodata is None and not header_read:  # the metadata has none; the file may (one header GET)
            nodata = file_info(first, results.locator).nodata
        if nodata is None or nodata != nodata:  # none, or NaN: nothing an integer can hold
            raise ValueError(
                f"on_read_error='fill' has nothing to fill failed reads of {out_dtype} data with: asset "
                f"{first.key!r} has no integer nodata value. Pass dtype='float32' (failed reads become NaN), "
                "have the job write a nodata value, or use on_read_error='raise'."
            )
    fill = nodata if nodata is not None and not _is_float(out_dtype) else None
    times, steps = time_steps([replace(s, grid=grid) for s in specs])
    reader = GeoTIFFReader(results.locator, out_dtype, count, fill, grid.shape, on_read_error)
    keys = [tuple(s.key for s in step) for step in steps]
    wanted = normalize_chunks(chunks)
    preferred = {
        "t": time_chunks(len(keys), wanted["t"])[0],
        "y": spatial_chunks(grid.shape[0], wanted["y"], tile)[0],
        "x": spatial_chunks(grid.shape[1], wanted["x"], tile)[0],
    }
    if lazy_arrays:
        variables = {name: band_variable(reader, keys, grid.shape, i) for i, name in enumerate(names)}
    else:
        array = raster_array(reader, keys, grid.shape, wanted, tile=tile)
        variables = {name: array[:, i] for i, name in enumerate(names)}
    return raster_dataset(variables, grid, times, nodata, provenance, preferred)


def _is_float(dtype: str) -> bool:
    import numpy as np

    return bool(np.issubdtype(np.dtype(dtype), np.floating))


def _netcdf_dataset(
    specs: Sequence[AssetSpec], results: Results, chunks: Any, provenance: Any, on_read_error: str = "raise"
) -> Any:
    from .readers.netcdf import combine_netcdf, open_netcdf

    nc_chunks = None if chunks in (None, "auto") else chunks
    datasets = [open_netcdf(spec, results.locator, chunks=nc_chunks, on_read_error=on_read_error) for spec in specs]
    ds = datasets[0] if len(datasets) == 1 else combine_netcdf(datasets)
    ds.attrs.update(provenance.attrs())
    return ds


def _zarr_dataset(spec: AssetSpec, results: Results, chunks: Any, provenance: Any, on_read_error: str = "raise") -> Any:
    from .readers.zarr import open_zarr

    zarr_chunks = None if chunks in (None, "auto") else chunks
    ds = open_zarr(spec, results.locator, chunks=zarr_chunks, on_read_error=on_read_error)
    ds.attrs.update(provenance.attrs())
    return ds


# -- tables ---------------------------------------------------------------------------------------


def read_tables(results: Results) -> dict[str, Any]:
    """Every tabular asset as a DataFrame, keyed by asset key."""
    from .http import fetch
    from .readers.tables import read_table

    out = {}
    for spec in results.assets:
        if require_format(spec) in TABLE_FORMATS:
            data, _, _ = fetch(spec.key, results.locator)
            out[spec.key] = read_table(data, spec)
    return out


# -- public functions -----------------------------------------------------------------------------


def open_results(
    source: Any,
    *,
    connection: Any = None,
    chunks: Any = None,
    assets: str | Sequence[str] | None = None,
    partial: bool = False,
    dtype: str | None = None,
    pickle_token: bool = False,
    on_read_error: str | None = None,
    _lazy_arrays: bool = False,
) -> Any:
    """Open the results of an openEO batch job lazily, as a dask-backed :class:`xarray.Dataset`.

    Parameters
    ----------
    source
        An ``openeo`` ``BatchJob`` or ``JobResults``; a job id (with ``connection``); a results URL
        (``…/jobs/{id}/results``, or a signed/canonical one that needs no auth); a results document
        as a dict or a path to one; or a pystac ``Collection``/``Item``.
    connection
        The ``openeo.Connection`` whose token authenticates requests under its root URL (only there).
    chunks
        ``{"t": k, "y": n, "x": n}``: dates per task (default 1) and spatial chunk sizes (rounded up to
        whole tiles; default: the whole raster up to 2048 pixels a side, else 1024).
    assets
        Asset keys, roles, media types or format names (``"geotiff"``…) to open; default all data assets.
    partial
        Open what a running, failed or canceled job has written so far (API 1.2 ``partial=true``).
    dtype
        Output dtype of GeoTIFF variables; default the metadata's ``data_type``, else ``float32``
        (nodata becomes NaN in float output; the original nodata stays in ``encoding["_FillValue"]``).
    pickle_token
        Allow the bearer token into pickles of the dask graph, so that workers of a distributed
        cluster in other processes can renew expired URLs through the authenticated results URL and
        read hrefs that need the token. Anyone holding such a pickle can use the token until it
        expires. Without it (the default) workers renew through the signed canonical link only.
    on_read_error : {"raise", "fill"}, optional
        What a raster read that still fails after the retries (HTTP error, dropped or truncated
        download, expired URL that cannot be renewed) does when computing: ``"raise"``
        :class:`~xr_openeo.errors.AssetReadError` naming the asset, its redacted href and the HTTP
        status; or ``"fill"`` the chunk with the variable's nodata (NaN for floats) and warn with
        :class:`~xr_openeo.errors.FailedReadWarning`, which names the same. Any other error still
        raises. Integer GeoTIFF output needs a nodata value to fill with (else ``ValueError`` here:
        pass ``dtype="float32"``). Default: :func:`xr_openeo.set_options`, else the environment
        variable ``XR_OPENEO_ON_READ_ERROR``, else ``"raise"``. GeoTIFF, netCDF and Zarr assets.

    Returns
    -------
    xarray.Dataset or xarray.DataTree
        One variable per band with dims ``(t, y, x)``; a DataTree with one group per grid when the
        assets do not share one. Time series (JSON/CSV/Parquet/GeoJSON) give dims ``(feature, t)``.
    """
    from ._options import get_option

    on_read_error = get_option("on_read_error", on_read_error)  # checked before any request
    results = load_results(source, connection=connection, partial=partial, assets=assets, pickle_token=pickle_token)
    formats = {require_format(a) for a in results.assets}
    if not results.assets:
        return _empty(results)
    if formats & set(RASTER_FORMATS):
        return open_rasters(results, chunks=chunks, dtype=dtype, lazy_arrays=_lazy_arrays, on_read_error=on_read_error)
    return _tables_as_dataset(results)


def open_dataframe(
    source: Any,
    *,
    connection: Any = None,
    assets: str | Sequence[str] | None = None,
    partial: bool = False,
    features: Any = None,
) -> Any:
    """The tabular results (JSON time series, CSV, Parquet/GeoParquet, GeoJSON) as pandas objects.

    Time series are indexed by ``(t, feature)`` with one column per band (the document's band
    names), then the features' properties and ``geometry`` where the files carry them (a
    GeoDataFrame). Assets of one series combine into one frame; different tables are concatenated
    with an ``asset`` index level. ``features`` (the job's features in input order: a
    GeoDataFrame, DataFrame or GeoJSON FeatureCollection) is joined on by feature number.
    """
    from .readers.tables import combine_tables, join_features

    results = load_results(source, connection=connection, partial=partial, assets=assets)
    tables = read_tables(results)
    if not tables:
        have = ", ".join(f"{a.key} ({a.media_type})" for a in results.assets) or "none"
        raise XrOpenEOError(f"These results hold no tabular assets (they have: {have}); use xr_openeo.open_results.")
    frame = combine_tables(tables, results.assets)
    return frame if features is None else join_features(frame, features)


def _tables_as_dataset(results: Results) -> Any:
    import xarray as xr

    from .assemble import Provenance
    from .readers.tables import FEATURE, combine_tables, to_vector_cube

    provenance = Provenance(
        backend=results.auth.root,
        job_id=results.info.job_id,
        results_url=results.results_url,
        asset_keys=tuple(a.key for a in results.assets),
        status=results.info.status,
    )
    tables = read_tables(results)
    frame = combine_tables(tables, results.assets)
    datasets = []
    for part in [frame] if "asset" not in frame.index.names else list(tables.values()):
        if FEATURE in (part.index.names or ()):
            datasets.append(to_vector_cube(part))
        else:
            datasets.append(xr.Dataset.from_dataframe(part.drop(columns="geometry", errors="ignore")))
    ds = datasets[0] if len(datasets) == 1 else xr.merge(datasets, compat="no_conflicts", join="outer")
    ds.attrs.update(provenance.attrs())
    return ds


def _empty(results: Results) -> Any:
    import xarray as xr

    from .assemble import Provenance

    ds = xr.Dataset()
    ds.attrs.update(
        Provenance(
            backend=results.auth.root,
            job_id=results.info.job_id,
            results_url=results.results_url,
            asset_keys=(),
            status=results.info.status,
        ).attrs()
    )
    return ds


def compute_batch(
    cube: Any,
    *,
    connection: Any = None,
    title: str | None = None,
    description: str | None = None,
    out_format: str | None = None,
    job_options: Mapping[str, Any] | None = None,
    chunks: Any = None,
    progress: bool | str = True,
    timeout: float | None = None,
    cancel_on_interrupt: bool = True,
    reuse: bool = False,
    assets: str | Sequence[str] | None = None,
    dtype: str | None = None,
    pickle_token: bool = False,
    on_read_error: str | None = None,
) -> Any:
    """Run ``cube`` as an openEO batch job, wait for it, and open its results lazily.

    Parameters
    ----------
    cube
        An ``openeo`` DataCube or VectorCube, or a process graph (dict, JSON string or path) with
        ``connection``.
    title, description, job_options
        Passed to the job. ``out_format``: format of the ``save_result`` added when the graph has none.
    progress, timeout, cancel_on_interrupt
        How to wait: a progress bar (or widget, or log lines; False for none); seconds before
        :class:`~xr_openeo.errors.JobTimeoutError` (the job keeps running); cancel the job on Ctrl-C.
    reuse
        Open the results of a finished job of this user with the same process graph (and job
        options) when there is one, instead of running a new job.
    chunks, assets, dtype, pickle_token, on_read_error
        As for :func:`open_results`.

    Returns
    -------
    xarray.Dataset or xarray.DataTree
        Dask-backed; time series as dims ``(t, geometry)``. Raises
        :class:`~xr_openeo.errors.JobFailedError` with the job's error logs when it fails.
    """
    from . import jobs
    from ._options import get_option

    get_option("on_read_error", on_read_error)  # a bad value fails before a job runs
    conn, graph = jobs.prepare_process_graph(cube, connection=connection, out_format=out_format)
    jobs.remember_connection(conn)
    job = jobs.find_reusable(conn, graph, job_options) if reuse else None
    if job is None:
        job = jobs.as_batch_job(graph, connection=conn, title=title, description=description, job_options=job_options)
        info = jobs.wait(job, progress=progress, timeout=timeout, cancel_on_interrupt=cancel_on_interrupt)
    else:
        info = job.describe()
    ds = open_results(
        job, chunks=chunks, assets=assets, dtype=dtype, pickle_token=pickle_token, on_read_error=on_read_error
    )
    for name in ("created", "updated"):
        if isinstance(info.get(name), str):
            ds.attrs[f"openeo:{name}"] = info[name]
    return ds


def from_cube(cube: Any) -> Any:
    """A deferred :class:`xarray.Dataset` bound to ``cube``'s process graph; no request is sent.

    It shows what the client knows of the cube (dimension names, band labels, extents) as
    coordinates and attributes and holds no data variables: result shapes are known only once the
    backend has run. ``ds.openeo.compute_batch()`` runs it.
    """
    import xarray as xr

    from . import jobs

    graph = cube.flat_graph() if hasattr(cube, "flat_graph") else None
    if graph is None:
        raise TypeError(f"from_cube needs an openeo DataCube or VectorCube, got {type(cube).__name__}")
    connection = getattr(cube, "connection", None)
    if connection is not None:
        jobs.remember_connection(connection)
    coords: dict[str, Any] = {}
    attrs: dict[str, Any] = {
        "openeo:status": "not computed yet: call ds.openeo.compute_batch() to run it as a batch job",
        "openeo:process_graph": json.dumps(graph),
        "openeo:backend": connection.root_url.rstrip("/") if connection is not None else "",
    }
    metadata = getattr(cube, "metadata", None)
    if metadata is not None:
        attrs["openeo:dimensions"] = [str(d) for d in metadata.dimension_names()]
        if metadata.has_band_dimension():
            coords["bands"] = list(metadata.band_names)
        if metadata.has_temporal_dimension():
            extent = metadata.temporal_dimension.extent
            attrs["openeo:temporal_extent"] = [str(v) for v in (extent or []) if v is not None]
        for dim in metadata.spatial_dimensions:
            attrs[f"openeo:{dim.name}_extent"] = [float(v) for v in (dim.extent or []) if v is not None]
    return xr.Dataset(coords=coords, attrs=attrs)
