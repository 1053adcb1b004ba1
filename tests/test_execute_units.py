"""The pure parts of synchronous processing: safe unpacking, bodies in memory or on disk, headers, error mapping."""

from __future__ import annotations

import gc
import io
import json
import os
import pickle
import tarfile
from pathlib import Path, PurePosixPath

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from xr_openeo.downloads import safe_filename
from xr_openeo.errors import AuthenticationError, ProcessingError, ResultsDocumentError, SyncTimeoutError
from xr_openeo.jobs.spool import Body
from xr_openeo.jobs.sync import disposition_filename, error_of
from xr_openeo.synchronous import ResultFiles, check_inside, load_inside, member_path, unpack

URL = "http://127.0.0.1:1/openeo/1.2/result"


def tar_body(members: list[tuple[tarfile.TarInfo, bytes | None]], memory_bytes: int = 1 << 20) -> Body:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    body = Body(memory_bytes)
    body.write(buffer.getvalue())
    body.finish()
    return body


def regular(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


# -- member names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("openEO_2023-01-01Z.tif", "openEO_2023-01-01Z.tif"),
        ("./items/openEO_2023-01-01Z.json", "items/openEO_2023-01-01Z.json"),
        ("openEO.zarr/.zmetadata", "openEO.zarr/.zmetadata"),
        ("openEO.zarr/NDVI/0.0.0", "openEO.zarr/NDVI/0.0.0"),
        ("ndvi.zarr/", "ndvi.zarr"),
    ],
)
def test_portable_member_names_are_kept(name, path):
    assert member_path(name) == PurePosixPath(path)


@pytest.mark.parametrize(
    "name",
    [
        "../evil.tif",
        "a/../../evil",
        "/etc/passwd",
        "..\\evil",
        "C:evil.tif",
        "a/\x00b",
        "a/\u202egpj.exe",
        "",
        "...",
        "NUL.tif",
    ],
)
def test_names_that_could_escape_or_are_not_portable_are_refused(name):
    with pytest.raises(ResultsDocumentError, match="does not extract"):
        member_path(name)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_an_accepted_member_stays_inside_the_directory(name):
    try:
        path = member_path(name)
    except ResultsDocumentError:
        return
    root = "/tmp/root"
    joined = os.path.normpath(os.path.join(root, *path.parts))
    assert joined.startswith(root + os.sep)
    for part in path.parts:
        assert part not in ("", ".", "..") and safe_filename(part.lstrip(".")) == part.lstrip(".")


# -- unpacking -------------------------------------------------------------------------------------


def test_an_archive_unpacks_its_files_and_folders(tmp_path):
    folder = tarfile.TarInfo("openEO.zarr")
    folder.type = tarfile.DIRTYPE
    body = tar_body([regular("job-results.json", b"{}"), (folder, None), regular("openEO.zarr/.zattrs", b"{}")])
    written = unpack(body, tmp_path)
    assert written == ["job-results.json", "openEO.zarr/.zattrs"]
    assert (tmp_path / "openEO.zarr" / ".zattrs").read_bytes() == b"{}"


def link(name: str, kind: bytes, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize(
    ("members", "says"),
    [
        ([regular("../evil.tif")], "not a safe file name"),
        ([link("a.tif", tarfile.SYMTYPE, "/etc/passwd")], "link or a device"),
        ([regular("a.tif"), link("b.tif", tarfile.LNKTYPE, "a.tif")], "link or a device"),
        ([link("dev", tarfile.CHRTYPE, "")], "link or a device"),
        ([regular("a.tif"), regular("A.TIF")], "twice"),
    ],
)
def test_unsafe_archives_are_refused(tmp_path, members, says):
    inside = tmp_path / "inside"
    inside.mkdir()
    with pytest.raises(ResultsDocumentError, match=says):
        unpack(tar_body(members), inside, "r-1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inside"]  # nothing outside


def test_a_truncated_archive_is_an_error(tmp_path):
    whole = tar_body([regular("a.tif", b"x" * 5000)]).bytes()
    body = Body(1 << 20)
    body.write(whole[:1000])
    with pytest.raises(ResultsDocumentError, match="cannot be unpacked"):
        unpack(body, tmp_path)


@pytest.mark.parametrize("href", ["../outside.tif", "file:///etc/passwd", "http://example.org/a.tif"])
def test_a_results_document_pointing_outside_the_archive_is_refused(tmp_path, href):
    document = tmp_path / "job-results.json"
    doc = {"type": "Collection", "stac_version": "1.0.0", "id": "r-1", "links": []}
    doc["assets"] = {"a.tif": {"href": href, "type": "image/tiff; application=geotiff", "roles": ["data"]}}
    document.write_text(json.dumps(doc))
    with pytest.raises(ResultsDocumentError, match="outside the archive"):
        check_inside(document, tmp_path)
    doc["assets"]["a.tif"]["href"] = "a.tif"
    document.write_text(json.dumps(doc))
    check_inside(document, tmp_path)


def test_an_item_pointing_outside_the_archive_is_refused(tmp_path):
    # The results document is fine; its item document points at a file elsewhere on this machine.
    outside = tmp_path / "secret.tif"
    outside.write_bytes(b"II*\x00")
    inside = tmp_path / "archive"
    (inside / "items").mkdir(parents=True)
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "a",
        "geometry": None,
        "properties": {"datetime": "2023-01-01T00:00:00Z"},
        "links": [],
        "assets": {"a.tif": {"href": outside.as_uri(), "type": "image/tiff; application=geotiff"}},
    }
    (inside / "items" / "a.json").write_text(json.dumps(item))
    doc = {"type": "Collection", "stac_version": "1.0.0", "id": "r-1", "assets": {}, "openeo:status": "finished"}
    doc["links"] = [{"rel": "item", "href": "items/a.json", "type": "application/geo+json"}]
    (inside / "job-results.json").write_text(json.dumps(doc))
    check_inside(inside / "job-results.json", inside)  # the document itself points only inside
    with pytest.raises(ResultsDocumentError, match="outside the archive"):
        load_inside(inside / "job-results.json", inside)


