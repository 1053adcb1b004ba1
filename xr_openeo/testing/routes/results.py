"""Batch job results: results documents, item documents and asset downloads, signed or with the owner's token."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request

from ..asset_host import redirect_to_asset_host
from ..files import find_asset, serve_file
from ..jobs import Job
from ..signing import UrlSigner
from ..stac import item_document, item_ids, results_document
from ..state import ApiError, any_job, api_root, api_version, current_state, flag, own_job

api = Blueprint("results", __name__)
_EXPIRED_CODES = {410: "ResultLinkExpired", 404: "NotFound", 403: "CredentialsInvalid", 400: "ResultLinkExpired"}


class ResultUrls:
    """Result URLs of one job for the results documents: signed (``expires``) or needing bearer auth."""

    def __init__(self, root: str, job: Job, signer: UrlSigner) -> None:
        self._root, self._job, self._signer = root, job, signer
        faults = job.faults
        self._expires = signer.expiry(faults.url_validity)
        canonical = faults.canonical_validity
        self._canonical_expires = self._expires if canonical is None else signer.expiry(canonical)
        self._user_b64 = signer.encode_user(job.owner)
        self._base = f"{root}/jobs/{job.id}/results"

    def _signed(self, path: str, target: str, expires: int | None = None) -> str:
        expires = self._expires if expires is None else expires
        sig = self._signer.signature(self._job.id, self._job.owner, target, expires)
        return f"{self._base}{path.format(u=self._user_b64, s=sig)}?{urlencode({'expires': expires})}"

    def self_url(self) -> str:
        return self._base

    def canonical(self) -> str:
        return self._signed("/{u}/{s}", "results", self._canonical_expires)

    def asset(self, key: str) -> str:
        if not self._job.faults.signed_urls:
            return f"{self._base}/assets/{key}"
        return self._signed(f"/assets/{{u}}/{{s}}/{key}", f"assets/{key}")

    def item(self, item_id: str) -> str:
        if not self._job.faults.signed_urls:
            return f"{self._base}/items/{item_id}"
        return self._signed(f"/items/{{u}}/{{s}}/{item_id}", f"items/{item_id}")


@api.get("/jobs/<job_id>/results")
def job_results(job_id: str) -> Response:
    return _results_response(own_job(job_id), partial=flag(request.args.get("partial")))


@api.get("/jobs/<job_id>/results/<user_b64>/<signature>")
def canonical_results(job_id: str, user_b64: str, signature: str) -> Response:
    job = any_job(job_id)
    _check_signature(job, user_b64, signature, "results")
    return _results_response(job, partial=flag(request.args.get("partial")))


@api.get("/jobs/<job_id>/results/items/<user_b64>/<signature>/<item_id>")
def signed_item(job_id: str, user_b64: str, signature: str, item_id: str) -> Response:
    job = any_job(job_id)
    _check_signature(job, user_b64, signature, f"items/{item_id}")
    return _item_response(job, item_id)


@api.get("/jobs/<job_id>/results/items/<item_id>")
def item(job_id: str, item_id: str) -> Response:
    return _item_response(own_job(job_id), item_id)


@api.route("/jobs/<job_id>/results/assets/<user_b64>/<signature>/<filename>", methods=["GET", "HEAD"])
@api.route("/jobs/<job_id>/results/assets/<user_b64>/<signature>/<filename>/<path:inner>", methods=["GET", "HEAD"])
def signed_asset(job_id: str, user_b64: str, signature: str, filename: str, inner: str | None = None) -> Response:
    job = any_job(job_id)
    if any(a.key == user_b64 for a in job.assets):  # an unsigned URL of a file deep inside a folder asset
        return asset(job_id, user_b64, "/".join(p for p in (signature, filename, inner) if p))
    _check_signature(job, user_b64, signature, f"assets/{filename}")  # one signature covers a folder asset
    return _asset_response(job, filename, inner)


@api.route("/jobs/<job_id>/results/assets/<filename>", methods=["GET", "HEAD"])
@api.route("/jobs/<job_id>/results/assets/<filename>/<path:inner>", methods=["GET", "HEAD"])
def asset(job_id: str, filename: str, inner: str | None = None) -> Response:
    return _asset_response(own_job(job_id), filename, inner)


def style_of(job: Job) -> str:
    """The job's results-document style; under the 1.0 root, an Item unless the job chose a style."""
    if api_version() == "1.0" and "results-style" not in job.job_options and "stac-version" not in job.job_options:
        return "item"
    return job.style


def _check_signature(job: Job, user_b64: str, signature: str, target: str) -> None:
    signer = current_state().signer
    owner, problem = signer.check(job.id, user_b64, signature, target, request.args.get("expires"))
    if problem == "invalid" or owner != job.owner:
        raise ApiError(403, "CredentialsInvalid", "The signature of this URL is invalid")
    if problem == "expired":
        status = job.faults.expired_status
        message = "This signed URL has expired; request the job results again for fresh links"
        raise ApiError(status, _EXPIRED_CODES[status], message)


def _urls(job: Job) -> ResultUrls:
    return ResultUrls(api_root(), job, current_state().signer)


def _results_response(job: Job, partial: bool) -> Response:
    store = current_state().jobs
    with store.lock:
        status, assets, summary = job.status, list(job.assets), job.summary()
    if not partial:
        if status == "error":
            entry = job.last_error() or {"id": "0", "level": "error", "message": "The job failed"}
            response = jsonify(entry)
            response.status_code = 424
            return response
        if status != "finished":
            raise ApiError(
                400, "JobNotFinished", f"Job {job.id!r} is {status}, not finished; wait for it or pass partial=true"
            )
    return jsonify(results_document(summary, assets, style=style_of(job), urls=_urls(job), partial=partial))


def _item_response(job: Job, item_id: str) -> Response:
    with current_state().jobs.lock:
        assets, summary = list(job.assets), job.summary()
    style = style_of(job)
    if item_id not in item_ids(assets, style=style, job_id=job.id):
        raise ApiError(404, "ItemNotFound", f"Job {job.id!r} has no result item {item_id!r}")
    return jsonify(item_document(summary, item_id, assets, style=style, urls=_urls(job)))


def _asset_response(job: Job, filename: str, inner: str | None = None) -> Response:
    state = current_state()
    found = find_asset(state, job, filename, inner, "AssetNotFound")
    if job.faults.redirect_assets and state.asset_host:
        return redirect_to_asset_host(state, job, filename, inner)
    return serve_file(found.path, found.media_type, found.key, job.faults, state)
