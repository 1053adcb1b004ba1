"""URLs of results: signing, expiry, redaction, scoping and resolution. Pure, no I/O.

Signed URLs carry their own authorisation (a query parameter or a path segment); they must never
appear in messages, reprs or logs unredacted, and must never be sent the backend's token. The
schemes recognised: openEO backends (``expires``/``signature`` queries, openeo-python-driver's
path signatures), S3 presigned URLs (``X-Amz-*``), Azure SAS (``sig``, ``se``…), Google Cloud
Storage (``X-Goog-*``), CDN tokens (``sgn``, ``token``, ``access_token``…) and userinfo passwords.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

_SIGNING_NAMES = frozenset(
    {"expires", "sig", "sgn", "se", "sp", "sv", "sr", "st", "ss", "srt", "spr", "skoid", "sktid", "skt", "ske", "sks"}
    | {"skv", "policy", "key-pair-id", "key", "apikey", "api_key", "code", "auth", "authorization", "jwt", "session"}
    | {"hmac", "hdnts", "__gda__", "sas", "googleaccessid"}
)
_SIGNING_PREFIXES = ("x-amz-", "x-goog-", "x-ms-", "x-oss-", "x-cos-")
_SIGNING_PARTS = ("signature", "token", "secret", "password", "credential")
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;#])(?P<name>[^=&?#;\s'\"<>]+)=(?P<value>[^&#;\s'\"<>)]*)")
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<password>[^@/\s]*)@")
# The signature path segment of openeo-python-driver signed URLs: …/results/{user_b64}/{signature},
# …/results/assets/{user_b64}/{signature}/{file}, …/results/items/{user_b64}/{signature}/{item}.
# Only segments that look like a signature (16+ URL-safe characters) count, so unsigned hrefs stay whole.
_PATH_SIGNATURE = re.compile(
    r"(?P<head>/results/(?:assets/|items/)?(?!assets/|items/)[A-Za-z0-9_=-]+/)"
    r"(?P<signature>[A-Za-z0-9_-]{16,})(?=[/?#\s'\"<>)]|$)"
)
_JOB_RESULTS = re.compile(r"^(?P<root>https?://[^?#]*?)/jobs/[^/?#]+/results(?:[/?#]|$)")
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


def url_expiry(href: str) -> float | None:
    """When a signed URL expires (unix seconds), if it says so.

    Reads ``expires`` (openEO backends, CloudFront: unix seconds), ``X-Amz-Date`` + ``X-Amz-Expires``
    (S3), ``X-Goog-Date`` + ``X-Goog-Expires`` (Google Cloud Storage) and ``se`` (Azure SAS, an ISO
    datetime). Names are matched without regard to case.
    """
    params = {name.lower(): value for name, value in parse_qsl(urlsplit(href).query, keep_blank_values=True)}
    try:
        if "expires" in params:
            return float(params["expires"])
        for vendor in ("amz", "goog"):
            date, seconds = params.get(f"x-{vendor}-date"), params.get(f"x-{vendor}-expires")
            if date and seconds:
                start = datetime.strptime(date, _AMZ_DATE).replace(tzinfo=UTC)
                return start.timestamp() + float(seconds)
        if "se" in params and "sig" in params:
            return datetime.fromisoformat(params["se"].replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None
    return None


def is_signed(url: str) -> bool:
    """Whether ``url`` carries its own authorisation (a signing or token query parameter, or a password)."""
    return bool(_USERINFO.search(url)) or any(_is_signing_param(m.group("name")) for m in _QUERY_PARAM.finditer(url))


def redact(url: str | None) -> str:
    """``url`` without its signing values and userinfo password (safe for messages, reprs and logs).

    Works on any text (error messages quoting URLs too): every ``?name=value``/``&name=value``/
    ``#name=value`` whose name looks like a signature, token, key, credential or expiry gets
    ``REDACTED`` as its value. Paths are kept, except the signature segment of openeo-python-driver
    signed URLs (``…/results/assets/dXNlcg/REDACTED/file.tif``).

    Examples
    --------
    >>> redact("https://b.s3.amazonaws.com/f.tif?X-Amz-Signature=abc&x=1")
    'https://b.s3.amazonaws.com/f.tif?X-Amz-Signature=REDACTED&x=1'
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


def host(url: str) -> str | None:
    """The host (and port) ``url`` goes to, without userinfo; None for paths and ``file://`` URLs."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:  # a malformed port: the host alone
        port = None
    return f"{parts.hostname}:{port}" if port else parts.hostname


def under_root(url: str, root: str | None) -> bool:
    """Whether ``url`` is on the backend's origin and below its API root path."""
    if not root:
        return False
    u, r = urlsplit(url), urlsplit(root)
    return (u.scheme, u.netloc.lower()) == (r.scheme, r.netloc.lower()) and u.path.startswith(r.path.rstrip("/") + "/")


def backend_root(url: str | None) -> str | None:
    """The backend's API root of a results URL (``…/openeo/1.2/jobs/j-1/results…`` → ``…/openeo/1.2``), else None."""
    match = _JOB_RESULTS.match(url or "")
    return match["root"] if match else None


def member_url(url: str, inner: str | None) -> str:
    """The URL of file ``inner`` inside the folder asset at ``url`` (keeping its signing query)."""
    if not inner:
        return url
    if is_local(url):
        return str(local_path(url) / inner.lstrip("/"))
    parts = urlsplit(url)
    return parts._replace(path=parts.path.rstrip("/") + "/" + inner.lstrip("/")).geturl()


def is_local(url: str) -> bool:
    """Whether ``url`` is a ``file://`` URL or a path (not something to fetch over HTTP)."""
    scheme = urlsplit(url).scheme
    return scheme == "file" or scheme == "" or len(scheme) == 1  # a path, or a Windows drive letter


def is_http(url: str) -> bool:
    """Whether ``url`` is an ``http://`` or ``https://`` URL."""
    return urlsplit(url).scheme in ("http", "https")


def local_path(url: str) -> Path:
    """The path of a ``file://`` URL or of a path."""
    return Path(unquote(urlsplit(url).path)) if url.startswith("file:") else Path(url)


def resolve(href: str, base: str | None) -> str:
    """``href`` made absolute against ``base``: the document's own URL (``http(s)``/``file``) or path.

    Examples
    --------
    >>> resolve("items/a.json", "file:///data/job/results.json")
    'file:///data/job/items/a.json'
    >>> resolve("a.tif", "/data/job/results.json")
    '/data/job/a.tif'
    """
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
