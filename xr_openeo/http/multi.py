"""The links of several results documents as one: what the readers of a mosaic of many jobs use.

Asset keys repeat across jobs (every job of a split writes ``openEO_2023-01-01Z.tif``), so the
assets of results ``name`` are known here as ``"{name}/{key}"``. Each part stays a
:class:`~xr_openeo.http.Links` of its own: its token scope, its renewal through its own results
document, its pickling rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import AssetReadError
from .links import Links

SEPARATOR = "/"


class MultiLinks:
    """Asset hrefs of several results documents, by ``"{part}/{asset key}"``; duck-types :class:`Links`.

    Parameters
    ----------
    parts
        ``{name: Links}``; names are not empty and hold no ``/``.
    """

    def __init__(self, parts: Mapping[str, Links]) -> None:
        for name in parts:
            if not name or SEPARATOR in name:
                raise ValueError(f"part names must be non-empty and without {SEPARATOR!r}, got {name!r}")
        self.parts: dict[str, Links] = dict(parts)
        joined = "\n".join(f"{name}={links.scope}" for name, links in sorted(self.parts.items()))
        self._scope = "multi:" + hashlib.sha256(joined.encode()).hexdigest()[:24]

    @staticmethod
    def key(part: str, key: str) -> str:
        """The key of asset ``key`` of part ``part``."""
        return f"{part}{SEPARATOR}{key}"

    def _part(self, key: str) -> tuple[Links, str]:
        name, sep, inner = key.partition(SEPARATOR)
        links = self.parts.get(name) if sep else None
        if links is None:
            raise AssetReadError(f"Asset {key!r} is not in the results of these jobs", key=key)
        return links, inner

    # -- what the readers ask of links --

    def href(self, key: str) -> str:
        links, inner = self._part(key)
        return links.href(inner)

    def hrefs(self) -> dict[str, str]:
        return {self.key(name, k): v for name, links in self.parts.items() for k, v in links.hrefs().items()}

    def renew(self, key: str, stale: str) -> str:
        links, inner = self._part(key)
        try:
            return links.renew(inner, stale)
        except AssetReadError as exc:  # name the asset as the mosaic knows it
            raise type(exc)(
                str(exc).replace(repr(inner), repr(key), 1), key=key, href=exc.href, status=exc.status
            ) from None

    def _owner(self, url: str) -> Links | None:
        for links in self.parts.values():
            if url in links.hrefs().values():
                return links
        return None

    def headers(self, url: str) -> dict[str, str]:
        """The headers of the part ``url`` belongs to (its token, only where that part's rules allow)."""
        owner = self._owner(url)
        if owner is not None:
            return owner.headers(url)
        for links in self.parts.values():  # a URL no part lists (a redirect): whichever part's rules admit a token
            found = links.headers(url)
            if found:
                return found
        return {}

    def expired(self, url: str, margin: float = 5.0) -> bool:
        owner = self._owner(url) or next(iter(self.parts.values()), None)
        return owner.expired(url, margin) if owner is not None else False

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(s for links in self.parts.values() for s in links.sources)

    @property
    def scope(self) -> str:
        """What tells these results apart from others in caches: a digest of the parts' scopes."""
        return self._scope

    @property
    def refreshes(self) -> int:
        return sum(links.refreshes for links in self.parts.values())

    # -- identity, copies, pickles --

    def __reduce__(self) -> tuple[Callable[..., MultiLinks], tuple[Any, ...]]:
        return (MultiLinks, (self.parts,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultiLinks):
            return NotImplemented
        return self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self._scope)

    def __repr__(self) -> str:
        count = sum(len(links.hrefs()) for links in self.parts.values())
        return f"MultiLinks({len(self.parts)} results, {count} assets)"
