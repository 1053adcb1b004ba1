"""Time series: aggregate NDVI over polygons on the backend and get a pandas DataFrame.

Needs: pip install "xr_openeo[local]" (the local openEO backend it runs on by default);
with --url against a real backend, pip install xr_openeo is enough.
"""

from _common import arguments, connection, ndvi

import xr_openeo

args = arguments(__doc__)
west, south, east, north = args.extent
mid_x, mid_y = (west + east) / 2, (south + north) / 2
polygons = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[west, south], [mid_x, south], [mid_x, mid_y], [west, mid_y], [west, south]]],
            },
        },
        {
            "type": "Feature",
            "properties": {},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[mid_x, mid_y], [east, mid_y], [east, north], [mid_x, north], [mid_x, mid_y]]],
            },
        },
    ],
}
with connection(args) as conn:
    series = ndvi(conn, args).aggregate_spatial(polygons, "mean")
    ds = xr_openeo.compute_batch(series, out_format="JSON")  # a vector cube: variables of dims (feature, t)
    print(ds)
    frame = xr_openeo.open_dataframe(ds.openeo.job)  # the same as a DataFrame
    print(frame)
