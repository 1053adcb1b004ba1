"""Open what a running job has written so far (API 1.2 partial results).

Needs: pip install "xr_openeo[local]" (the local openEO backend it runs on by default);
with --url against a real backend, pip install xr_openeo is enough.
"""

import time

from _common import arguments, connection, ndvi

import xr_openeo
from xr_openeo.jobs import wait

args = arguments(__doc__)
with connection(args) as conn:
    options = None if args.url else {"faults": {"run_duration": 6}}  # the local backend takes its time
    job = ndvi(conn, args).create_job(out_format="GTiff", job_options=options)
    job.start()
    for _ in range(120):
        partial = xr_openeo.open_results(job, partial=True)
        if partial.data_vars:
            break
        time.sleep(0.5)
    print(f"while {partial.attrs['openeo:status']}: {partial.sizes.get('t', 0)} date(s) written so far")
    wait(job)  # shows progress until the job finished
    done = xr_openeo.open_results(job)
    print(f"when finished: {done.sizes['t']} dates")
