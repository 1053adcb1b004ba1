"""The same lazy graph on a dask.distributed cluster (worker processes read the assets themselves)."""

from _common import arguments, connection, ndvi
from dask.distributed import Client, LocalCluster

import xr_openeo

if __name__ == "__main__":
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
