"""Any source of results → its results document, its item documents, asset specs and links.

Sources: an ``openeo`` ``BatchJob`` or ``JobResults`` (or a subclass), a job id with
``connection=``, a results URL (signed or not), a results document as a dict, a path (str or
PathLike) or ``file://`` URL to one, a pystac Collection or Item. Relative links and hrefs resolve
against the document's own location; a document on disk has its items and assets read from disk.
Item documents are fetched concurrently (the ``item_concurrency`` option) on one keep-alive pool,
and an item link that expired or was refused is renewed through the results document once, as
asset links are.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._options import get_option
from .errors import JobError, JobFailedError, JobNotFinishedError, RequestError, ResultsDocumentError, XrOpenEOError
from .http import Auth, Links, fresh_document, get_json
from .http.policy import EXPIRED_CODES, Clock, is_refused_link, wall_clock
from .results import (
    AssetSpec,
    ResultsInfo,
    merge_items,
    parse_item,
    parse_results,
    with_file_name_times,
)
from .urls import backend_root, is_http, local_path, redact, url_expiry


@dataclass(frozen=True)
class LoadedResults:
    """A results document resolved from any source, with what is needed to read its assets.

    Attributes
    ----------
    info
        What the results document says (job id, status, links, collection-level assets).
    specs
        Every asset, completed with what its item document says, times from file names where
        nothing else gives one.
    links
        Current hrefs of the assets and their renewal.
    auth
        The backend root and token of the connection, if any.
    results_url
        Where the document came from (an http(s) or ``file://`` URL), without ``partial=true``.
    backend
        The backend's API root: the connection's, else derived from the results URL or the
        document's links (``…/jobs/{id}/results…``); None when nothing says.
    connection
        The ``openeo.Connection`` when the source gave one (a BatchJob, JobResults or ``connection=``).
    """

    info: ResultsInfo
    specs: tuple[AssetSpec, ...]
    links: Links
    auth: Auth
    results_url: str | None
    backend: str | None
    connection: Any | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class _Located:
    doc: Any
    url: str | None  # where the document came from (http(s) or file URL)
    auth: Auth
    job_id: str | None
    connection: Any | None


def load_results(
    source: Any,
    *,
    connection: Any = None,
    partial: bool = False,
    pickle_token: bool = False,
    clock: Clock | None = None,
) -> LoadedResults:
    """Fetch and parse the results document of ``source`` and its item documents (concurrently).

    Parameters
    ----------
    source
        An ``openeo`` ``BatchJob`` or ``JobResults``; a job id (with ``connection``); a results
        URL; a results document as a dict, a path or a ``file://`` URL; a pystac Collection/Item.
    connection
        The ``openeo.Connection`` whose token authenticates requests under its root URL (only there).
    partial
        Accept the results of a job that has not finished (API 1.2 ``partial=true``).
    pickle_token
        Let the links carry the token into pickles (see :class:`~xr_openeo.http.Links`).
    clock
        The clock deciding when signed links expire (default :func:`time.time`); for tests.

    Returns
    -------
    LoadedResults

    Raises
    ------
    JobNotFinishedError
        The job has not finished and ``partial`` is False.
    ResultsDocumentError
        No such file, or what the source points to is not a results document (the message says
        what it is and what to pass instead).
    RequestError
        A request failed (which request, which host, why).
    """
    located = _locate(source, connection, partial)
    _check_is_results(located.doc, located.url)
    info = parse_results(located.doc, base_url=located.url)
    if info.status != "finished" and not partial:
        raise JobNotFinishedError(
            f"Job {info.job_id!r} is {info.status}: its results are not complete. Wait for it to finish, "
            "or pass partial=True to open what it has written so far.",
            job_id=info.job_id or located.job_id,
        )
    sources = _renewal_sources(located, info, partial)
    items = _fetch_items(info.item_links, located.auth, sources, clock)
    specs = with_file_name_times(merge_items(info.assets, items))
    links = Links({a.key: a.href for a in specs}, located.auth, sources, pickle_token=pickle_token, clock=clock)
    backend = located.auth.root or next(
        (root for root in map(backend_root, (located.url, info.self_url, info.canonical_url)) if root), None
    )
    return LoadedResults(
        info=info,
        specs=specs,
        links=links,
        auth=located.auth,
        results_url=located.url,
        backend=backend,
        connection=located.connection,
    )


# -- finding the document -------------------------------------------------------------------------


def _locate(source: Any, connection: Any, partial: bool) -> _Located:
    """The document of every kind of source, where it came from and the credentials to use."""
    auth = Auth.from_connection(connection) if connection is not None else Auth()
    if _is_openeo(source, "JobResults"):
        source = source.get_job() if hasattr(source, "get_job") else source._job
    if _is_openeo(source, "BatchJob"):
        connection = source.connection
        auth = Auth.from_connection(connection)
        url = f"{auth.root}/jobs/{source.job_id}/results"
        return _fetch(url, auth, partial, str(source.job_id), connection)
    if type(source).__module__.startswith("pystac"):
        return _Located(source.to_dict(), _pystac_self(source), auth, None, connection)
    if isinstance(source, Mapping):
        return _Located(source, None, auth, None, connection)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_local(source)):
        return _read_file(source, auth, connection)
    if isinstance(source, str) and is_http(source):
        return _fetch(source, auth, partial, None, connection)
    if isinstance(source, str):
        if connection is None:
            raise XrOpenEOError(
                f"{source!r} is neither a URL nor a file; to open the results of job {source!r}, "
                "also pass connection=<openeo.Connection>"
            )
        return _fetch(f"{auth.root}/jobs/{source}/results", auth, partial, source, connection)
    raise TypeError(
        f"open_results cannot open a {type(source).__name__}: pass an openeo BatchJob or JobResults, a job id with "
        "connection=, a results URL, a results document (dict or path), or a pystac Collection/Item"
    )


def _looks_local(text: str) -> bool:
    """A ``file://`` URL, an existing file, or a string that looks like a path (a separator, or ``.json``)."""
    if text.startswith("file:") or Path(text).is_file():
        return True
    return not is_http(text) and ("/" in text or "\\" in text or os.sep in text or text.lower().endswith(".json"))


def _read_file(source: str | os.PathLike[str], auth: Auth, connection: Any) -> _Located:
    text = os.fspath(source)
    path = local_path(text) if text.startswith("file:") else Path(text).expanduser()
    if not path.is_file():
        what = "no such file" if not path.exists() else "not a file"
        raise ResultsDocumentError(
            f"Cannot open the results document {str(path)!r}: {what}. Check the path (job ids are opened "
            "with connection=<openeo.Connection>)."
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsDocumentError(f"{path} is not a readable results document (JSON): {exc}") from None
    return _Located(doc, path.resolve().as_uri(), auth, None, connection)


def _fetch(url: str, auth: Auth, partial: bool, job_id: str | None, connection: Any) -> _Located:
    request_url = _with_partial(url) if partial else url
    try:
        doc = get_json(request_url, auth, what="results document")
    except JobError as exc:
        if exc.http_status == 424:
            raise JobFailedError(f"{exc} (job {job_id or redact(url)})", job_id=job_id, http_status=424) from None
        if exc.job_id is None and job_id is not None:  # keep the job id (and the HTTP status) on the error
            raise type(exc)(str(exc), job_id=job_id, http_status=exc.http_status) from None
        raise
    return _Located(doc, url, auth, job_id, connection)


def _with_partial(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}partial=true"


def _check_is_results(doc: Any, url: str | None) -> None:
    """Raise :class:`ResultsDocumentError` saying what ``doc`` is when it is plainly not a results document."""
    if not isinstance(doc, Mapping) or "assets" in doc:
        return
    where = f" at {redact(url)}" if url else ""
    base = redact(url).split("?")[0].rstrip("/") if url else None
    if {"id", "status", "process"} <= set(doc) and doc.get("type") not in ("Collection", "Feature"):
        instead = f"{base}/results" if base else "the job's URL followed by /results"
        raise ResultsDocumentError(
            f"The document{where} describes batch job {doc.get('id')!r} (its status is {doc.get('status')!r}); "
            f"its results are at {instead}: pass that URL, or the job id with connection=."
        )
    if "api_version" in doc and "endpoints" in doc:
        example = f"{base}/jobs/<job id>/results" if base else "<root>/jobs/<job id>/results"
        raise ResultsDocumentError(
            f"The document{where} is the capabilities of an openEO backend (its root), not a job's results: pass "
            f"a results URL ({example}), or a job id with connection=openeo.connect(...)."
        )
    if isinstance(doc.get("versions"), list):
        raise ResultsDocumentError(
            f"The document{where} lists the API versions of an openEO backend (/.well-known/openeo), not a job's "
            "results: pass a results URL (<API root>/jobs/<job id>/results), or a job id with connection=."
        )
    if isinstance(doc.get("jobs"), list):
        example = f"{base}/<job id>/results" if base else "<root>/jobs/<job id>/results"
        raise ResultsDocumentError(
            f"The document{where} lists batch jobs, not the results of one: pass a job's results URL ({example})."
        )
    if doc.get("type") == "Catalog":
        raise ResultsDocumentError(
            f"The document{where} is a STAC Catalog, not the results of a batch job (a Collection or an Item): "
            "pass a job's results URL (…/jobs/<job id>/results) or one of the catalog's collections."
        )


def _renewal_sources(located: _Located, info: ResultsInfo, partial: bool) -> tuple[str, ...]:
    """The URLs that serve this document again: where it came from, its self link, its canonical link."""
    candidates = [located.url, info.self_url, info.canonical_url]
    out: list[str] = []
    for url in candidates:
        if url and is_http(url):
            url = _with_partial(url) if partial else url
            if url not in out:
                out.append(url)
    return tuple(out)


def _is_openeo(source: Any, name: str) -> bool:
    """``source`` is an ``openeo`` client ``name`` (BatchJob, JobResults) or a subclass of one."""
    return any(c.__name__ == name and c.__module__.startswith("openeo") for c in type(source).__mro__)


def _pystac_self(obj: Any) -> str | None:
    href = obj.get_self_href() if hasattr(obj, "get_self_href") else None
    if not isinstance(href, str):
        return None
    if is_http(href) or href.startswith("file:"):
        return href
    return Path(href).resolve().as_uri() if Path(href).is_absolute() or Path(href).exists() else None


# -- item documents -------------------------------------------------------------------------------


def _fetch_items(
    item_links: Sequence[str], auth: Auth, sources: Sequence[str], clock: Clock | None
) -> list[list[AssetSpec]]:
    """The assets of every item document, fetched concurrently, in the order of ``item_links``."""
    if not item_links:
        return []
    items = _ItemLinks(item_links, auth, sources, clock)
    workers = min(len(item_links), int(get_option("item_concurrency")))
    if workers == 1:
        return [items.assets(link) for link in item_links]
    pool = ThreadPoolExecutor(workers, thread_name_prefix="xr-openeo-items")
    try:
        futures = [pool.submit(items.assets, link) for link in item_links]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure, the rest is not fetched


class _ItemLinks:
    """Item links of one results document, renewed through the document (once per expiry) when refused."""

    def __init__(self, links: Sequence[str], auth: Auth, sources: Sequence[str], clock: Clock | None) -> None:
        self.auth = auth
        self.sources = tuple(sources)
        self._clock = clock
        self._lock = threading.Lock()
        self._current = {redact(link): link for link in links}  # the same link, whatever its signature
        self._replaced: set[str] = set()  # links a renewal has replaced: their refusal needs no second one

    def assets(self, link: str) -> list[AssetSpec]:
        name = redact(link)
        href = self._current.get(name, link)
        try:
            doc = get_json(href, self.auth, what="item document")
        except RequestError as exc:
            if not _refused(exc) or not self.sources:
                raise
            href = self._renew(name, href, exc)
            doc = get_json(href, self.auth, what="item document")
        return parse_item(doc, base_url=href)

    def _renew(self, name: str, stale: str, error: RequestError) -> str:
        with self._lock:
            current = self._current.get(name, stale)
            if current != stale or stale in self._replaced:
                return current  # renewed meanwhile by another thread (the fresh link may be the same)
            expired = _expired_by(self._clock)
            try:
                source, doc = fresh_document(self.sources, self.auth, expired)
                info = parse_results(doc, base_url=source)
            except XrOpenEOError as exc:
                raise RequestError(
                    f"{error} The results document could not be fetched again for a fresh link: {exc}",
                    what=error.what,
                    href=error.href,
                    host=error.host,
                    cause=error.cause,
                    status=error.status,
                ) from None
            self._replaced.update(self._current.values())
            for link in info.item_links:
                self._current[redact(link)] = link
            return self._current.get(name, stale)


def _refused(exc: RequestError) -> bool:
    """Whether a failed request for a document was the refusal of an expired (or revoked) link."""
    parts = (exc.cause or "").split()
    code = parts[2] if len(parts) > 2 else None
    return is_refused_link(exc.status, code if code in EXPIRED_CODES else None)


def _expired_by(clock: Clock | None) -> Callable[[str, float], bool]:
    now = clock or wall_clock

    def expired(url: str, margin: float = 0.0) -> bool:
        expires = url_expiry(url)
        return expires is not None and expires - margin <= now()

    return expired
