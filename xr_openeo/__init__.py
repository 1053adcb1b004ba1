"""xr_openeo."""
