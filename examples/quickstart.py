"""Quickstart: run an NDVI graph as a batch job and get a lazy, dask-backed Dataset back."""

from _common import arguments, connection, ndvi

import xr_openeo

args = arguments(__doc__)
with connection(args) as conn:
    ds = xr_openeo.compute_batch(ndvi(conn, args), title="xr_openeo quickstart")
    print(ds)
    print(ds.openeo)
    print("mean NDVI per date:", ds.NDVI.mean(("x", "y")).compute().values.round(4))
