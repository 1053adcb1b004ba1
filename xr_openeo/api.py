"""The orchestrator behind every front: source → results document → asset specs → readers → Dataset/DataFrame."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from ._options import get_option
from .assemble import ConnectionRef, Provenance, as_tree, empty_dataset
from .errors import SkippedAssetWarning, UnsupportedMediaTypeError, XrOpenEOError
from .lazy import normalize_chunks
from .readers import RASTER_FORMATS, TABLE_FORMATS
from .results import AssetSpec

log = logging.getLogger("xr_openeo")


# -- opening ------------------------------------------------------------------------------------------


def open_results(
    source: Any,
    *,
    connection: Any = None,
    chunks: Any = None,
    assets: str | Sequence[str] | None = None,
    partial: bool = False,
    dtype: str | None = None,
    masked: bool = True,
    pickle_token: bool = False,
    on_read_error: str | None = None,
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
        Dask chunks, as ``xr.open_dataset`` takes them: ``None`` (default), ``"auto"``, an int, or
        a dict by dimension (``t``, ``y``, ``x``) of ``"auto"``, -1, None, an int or a tuple of
        ints. Defaults: one date per chunk; spatially a whole file when one date of it fits dask's
        ``array.chunk-size``, else whole tiles that do. Spatial ints are rounded up to whole tiles.
        Whatever the chunks, a selection of the result reads only the tiles it touches.
    assets
        Asset keys, roles, media types or format names (``"geotiff"``…) to open. Default: every
        data asset xr_openeo can read; the others are skipped and listed in ``ds.openeo.assets``.
    partial
        Open what a running, failed or canceled job has written so far (API 1.2 ``partial=true``).
    dtype
        Output dtype; default the metadata's ``data_type``, else ``float32`` (or, with
        ``masked=False``, the files' own).
    masked
        True (default): nodata pixels become NaN (the nodata value stays in
        ``encoding["_FillValue"]`` and ``ds.B04.rio.encoded_nodata``). False: the files' own dtype
        and values, nodata included (``ds.B04.rio.nodata``); the fastest read.
    pickle_token
        Allow the bearer token into pickles of the dask graph, so that workers of a distributed
        cluster in other processes can renew expired URLs through the authenticated results URL and
        read hrefs that need the token. Anyone holding such a pickle can use the token until it
        expires. Without it (the default) workers renew through the signed canonical link only.
    on_read_error : {"raise", "fill"}, optional
        What a read that still fails after the retries does when computing: ``"raise"``
        :class:`~xr_openeo.errors.AssetReadError` naming the asset, its redacted href and the HTTP
        status; or ``"fill"`` the window with nodata (NaN for floats) and warn with
        :class:`~xr_openeo.errors.FailedReadWarning`. Default: :func:`xr_openeo.set_options`, else
        ``XR_OPENEO_ON_READ_ERROR``, else ``"raise"``.

    Returns
    -------
    xarray.Dataset or xarray.DataTree
        One variable per band with dims ``(t, y, x)``; a DataTree with one group per pixel grid when
        the assets cannot share one. Time series give a vector cube with dims ``(feature, t)``.
    """
    on_read_error = get_option("on_read_error", on_read_error)  # checked before any request
    wanted = normalize_chunks(chunks)
    from .sources import load_results

    loaded = load_results(source, connection=connection, partial=partial, pickle_token=pickle_token)
    return open_loaded(loaded, chunks=wanted, assets=assets, dtype=dtype, masked=masked, on_read_error=on_read_error)


