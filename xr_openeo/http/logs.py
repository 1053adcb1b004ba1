"""Redaction of signed URLs in the log records of the libraries that request them.

urllib3 logs every request line (``"GET /path?X-Amz-Signature=… HTTP/1.1" 200``) at DEBUG level,
fsspec logs the URLs it reads, and rasterio forwards GDAL's messages, which can quote a URL. A
logging filter only sees the records of the logger it is attached to (not those of its children),
so :func:`install_log_filters` adds :class:`RedactingFilter` to each of those loggers by name.

Nothing is installed at import: the first request xr_openeo sends installs the filters, once per
process (a second call adds nothing). Call it yourself to have them earlier.
"""

from __future__ import annotations

import logging
import threading

from ..urls import redact

#: The loggers that can name a requested URL, query string included.
URL_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.connection",
    "urllib3.response",
    "urllib3.util.retry",
    "requests",
    "fsspec",
    "fsspec.http",
    "fsspec.caching",
    "rasterio",
    "rasterio._env",
    "rasterio._filepath",
    "rasterio._io",
    "rasterio.env",
    "rasterio.session",
)
_lock = threading.Lock()
_installed = False


class RedactingFilter(logging.Filter):
    """Redacts signing values (:func:`xr_openeo.urls.redact`) in a record's message and traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's business, not ours
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            # The formatted traceback, redacted, replaces the exception (whose text may quote the URL).
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text), None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_filters() -> None:
    """Add a :class:`RedactingFilter` to every logger of :data:`URL_LOGGERS` that has none (idempotent)."""
    global _installed
    if _installed:
        return
    with _lock:
        for name in URL_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                logger.addFilter(RedactingFilter())
        _installed = True
