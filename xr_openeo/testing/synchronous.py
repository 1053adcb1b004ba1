"""What a synchronous request (``POST /result``) asks for and what its answer holds.

The body of a synchronous result is the result file itself when the graph wrote one file, else a tar
archive (``application/x-tar``, as the openEO API recommends for several files) that mimics a batch
job's results: the files under their asset keys, a STAC results document ``job-results.json`` in the
request's style, and its item documents under ``items/``, all linked by relative hrefs.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from .assets import WrittenAsset
from .stac import JobSummary, item_document, item_ids, results_document

TAR_MEDIA_TYPE = "application/x-tar"
RESULTS_DOCUMENT = "job-results.json"
ITEMS_FOLDER = "items"
# Top-level properties of a synchronous request that are not job options (openeo-python-driver's rule).
_REQUEST_FIELDS = ("process", "process_graph", "budget", "plan", "log_level")


def sync_job_options(body: dict[str, Any]) -> dict[str, Any]:
    """The job options of a synchronous request: its ``job_options`` object, else its extra top-level properties.

    openeo-python-driver reads them so; the openeo client sends ``download(..., job_options=...)``
    as ``job_options`` and ``additional=...`` as top-level properties.

    Raises
    ------
    ValueError
        ``job_options`` is given but is not an object.
    """
    if "job_options" in body:
        options = body["job_options"]
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise ValueError(f"'job_options' must be an object, got {options!r}")
        return dict(options)
    return {k: v for k, v in body.items() if k not in _REQUEST_FIELDS}


def needs_archive(assets: Sequence[WrittenAsset]) -> bool:
    """Whether the answer is a tar archive: several files, or a folder asset (a Zarr store)."""
    return len(assets) != 1 or assets[0].path.is_dir()


def write_archive(target: Path, assets: Sequence[WrittenAsset], summary: JobSummary, *, style: str) -> Path:
    """Write the tar archive of ``assets`` with its STAC documents to ``target``; returns ``target``.

    ``style`` is a results-document style of :mod:`~xr_openeo.testing.stac` (``"stac-1.0"``,
    ``"stac-1.1"`` or ``"item"``); the canonical link of batch results is left out (a synchronous
    result has no URL to share).
    """
    document = _without_canonical(results_document(summary, assets, style=style, urls=_RelativeUrls(top=True)))
    items = item_ids(assets, style=style, job_id=summary.id) if style != "item" else {}
    with tarfile.open(target, "w") as tar:
        _add_json(tar, RESULTS_DOCUMENT, document)
        for item_id in items:
            doc = item_document(summary, item_id, assets, style=style, urls=_RelativeUrls(top=False))
            _add_json(tar, f"{ITEMS_FOLDER}/{_item_file(item_id)}", doc)
        for asset in assets:
            tar.add(asset.path, arcname=asset.key, recursive=True)
    return target


class _RelativeUrls:
    """Hrefs of the archive's documents, relative to the document that holds them."""

    def __init__(self, top: bool) -> None:
        self._up = "" if top else "../"

    def self_url(self) -> str:
        return f"{self._up}{RESULTS_DOCUMENT}"

    def canonical(self) -> str:
        return self.self_url()

    def asset(self, key: str) -> str:
        return f"{self._up}{key}"

    def item(self, item_id: str) -> str:
        return f"{_item_file(item_id)}" if self._up else f"{ITEMS_FOLDER}/{_item_file(item_id)}"


def _item_file(item_id: str) -> str:
    return f"{PurePosixPath(item_id).name}.json"


def _without_canonical(document: dict[str, Any]) -> dict[str, Any]:
    document["links"] = [link for link in document.get("links", []) if link.get("rel") != "canonical"]
    return document


def _add_json(tar: tarfile.TarFile, name: str, document: dict[str, Any]) -> None:
    data = json.dumps(document, indent=2).encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