def open_loaded(
    loaded: Any,
    *,
    chunks: Mapping[str, Any],
    assets: Any = None,
    dtype: str | None = None,
    masked: bool = True,
    on_read_error: str = "raise",
    engine: bool = False,
) -> Any:
    """Open results already loaded (:func:`xr_openeo.sources.load_results`); every front ends here."""
    from .rasters import RasterOptions, open_rasters

    selection = _select(loaded.specs, assets, "raster")
    rasters = [s for s in selection.chosen if s.format in RASTER_FORMATS]
    if not rasters:  # tables (and JSON, which may hold a raster: its content decides)
        table_selection = _select(loaded.specs, assets, "table")
        if table_selection.chosen:
            selection = table_selection
    if not selection.chosen and selection.skipped:
        raise _nothing_to_open(selection)
    if assets is None:
        _report(selection, loaded)
    provenance = provenance_of(loaded, selection.chosen, selection.skipped)
    parts: dict[str, Any] = {}
    if rasters:
        options = RasterOptions(chunks=chunks, dtype=dtype, masked=masked, on_read_error=on_read_error, engine=engine)
        parts["rasters"] = open_rasters(rasters, loaded.links, provenance, options)
    others = [s for s in selection.chosen if s.format in TABLE_FORMATS]
    if others:
        raster_json, frames = _read_json_and_tables(loaded, others)
        for key, ds in raster_json.items():
            parts[key] = provenance.apply(ds)
        if frames:
            parts["tables"] = provenance.apply(_vector_cube(frames, [s for s in others if s.key in frames]))
    if not parts:
        return empty_dataset(provenance)
    if len(parts) == 1:
        return next(iter(parts.values()))
    return as_tree(parts)


def open_dataframe(
    source: Any,
    *,
    connection: Any = None,
    assets: str | Sequence[str] | None = None,
    partial: bool = False,
    features: Any = None,
) -> Any:
    """The tabular results (JSON time series, CSV, Parquet/GeoParquet, GeoJSON) as pandas objects.

    Every format gives the same tidy shape: indexed by ``(t, feature)`` (the features in the order
    the job was given them), one float column per band named from the results document, the
    features' own properties, and a ``geometry`` column (a GeoDataFrame) where the result carries
    geometries. ``features`` (a (Geo)DataFrame, one row per feature in the job's order) joins your
    own feature table (names, ids, geometries) onto results that carry none (JSON, CSV).
    """
    from .sources import load_results

    loaded = load_results(source, connection=connection, partial=partial)
    selection = _select(loaded.specs, assets, "table")
    raster_json, frames = _read_json_and_tables(loaded, selection.chosen)
    if frames and assets is None:
        _report(selection, loaded)
    if not frames:
        have = ", ".join(f"{a.key} ({a.media_type})" for a in loaded.specs) or "none"
        raise XrOpenEOError(
            f"These results hold no tabular assets (they have: {have}); open them with xr_openeo.open_results."
        )
    from .readers.tables import combine_tables, join_features

    frame = combine_tables(frames, [s for s in selection.chosen if s.key in frames])
    if features is not None:
        frame = join_features(frame, features)
    frame.attrs.update(provenance_of(loaded, selection.chosen, selection.skipped).attrs())
    return frame


def _vector_cube(frames: Mapping[str, Any], specs: Sequence[AssetSpec]) -> Any:
    """Time-series frames as one vector cube ``(feature, t)``; several series merge on their coordinates."""
    import xarray as xr

    from .readers.tables import FEATURE, combine_tables, to_vector_cube

    frame = combine_tables(frames, specs)
    datasets = []
    for part in [frame] if "asset" not in frame.index.names else list(frames.values()):
        if FEATURE in (part.index.names or ()):
            datasets.append(to_vector_cube(part))
        else:
            datasets.append(xr.Dataset.from_dataframe(part.drop(columns="geometry", errors="ignore")))
    # xarray's default compat warns (FutureWarning); values of one series agree where they meet
    return datasets[0] if len(datasets) == 1 else xr.merge(datasets, compat="no_conflicts", join="outer")


def _select(specs: Sequence[AssetSpec], assets: Any, purpose: Literal["raster", "table"]) -> Any:
    from .results import select

    return select(specs, assets, purpose=purpose)


def _nothing_to_open(selection: Any) -> UnsupportedMediaTypeError:
    listed = "; ".join(f"{key}: {why}" for key, why in selection.skipped.items())
    return UnsupportedMediaTypeError(
        f"These results hold nothing xr_openeo can open ({listed}). Download the files instead with "
        "xr_openeo.download(source, directory).",
        key=next(iter(selection.skipped)),
    )


