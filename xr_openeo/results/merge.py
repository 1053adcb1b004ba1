"""Collection-level assets completed with what their item documents say."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from .specs import AssetSpec


def merge_items(assets: Sequence[AssetSpec], items: Iterable[Sequence[AssetSpec]]) -> tuple[AssetSpec, ...]:
    """The collection's assets completed with what their items say (datetime, grid, bands, item id).

    An item asset matches a collection asset by href path (signatures differ between documents),
    else by key (STAC 1.0 style: same file name; STAC 1.1 style: ``{item_id}_{item key}``).
    Item assets that match no collection asset are added (the spec says they MUST be copied to the
    collection, but some backends forget).

    Parameters
    ----------
    assets
        The collection-level assets (:attr:`ResultsInfo.assets`).
    items
        The assets of each item document (:func:`parse_item`), in link order.

    Returns
    -------
    tuple of AssetSpec
        The collection's values win where both give one; the item fills the gaps. Roles are the
        collection's plus any the item adds (an item says that a file is a model:
        ``ml-model:checkpoint``). A ``problem`` of the collection's asset stays; one of the item's
        stays unless the merged asset is data xr_openeo reads (the item's broken fields are left out).
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
            merged[i] = _completed(merged[i], ia)
    return tuple(merged)


def _completed(base: AssetSpec, ia: AssetSpec) -> AssetSpec:
    # A bound the collection gives (even one too far for datetime64[ns], held as text) is the collection's.
    own_start = base.start is not None or base.interval[0] is not None
    own_end = base.end is not None or base.interval[1] is not None
    merged = replace(
        base,
        media_type=base.media_type or ia.media_type,
        roles=base.roles + tuple(r for r in ia.roles if r not in base.roles),
        time=base.time if base.time is not None else ia.time,
        start=base.start if own_start else ia.start,
        end=base.end if own_end else ia.end,
        interval=(base.interval[0] if own_start else ia.interval[0], base.interval[1] if own_end else ia.interval[1]),
        grid=base.grid or ia.grid,
        bands=base.bands or ia.bands,
        nodata=base.nodata if base.nodata is not None else ia.nodata,
        dtype=base.dtype or ia.dtype,
        item_id=base.item_id or ia.item_id,
        problem=base.problem or ia.problem,
        problem_field=base.problem_field if base.problem else ia.problem_field,
    )
    if base.problem is None and merged.is_readable_data:
        # The item's copy was malformed where it called the file something else (a model, metadata);
        # its broken fields were left out, and the collection says it is data: nothing to report.
        merged = replace(merged, problem=None, problem_field=None)
    return merged
