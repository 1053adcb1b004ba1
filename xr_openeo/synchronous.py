"""What synchronous processing gave back, opened with the readers and assembly of batch results.

:func:`execute_graph` sends a graph to ``POST /result`` (:mod:`xr_openeo.jobs.sync`), lays the
answer out as the files of a results document in a temporary directory of its own, and opens that
document as :func:`xr_openeo.open_results` opens a batch job's: a single file becomes a document of
one asset (media type from ``Content-Type``, key from ``Content-Disposition``); a tar archive is
unpacked safely and its ``job-results.json`` opened (or, without one, a document of its files).

Where the result lives afterwards:

- an answer held in memory (up to the ``execute_memory_bytes`` option) comes back loaded, and its
  directory is removed before :func:`execute_graph` returns; so do tables, read whole anyway;
- a larger answer (or any raster answer when ``chunks`` are given) comes back lazy, over its
  directory, which goes when the Dataset is closed (``ds.close()``, ``with``) or when no dask graph
  references its files any more (the Dataset, and every array computed lazily from it, collected).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from .downloads import safe_filename
from .errors import ResultsDocumentError
from .results import asset_format, parse_results
from .urls import is_local, local_path

RESULTS_DOCUMENT = "job-results.json"
TAR_MEDIA_TYPES = frozenset({"application/x-tar", "application/tar"})
#: File extension of a result whose answer names no file, by format.
_EXTENSIONS = {"geotiff": ".tif", "netcdf": ".nc", "json": ".json", "geojson": ".geojson", "csv": ".csv"}
_TABLES = frozenset({"json", "csv", "parquet", "geojson"})


class ResultFiles:
    """The temporary directory of one synchronous result; removed by :meth:`close` or once unreferenced.

    It travels inside the dask graph of every lazy variable read from the directory, so that the
    files stay while anything can still read them. A pickled copy (a dask.distributed worker's)
    borrows the directory: it never removes it.
    """

    def __init__(self, path: str | Path, *, owner: bool = True) -> None:
        self.path = Path(path)
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True) if owner else None

    def close(self) -> None:
        """Remove the directory now (once; later reads of its files fail)."""
        if self._finalizer is not None:
            self._finalizer()

    @property
    def removed(self) -> bool:
        return not self.path.exists()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_borrowed, (str(self.path),))

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("xr_openeo.synchronous.ResultFiles", str(self.path))

    def __repr__(self) -> str:
        return f"<synchronous result files in {self.path}{' (removed)' if self.removed else ''}>"


def _borrowed(path: str) -> ResultFiles:
    return ResultFiles(path, owner=False)


def execute_graph(
    cube_or_graph: Any,
    *,
    connection: Any = None,
    out_format: str | None = None,
    job_options: Mapping[str, Any] | None = None,
    as_frame: bool = False,
    chunks: Any = None,
    assets: str | Sequence[str] | None = None,
    dtype: str | None = None,
    masked: bool = True,
    on_read_error: str = "raise",
    timeout: float | None = None,
) -> Any:
    """Run ``cube_or_graph`` with ``POST /result`` and open the answer; see :func:`xr_openeo.execute`."""
    from . import jobs
    from .jobs.sync import post_result

    conn, graph = jobs.prepare_process_graph(cube_or_graph, connection=connection, out_format=out_format)
    answer = post_result(conn, graph, job_options=job_options, timeout=timeout)
    files = ResultFiles(answer.body.take_directory() or tempfile.mkdtemp(prefix="xr-openeo-execute-"))
    handed_over = False
    small = answer.body.in_memory  # (laying the answer out empties the body)
    try:
        source = lay_out(answer, files.path, bands=band_names(cube_or_graph))
        loaded = load_inside(source, files.path)
        stamp = _stamp(answer, graph)
        if as_frame:
            return _frame(source, assets, stamp, answer.backend)
        result = _open(loaded, conn, answer.backend, chunks, assets, dtype, masked, on_read_error)
        _apply(result, stamp)
        if not _is_lazy(result) or (chunks is None and small):
            result.load()
            result.close()  # the readers' open files: nothing reads them any more, and they go below
            return result
        _load_unchunked(result)
        _keep(result, files)
        result.set_close(_Closing(getattr(result, "_close", None), files))
        handed_over = True
        return result
    finally:
        answer.body.discard()
        if not handed_over:
            files.close()


def band_names(cube: Any) -> tuple[str, ...]:
    """The band names the openeo client knows for ``cube`` (empty for a graph dict, or when it knows none)."""
    metadata = getattr(cube, "metadata", None)
    try:
        if metadata is not None and metadata.has_band_dimension():
            return tuple(str(b) for b in metadata.band_names)
    except Exception:  # the client's metadata is a courtesy: a graph opens without band names too
        return ()
    return ()


# -- the files ---------------------------------------------------------------------------------------


def lay_out(answer: Any, directory: Path, *, bands: Sequence[str] = ()) -> Any:
    """The answer's files in ``directory``; returns what :func:`~xr_openeo.sources.load_results` opens.

    A tar archive: its members, unpacked safely, and the path of its results document (or a document
    of its files when it has none). A single file: the file, under its safe name, and a results
    document (a dict) with it as the one asset; table formats get the cube's ``bands`` as band names.
    """
    body, media_type = answer.body, answer.media_type
    name = answer.filename or ""
    if media_type.split(";")[0].strip().lower() in TAR_MEDIA_TYPES or name.lower().endswith(".tar"):
        members = unpack(body, directory, answer.request_id)
        body.discard()
        document = directory / RESULTS_DOCUMENT
        if document.is_file():
            check_inside(document, directory)
            return document
        return _document(answer.request_id, {m: _asset(directory / m, None) for m in members if _is_result_file(m)})
    fmt = asset_format(media_type, "", name)
    key = safe_filename(name, fallback="result" + _EXTENSIONS.get(fmt or "", ""))
    target = directory / key
    if body.in_memory:
        target.write_bytes(body.bytes())
    else:
        Path(body.path).replace(target)
    asset = _asset(target, media_type)
    if bands and fmt in _TABLES:
        asset["eo:bands"] = [{"name": band} for band in bands]
    return _document(answer.request_id, {key: asset})


def _asset(path: Path, media_type: str | None) -> dict[str, Any]:
    asset: dict[str, Any] = {"href": path.resolve().as_uri(), "roles": ["data"]}
    if media_type and media_type.split(";")[0].strip().lower() != "application/octet-stream":
        asset["type"] = media_type
    return asset


def _document(request_id: str | None, assets: Mapping[str, Any]) -> dict[str, Any]:
    """A results document (STAC Collection, openEO API 1.2) of ``assets``, for a result that came without one."""
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": request_id or "synchronous-result",
        "description": "The result of a synchronous request (POST /result)",
        "license": "proprietary",
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
        "links": [],
        "openeo:status": "finished",
        "assets": dict(assets),
    }


def _is_result_file(member: str) -> bool:
    path = PurePosixPath(member)
    return len(path.parts) == 1 and asset_format(None, "", member) not in (None, "zarr")


def unpack(body: Any, directory: Path, request_id: str | None = None) -> list[str]:
    """Extract the tar archive ``body`` into ``directory``, safely; the member paths of the files written.

    Only regular files and folders are extracted, each under its own name. A member is refused (and
    nothing opened) when its name could leave ``directory`` or is not portable: an absolute path,
    ``..``, a backslash, or a part that :func:`xr_openeo.downloads.safe_filename` would change (a
    leading dot is allowed, as in Zarr's ``.zarray``); so is a link, a device, or a name given twice.
    """
    root = directory.resolve()
    written: list[str] = []
    seen: set[str] = set()
    ref = f" (request {request_id})" if request_id else ""
    try:
        with body.open() as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
            for member in tar:
                path = member_path(member.name, ref)
                target = root.joinpath(*path.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise _refused(member.name, "it is a link or a device, not a file", ref)
                if str(path).casefold() in seen:
                    raise _refused(member.name, "the archive holds it twice", ref)
                seen.add(str(path).casefold())
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                try:
                    out = target.open("xb")
                except (FileExistsError, IsADirectoryError):
                    raise _refused(member.name, "a file or folder of that name exists already", ref) from None
                with source, out:
                    shutil.copyfileobj(source, out, 1 << 20)
                written.append(str(path))
    except tarfile.TarError as exc:
        raise ResultsDocumentError(
            f"The tar archive the backend answered with{ref} cannot be unpacked: {exc}. Nothing was opened from it."
        ) from None
    return written


def member_path(name: str, ref: str = "") -> PurePosixPath:
    """The relative path of a tar member, or :class:`~xr_openeo.errors.ResultsDocumentError` if it is unsafe."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or name.startswith("/") or "\\" in name:
        raise _refused(name, "it is empty or absolute, or holds a backslash", ref)
    for part in parts:
        bare = part.lstrip(".")
        if part == ".." or not bare or safe_filename(bare) != bare:
            raise _refused(name, f"its part {part[:80]!r} is not a safe file name", ref)
    return PurePosixPath(*parts)


def _refused(name: str, why: str, ref: str) -> ResultsDocumentError:
    return ResultsDocumentError(
        f"The tar archive the backend answered with{ref} has a member {name[:200]!r} that xr_openeo does not "
        f"extract: {why}. Nothing was opened from it."
    )


def check_inside(document: Path, directory: Path) -> None:
    """Refuse a results document (of an archive) whose asset or item hrefs point outside ``directory``."""
    try:
        doc = json.loads(document.read_text(encoding="utf-8"))
        info = parse_results(doc, base_url=document.resolve().as_uri())
    except (OSError, ValueError) as exc:
        raise ResultsDocumentError(f"The archive's {RESULTS_DOCUMENT} cannot be read: {exc}") from None
    _check_hrefs([a.href for a in info.assets] + list(info.item_links), directory)


def _check_hrefs(hrefs: Sequence[str], directory: Path) -> None:
    root = directory.resolve()
    for href in hrefs:
        inside = is_local(href) and local_path(href).resolve().is_relative_to(root)
        if not inside:
            raise ResultsDocumentError(
                f"The results document of the archive the backend answered with points outside the archive "
                f"({href[:200]!r}); xr_openeo opens only the archive's own files."
            )


# -- opening ---------------------------------------------------------------------------------------


def load_inside(source: Any, directory: Path) -> Any:
    """The laid-out answer's :class:`~xr_openeo.sources.LoadedResults`; every asset must lie in ``directory``."""
    from .sources import load_results

    loaded = load_results(source)
    _check_hrefs([spec.href for spec in loaded.specs], directory)
    return loaded


def _open(
    loaded: Any,
    connection: Any,
    backend: str,
    chunks: Any,
    assets: Any,
    dtype: str | None,
    masked: bool,
    on_read_error: str,
) -> Any:
    """The Dataset (or DataTree) of the laid-out answer, through the readers and assembly of batch results."""
    from .api import open_loaded
    from .lazy import normalize_chunks

    info = replace(loaded.info, job_id=None, self_url=None, canonical_url=None)
    loaded = replace(loaded, info=info, results_url=None, backend=backend, connection=connection)
    wanted = normalize_chunks(chunks)
    return open_loaded(loaded, chunks=wanted, assets=assets, dtype=dtype, masked=masked, on_read_error=on_read_error)


def _frame(source: Any, assets: Any, stamp: Mapping[str, Any], backend: str) -> Any:
    """The tabular result as :func:`xr_openeo.open_dataframe` gives it, with the provenance of a request."""
    from .api import open_dataframe

    frame = open_dataframe(source, assets=assets)
    frame.attrs.update({"openeo:backend": backend, "openeo:job_id": "", "openeo:results_url": ""})
    frame.attrs.update(stamp)
    return frame


def _stamp(answer: Any, graph: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes that say how a result was made: the request, the graph, costs and usage."""
    stamp: dict[str, Any] = {
        "openeo:request_id": answer.request_id or "",
        "openeo:process_graph": json.dumps(dict(graph)),
    }
    if answer.costs is not None:
        stamp["openeo:costs"] = answer.costs
    if answer.logs_url:
        stamp["openeo:logs_url"] = answer.logs_url
    if answer.usage:
        stamp["openeo:usage"] = "; ".join(f"{name}: {value}" for name, value in answer.usage.items())
    return stamp


def _datasets(result: Any) -> Iterator[Any]:
    """The Dataset itself, or each node of a DataTree (whose variables and attrs can be changed in place)."""
    import xarray as xr

    if isinstance(result, xr.DataTree):
        yield from result.subtree
    else:
        yield result


def _apply(result: Any, stamp: Mapping[str, Any]) -> None:
    for node in _datasets(result):
        node.attrs.update(stamp)
        for name in node.data_vars:
            node.variables[name].attrs["openeo:request_id"] = stamp["openeo:request_id"]


def _is_lazy(result: Any) -> bool:
    """Whether a variable is a dask array (one that reads the files when computed)."""
    return any(var.chunks is not None for node in _datasets(result) for var in node.variables.values())


def _load_unchunked(result: Any) -> None:
    """Load the variables that are not dask arrays (coordinates xarray indexes lazily) while the files are there."""
    for node in _datasets(result):
        for var in node.variables.values():
            if var.chunks is None:
                var.load()


def _keep(result: Any, files: ResultFiles) -> None:
    """Put ``files`` into the dask graph of every lazy variable: the directory lives as long as they do."""
    for node in _datasets(result):
        for var in node.variables.values():
            if var.chunks is not None:
                var.data = var.data.map_blocks(_kept, files, dtype=var.dtype, meta=var.data._meta)


def _kept(block: Any, files: ResultFiles) -> Any:
    return block


class _Closing:
    """What ``ds.close()`` does: close the files the readers opened (``close``), then remove them.

    Picklable (a Dataset pickles its closer): a copy's ``files`` only borrow the directory.
    """

    def __init__(self, close: Callable[[], None] | None, files: ResultFiles) -> None:
        self.close, self.files = close, files

    def __call__(self) -> None:
        try:
            if self.close is not None:
                self.close()
        finally:
            self.files.close()