def _report(selection: Any, loaded: Any) -> None:
    """Say once which assets were left out, and why: a log record and a SkippedAssetWarning."""
    if not selection.skipped:
        return
    listed = "; ".join(f"{key} ({why})" for key, why in selection.skipped.items())
    log.info("Skipped assets of job %s that xr_openeo does not open here: %s", loaded.info.job_id, listed)
    warnings.warn(
        SkippedAssetWarning(
            f"Skipped assets that xr_openeo does not open here: {listed}. They are listed in ds.openeo.assets "
            "(and the Dataset's 'openeo:skipped' attribute); name one with assets=[...] to open it or to see why "
            "it cannot be read. Filter this warning by its class, xr_openeo.errors.SkippedAssetWarning.",
            skipped=dict(selection.skipped),
        ),
        stacklevel=4,
    )


def _read_json_and_tables(loaded: Any, specs: Sequence[AssetSpec]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tabular assets fetched and read: (raster JSON Datasets, time-series frames), by asset key."""
    import xarray as xr

    from .http import fetch
    from .readers.tables import read_json, read_table

    rasters: dict[str, Any] = {}
    frames: dict[str, Any] = {}
    for spec in specs:
        data, _, _ = fetch(spec.key, loaded.links)
        table = read_json(data, spec) if spec.format == "json" else read_table(data, spec)
        (rasters if isinstance(table, xr.Dataset) else frames)[spec.key] = table
    return rasters, frames


def provenance_of(loaded: Any, chosen: Sequence[AssetSpec], skipped: Mapping[str, str]) -> Provenance:
    return Provenance(
        backend=loaded.backend,
        job_id=loaded.info.job_id,
        results_url=loaded.results_url,
        asset_keys=tuple(a.key for a in chosen),
        status=loaded.info.status,
        skipped=dict(skipped),
        connection=loaded.connection,
        share_url=loaded.info.canonical_url,
    )


# -- running ------------------------------------------------------------------------------------------


def compute_batch(
    cube: Any,
    *,
    connection: Any = None,
    title: str | None = None,
    description: str | None = None,
    out_format: str | None = None,
    job_options: Mapping[str, Any] | Callable[[Any], Any] | None = None,
    chunks: Any = None,
    progress: bool | str = True,
    timeout: float | None = None,
    cancel_on_interrupt: bool = True,
    reuse: bool = False,
    assets: str | Sequence[str] | None = None,
    dtype: str | None = None,
    masked: bool = True,
    pickle_token: bool = False,
    on_read_error: str | None = None,
    split: Any = None,
    job_db: str | os.PathLike[str] | None = None,
    parallel_jobs: int = 2,
    allow_partial: bool = False,
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
        How to wait: a progress bar in a terminal, a widget in Jupyter, plain status lines on
        stderr otherwise (``"log"``: through ``logging`` only; False: nothing); seconds before
        :class:`~xr_openeo.errors.JobTimeoutError` (the job keeps running); cancel the job on Ctrl-C.
    reuse
        Open the results of a finished job of this user with the same process graph (and job
        options) when there is one, instead of running a new job.
    chunks, assets, dtype, masked, pickle_token, on_read_error
        As for :func:`open_results`.
    split
        Run one job per piece instead, and open their results as one mosaic: a
        :class:`xr_openeo.Split` (or a dict of its fields, a tile count, a GeoDataFrame of tiles)
        cutting the area into tiles on whole pixels of the collection's grid and/or the time into
        ranges. ``job_options`` may then be a callable of the :class:`~xr_openeo.jobs.split.Piece`
        (with its ``failures`` so far) returning the options of its next job.
    job_db
        The job database of a split run (``.csv`` or ``.parquet``; default
        ``openeo-split-<run>.csv`` in the working directory): each piece's extent, job id and
        status. Running the same call again re-attaches to its running jobs and submits only
        the missing pieces; a finished run opens without submitting anything.
    parallel_jobs
        Jobs of a split run created, queued or running at once, at most.
    allow_partial
        Open the mosaic of a split run without the pieces that failed for good (each is retried
        ``split_retries`` times, see :func:`set_options`), with a warning naming them; otherwise
        they raise :class:`~xr_openeo.errors.JobFailedError` listing them and their error logs.
        Interrupting a split run (Ctrl-C) never cancels its jobs.

    Returns
    -------
    xarray.Dataset or xarray.DataTree
        Dask-backed; time series as a vector cube ``(feature, t)``. Raises
        :class:`~xr_openeo.errors.JobFailedError` with the job's error logs when it fails.
    """
    from . import jobs

    get_option("on_read_error", on_read_error)  # a bad value fails before a job runs
    normalize_chunks(chunks)
    _refuse_plain_dataset(cube)
    if split is not None or job_db is not None:
        if reuse:
            raise ValueError("reuse= does not apply to split runs: their job database keeps the finished pieces")
        from .many import compute_split

        return compute_split(
            cube,
            connection=connection,
            split=split,
            job_db=job_db,
            parallel_jobs=parallel_jobs,
            allow_partial=allow_partial,
            title=title,
            description=description,
            out_format=out_format,
            job_options=job_options,
            progress=progress,
            timeout=timeout,
            chunks=chunks,
            assets=assets,
            dtype=dtype,
            masked=masked,
            pickle_token=pickle_token,
            on_read_error=on_read_error,
        )
    if callable(job_options):
        raise TypeError("job_options may be a callable of the piece only for split runs (split=...); pass a dict")
    conn, graph = jobs.prepare_process_graph(cube, connection=connection, out_format=out_format)
    job = jobs.find_reusable(conn, graph, job_options) if reuse else None
    if job is None:
        job = jobs.as_batch_job(graph, connection=conn, title=title, description=description, job_options=job_options)
        info = jobs.wait(job, progress=progress, timeout=timeout, cancel_on_interrupt=cancel_on_interrupt)
    else:
        info = job.describe()
    ds = open_results(
        job,
        chunks=chunks,
        assets=assets,
        dtype=dtype,
        masked=masked,
        pickle_token=pickle_token,
        on_read_error=on_read_error,
    )
    for name in ("created", "updated"):
        if isinstance(info.get(name), str):
            ds.attrs[f"openeo:{name}"] = info[name]
    return ds


def execute(
    cube_or_graph: Any,
    *,
    connection: Any = None,
    format: str | None = None,  # noqa: A002 - the openeo client's name for it (cube.download(format=...))
    job_options: Mapping[str, Any] | None = None,
    as_frame: bool = False,
    chunks: Any = None,
    assets: str | Sequence[str] | None = None,
    dtype: str | None = None,
    masked: bool = True,
    on_read_error: str | None = None,
    timeout: float | None = None,
) -> Any:
    """Run ``cube_or_graph`` synchronously (openEO ``POST /result``, no batch job) and open what comes back.

    The answer is opened with the readers and assembly of batch results, so ``execute(cube)`` and
    ``compute_batch(cube)`` give the same dims, coordinates, variable names, dtypes, CRS, nodata and
    values for the same graph. Small graphs answer in seconds; backends cut synchronous requests off
    after a few minutes, so larger work belongs in :func:`compute_batch`.

    Parameters
    ----------
    cube_or_graph
        An ``openeo`` DataCube or VectorCube, or a process graph (dict, JSON string or path) with
        ``connection``.
    connection
        The ``openeo.Connection`` to run on (a cube's own by default).
    format
        Format of the ``save_result`` added when the graph has none (``GTiff`` for raster cubes,
        ``GeoJSON`` for vector cubes, as :func:`compute_batch`); if the graph saves, it must agree.
    job_options
        Backend-specific options, sent as the request's ``job_options``.
    as_frame
        False (default): a Dataset, as :func:`compute_batch` gives (time series as a vector cube
        ``(feature, t)``). True: tabular results (JSON, CSV, Parquet, GeoJSON time series) as the
        pandas DataFrame :func:`open_dataframe` gives, indexed by ``(t, feature)``; a result without
        tables raises.
    chunks
        Dask chunks, as for :func:`open_results`. Without them, an answer up to the
        ``execute_memory_bytes`` option (16 MiB) comes back loaded in memory (numpy) and leaves no
        file behind; a larger one comes back lazy (dask), read from a temporary directory that is
        removed by ``ds.close()`` or once the Dataset and every lazy array made from it are
        collected. With ``chunks``, raster results are always lazy in that way.
    assets, dtype, masked, on_read_error
        As for :func:`open_results`.
    timeout
        Seconds to wait for the answer, and then between reads of its body (default the
        ``execute_timeout`` option, 30 minutes, as the openeo client).

    Returns
    -------
    xarray.Dataset, xarray.DataTree or pandas.DataFrame
        ``ds.openeo`` shows how it was made: no job id; the graph, the backend, the request id
        (``OpenEO-Identifier``), and costs and usage headers when the backend sent them.

    Raises
    ------
    ProcessingError
        The backend refused or failed the graph; its code, message and the request id are kept.
    SyncTimeoutError
        A synchronous time limit ran out (the backend's 408, a gateway's 504, or ``timeout``):
        run the graph with :func:`compute_batch`.
    RequestError
        No answer after the retries, or an answer cut short (nothing is opened from it).
    """
    import xarray as xr

    on_read_error = get_option("on_read_error", on_read_error)
    normalize_chunks(chunks)  # a bad value fails before the backend computes anything
    if isinstance(cube_or_graph, xr.Dataset | xr.DataArray):
        raise TypeError(
            "execute runs an openEO process graph, and this xarray object is not bound to one. Pass an openeo cube "
            "or a process graph, or run a deferred Dataset with ds.openeo.execute()."
        )
    from .synchronous import execute_graph

    return execute_graph(
        cube_or_graph,
        connection=connection,
        out_format=format,
        job_options=job_options,
        as_frame=as_frame,
        chunks=chunks,
        assets=assets,
        dtype=dtype,
        masked=masked,
        on_read_error=on_read_error,
        timeout=timeout,
    )


def _refuse_plain_dataset(cube: Any) -> None:
    import xarray as xr

    if isinstance(cube, xr.Dataset | xr.DataArray):
        raise TypeError(
            "compute_batch runs an openEO process graph, and this xarray object is not bound to one (it did not come "
            "from openEO). Build the graph with the openeo client and pass the cube, or make a deferred Dataset "
            "with xr_openeo.from_cube(cube); to open results that exist, use xr_openeo.open_results(job)."
        )


def _loaded_extents(graph: Mapping[str, Any]) -> dict[str, Any]:
    """The extents the graph's one loader asks for (attributes), which replace the collection's."""
    from .jobs.graphs import loader_nodes

    loaders = loader_nodes(graph)
    if len(loaders) != 1:
        return {}
    args = loaders[0].get("arguments") or {}
    out: dict[str, Any] = {}
    temporal = args.get("temporal_extent")
    if isinstance(temporal, list | tuple) and len(temporal) == 2:
        out["openeo:temporal_extent"] = [str(v) for v in temporal if v is not None]
    spatial = args.get("spatial_extent")
    if isinstance(spatial, Mapping):
        out["openeo:spatial_extent"] = json.dumps(dict(spatial))
    return out


def from_cube(cube: Any) -> Any:
    """A deferred :class:`xarray.Dataset` bound to ``cube``'s process graph; no request is sent.

    It shows what the client knows of the cube (dimension names, band labels, extents) as
    coordinates and attributes and holds no data variables: result shapes are known only once the
    backend has run. ``ds.openeo.compute_batch()`` runs it.
    """
    import xarray as xr

    graph = cube.flat_graph() if hasattr(cube, "flat_graph") else None
    if graph is None:
        raise TypeError(f"from_cube needs an openeo DataCube or VectorCube, got {type(cube).__name__}")
    connection = getattr(cube, "connection", None)
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
    loaded = _loaded_extents(graph)
    if "openeo:spatial_extent" in loaded:  # the collection's x/y extents would read as the result's: they are not
        attrs.pop("openeo:x_extent", None)
        attrs.pop("openeo:y_extent", None)
    attrs.update(loaded)
    ds = xr.Dataset(coords=coords, attrs=attrs)
    if connection is not None:
        from .assemble import CONNECTION

        ds.encoding[CONNECTION] = ConnectionRef(connection)
    return ds
