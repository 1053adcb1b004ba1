"""Credentials stay where they belong: no token to a foreign host, no secret in reprs, logs, errors or pickles.

Two local servers: the backend, and a separate asset host on another port that the backend redirects
downloads to (``faults={"redirect_assets": True}``), as backends keeping results in an object store do.
"""

from __future__ import annotations

import logging
import pickle
import re
import traceback
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import requests
import xarray as xr
from conftest import SMALL_EXTENT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted_http import DROP, Answer, File, ScriptedServer, refusing_address

import xr_openeo
from xr_openeo.errors import AssetReadError, FailedReadWarning, XrOpenEOError
from xr_openeo.http import Auth, Links, RemoteFile, fetch, get_json
from xr_openeo.results import redact
from xr_openeo.sources import load_results as load_any

# The signature segment of openeo-python-driver style URLs: …/results/{user}/{sig},
# …/results/assets/{user}/{sig}/{file}, …/results/items/{user}/{sig}/{id}.
PATH_SIGNATURE = re.compile(
    r"/results/(?:assets/|items/)?(?!assets/|items/)[A-Za-z0-9_=-]+/([A-Za-z0-9_-]{16,})(?=[/?#]|$)"
)


def run_job(connection, out_format="GTiff", **job_options):
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_EXTENT, bands=["B04", "B08"])
    job = cube.create_job(out_format=out_format, job_options=job_options or None)
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)
    return job


def token_secrets(connection) -> set[str]:
    bearer = connection.auth.bearer
    return {bearer, bearer.rpartition("/")[2]}


def url_secrets(urls: Iterable[str]) -> set[str]:
    """The signing values of ``urls``: ``expires``/``signature`` query values and path signatures."""
    found = set()
    for url in urls:
        found.update(m.group(1) for m in PATH_SIGNATURE.finditer(url))
        found.update(m.group(1) for m in re.finditer(r"[?&](?:expires|signature)=([^&#]+)", url))
    return found


def document_urls(backend, connection, job) -> list[str]:
    """Every href of the job's results document (assets and links), and where the asset host is sent to."""
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    urls = [a["href"] for a in doc.get("assets", {}).values()] + [link["href"] for link in doc.get("links", [])]
    for href in list(urls):
        if "/results/assets/" in href:
            headers = {} if "expires=" in href else {"Authorization": f"Bearer {connection.auth.bearer}"}
            response = requests.get(href, headers=headers, allow_redirects=False, timeout=10)
            if "Location" in response.headers:
                urls.append(response.headers["Location"])
    return urls


# -- two servers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["GTiff", "netCDF", "netCDF-lazy"])
@pytest.mark.parametrize("signed", [True, False])
def test_the_asset_host_never_receives_the_token(backend, connection, monkeypatch, mode, signed):
    out_format = mode.split("-")[0]
    if mode == "netCDF-lazy":
        monkeypatch.setenv("XR_OPENEO_DOWNLOAD_THRESHOLD", "0")  # ranged reads through RemoteFile, not one download
    expected = xr_openeo.open_results(run_job(connection, out_format, faults={"signed_urls": signed})).load()
    job = run_job(connection, out_format, faults={"signed_urls": signed, "redirect_assets": True})
    backend.clear_requests()
    result = xr_openeo.open_results(job).load()
    xr.testing.assert_equal(result.drop_attrs(), expected.drop_attrs())
    for name in result.data_vars:
        assert np.isfinite(result[name].values).any()

    redirected = [r for r in backend.requests if "/results/assets/" in r.path]
    host = backend.asset_host_requests
    assert redirected and all(r.status == 302 for r in redirected)
    assert host and all(r.status in (200, 206) for r in host)
    if mode == "netCDF-lazy":
        assert any(r.status == 206 for r in host)
    # The backend needed (unsigned) or refused (signed) the token; the asset host never sees it.
    assert all(("Authorization" in r.headers) is (not signed) for r in redirected)
    assert [r.headers["Authorization"] for r in host if "Authorization" in r.headers] == []
    secrets = token_secrets(connection)
    assert not [r for r in host if any(s in str(r.headers) for s in secrets)]


