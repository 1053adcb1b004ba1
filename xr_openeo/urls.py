"""URLs of results: signing, expiry, redaction, scoping and resolution. Pure, no I/O.

Signed URLs carry their own authorisation (a query parameter or a path segment); they must never
appear in messages, reprs or logs unredacted, and must never be sent the backend's token.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

_SIGNING_NAMES = frozenset(
    {"expires", "sig", "se", "sp", "sv", "sr", "st", "ss", "srt", "spr", "skoid", "sktid", "skt", "ske", "sks", "skv"}
    | {"policy", "key-pair-id", "key", "apikey", "api_key", "code", "auth", "authorization", "jwt", "session"}
)
_SIGNING_PREFIXES = ("x-amz-", "x-goog-", "x-ms-")
_SIGNING_PARTS = ("signature", "token", "secret", "password", "credential")
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&?#;\s'\"<>]+)=(?P<value>[^&#;\s'\"<>)]*)")
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<password>[^@/\s]*)@")
# The signature path segment of openeo-python-driver signed URLs: …/results/{user_b64}/{signature},
# …/results/assets/{user_b64}/{signature}/{file}, …/results/items/{user_b64}/{signature}/{item}.
# Only segments that look like a signature (16+ URL-safe characters) count, so unsigned hrefs stay whole.
_PATH_SIGNATURE = re.compile(
    r"(?P<head>/results/(?:assets/|items/)?(?!assets/|items/)[A-Za-z0-9_=-]+/)"
    r"(?P<signature>[A-Za-z0-9_-]{16,})(?=[/?#\s'\"<>)]|$)"
)


def url_expiry(href: str) -> float | None:
    """The ``expires`` query parameter of a signed URL (unix seconds), if it has one."""
    values = parse_qs(urlsplit(href).query).get("expires")
    try:
        return float(values[0]) if values else None
    except ValueError:
        return None


def is_signed(url: str) -> bool:
    """Whether ``url`` carries its own authorisation (a signing or token query parameter)."""
    return any(_is_signing_param(m.group("name")) for m in _QUERY_PARAM.finditer(url))


def redact(url: str | None) -> str:
    """``url`` without its signing query values and userinfo password (safe for messages and reprs).

    Works on any text (error messages quoting URLs too): every ``?name=value``/``&name=value`` whose
    name looks like a signature, token, key or expiry gets ``REDACTED`` as its value. Paths are kept,
    except the signature segment of openeo-python-driver signed URLs (``…/results/assets/dXNlcg/REDACTED/file.tif``).
    """
    if not url:
        return str(url)

    def query_param(match: re.Match[str]) -> str:
        if not _is_signing_param(match["name"]):
            return match[0]
        return f"{match['sep']}{match['name']}=REDACTED"

    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:REDACTED@", str(url))
    text = _PATH_SIGNATURE.sub(lambda m: f"{m['head']}REDACTED", text)
    return _QUERY_PARAM.sub(query_param, text)


def under_root(url: str, root: str | None) -> bool:
    """Whether ``url`` is on the backend's origin and below its API root path."""
    if not root:
        return False
    u, r = urlsplit(url), urlsplit(root)
    return (u.scheme, u.netloc.lower()) == (r.scheme, r.netloc.lower()) and u.path.startswith(r.path.rstrip("/") + "/")


def member_url(url: str, inner: str | None) -> str:
    """The URL of file ``inner`` inside the folder asset at ``url`` (keeping its signing query)."""
    if not inner:
        return url
    parts = urlsplit(url)
    return parts._replace(path=parts.path.rstrip("/") + "/" + inner.lstrip("/")).geturl()


def is_local(url: str) -> bool:
    """Whether ``url`` is a ``file://`` URL or a path (not something to fetch over HTTP)."""
    scheme = urlsplit(url).scheme
    return scheme == "file" or scheme == "" or len(scheme) == 1  # a path, or a Windows drive letter


def local_path(url: str) -> Path:
    """The path of a ``file://`` URL or of a path."""
    return Path(unquote(urlsplit(url).path)) if url.startswith("file:") else Path(url)


def resolve(href: str, base: str | None) -> str:
    """``href`` made absolute against ``base``: the document's own URL (``http(s)``/``file``) or path."""
    if not base or urlsplit(href).scheme in ("http", "https", "file"):
        return href
    if urlsplit(base).scheme in ("http", "https", "file"):
        return urljoin(base, href)
    if Path(href).is_absolute():
        return href
    return str(Path(base).parent / href)


def _is_signing_param(name: str) -> bool:
    lowered = unquote(name).lower()
    return (
        lowered in _SIGNING_NAMES
        or lowered.startswith(_SIGNING_PREFIXES)
        or any(part in lowered for part in _SIGNING_PARTS)
    )
