"""In-memory caches bounded in bytes: least recently used entries go first; one load per key at a time.

Every cache of :mod:`xr_openeo.http` is a :class:`ByteCache`; :func:`xr_openeo.http.clear_caches`
empties them all. The bound is read when an entry is stored
(the ``cache_bytes`` option), so ``set_options(cache_bytes=...)`` applies to what is stored next.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from .._options import get_option

V = TypeVar("V")


class ByteCache(Generic[V]):
    """A thread-safe LRU mapping whose values' sizes (``sizeof(value)``, in bytes) sum to at most a bound.

    Parameters
    ----------
    name
        What it holds, for reprs.
    sizeof
        The size of a value in bytes (what counts towards the bound).
    max_bytes
        The bound; None reads the ``cache_bytes`` option each time an entry is stored. A value
        larger than the bound is returned to its caller but not kept.
    """

    def __init__(self, name: str, sizeof: Callable[[V], int], max_bytes: int | None = None) -> None:
        self.name = name
        self._sizeof = sizeof
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._loading: dict[Hashable, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"ByteCache({self.name!r}, {len(self._entries)} entries, {self._bytes} bytes)"

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def bound(self) -> int:
        return self._max_bytes if self._max_bytes is not None else int(get_option("cache_bytes"))

    def get(self, key: Hashable) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: V) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used entries beyond the bound."""
        size = self._sizeof(value)
        bound = self.bound()
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > bound:
                return
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > bound and self._entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        """The value of ``key``, loaded with ``load()`` if absent; concurrent callers of one key share one load."""
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            value = self.get(key)
            if value is not None:
                return value
            try:
                value = load()
                self.put(key, value)
                return value
            finally:
                with self._lock:
                    if self._loading.get(key) is loading:
                        del self._loading[key]

    def pop(self, key: Hashable) -> V | None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return None
            self._bytes -= entry[1]
            return entry[0]

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
