"""Where the assets of one result are now: hrefs, who gets the token, expiry, renewal.

:class:`Auth` scopes the backend's bearer token to unsigned URLs under its root. :class:`Links` holds
the asset hrefs of one results document and renews them, when they expire or are refused, by
fetching the results document again from its ``sources``. Renewal happens once per expiry per
process however many tasks notice it: every :class:`Links` of the same results in a process (copies,
and the copies that unpickling makes in each dask task) shares one renewal state, kept in a cache
bounded in bytes that :func:`xr_openeo.http.clear_caches` empties.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import AssetReadError, URLExpiredError, XrOpenEOError
from ..urls import is_http, is_signed, redact, under_root, url_expiry
from .cache import ByteCache
from .policy import Clock, wall_clock

log = logging.getLogger("xr_openeo")


@dataclass(frozen=True)
class Auth:
    """The backend root and its bearer token (``basic//…`` or ``oidc/…``), or none.

    The token is sent only to URLs :func:`~xr_openeo.urls.under_root` that are not signed (a signed
    URL authorises itself; sending the token along would hand it to whoever the URL is shared with).
    """

    root: str | None = None
    token: str | None = field(default=None, repr=False)

    def headers(self, url: str) -> dict[str, str]:
        """The Authorization header for ``url``: only under the root, and never for signed URLs."""
        if self.token and under_root(url, self.root) and not is_signed(url):
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    @classmethod
    def from_connection(cls, connection: Any) -> Auth:
        """Root URL and bearer token of an ``openeo.Connection``."""
        root = connection.root_url.rstrip("/")
        auth = getattr(connection, "auth", None)
        token = getattr(auth, "bearer", None)
        return cls(root=root, token=token)

    def without_token(self) -> Auth:
        return Auth(self.root, None)

    def fingerprint(self) -> str | None:
        """A digest of the token (to tell credentials apart without keeping the token itself), or None."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:16] if self.token else None


class _State:
    """The current hrefs of one result in this process, when they were received, and the renewal lock."""

    def __init__(self, hrefs: Mapping[str, str], issued: float) -> None:
        self.lock = threading.Lock()
        self.hrefs = dict(hrefs)
        self.issued = issued
        self.refreshes = 0
        self.replaced: set[str] = set()  # hrefs a renewal has replaced: their refusal needs no second one

    def adopt(self, hrefs: Mapping[str, str], issued: float) -> None:
        """Take ``hrefs`` (received at ``issued``): all of them if they are newer, else only unknown keys."""
        with self.lock:
            if issued > self.issued:
                self.hrefs.update(hrefs)
                self.issued = issued
            else:
                for key, href in hrefs.items():
                    self.hrefs.setdefault(key, href)


def _state_bytes(state: _State) -> int:
    return 256 + sum(len(k) + len(v) for k, v in state.hrefs.items()) + sum(map(len, state.replaced))


_STATES: ByteCache[_State] = ByteCache("renewed links", _state_bytes)


class Links:
    """Asset hrefs of one results document, renewed by fetching the document again when they expire.

    Parameters
    ----------
    hrefs
        ``{asset key: href}``.
    auth
        The backend root and token: the token goes only to unsigned URLs under the root.
    sources
        URLs that serve the results document (the results URL, which needs the token, and the signed
        canonical link, which does not); renewal tries them in order, those valid by the clock first.
    pickle_token
        Pickles carry the token only if True (otherwise unpickled copies renew through signed
        sources alone, and cannot read hrefs that need the token).
    clock
        Seconds since the epoch (default :func:`time.time`); decides when a URL with an expiry
        (:func:`~xr_openeo.urls.url_expiry`) counts as expired. Injectable for tests.
    issued
        When ``hrefs`` were received, by ``clock`` (default: now).

    Notes
    -----
    A URL counts as expired 5 s before its expiry (no margin for URLs valid for less than 50 s
    when received). A URL that had expired by this clock when it was received is never taken as
    expired by the clock (the clock is off, or the document old): its server's refusal decides.
    Copies and unpickled copies are equivalent objects that share the renewal state in a process.
    """

    def __init__(
        self,
        hrefs: Mapping[str, str],
        auth: Auth,
        sources: Sequence[str] = (),
        *,
        pickle_token: bool = False,
        clock: Clock | None = None,
        issued: float | None = None,
    ) -> None:
        self.auth = auth
        self.sources = tuple(s for s in sources if s)
        self.pickle_token = bool(pickle_token)
        self.clock: Clock = clock or wall_clock
        self._keys = frozenset(hrefs)
        own = _State(hrefs, self.clock() if issued is None else issued)
        key = self._share_key()
        if key is None:
            self._state = own
        else:
            self._state = _STATES.get_or_load(key, lambda: own)
            if self._state is not own:
                self._state.adopt(own.hrefs, own.issued)

    def _share_key(self) -> Hashable | None:
        if not self.sources:
            return None  # nothing to renew from: nothing to share
        return (self.auth.root, self.auth.fingerprint(), tuple(redact(s) for s in self.sources))

    # -- identity, copies, pickles --

    def _args(self, auth: Auth) -> tuple[Any, ...]:
        clock = None if self.clock is wall_clock else self.clock
        return (self.hrefs(), auth, self.sources, self.pickle_token, clock, self._state.issued)

    def __reduce__(self) -> tuple[Callable[..., Links], tuple[Any, ...]]:
        auth = self.auth if self.pickle_token else self.auth.without_token()
        return (_rebuild, self._args(auth))

    def __copy__(self) -> Links:
        return _rebuild(*self._args(self.auth))

    def __deepcopy__(self, memo: dict[int, Any]) -> Links:
        return _rebuild(*self._args(self.auth))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Links):
            return NotImplemented
        return (self.auth.root, self.auth.fingerprint(), self.sources, self._keys, self.pickle_token) == (
            other.auth.root,
            other.auth.fingerprint(),
            other.sources,
            other._keys,
            other.pickle_token,
        )

    def __hash__(self) -> int:
        return hash((self.auth.root, self.sources, self._keys))

    def __repr__(self) -> str:
        sources = [redact(s) for s in self.sources]
        token = "with token" if self.auth.token else "no token"
        return f"Links({len(self._keys)} assets, sources={sources}, root={self.auth.root!r}, {token})"

    @property
    def scope(self) -> str:
        """What tells these results apart from others in caches (asset keys repeat across jobs)."""
        first = self.sources[0] if self.sources else min(self._state.hrefs.values(), default="")
        parts = urlsplit(first)
        return parts.netloc + parts.path

    @property
    def refreshes(self) -> int:
        """How many times these links were renewed in this process (by any copy of them)."""
        return self._state.refreshes

    # -- hrefs --

    def hrefs(self) -> dict[str, str]:
        """The current ``{asset key: href}`` of these links' assets."""
        current = self._state.hrefs
        return {key: current[key] for key in self._keys if key in current}

    def href(self, key: str) -> str:
        """The current href of asset ``key``."""
        try:
            return self._state.hrefs[key]
        except KeyError:
            raise AssetReadError(f"Asset {key!r} is not in the results document", key=key) from None

    def headers(self, url: str) -> dict[str, str]:
        """The headers a request to ``url`` carries (the Authorization header, where it belongs)."""
        return self.auth.headers(url)

    def expired(self, url: str, margin: float = 5.0) -> bool:
        """Whether ``url`` expires within ``margin`` seconds by the clock (see the class notes)."""
        expires = url_expiry(url)
        if expires is None:
            return False
        issued = self._state.issued
        if expires <= issued:
            return False  # expired when received: the clock cannot judge it, the server will
        if expires - issued < 10 * margin:
            margin = 0.0
        return expires - margin <= self.clock()

    def renew(self, key: str, stale: str) -> str:
        """A fresh href for ``key`` (``stale`` was refused or expired), fetching the document again if needed.

        Raises :class:`~xr_openeo.errors.URLExpiredError` when no source gives a fresh document
        with the asset.
        """
        state = self._state
        with state.lock:
            current = self.href(key)
            if (current != stale or stale in state.replaced) and not self.expired(current):
                return current  # another task renewed it already (the fresh link may be the same)
            try:
                source, fresh = self._fetch_hrefs()
            except _NoFreshDocument as exc:
                detail = str(exc)
            else:
                href = fresh.get(key) or _same_file(stale, fresh.values())
                if href is not None:
                    state.replaced.update(state.hrefs.values())
                    state.hrefs.update(fresh)
                    state.hrefs[key] = href
                    state.issued = self.clock()
                    state.refreshes += 1
                    log.info("renewed %d asset URLs from %s", len(fresh), redact(source))
                    return href
                detail = f"the document at {redact(source)} has no asset {key!r}"
        raise URLExpiredError(
            f"The URL of asset {key!r} ({redact(stale)}) expired or was refused and could not be renewed: "
            f"{detail}. Open the results again (xr_openeo.open_results) to get fresh links.",
            key=key,
            href=redact(stale),
        )

    def _fetch_hrefs(self) -> tuple[str, dict[str, str]]:
        from ..results import parse_results

        source, doc = fresh_document(self.sources, self.auth, self.expired)
        try:
            info = parse_results(doc, base_url=source)
        except XrOpenEOError as exc:
            raise _NoFreshDocument(f"the document at {redact(source)} cannot be parsed: {exc}") from None
        return source, {a.key: a.href for a in info.assets}


