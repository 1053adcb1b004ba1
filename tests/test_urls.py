"""xr_openeo.urls: redaction of every signing scheme, expiry, token scope, backend roots, relative hrefs. Pure."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xr_openeo.urls import (
    backend_root,
    host,
    is_local,
    is_signed,
    local_path,
    member_url,
    redact,
    resolve,
    under_root,
    url_expiry,
)

#: Query parameters that carry a secret, in the schemes backends and object stores use.
SECRET_PARAMS = [
    "sgn",  # CDN / openEO deployments
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",  # S3 presigned
    "sig",  # Azure SAS
    "X-Goog-Signature",
    "X-Goog-Credential",  # Google Cloud Storage
    "token",
    "access_token",
    "signature",
    "expires",
    "Signature",  # CloudFront
    "Key-Pair-Id",
    "Policy",
]
secrets = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_%+/=.~", min_size=12)


@given(name=st.sampled_from(SECRET_PARAMS), secret=secrets, first=st.booleans(), fragment=st.booleans())
def test_every_signing_parameter_is_redacted(name, secret, first, fragment):
    query = f"{name}={secret}&x=1" if first else f"x=1&{name}={secret}"
    url = f"https://bucket.example.com/a/b.tif?{query}" + ("#frag" if fragment else "")
    redacted = redact(url)
    assert secret not in redacted and f"{name}=REDACTED" in redacted and "x=1" in redacted
    assert redact(redacted) == redacted
    assert is_signed(url)
    for text in (f"GET {url} failed", f"'{url}'", f'"{url}"', f"({url})", f"<{url}>"):
        assert secret not in redact(text)


@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=16))
def test_path_signatures_and_passwords_are_redacted(secret):
    for url in (
        f"http://h/openeo/1.2/jobs/j-1/results/assets/dXNlcg/{secret}/openEO.tif?expires=1",
        f"http://h/openeo/1.2/jobs/j-1/results/items/dXNlcg/{secret}/item-1",
        f"http://h/openeo/1.2/jobs/j-1/results/dXNlcg/{secret}",
        f"https://user:{secret}@h/results.json",
    ):
        assert secret not in redact(url) and redact(redact(url)) == redact(url)


def test_unsigned_urls_are_kept_whole():
    for url in (
        "https://openeo.example/openeo/1.2/jobs/j-1/results/assets/openEO_2023-01-01Z.tif",
        "https://openeo.example/openeo/1.2/jobs/j-1/results?partial=true",
        "http://127.0.0.1:8000/openeo/1.2/jobs/j-1/results",
    ):
        assert redact(url) == url and not is_signed(url)


def test_expiry_of_each_scheme():
    assert url_expiry("http://h/a?expires=1700000000") == 1700000000
    assert url_expiry("http://h/a?Expires=1700000000&Signature=x") == 1700000000  # CloudFront
    s3 = "https://b.s3.amazonaws.com/a?X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-Signature=s"
    assert url_expiry(s3) == 1704067200 + 3600
    gcs = "https://storage.googleapis.com/b/a?X-Goog-Date=20240101T000000Z&X-Goog-Expires=60&X-Goog-Signature=s"
    assert url_expiry(gcs) == 1704067200 + 60
    azure = "https://a.blob.core.windows.net/c/a?sv=2022-11-02&se=2024-01-01T01:00:00Z&sr=b&sp=r&sig=abc"
    assert url_expiry(azure) == 1704067200 + 3600
    assert url_expiry("http://h/a?expires=soon") is None
    assert url_expiry("http://h/a?X-Amz-Date=bad&X-Amz-Expires=1") is None
    assert url_expiry("http://h/a") is None


def test_token_scope_and_hosts():
    root = "https://openeo.example/openeo/1.2"
    assert under_root(f"{root}/jobs/j/results", root)
    assert not under_root("https://openeo.example/openeo/1.20/jobs", root)  # not the same path
    assert not under_root("http://openeo.example/openeo/1.2/jobs", root)  # not the same scheme
    assert not under_root("https://evil.example/openeo/1.2/jobs", root)
    assert not under_root(f"{root}/jobs", None)
    assert host("https://u:p@openeo.example:8443/x") == "openeo.example:8443"
    assert host("http://127.0.0.1/x") == "127.0.0.1"
    assert host("/data/x.tif") is None and host("file:///data/x.tif") is None


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("https://openeo.example/openeo/1.2/jobs/j-1/results", "https://openeo.example/openeo/1.2"),
        (
            "https://openeo.example/openeo/1.2/jobs/j-1/results/dXNlcg/sig?expires=1",
            "https://openeo.example/openeo/1.2",
        ),
        ("http://127.0.0.1:8000/jobs/j-1/results/items/u/s/i", "http://127.0.0.1:8000"),
        ("https://openeo.example/openeo/1.2/jobs/j-1", None),
        ("https://openeo.example/openeo/1.2/", None),
        (None, None),
    ],
)
def test_backend_root_from_a_results_url(url, root):
    assert backend_root(url) == root


def test_relative_hrefs_resolve_against_the_documents_location(tmp_path):
    assert resolve("items/a.json", "https://h/jobs/j/results") == "https://h/jobs/j/items/a.json"
    assert resolve("items/a.json", "https://h/jobs/j/results/") == "https://h/jobs/j/results/items/a.json"
    doc = (tmp_path / "job" / "results.json").as_uri()
    assert resolve("items/a.nc", doc) == (tmp_path / "job" / "items" / "a.nc").as_uri()
    assert resolve("a.tif", str(tmp_path / "results.json")) == str(tmp_path / "a.tif")
    assert resolve("/abs/a.tif", str(tmp_path / "results.json")) == "/abs/a.tif"
    assert resolve("https://other/a.tif", doc) == "https://other/a.tif"
    assert resolve("a.tif", None) == "a.tif"


def test_local_urls_and_folder_members(tmp_path):
    path = tmp_path / "a b.tif"
    assert is_local(path.as_uri()) and is_local(str(path)) and not is_local("https://h/a")
    assert local_path(path.as_uri()) == path and local_path(str(path)) == path
    assert member_url("https://h/c.zarr?sig=1", "B04/.zarray") == "https://h/c.zarr/B04/.zarray?sig=1"
    assert member_url(str(tmp_path / "c.zarr"), "B04/.zarray") == str(Path(tmp_path / "c.zarr" / "B04" / ".zarray"))
    assert member_url("https://h/c.zarr", None) == "https://h/c.zarr"
