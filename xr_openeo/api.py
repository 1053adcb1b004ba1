"""The orchestrator behind every front: results source -> document -> specs -> readers -> Dataset/DataFrame."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import XrOpenEOError
from .http import Auth, Links
from .results import AssetSpec, ResultsInfo, require_format, select

RASTER_FORMATS = ("geotiff", "netcdf", "zarr")
TABLE_FORMATS = ("json", "csv", "parquet", "geojson")


@dataclass(frozen=True)
class Results:
    """A results document resolved from any source, with what is needed to read its assets."""

    info: ResultsInfo
    assets: tuple[AssetSpec, ...]
    auth: Auth
    results_url: str | None
    locator: Links
    backend: str | None = None


def load_results(
    source: Any, *, connection: Any = None, partial: bool = False, assets: Any = None, pickle_token: bool = False
) -> Results:
    """Fetch and parse the results document of ``source`` and its item documents (concurrently)."""
    from .sources import load_results as load

    loaded = load(source, connection=connection, partial=partial, pickle_token=pickle_token)
    if loaded.connection is not None:
        from .jobs import remember_connection

        remember_connection(loaded.connection)
    return Results(
        info=loaded.info,
        assets=select(loaded.specs, assets),
        auth=loaded.auth,
        results_url=loaded.results_url,
        locator=loaded.links,
        backend=loaded.backend,
    )


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
        backend=results.backend,
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
        assets do not share one. Time series (JSON/CSV/Parquet/GeoJSON) give dims ``(t, geometry)``.
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
) -> Any:
    """The tabular results (JSON time series, CSV, Parquet/GeoParquet, GeoJSON) as pandas objects.

    Time series are indexed by ``(t, geometry)`` with one column per band (real band names where
    the metadata has them); GeoParquet and GeoJSON give GeoDataFrames. Several table assets are
    concatenated with an ``asset`` index level.
    """
    import pandas as pd

    results = load_results(source, connection=connection, partial=partial, assets=assets)
    tables = read_tables(results)
    if not tables:
        have = ", ".join(f"{a.key} ({a.media_type})" for a in results.assets) or "none"
        raise XrOpenEOError(f"These results hold no tabular assets (they have: {have}); use xr_openeo.open_results.")
    if len(tables) == 1:
        return next(iter(tables.values()))
    return pd.concat(tables, names=["asset"])


def _tables_as_dataset(results: Results) -> Any:
    import xarray as xr

    from .assemble import Provenance
    from .readers.tables import timeseries_to_dataset

    provenance = Provenance(
        backend=results.backend,
        job_id=results.info.job_id,
        results_url=results.results_url,
        asset_keys=tuple(a.key for a in results.assets),
        status=results.info.status,
    )
    datasets = []
    for frame in read_tables(results).values():
        if isinstance(frame, xr.Dataset):
            datasets.append(frame)
        elif {"t", "geometry"} <= set(frame.index.names or ()):
            datasets.append(timeseries_to_dataset(frame))
        else:
            datasets.append(xr.Dataset.from_dataframe(frame.drop(columns="geometry", errors="ignore")))
    ds = datasets[0] if len(datasets) == 1 else xr.merge(datasets)
    ds.attrs.update(provenance.attrs())
    return ds


def _empty(results: Results) -> Any:
    import xarray as xr

    from .assemble import Provenance

    ds = xr.Dataset()
    ds.attrs.update(
        Provenance(
            backend=results.backend,
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
