"""Documents and the one retry loop: which request failed, on which host, and why (issue 12.8), over real sockets."""

from __future__ import annotations

import json

import pytest
from scripted_http import CUT, DROP, Answer, refusing_address, scripted_server, silent_address

import xr_openeo
from xr_openeo.errors import (
    AssetReadError,
    AuthenticationError,
    JobNotFoundError,
    RequestError,
    ResultsDocumentError,
)
from xr_openeo.http import Auth, Links, fetch, get_json
from xr_openeo.sources import load_results

FAST = {"retry_backoff": 0.0, "retry_max_backoff": 0.0}


def test_a_refused_results_document_is_a_request_error_naming_it():
    with refusing_address() as root, xr_openeo.set_options(retries=1, **FAST):
        url = f"{root}/openeo/1.2/jobs/j-1/results"
        with pytest.raises(RequestError) as info:
            load_results(url)
    err = info.value
    assert not isinstance(err, AssetReadError)
    assert (err.what, err.cause, err.host, err.status) == ("results document", "connection refused", root[7:], None)
    assert "results document" in str(err) and "connection refused" in str(err) and "after 2 attempts" in str(err)
    assert err.__context__ is None and err.__cause__ is None  # no requests exception (with its URL) attached


def test_an_unreachable_asset_host_is_an_asset_read_error_with_its_cause():
    with refusing_address() as root, xr_openeo.set_options(retries=0):
        links = Links({"a.tif": f"{root}/a.tif?X-Amz-Signature=s3cr3t"}, Auth())
        with pytest.raises(AssetReadError) as info:
            fetch("a.tif", links)
    err = info.value
    assert (err.key, err.what, err.cause, err.host) == ("a.tif", "asset 'a.tif'", "connection refused", root[7:])
    assert "s3cr3t" not in str(err) and "X-Amz-Signature=REDACTED" in err.href


def test_timeouts_and_dropped_connections_say_so():
    with silent_address() as root, xr_openeo.set_options(retries=0, read_timeout=0.2):
        with pytest.raises(RequestError) as info:
            get_json(f"{root}/results", Auth(), what="item document")
    assert (info.value.what, info.value.cause) == ("item document", "timeout")
    assert "read_timeout" in str(info.value)
    with scripted_server() as server, xr_openeo.set_options(retries=0):
        with pytest.raises(RequestError) as info:
            get_json(server.script("/dropped", DROP), Auth(), what="results document")
        assert info.value.cause == "connection dropped"
        with pytest.raises(RequestError) as info:
            get_json(server.script("/cut", CUT), Auth(), what="results document")
        assert info.value.cause == "connection dropped"


def test_transient_answers_are_retried_with_the_options_counts():
    doc = {"type": "Collection", "stac_version": "1.0.0", "id": "j-1", "assets": {}}
    with scripted_server() as server:
        url = server.script("/ok", Answer(503), Answer(429, headers={"Retry-After": "0"}), DROP, Answer.json(doc))
        with xr_openeo.set_options(retries=3, **FAST):
            assert get_json(url, Auth(), what="results document") == doc
        assert server.count("/ok") == 4
        url = server.script("/down", Answer(503))
        with xr_openeo.set_options(retries=2, **FAST), pytest.raises(RequestError) as info:
            get_json(url, Auth(), what="results document")
        assert server.count("/down") == 3
        assert (info.value.status, info.value.cause) == (503, "HTTP 503")


def test_openeo_error_bodies_become_library_errors():
    def error(status, code, message="no"):
        return Answer.json({"id": "x", "code": code, "message": message}, status)

    with scripted_server() as server, xr_openeo.set_options(retries=0):
        cases = {
            "/gone": (error(404, "JobNotFound", "The job 'j' does not exist."), JobNotFoundError),
            "/auth": (error(401, "AuthenticationRequired"), AuthenticationError),
            "/token": (error(403, "TokenInvalid"), AuthenticationError),
            "/expired": (error(410, "ResultLinkExpired"), RequestError),
            "/nope": (Answer(404, b"not json"), RequestError),
        }
        for path, (answer, kind) in cases.items():
            with pytest.raises(kind) as info:
                get_json(server.script(path, answer), Auth(), what="results document")
            assert ".." not in str(info.value)
        with pytest.raises(RequestError) as info:
            get_json(server.url("/expired"), Auth(), what="item document")
        assert info.value.status == 410 and info.value.cause == "HTTP 410 ResultLinkExpired"
        assert "fresh links" in str(info.value)
        # A signed link refused with 403 is the link's refusal, not the token's.
        refused = server.script("/signed", error(403, "CredentialsInvalid"))
        with pytest.raises(RequestError) as info:
            get_json(refused + "?expires=1&signature=abc", Auth(), what="item document")
        assert info.value.status == 403 and not isinstance(info.value, AuthenticationError)
        with pytest.raises(ResultsDocumentError, match="is not JSON"):
            get_json(server.script("/html", Answer(200, b"<html>")), Auth(), what="results document")


def test_the_token_goes_only_to_unsigned_urls_under_the_root():
    with scripted_server() as server, xr_openeo.set_options(retries=0):
        doc = Answer.json({"ok": True})
        auth = Auth(root=server.url("/openeo"), token="basic//t0k3n")
        for path in ("/openeo/jobs", "/other/jobs"):
            server.script(path, doc)
        get_json(server.url("/openeo/jobs"), auth)
        get_json(server.url("/openeo/jobs?expires=1&signature=x"), auth)
        get_json(server.url("/other/jobs"), auth)
        sent = [("Authorization" in r.headers) for r in server.requests]
        assert sent == [True, False, False]


def test_documents_on_disk(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"a": 1}))
    assert get_json(path.as_uri(), Auth()) == {"a": 1} == get_json(str(path), Auth())
    with pytest.raises(ResultsDocumentError, match="no such file"):
        get_json((tmp_path / "missing.json").as_uri(), Auth(), what="item document")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ResultsDocumentError, match="not JSON"):
        get_json(str(tmp_path / "bad.json"), Auth())