def test_the_asset_host_refuses_unsigned_requests(backend, connection):
    job = run_job(connection, faults={"redirect_assets": True})
    href = next(iter(job.get_results().get_assets())).href
    location = requests.get(href, allow_redirects=False, timeout=10).headers["Location"]
    assert location.startswith(backend.asset_host_url + "/")
    assert requests.get(location, timeout=10).status_code == 200
    assert requests.get(location.partition("?")[0], timeout=10).status_code == 403
    assert requests.get(location.replace("signature=", "signature=0"), timeout=10).status_code == 403


# -- reprs, logs, errors, warnings ----------------------------------------------------------------


def exception_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))] + [
        str(getattr(exc, name, "")) for name in ("href", "key", "status")
    ]


def dataset_texts(ds: xr.Dataset, online: bool = True) -> list[str]:
    texts = [repr(ds), ds._repr_html_(), repr(ds.openeo), ds.openeo._repr_html_()]
    if online:  # the assets table asks the backend for the results document
        texts.append(repr(ds.openeo.assets))
    texts += [repr(ds.attrs), repr(ds.encoding)]
    texts += [repr(v.attrs) + repr(v.encoding) for v in ds.variables.values()]
    return texts


def test_no_secret_in_reprs_logs_errors_or_warnings(backend, connection, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)  # every logger, at DEBUG
    monkeypatch.setenv("XR_OPENEO_DOWNLOAD_THRESHOLD", "0")  # netCDF read by ranges through RemoteFile
    texts: list[str] = []
    urls: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        # A normal open and read, signed and bearer-only, straight and redirected to the asset host.
        for fmt, faults in [
            ("GTiff", {}),
            ("GTiff", {"signed_urls": False}),
            ("GTiff", {"redirect_assets": True}),
            ("netCDF", {}),
            ("netCDF", {"redirect_assets": True, "signed_urls": False}),
        ]:
            job = run_job(connection, fmt, **({"faults": faults} if faults else {}))
            urls += document_urls(backend, connection, job)
            ds = xr_openeo.open_results(job)
            texts += dataset_texts(ds)
            texts.append(repr(load_any(job).links))
            texts += dataset_texts(ds.load())

        # Failing reads: AssetReadError.
        for faults in (
            {"error_rate": 1.0, "error_kinds": ["503"]},
            {"error_rate": 1.0, "error_kinds": ["503"], "signed_urls": False},
        ):
            job = run_job(connection, faults=faults)
            urls += document_urls(backend, connection, job)
            ds = xr_openeo.open_results(job)
            texts += dataset_texts(ds)
            with pytest.raises(XrOpenEOError) as info:
                ds.load()
            texts += exception_texts(info.value)

        # Expired URLs that cannot be renewed (canonical link expired, token revoked): URLExpiredError.
        # Links valid for 0 s are born expired: its document (without item links, which would be
        # refused at open) opens, and every read is refused, without waiting for anything to expire.
        expiring = run_job(connection, faults={"url_validity": 0, "canonical_validity": 0})
        bearer_only = run_job(connection, faults={"signed_urls": False})
        urls += document_urls(backend, connection, expiring) + document_urls(backend, connection, bearer_only)
        expired_doc = connection.get(f"/jobs/{expiring.job_id}/results").json()
        urls += [link["href"] for link in expired_doc["links"]] + [a["href"] for a in expired_doc["assets"].values()]
        expired_doc["links"] = [link for link in expired_doc["links"] if link["rel"] != "item"]
        ds_expiring = xr_openeo.open_results(expired_doc)
        ds_bearer = xr_openeo.open_results(bearer_only)
        texts.append(repr(load_any(expired_doc).links))
        # (its asset table would fetch the job's documents again, whose item links are born expired too)
        texts += dataset_texts(ds_expiring, online=False) + dataset_texts(ds_bearer)
        backend.revoke_tokens()
        for ds in (ds_expiring, ds_bearer):
            with pytest.raises(XrOpenEOError) as info:
                ds.load()
            texts += exception_texts(info.value)
            texts += dataset_texts(ds, online=False)
        # A revoked token when opening: AuthenticationError.
        with pytest.raises(XrOpenEOError) as info:
            xr_openeo.open_results(bearer_only)
        texts += exception_texts(info.value)

    texts += [str(w.message) for w in caught]
    # The local backend's own request log (it issued the signatures) is the server side, not a client leak.
    records = [r for r in caplog.records if not r.name.startswith(("xr_openeo.testing", "werkzeug"))]
    texts += [r.getMessage() for r in records]
    texts += [str(r.exc_info[1]) for r in records if r.exc_info and r.exc_info[1] is not None]

    secrets = token_secrets(connection) | url_secrets(urls)
    assert len(url_secrets(urls)) > 10, urls  # the signatures were found
    leaks = sorted({s for s in secrets for text in texts if s in text})
    where = [text[:300] for text in texts if any(s in text for s in leaks)]
    assert not leaks, f"secrets {leaks} appear in: {where[:5]}"


