"""Reconnect to a job's results later: by job id, or by its signed results URL (no login needed).

Needs: pip install "xr_openeo[local]" (the local openEO backend it runs on by default);
with --url against a real backend, pip install xr_openeo is enough.
"""

from _common import arguments, connection, ndvi

import xr_openeo
from xr_openeo.jobs import as_batch_job, wait

args = arguments(__doc__)
with connection(args) as conn:
    job = as_batch_job(ndvi(conn, args), out_format="GTiff", title="xr_openeo reconnect example")
    wait(job)  # starts it and shows progress until it finished
    job_id = job.job_id

    by_id = xr_openeo.open_results(job_id, connection=conn)
    doc = conn.get(f"/jobs/{job_id}/results").json()
    canonical = next(link["href"] for link in doc["links"] if link["rel"] == "canonical")
    by_url = xr_openeo.open_results(canonical)  # a signed URL: shareable, no token needed
    assert by_id.NDVI.equals(by_url.NDVI)
    print(f"job {job_id}: the same {dict(by_url.sizes)} cube by id and by its signed URL")
