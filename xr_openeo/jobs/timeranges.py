"""Time ranges of a split: the period a graph loads, cut by a count, a pandas frequency or by hand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import XrOpenEOError


def period(loader: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[Any, Any]:
    """``[start, end)`` of the loader's time: its temporal_extent within the collection's (whose end is inclusive).

    A temporal_extent reaching beyond the collection's is cut to it: a piece of a split outside the
    collection's dates would hold no data, and its job would fail (and be retried) for nothing.
    """
    import pandas as pd

    extent = (loader.get("arguments") or {}).get("temporal_extent")
    start, end = (extent[0], extent[1]) if isinstance(extent, list | tuple) and len(extent) == 2 else (None, None)
    first, last = _collection_interval(meta)
    first = _naive(first) if first is not None else None
    after = _naive(last) + pd.Timedelta(days=1) if last is not None else None
    start = _naive(start) if start is not None else first
    end = _naive(end) if end is not None else after
    if start is None or end is None:
        raise XrOpenEOError(
            "A split in time needs the period: this graph's temporal_extent is open and the collection's metadata "
            "does not close it; set a temporal_extent"
        )
    given = (start, end)
    start = max(start, first) if first is not None else start
    end = min(end, after) if after is not None else end
    if start >= end:
        raise XrOpenEOError(
            f"A split in time of [{given[0]}, {given[1]}): the collection's dates are {first} .. {last}, none of them "
            "in this temporal_extent; set one that overlaps the collection's"
        )
    return start, end


def _collection_interval(meta: Mapping[str, Any]) -> tuple[Any, Any]:
    for dim in (meta.get("cube:dimensions") or {}).values():
        if isinstance(dim, Mapping) and dim.get("type") == "temporal" and isinstance(dim.get("extent"), list):
            extent = dim["extent"]
            if len(extent) == 2:
                return extent[0], extent[1]
    try:
        interval = meta["extent"]["temporal"]["interval"][0]
        return interval[0], interval[1]
    except (KeyError, IndexError, TypeError):
        return None, None


def _naive(value: Any) -> Any:
    import pandas as pd

    ts = pd.Timestamp(str(value))
    return ts.tz_convert(None) if ts.tzinfo is not None else ts


def time_ranges(period: tuple[Any, Any], spec: Any) -> list[tuple[str, str]]:
    import pandas as pd

    start, end = period
    if end <= start:
        raise XrOpenEOError(f"The temporal extent [{start}, {end}) is empty: nothing to split")
    if isinstance(spec, int):
        span = end - start
        whole_days = span >= pd.Timedelta(days=spec) and start == start.normalize() and end == end.normalize()
        edges = [start + span * i / spec for i in range(spec + 1)]
        if whole_days:
            edges = [e.round("D") for e in edges]
    elif isinstance(spec, str):
        try:
            inner = list(pd.date_range(start, end, freq=spec, inclusive="neither"))
        except ValueError as exc:
            raise ValueError(f"time={spec!r} is not a pandas frequency ('MS', '7D', 'YS'…): {exc}") from None
        edges = [start, *inner, end]
    else:
        pairs = [tuple(p) for p in spec]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError(f"time= takes a count, a pandas frequency or [start, end) pairs, got {spec!r}")
        return [(str(a), str(b)) for a, b in pairs]
    edges = sorted(set(edges))
    days = all(e == e.normalize() for e in edges)  # dates when every edge is one, else UTC timestamps throughout
    text = [str(e.strftime("%Y-%m-%d" if days else "%Y-%m-%dT%H:%M:%SZ")) for e in edges]
    return list(zip(text[:-1], text[1:], strict=True))