def test_the_server_side_log_is_excluded_on_purpose(backend, connection, caplog):
    """The local backend logs its request paths (it is the party that issued the signatures): not a client leak."""
    caplog.set_level(logging.DEBUG, logger="xr_openeo.testing")
    run_job(connection)
    assert any(r.name == "xr_openeo.testing" for r in caplog.records)


# -- redaction of path signatures -----------------------------------------------------------------

SIG = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"http://h/openeo/1.2/jobs/j-1/results/assets/dXNlcg/{SIG}/file.tif?expires=123",
            "http://h/openeo/1.2/jobs/j-1/results/assets/dXNlcg/REDACTED/file.tif?expires=REDACTED",
        ),
        (
            f"http://h/openeo/1.2/jobs/j-1/results/dXNlcg/{SIG}?expires=123",
            "http://h/openeo/1.2/jobs/j-1/results/dXNlcg/REDACTED?expires=REDACTED",
        ),
        (
            f"http://h/openeo/1.2/jobs/j-1/results/items/dXNlcg/{SIG}/item-1",
            "http://h/openeo/1.2/jobs/j-1/results/items/dXNlcg/REDACTED/item-1",
        ),
        (
            f"reading http://h/jobs/j/results/assets/YWxpY2U/{SIG}/a.nc/B04/.zarray failed",
            "reading http://h/jobs/j/results/assets/YWxpY2U/REDACTED/a.nc/B04/.zarray failed",
        ),
        # Unsigned hrefs and short (not signature-like) segments are kept.
        (
            "http://h/jobs/j/results/assets/openEO_2023-01-01Z.tif",
            "http://h/jobs/j/results/assets/openEO_2023-01-01Z.tif",
        ),
        ("http://h/jobs/j/results/items/openEO_2023-01-01Z", "http://h/jobs/j/results/items/openEO_2023-01-01Z"),
        ("http://h/jobs/j/results", "http://h/jobs/j/results"),
    ],
)
def test_redact_hides_path_signatures(url, expected):
    assert redact(url) == expected
    assert redact(expected) == expected


# -- pickles --------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False])
def test_pickles_hold_the_token_only_when_allowed(backend, connection, signed):
    job = run_job(connection, faults={"signed_urls": signed})
    token = connection.auth.bearer.rpartition("/")[2]
    ds = xr_openeo.open_results(job)
    blob = pickle.dumps(ds)
    assert token.encode() not in blob
    with_token = pickle.dumps(xr_openeo.open_results(job, pickle_token=True))
    assert token.encode() in with_token
    # No other secret either: the user's password, or signatures beyond those of the signed hrefs and
    # canonical link themselves (which authorise only their own file or document, until they expire).
    assert b"alice123" not in blob
    doc = connection.get(f"/jobs/{job.job_id}/results").json()
    canonical = [link["href"] for link in doc["links"] if link["rel"] == "canonical"]
    hrefs = [a.href for a in job.get_results().get_assets()] if signed else []
    allowed = url_secrets(hrefs + canonical)  # the canonical link is signed either way: workers renew through it
    other = url_secrets(document_urls(backend, connection, job)) - allowed
    assert not [s for s in other if s.encode() in blob]
    expected = ds.load()
    xr.testing.assert_identical(pickle.loads(with_token).load(), expected)
    if signed:
        xr.testing.assert_identical(pickle.loads(blob).load(), expected)
    else:  # bearer-only hrefs: without the token the graph cannot read, and says why
        with pytest.raises(AssetReadError, match="pickle_token=True"):
            pickle.loads(blob).load()


# -- every signing scheme, every place a secret could surface (issue 12.7) ---------------------------------------