# -- bodies ------------------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=50), max_size=10), st.integers(0, 200))
def test_a_body_holds_its_bytes_in_memory_or_on_disk(chunks, memory_bytes):
    body = Body(memory_bytes)
    for chunk in chunks:
        body.write(chunk)
    body.finish()
    data = b"".join(chunks)
    assert body.in_memory == (len(data) <= memory_bytes) and body.size == len(data)
    with body.open() as f:
        assert f.read() == data
    directory = body.directory
    body.discard()
    assert directory is None or not directory.exists()


def test_a_taken_directory_stays_when_the_body_goes():
    body = Body(0)
    body.write(b"abc")
    body.finish()
    directory = body.take_directory()
    assert directory is not None and body.path is not None
    body.discard()
    assert directory.is_dir() and not body.path.exists()
    ResultFiles(directory).close()
    assert not directory.exists()


def test_result_files_go_when_collected_and_copies_borrow(tmp_path):
    directory = tmp_path / "result"
    directory.mkdir()
    files = ResultFiles(directory)
    copy = pickle.loads(pickle.dumps(files))
    assert copy.path == directory
    del copy
    gc.collect()
    assert directory.is_dir()
    del files
    gc.collect()
    assert not directory.exists()


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="openEO.nc"', "openEO.nc"),
        ("attachment; filename*=UTF-8''na%C3%AFve%20result.tif", "naïve result.tif"),
        ("attachment", None),
        (None, None),
    ],
)
def test_the_file_name_comes_from_content_disposition(header, name):
    assert disposition_filename(header) == name


# -- errors ------------------------------------------------------------------------------------------


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code, response.url = status, URL
    text = json.dumps(body) if not isinstance(body, str) else body
    response._content = text.encode()
    kind = "text/html" if isinstance(body, str) else "application/json"
    response.headers.update({"Content-Type": kind, **(headers or {})})
    return response


def openeo_error(code: str, message: str, id: str = "r-42") -> dict:
    return {"id": id, "code": code, "message": message, "links": []}


@pytest.mark.parametrize(
    ("response", "kind", "code", "says"),
    [
        (
            answer(400, openeo_error("ProcessGraphInvalid", "no result node")),
            ProcessingError,
            "ProcessGraphInvalid",
            "no result node",
        ),
        (answer(500, openeo_error("Internal", "boom")), ProcessingError, "Internal", "failed while running"),
        (answer(408, openeo_error("RequestTimeout", "too long")), SyncTimeoutError, "RequestTimeout", "compute_batch"),
        (answer(504, "<html>504 Gateway Time-out</html>"), SyncTimeoutError, None, "gateway"),
        (answer(502, "<html>Proxy Error</html>"), ProcessingError, None, "time limit"),
        (answer(429, openeo_error("TooManyRequests", "slow down")), ProcessingError, "TooManyRequests", "retry later"),
        (answer(401, openeo_error("AuthenticationRequired", "log in")), AuthenticationError, None, "log in"),
        (answer(403, openeo_error("TokenInvalid", "expired")), AuthenticationError, None, "expired"),
    ],
)
def test_error_answers_become_library_errors(response, kind, code, says):
    error = error_of(response, URL, attempts=1)
    assert type(error) is kind and says in str(error)
    if isinstance(error, ProcessingError):
        assert (error.code, error.http_status) == (code, response.status_code)


def test_the_request_id_comes_from_the_body_else_the_header():
    error = error_of(answer(500, openeo_error("Internal", "boom", id="r-body"), {"OpenEO-Identifier": "r-header"}), URL)
    assert error.request_id == "r-body"
    error = error_of(answer(500, {"code": "Internal", "message": "boom"}, {"OpenEO-Identifier": "r-header"}), URL)
    assert error.request_id == "r-header" and "r-header" in str(error)


def test_signed_urls_in_messages_are_redacted():
    message = "cannot read https://bucket.s3.amazonaws.com/x.tif?X-Amz-Signature=secret123"
    error = error_of(answer(500, openeo_error("Internal", message)), URL)
    assert "secret123" not in str(error) and "REDACTED" in str(error)


def test_a_spilled_body_is_one_file_in_its_own_directory(tmp_path):
    body = Body(2)
    body.write(b"hello")
    body.finish()
    assert not body.in_memory and body.path is not None and body.path.read_bytes() == b"hello"
    assert [p.name for p in Path(body.path).parent.iterdir()] == [body.path.name]
    body.discard()
