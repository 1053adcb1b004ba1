"""Downloading a job's result files to disk: safe file names, no overwriting, atomic writes.

Every asset is fetched with the machinery reads use (:func:`xr_openeo.http.fetch`: retries with
backoff, truncation checks, renewal of expired signed URLs, the bearer token only under the backend's
root), in ranges of ``chunk_bytes`` bytes, into a temporary file next to its final name, which it gets
by an atomic rename only once complete. File names come from asset keys, which the results document
(a remote party) chooses: :func:`safe_filename` makes sure none of them leaves the target directory.

Importing this module is cheap (standard library only); the HTTP parts load when a download starts.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from .errors import AssetReadError, UnsupportedMediaTypeError, XrOpenEOError

if TYPE_CHECKING:
    from .http import Links
    from .results import AssetSpec
    from .sources import LoadedResults

__all__ = ["download", "safe_filename", "unique_filenames"]

log = logging.getLogger(__name__)

#: Bytes fetched per request by default: memory held per download thread, and how much a retry re-reads.
DEFAULT_CHUNK_BYTES = 16 * 2**20
#: Longest file name written, in UTF-8 bytes (most file systems allow 255; room is left for ``-N``).
MAX_NAME_BYTES = 200
#: Names Windows reserves for devices, with or without an extension (``NUL.tif`` is the device too).
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"}
    | {f"{d}{i}" for d in ("COM", "LPT") for i in (*"123456789", "\u00b9", "\u00b2", "\u00b3")}
)
#: Characters no portable file name holds: separators, Windows' reserved punctuation (``:`` is a drive).
_FORBIDDEN = frozenset('/\\<>:"|?*')
#: Unicode categories replaced: controls, format characters (e.g. right-to-left overrides that disguise
#: an extension), line/paragraph separators, lone surrogates (not encodable).
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
#: The extension given to an asset whose key has none (or none of its format).
_EXTENSION = {
    "geotiff": ".tif",
    "netcdf": ".nc",
    "json": ".json",
    "geojson": ".geojson",
    "csv": ".csv",
    "parquet": ".parquet",
}


class _Stopped(Exception):
    """Another download of the same call failed (or was interrupted): this one stops early."""


# -- file names -----------------------------------------------------------------------------------


def safe_filename(name: str, *, fallback: str = "asset") -> str:
    """A file name for ``name`` that stays inside any directory it is joined to, on any OS.

    Path separators (``/`` and ``\\``) split ``name`` into parts; empty, ``.`` and ``..`` parts (and
    parts of dots and spaces only) are dropped and the rest joined with ``_``, so ``a/../../b``
    becomes ``a_b`` and ``../../x`` becomes ``x``. Drive colons and Windows' reserved punctuation
    (``<>:"|?*``), control and format characters become ``_``; leading dots (hidden files) and leading
    or trailing spaces and dots go; Windows device names (``CON``, ``nul.tif``…) get a ``_`` prefix;
    long names are cut to :data:`MAX_NAME_BYTES` UTF-8 bytes, keeping a short extension. The result
    is never empty (``fallback``), and ``safe_filename(safe_filename(x)) == safe_filename(x)``.

    Parameters
    ----------
    name
        An asset key or a file name from a results document (untrusted).
    fallback
        The name used when nothing is left of ``name``; it must itself be safe.

    Returns
    -------
    str
        A single path component, neither ``.`` nor ``..`` nor hidden.
    """
    text = unicodedata.normalize("NFC", str(name))
    parts = [p for p in text.replace("\\", "/").split("/") if p.strip(". ")]
    text = "_".join(parts)
    text = "".join("_" if c in _FORBIDDEN or unicodedata.category(c) in _BAD_CATEGORIES else c for c in text)
    text = _trim(text)
    if text.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        text = "_" + text
    text = _trim(_shorten(text, MAX_NAME_BYTES))
    return text or fallback


def _trim(text: str) -> str:
    return text.lstrip(". ").rstrip(". ")


def _shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes, keeping an extension of up to 16 characters."""
    if len(text.encode()) <= limit:
        return text
    suffix = PurePosixPath(text).suffix
    suffix = suffix if 1 < len(suffix) <= 16 else ""
    stem = text[: len(text) - len(suffix)] if suffix else text
    room = limit - len(suffix.encode())
    return stem.encode()[:room].decode("utf-8", errors="ignore").rstrip(". ") + suffix


def unique_filenames(names: Iterable[str]) -> list[str]:
    """``names`` (safe already) made distinct, ignoring case: later duplicates get ``-2``, ``-3``…

    A renamed file never takes a name another entry has (``["a.tif", "a.tif", "a-2.tif"]`` gives
    ``["a.tif", "a-3.tif", "a-2.tif"]``), and names differing only in case are duplicates too, as on
    Windows and macOS file systems.
    """
    names = list(names)
    wanted = {n.casefold() for n in names}
    taken: set[str] = set()
    out = []
    for name in names:
        chosen = name
        if chosen.casefold() in taken:
            path = PurePosixPath(name)
            stem, suffix = (path.stem, path.suffix) if path.stem else (name, "")
            i = 2
            while True:
                tail = f"-{i}{suffix}"
                chosen = _trim(_shorten(stem, MAX_NAME_BYTES - len(tail.encode()))) + tail
                if chosen.casefold() not in taken and chosen.casefold() not in wanted:
                    break
                i += 1
        taken.add(chosen.casefold())
        out.append(chosen)
    return out


def _asset_filename(spec: AssetSpec) -> str:
    """The safe file name of an asset: its key (else its href's file name), with an extension for its format."""
    from .results import asset_format

    name = safe_filename(spec.key or spec.filename, fallback=safe_filename(spec.filename))
    extension = _EXTENSION.get(spec.format or "")
    if extension and asset_format(None, "", name) is None:
        name = safe_filename(_shorten(name, MAX_NAME_BYTES - len(extension)) + extension)
    return name


# -- downloading ----------------------------------------------------------------------------------


def download(
    source: Any,
    directory: str | os.PathLike[str],
    *,
    assets: str | Sequence[str] | None = None,
    connection: Any = None,
    max_workers: int = 8,
    overwrite: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> dict[str, Path]:
    """Download the result files of an openEO batch job into ``directory``, concurrently and safely.

    Each selected asset becomes one file named after its asset key (made safe: no key, however it
    is written, puts a file outside ``directory``; see :func:`safe_filename`), with an extension for
    its format when the key has none. Keys that end up with the same name get ``-2``, ``-3``…
    suffixes. Files are written to a temporary file in ``directory`` and renamed into place once
    complete, so an interrupted or failed download leaves no partial file under a final name.
    Requests are retried, checked for truncation, renewed when a signed URL expired, and carry the
    backend's token only to URLs under its root, as when the results are read.

    Parameters
    ----------
    source
        What :func:`xr_openeo.open_results` accepts: an ``openeo`` ``BatchJob`` or ``JobResults``; a
        job id (with ``connection``); a results URL; a results document as a dict or a path to one; a
        pystac ``Collection``/``Item``; or results loaded already (:func:`xr_openeo.sources.load_results`).
    directory
        Where the files go; created (with parents) if missing.
    assets
        Asset keys, roles, media types or format names to download; default every data asset.
    connection
        The ``openeo.Connection`` whose token authenticates requests under its root URL (only there).
    max_workers
        Files downloaded at the same time.
    overwrite
        Replace files that exist already. Without it nothing is downloaded when any target file
        exists (:class:`FileExistsError` naming it), and a file appearing meanwhile is not replaced.
    chunk_bytes
        Bytes per request (16 MiB): what each download thread holds in memory, and what a retry
        asks again.

    Returns
    -------
    dict
        ``{asset key: Path}`` of the written files (absolute), in the order of the results document.

    Raises
    ------
    AssetReadError
        An asset could not be fetched (after retries); carries the asset key, the redacted href and
        the HTTP status. Files finished before stay (the error's notes list them); nothing partial does.
    FileExistsError
        A target file exists and ``overwrite`` is False.
    UnsupportedMediaTypeError
        A selected asset is a Zarr store (a folder, not a file): open it with ``open_results``.

    Examples
    --------
    >>> paths = xr_openeo.download(job, "results/")  # doctest: +SKIP
    >>> paths = xr_openeo.download(job_id, "results/", connection=conn, assets="geotiff")  # doctest: +SKIP
    """
    from .results import select
    from .sources import LoadedResults, load_results

    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be a positive integer, got {max_workers!r}")
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be a positive integer, got {chunk_bytes!r}")
    results: LoadedResults = (
        source if isinstance(source, LoadedResults) else load_results(source, connection=connection)
    )
    specs = list(select(results.specs, assets).chosen)
    for spec in specs:
        _check_downloadable(spec)
    root = Path(directory).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    names = unique_filenames(_asset_filename(spec) for spec in specs)
    targets = {spec.key: root / name for spec, name in zip(specs, names, strict=True)}
    for key, target in targets.items():
        if target.parent != root:  # cannot happen with safe names; a last line of defence
            raise XrOpenEOError(f"Refusing to write asset {key!r} to {target}: it is outside {root}")
    if not overwrite:
        existing = [t for t in targets.values() if os.path.lexists(t)]
        if existing:
            shown = ", ".join(str(t) for t in existing[:3]) + (
                f" and {len(existing) - 3} more" if len(existing) > 3 else ""
            )
            raise FileExistsError(
                errno.EEXIST,
                f"{len(existing)} file(s) to download exist already ({shown}); nothing was downloaded. Pass "
                "overwrite=True to replace them, or choose another directory",
                str(existing[0]),
            )
    if not specs:
        return {}
    stop = threading.Event()
    done: dict[str, Path] = {}
    with ThreadPoolExecutor(max_workers=min(max_workers, len(specs)), thread_name_prefix="xr-openeo-download") as pool:
        futures = {
            pool.submit(
                _download_one, spec.key, results.links, targets[spec.key], overwrite, stop, chunk_bytes
            ): spec.key
            for spec in specs
        }
        try:
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C in this thread: the workers stop after their current chunk
            stop.set()
            raise
        if any(f.exception() is not None for f in finished):
            stop.set()  # the others stop after their current chunk
        wait(futures)
    for future, key in futures.items():
        if future.exception() is None:
            done[key] = future.result()
    errors = [e for f in futures if (e := f.exception()) is not None and not isinstance(e, _Stopped)]
    if errors:
        error = errors[0]  # the first in document order; the others were stopped or failed alike
        left = [s.key for s in specs if s.key not in done]
        if done:
            error.add_note(f"Downloaded before the failure (complete, kept): {', '.join(str(done[k]) for k in done)}")
        error.add_note(f"Not downloaded: {left}; fetch them with assets={left}")
        raise error
    log.info("Downloaded %d asset(s) to %s", len(done), root)
    return {spec.key: done[spec.key] for spec in specs}


def _check_downloadable(spec: AssetSpec) -> None:
    from .urls import redact

    if spec.format == "zarr":
        raise UnsupportedMediaTypeError(
            f"Asset {spec.key!r} is a Zarr store (a folder of many files), which download() does not fetch; "
            "open it lazily with xr_openeo.open_results, or leave it out with assets=",
            key=spec.key,
            media_type=spec.media_type,
        )
    if not spec.href.startswith(("http://", "https://")):
        raise AssetReadError(
            f"Asset {spec.key!r} is not at an http(s) URL ({redact(spec.href)}); download() fetches from the "
            "backend only",
            key=spec.key,
            href=redact(spec.href),
        )


def _download_one(
    key: str, links: Links, target: Path, overwrite: bool, stop: threading.Event, chunk_bytes: int
) -> Path:
    """Fetch asset ``key`` into a temporary file next to ``target``, then rename it to ``target``."""
    if stop.is_set():
        raise _Stopped
    temp, handle = _temporary(target)
    try:
        with handle:
            size = _copy(key, links, handle, stop, chunk_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        _publish(temp, target, overwrite)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    log.debug("Downloaded asset %r (%d bytes) to %s", key, size, target)
    return target


def _temporary(target: Path) -> tuple[Path, IO[bytes]]:
    """A new hidden file next to ``target``, opened for writing (mode 0666 minus the umask, as any file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = target.with_name(f".{target.name[:48]}.{secrets.token_hex(6)}.part")
        try:
            fd = os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        return temp, os.fdopen(fd, "wb")


def _copy(
    key: str,
    links: Links,
    out: IO[bytes],
    stop: threading.Event,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    fetch: Callable[..., tuple[bytes, int | None, bool]] | None = None,
) -> int:
    """Write asset ``key`` to ``out`` in ranges of ``chunk_bytes``; the number of bytes written.

    ``fetch`` is :func:`xr_openeo.http.fetch` unless given (tests script the answers with it).
    """
    if fetch is None:
        from . import http

        fetch = http.fetch
    start, size = 0, None
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            data, total, ranged = fetch(key, links, (start, start + chunk_bytes))
        except AssetReadError as exc:
            if start or exc.status != 416:
                raise
            data, total, ranged = fetch(key, links)  # an empty file has no byte 0 to ask for
        if not ranged:  # the server ignored Range and sent the whole file
            out.seek(0)
            out.truncate()
            out.write(data)
            return len(data)
        if size is None:
            size = total
        elif total is not None and total != size:
            raise AssetReadError(
                f"Asset {key!r} changed while it was downloaded (its size went from {size} to {total} bytes); "
                "download it again",
                key=key,
            )
        out.write(data)
        start += len(data)
        if (size is not None and start >= size) or (size is None and len(data) < chunk_bytes) or not data:
            if size is not None and start != size:
                raise AssetReadError(f"Asset {key!r}: got {start} bytes, expected {size}", key=key)
            return start


def _publish(temp: Path, target: Path, overwrite: bool) -> None:
    """Rename the complete ``temp`` to ``target`` atomically; without ``overwrite``, never replace a file."""
    if overwrite:
        os.replace(temp, target)  # replaces a symlink itself, never the file it points to
        return
    try:
        os.link(temp, target)  # fails if target exists, atomically
    except FileExistsError:
        raise FileExistsError(
            errno.EEXIST, "The file appeared while it was downloaded; pass overwrite=True to replace it", str(target)
        ) from None
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise FileExistsError(
                errno.EEXIST,
                "The file appeared while it was downloaded; pass overwrite=True to replace it",
                str(target),
            ) from None
        os.replace(temp, target)
    else:
        temp.unlink()