def _rebuild(
    hrefs: Mapping[str, str],
    auth: Auth,
    sources: Sequence[str],
    pickle_token: bool,
    clock: Clock | None,
    issued: float,
) -> Links:
    return Links(hrefs, auth, sources, pickle_token=pickle_token, clock=clock, issued=issued)


class _NoFreshDocument(XrOpenEOError):
    """No source served the results document (the message says what each answered)."""


def fresh_document(
    sources: Sequence[str], auth: Auth, expired: Callable[[str, float], bool] | None = None
) -> tuple[str, Any]:
    """``(source, document)``: the results document fetched again from the first source that serves it.

    Sources that the clock (``expired``) says have expired are tried last, and so are unsigned ones
    (behind the backend's login) when ``auth`` has no token; local files never (they renew nothing).
    """
    from .documents import get_json

    candidates = [s for s in sources if is_http(s)]

    def rank(source: str) -> tuple[bool, bool]:
        needs_token = not is_signed(source)  # an unsigned results URL is the backend's, behind its login
        return (bool(expired and expired(source, 0.0)), needs_token and not auth.token)

    errors = []
    for source in sorted(candidates, key=rank):
        try:
            return source, get_json(source, auth, what="results document")
        except XrOpenEOError as exc:
            errors.append(str(exc))
    raise _NoFreshDocument("; ".join(errors) or "there is no results URL to fetch it from")


def _same_file(stale: str, fresh: Any) -> str | None:
    """The fresh href of the file ``stale`` pointed to (the same URL once signatures are ignored), if any."""
    unsigned = redact(stale)
    return next((href for href in fresh if redact(href) == unsigned), None)
