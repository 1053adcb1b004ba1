"""The same lazy graph on a dask.distributed cluster (worker processes read the assets themselves).

Needs: pip install "xr_openeo[local,distributed]" (dask.distributed, and the local openEO backend it
runs on by default); with --url against a real backend, pip install "xr_openeo[distributed]".
"""

import sys

from _common import arguments, connection, ndvi

import xr_openeo

try:
    from dask.distributed import Client, LocalCluster
except ImportError:  # the example says what to install instead of failing on import
    Client = LocalCluster = None

if __name__ == "__main__":
    if LocalCluster is None:
        sys.exit(
            "This example needs dask.distributed, which is not installed: "
            'pip install "xr_openeo[distributed]" (or: pip install distributed)'
        )
    args = arguments(__doc__)
    with connection(args) as conn:
        ds = xr_openeo.compute_batch(ndvi(conn, args), chunks={"y": 256, "x": 256})
        threaded = ds.NDVI.mean("t").compute(scheduler="threads")
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster:
            with Client(cluster):
                on_cluster = ds.NDVI.mean("t").compute()
        assert threaded.equals(on_cluster)
        print(f"mean NDVI over time computed on {len(cluster.workers) or 2} workers equals the threaded result")
