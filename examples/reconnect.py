"""Reconnect to a job's results later: by job id, or by its signed results URL (no login needed)."""

from _common import arguments, connection, ndvi

import xr_openeo

args = arguments(__doc__)
with connection(args) as conn:
    job = ndvi(conn, args).create_job(out_format="GTiff", title="xr_openeo reconnect example")
    job.start_and_wait()
    job_id = job.job_id

    by_id = xr_openeo.open_results(job_id, connection=conn)
    doc = conn.get(f"/jobs/{job_id}/results").json()
    canonical = next(link["href"] for link in doc["links"] if link["rel"] == "canonical")
    by_url = xr_openeo.open_results(canonical)  # a signed URL: shareable, no token needed
    assert by_id.NDVI.equals(by_url.NDVI)
    print(f"job {job_id}: the same {dict(by_url.sizes)} cube by id and by its signed URL")
