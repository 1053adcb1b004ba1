"""Pure parsing of openEO results documents (any API version, any STAC style) into frozen asset specs.

No I/O here: :func:`parse_results` reads a ``GET /jobs/{id}/results`` document, :func:`parse_item`
an item document it links to, :func:`merge_items` puts the items' datetimes and grids onto the
collection's assets, :func:`with_file_name_times` dates what is left from file names, and
:func:`select` chooses what an open reads and says why it skips the rest.

Modules: ``specs`` (the frozen values), ``formats`` (format families), ``fields`` (one asset
object), ``times`` (datetimes and which source decides ``t``), ``parse`` (documents), ``merge``
(items onto the collection) and ``select``.
"""

from ..urls import is_signed, redact, url_expiry
from .formats import FORMATS, RASTER_FORMATS, TABLE_FORMATS, asset_format, require_format
from .merge import merge_items
from .parse import parse_item, parse_results
from .select import Purpose, Selection, select
from .specs import AssetSpec, Grid, ResultsInfo
from .times import parse_datetime, time_from_name, with_file_name_times

__all__ = [
    "FORMATS",
    "RASTER_FORMATS",
    "TABLE_FORMATS",
    "AssetSpec",
    "Grid",
    "Purpose",
    "ResultsInfo",
    "Selection",
    "asset_format",
    "is_signed",
    "merge_items",
    "parse_datetime",
    "parse_item",
    "parse_results",
    "redact",
    "require_format",
    "select",
    "time_from_name",
    "url_expiry",
    "with_file_name_times",
]
