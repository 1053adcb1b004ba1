"""Quickstart: run an NDVI graph as a batch job and get a lazy, dask-backed Dataset back.

Needs: pip install "xr_openeo[local]" (the local openEO backend it runs on by default);
with --url against a real backend, pip install xr_openeo is enough.
"""

from _common import arguments, connection, ndvi

import xr_openeo

args = arguments(__doc__)
with connection(args) as conn:
    # Progress: a bar on a terminal; status lines on stderr when the output goes to a file.
    ds = xr_openeo.compute_batch(ndvi(conn, args), title="xr_openeo quickstart")
    print(ds)
    print(ds.openeo)
    print("mean NDVI per date:", ds.NDVI.mean(("x", "y")).compute().values.round(4))
