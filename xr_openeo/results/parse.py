"""Results documents (API 1.0 Item, API 1.1+ Collection, either geopyspark style) and item documents -> specs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import ResultsDocumentError
from ..urls import redact, resolve
from .fields import ItemFields, asset_spec, item_fields
from .specs import AssetSpec, ResultsInfo
from .times import item_times

_STATUSES = ("running", "canceled", "finished", "error")


def parse_results(doc: Any, *, base_url: str | None = None) -> ResultsInfo:
    """Parse a results document (API 1.0 Item or 1.1+/1.2 Collection, either geopyspark style).

    Parameters
    ----------
    doc
        The JSON of ``GET /jobs/{id}/results`` (or of its signed canonical link, or a copy on disk).
    base_url
        Where the document came from: an ``http(s)`` or ``file://`` URL, or a path. Relative item
        links and asset hrefs resolve against it; messages about a document that is not a results
        document use it to say which URL to pass instead.

    Returns
    -------
    ResultsInfo
        The job id, status, links and collection-level assets (item documents are parsed with
        :func:`parse_item` and merged with :func:`merge_items`).

    Raises
    ------
    ResultsDocumentError
        Naming the field, when the document is malformed or is not a results document (a job's
        metadata, the backend's capabilities, a STAC Catalog…). Malformed fields of an asset
        xr_openeo would not read by default (a model, metadata) do not raise: they become that
        asset's ``problem``.
    """
    if not isinstance(doc, Mapping):
        raise ResultsDocumentError(f"a results document must be a JSON object, got {type(doc).__name__}")
    kind = _kind(doc, base_url)
    status = _status(doc, kind)
    assets_doc = doc.get("assets")
    if assets_doc is None:
        assets_doc = {}
    if not isinstance(assets_doc, Mapping):
        raise ResultsDocumentError(
            f"'assets' must be an object keyed by asset key, got {type(assets_doc).__name__}", field="assets"
        )
    item = ItemFields()
    if kind == "item":
        properties = doc.get("properties")
        if properties is not None and not isinstance(properties, Mapping):
            raise ResultsDocumentError("'properties' of a results Item must be an object", field="properties")
        item = item_fields(properties or {}, "properties")
    assets = _item_assets(assets_doc, base_url, item)
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
        assets=tuple(assets),
        item_links=tuple(href for rel, href in links if rel == "item"),
        self_url=next((href for rel, href in links if rel == "self"), None),
        canonical_url=next((href for rel, href in links if rel == "canonical"), None),
        process_graph=graph,
    )


def parse_item(doc: Any, *, base_url: str | None = None) -> list[AssetSpec]:
    """The assets of a STAC Item document, with the item's datetime, grid and id on each.

    Parameters
    ----------
    doc
        An item document that a results document links to (``rel=item``).
    base_url
        The item document's own URL or path; its relative asset hrefs resolve against it.

    Returns
    -------
    list of AssetSpec
        One per asset of the item. Dates follow the rule of :mod:`xr_openeo.results.times`.

    Raises
    ------
    ResultsDocumentError
        When the item is malformed where it concerns data xr_openeo reads; a malformed model or
        metadata item gives assets with a ``problem`` instead.
    """
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
    return _item_assets(assets, base_url, item_fields(properties, "properties", item_id))


def _item_assets(assets: Mapping[str, Any], base_url: str | None, item: ItemFields) -> list[AssetSpec]:
    """The specs of the assets of one item (or of a Collection), dates decided across them."""
    if item.error is not None and not assets:
        error = item.error
        if item.item_id is not None:
            error = ResultsDocumentError(f"item {item.item_id!r}: {error}", field=error.field)
        raise error
    parsed = [asset_spec(key, value, base_url, f"assets.{key}", item) for key, value in assets.items()]
    return item_times([spec for spec, _ in parsed], [own for _, own in parsed])


def _kind(doc: Mapping[str, Any], base_url: str | None) -> str:
    kind = doc.get("type")
    if kind == "Feature":
        return "item"
    if kind == "Collection" or (kind is None and "extent" in doc):
        return "collection"
    if kind is None and "assets" in doc:  # very old documents without a type
        return "item" if "properties" in doc else "collection"
    what = _what_instead(doc, kind, base_url)
    if what:
        raise ResultsDocumentError(what, field="type")
    raise ResultsDocumentError(
        f"'type' must be 'Collection' (API 1.1+) or 'Feature' (API 1.0 Item), got {kind!r}", field="type"
    )


def _what_instead(doc: Mapping[str, Any], kind: Any, base_url: str | None) -> str | None:
    """What a document that is not a results document is, and what to pass instead; None if unknown."""
    here = None
    if base_url and base_url.startswith(("http:", "https:")):
        here = redact(urlsplit(base_url)._replace(query="", fragment="").geturl()).rstrip("/")
    if kind is None and "status" in doc and "process" in doc and "id" in doc:
        url = f"{here}/results" if here else f"<backend>/jobs/{doc['id']}/results"
        return (
            f"This is the metadata of batch job {doc['id']!r} (GET /jobs/{{id}}: 'id', 'status', 'process'; "
            f"no 'type'), not its results document. Pass its results URL, {url}, or the job itself "
            "(an openeo BatchJob, or the job id with connection=)."
        )
    if "api_version" in doc and "endpoints" in doc:  # a STAC Catalog since API 1.1, so 'type' may be set
        url = f"{here}/jobs/<job id>/results" if here else "<backend>/jobs/<job id>/results"
        return (
            f"This is the capabilities document of an openEO backend (API {doc.get('api_version')}; "
            f"it has 'api_version' and 'endpoints'; 'type' {kind!r}), not a results document. Pass a job's results "
            f"URL, {url}, or a job id with connection=."
        )
    if kind is None and isinstance(doc.get("jobs"), list):
        return (
            "This is a list of batch jobs (GET /jobs; no 'type'), not a results document. Pass one job's "
            "results URL (…/jobs/<job id>/results), or a job id with connection=."
        )
    if kind is None and isinstance(doc.get("versions"), list):
        return (
            "This is the /.well-known/openeo document of a backend (no 'type'), not a results document. "
            "Pass a job's results URL (…/jobs/<job id>/results), or a job id with connection=."
        )
    if kind is None and isinstance(doc.get("code"), str) and "message" in doc:
        return (
            f"This is an openEO error response ({doc['code']}: {redact(str(doc['message']))}; no 'type'), "
            "not a results document."
        )
    if kind == "Catalog":
        return (
            "'type' is 'Catalog': this is a STAC Catalog, not the results document of a batch job (a STAC "
            "Collection, or an API 1.0 Item). Pass a job's results URL (…/jobs/<job id>/results), or one of "
            "the Collections it links to (rel=child)."
        )
    return None


def _status(doc: Mapping[str, Any], kind: str) -> str:
    status = doc.get("openeo:status")
    if status is None and kind == "item" and isinstance(doc.get("properties"), Mapping):
        status = doc["properties"].get("openeo:status")
    if status is None:
        return "finished"
    if status in ("created", "queued"):  # job statuses some backends copy; the API maps them to running
        return "running"
    if status not in _STATUSES:
        raise ResultsDocumentError(
            f"'openeo:status' must be one of running/canceled/finished/error, got {status!r}", field="openeo:status"
        )
    return str(status)


def _links(links: Any, base_url: str | None) -> list[tuple[str, str]]:
    if links is None:
        return []
    if not isinstance(links, list):
        raise ResultsDocumentError(f"'links' must be a list, got {type(links).__name__}", field="links")
    out = []
    for i, link in enumerate(links):
        if not isinstance(link, Mapping) or not isinstance(link.get("href"), str):
            raise ResultsDocumentError(f"links[{i}] must be an object with an 'href' string", field=f"links[{i}]")
        href = resolve(link["href"], base_url) if base_url else link["href"]
        out.append((str(link.get("rel", "")), href))
    return out


def _optional_str(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return value if isinstance(value, str) else None
