"""What the comparison measures: each workload's job, methods, selection and xr_openeo keywords."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GTIFF_METHODS = ("xr_openeo", "download8", "openeo-client", "odc-stac", "rioxarray")
NETCDF_METHODS = ("xr_openeo", "download8", "openeo-client", "xarray-h5netcdf")
LARGE_METHODS = ("xr_openeo", "xr_openeo-unmasked", "download8", "odc-stac")


@dataclass(frozen=True)
class Workload:
    """One row group of the comparison.

    ``job``: which result it reads (``gtiff``: the many-dates 512² COGs; ``netcdf``; ``memory``: the
    float32 result 4× the memory budget; ``large``: a few dates of 4096² COGs). ``select``: what is
    read of the opened result (``open``: nothing; ``all``; ``window``: a square at the origin, all
    bands; ``window-band``: the same of band B03 only; ``first-date``; ``reduce``: ``mean("t")``; ``load``: the
    opened object loaded into memory as it is, a Dataset of band variables for xr_openeo).
    ``window``: which command line option gives the window's side. ``openeo``: the keywords of
    ``xr_openeo.open_results`` (``chunks`` given as ``"window"`` means the window's side).
    """

    job: str
    methods: tuple[str, ...]
    select: str
    window: str = "window"
    openeo: dict[str, Any] = field(default_factory=dict)


WORKLOADS: dict[str, Workload] = {
    "open": Workload("gtiff", ("xr_openeo", "odc-stac", "rioxarray"), "open"),
    "full": Workload("gtiff", GTIFF_METHODS, "all", openeo={"dtype": "uint16"}),
    "window": Workload("gtiff", GTIFF_METHODS, "window", openeo={"dtype": "uint16", "chunks": "window"}),
    # default settings: default chunks (whole files), default dtype; one band, as issue 13 measures it
    "window-default": Workload("gtiff", GTIFF_METHODS, "window-band"),
    "netcdf-full": Workload("netcdf", NETCDF_METHODS, "all", openeo={"dtype": "uint16"}),
    "netcdf-subset": Workload("netcdf", NETCDF_METHODS, "first-date", openeo={"dtype": "uint16"}),
    "memory": Workload("memory", ("xr_openeo", "dask-floor"), "reduce", openeo={"dtype": "float32"}),
    "large-full": Workload("large", (*LARGE_METHODS, "dask-floor"), "all"),
    # the whole result into memory as the object each method opens (ds.load(); xr_openeo also ds.openeo.load())
    "large-load": Workload("large", ("xr_openeo-load", "xr_openeo", "download8", "odc-stac", "dask-floor"), "load"),
    "large-window": Workload("large", ("xr_openeo", "download8", "odc-stac"), "window", window="large_window"),
}

#: What ``python -m asv_benchmarks.compare`` runs without ``--workloads``.
DEFAULT_WORKLOADS = ("open", "full", "window", "window-default", "netcdf-full", "netcdf-subset")
