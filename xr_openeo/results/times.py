"""Dates of result files: RFC 3339 datetimes, dates in file names, and which source decides ``t``.

Which date a file gets (its ``time``, for the ``t`` axis):

1. the asset's own ``datetime``;
2. else its item's ``datetime`` (the item document's, or the API 1.0 results Item's ``properties``),
   unless that item holds several GeoTIFF files and their names carry dates: then the item's
   datetime describes none of them (Sentinel Hub's driver sets it to the time of the request), each
   GeoTIFF takes the date in its own name, and a GeoTIFF of that item whose name has none gets no date;
3. else the date in its file name (``openEO_2023-01-03Z.tif``, ``openEO_20231231T214100Z.tif``,
   ``output_2023-01-03T10:20:34.024Z.tif``), else in its asset key.

Files with no date from any of these keep their item's ``start_datetime`` as ``start``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np

from ..errors import ResultsDocumentError
from .specs import AssetSpec

# openEO/geopyspark file names: openEO_2023-01-03Z.tif, openEO_20231231T214100Z.tif; Sentinel Hub's
# output_2023-01-03T10:20:34.024Z.tif (JavaScript's toISOString, with milliseconds)
_NAME_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):?(\d{2}):?(\d{2})(?:[.,](\d+))?)?Z"
    r"|(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z"
)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
# datetime64[ns] spans 1677-09-21 .. 2262-04-11; whole years inside it
NS_YEARS = (1678, 2261)


def parse_datetime(value: Any, where: str) -> tuple[np.datetime64 | None, str]:
    """``(datetime64[ns] in UTC, the text)`` of an RFC 3339 datetime; the value is None beyond the ns range.

    A valid date that ``datetime64[ns]`` cannot hold (``9999-12-31T23:59:59Z``) is not an error:
    it comes back as ``(None, text)``. Anything that is no RFC 3339 datetime, or no real date,
    raises :class:`ResultsDocumentError` naming ``where``.
    """
    if not isinstance(value, str):
        raise ResultsDocumentError(f"{where} must be an RFC 3339 string, got {value!r}", field=where)
    match = _RFC3339.fullmatch(value.strip())
    moment = _moment(*match.groups()) if match else None
    if moment is None:
        raise ResultsDocumentError(f"{where} is not an RFC 3339 datetime: {value!r}", field=where)
    return _in_ns_range(moment), value


def time_from_name(name: str) -> np.datetime64 | None:
    """``2023-01-03`` from ``openEO_2023-01-03Z.tif``, ``2023-12-31T21:41:00`` from ``…_20231231T214100Z…``."""
    for match in _NAME_DATE.finditer(name):
        groups = match.groups()
        parts = groups[:7] if groups[0] is not None else groups[7:]
        moment = _moment(*parts)
        value = _in_ns_range(moment) if moment is not None else None
        if value is not None:
            return value
    return None


def name_time(spec: AssetSpec) -> np.datetime64 | None:
    """The date in the asset's file name, else in its key."""
    time = time_from_name(spec.filename)
    return time if time is not None else time_from_name(spec.key)


def with_file_name_times(assets: Iterable[AssetSpec]) -> tuple[AssetSpec, ...]:
    """Assets without a datetime get one from their file name (``openEO_2023-01-03Z.tif``) or key, if it has one."""
    return tuple(replace(a, time=name_time(a)) if a.time is None else a for a in assets)


def item_times(specs: Sequence[AssetSpec], own_time: Sequence[bool]) -> list[AssetSpec]:
    """The assets of one item with rule 2 of this module applied (file names over a shared item datetime).

    ``own_time[i]`` tells whether ``specs[i].time`` is the asset's own ``datetime`` (which always
    wins) rather than the item's.
    """
    shared = [i for i, s in enumerate(specs) if not own_time[i] and s.time is not None and s.format == "geotiff"]
    if len(shared) < 2:
        return list(specs)
    named = {i: name_time(specs[i]) for i in shared}
    if all(t is None for t in named.values()):
        return list(specs)
    out = list(specs)
    for i, time in named.items():
        out[i] = replace(specs[i], time=time)
    return out


def _moment(
    year: str,
    month: str,
    day: str,
    hour: str | None = None,
    minute: str | None = None,
    second: str | None = None,
    fraction: str | None = None,
    zone: str | None = None,
) -> tuple[datetime, int, int] | None:
    """``(naive moment, extra seconds, nanoseconds to add)`` in UTC; None if no real date or time."""
    seconds = int(second or 0)
    leap = int(seconds == 60)  # RFC 3339 leap second: the next second
    try:
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), seconds - leap)
    except ValueError:
        return None
    nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
    offset = 0
    if zone and zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 60 + minutes) * (-60 if zone[0] == "+" else 60)
    return moment, leap + offset, nanos


def _in_ns_range(parts: tuple[datetime, int, int]) -> np.datetime64 | None:
    moment, seconds, nanos = parts
    if not NS_YEARS[0] <= moment.year <= NS_YEARS[1]:
        return None
    return np.datetime64(moment.isoformat(), "ns") + np.timedelta64(seconds, "s") + np.timedelta64(nanos, "ns")