#: Where a signed URL keeps its secret: query parameters of each scheme, openEO's path signature, a password.
POSITIONS = [
    "sgn",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "sig",
    "X-Goog-Signature",
    "token",
    "access_token",
    "expires",
    "signature",
    "path",
    "password",
]
FAILURES = ["ok", "404", "410", "503", "drop", "refused"]


@pytest.fixture(scope="module")
def scripted():
    server = ScriptedServer()
    yield server
    server.close()


def signed_url(root: str, position: str, secret: str) -> tuple[str, str]:
    """(URL, its path) with ``secret`` at ``position``."""
    if position == "path":
        path = f"/openeo/1.2/jobs/j-1/results/assets/dXNlcg/{secret}/openEO.tif"
        return f"{root}{path}?expires=1", path
    path = "/files/openEO.tif"
    if position == "password":
        return root.replace("http://", f"http://user:{secret}@") + path, path
    return f"{root}{path}?{position}={secret}&x=1", path


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def every_log_record() -> Iterator[Records]:
    """Every record of every logger (root at DEBUG), as a handler on the root logger sees them."""
    handler, root = Records(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def error_texts(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(exc.args)]
    texts += [str(getattr(exc, name, "")) for name in ("href", "key", "status", "what", "host", "cause")]
    texts += [repr(e) for e in (exc.__cause__, exc.__context__) if e is not None]
    return texts


@given(
    position=st.sampled_from(POSITIONS),
    secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=14).map(
        lambda s: "Zq" + s
    ),
    failure=st.sampled_from(FAILURES),
)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_signature_anywhere(scripted, position, secret, failure):
    """No generated secret, in any signing position, appears in an error, its traceback, a repr, a warning, an
    attribute or a log record (urllib3's included), whatever the request met."""
    texts: list[str] = []
    with refusing_address() as refusing, every_log_record() as log, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = refusing if failure == "refused" else scripted.root
        url, path = signed_url(root, position, secret)
        answer = {
            "ok": File(b'{"type": "Feature"}' * 100),
            "404": Answer.json({"code": "NotFound", "message": f"no {path}"}, 404),
            "410": Answer.json({"code": "ResultLinkExpired", "message": "expired"}, 410),
            "503": Answer(503),
            "drop": DROP,
        }.get(failure, Answer(500))
        scripted.script(path, answer)
        links = Links({"openEO.tif": url}, Auth(), (url,))
        texts += [repr(links), repr(RemoteFile("openEO.tif", links))]
        with xr_openeo.set_options(retries=1, retry_backoff=0.0, retry_max_backoff=0.0):
            calls = [
                lambda: get_json(url, Auth(), what="item document"),
                lambda: load_any(url),
                lambda: fetch("openEO.tif", links, (0, 100)),
                lambda: RemoteFile("openEO.tif", Links({"openEO.tif": url}, Auth())).read(10),
            ]
            for call in calls:
                try:
                    call()
                except XrOpenEOError as exc:
                    texts += error_texts(exc)
                    if isinstance(exc, AssetReadError):
                        warning = FailedReadWarning.from_errors([exc], float("nan"))
                        texts += [str(warning), repr(warning.hrefs)]
    texts += [str(w.message) for w in caught]
    texts += [r.getMessage() for r in log.records] + [r.exc_text or "" for r in log.records]
    texts += [str(r.exc_info[1]) for r in log.records if r.exc_info and r.exc_info[1] is not None]
    assert any(r.name.startswith("urllib3") for r in log.records) or failure == "refused"
    leaks = [text[:300] for text in texts if secret in text]
    assert not leaks, leaks


def test_log_filters_are_installed_by_the_first_request_not_by_import(scripted):
    """In a fresh process: importing adds no filter; the first request adds one per URL logger, once."""
    import subprocess
    import sys

    scripted.script("/doc.json", Answer.json({"a": 1}))
    script = f"""
import logging
import xr_openeo, xr_openeo.http
from xr_openeo.http import RedactingFilter, get_json, Auth
from xr_openeo.http.logs import URL_LOGGERS
def count():
    return [sum(isinstance(f, RedactingFilter) for f in logging.getLogger(n).filters) for n in URL_LOGGERS]
assert set(count()) == {{0}}, count()
for _ in range(3):
    get_json({scripted.url("/doc.json")!r}, Auth())
assert set(count()) == {{1}}, count()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
