"""Issue 11, item 9: the local backend leaves no worker process behind.

xvec's zonal statistics (``aggregate_spatial``) run through joblib, whose default loky backend starts
worker processes (and a resource tracker) that outlive the job and the user's script. The check
runs in a fresh interpreter, so that workers another test may have started cannot hide new ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json
import psutil
from pyproj import Transformer
from xr_openeo.testing import LocalBackend, SyntheticCollection

to_lonlat = Transformer.from_crs(32631, 4326, always_xy=True)

def rect(x0, y0, x1, y1):
    ring = [to_lonlat.transform(x, y) for x, y in [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]]
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}

features = [rect(640100, 5689100, 640400, 5689400), rect(640700, 5688900, 641100, 5689800)]
polygons = {"type": "FeatureCollection", "features": features}
me = psutil.Process()
with LocalBackend([SyntheticCollection(dates=2, width=128, height=128)]) as backend:
    cube = backend.connect().load_collection("SENTINEL2_L2A", bands=["B04"]).aggregate_spatial(polygons, "mean")
    job = cube.create_job(out_format="JSON")
    job.start_and_wait(max_poll_interval=0.1)
    status = job.status()
    during = [" ".join(p.cmdline()) for p in me.children(recursive=True)]
after = [" ".join(p.cmdline()) for p in me.children(recursive=True)]
print(json.dumps({"status": status, "during": during, "after": after}))
"""


def test_no_process_outlives_an_aggregate_spatial_job_or_the_backend():
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}

    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env, cwd=root
    )

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "finished"
    assert report["during"] == [], "the job started worker processes"
    assert report["after"] == [], "processes outlived the backend"
