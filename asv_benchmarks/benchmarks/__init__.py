"""asv benchmarks of xr_openeo against its local openEO backend (started by each benchmark's setup)."""
