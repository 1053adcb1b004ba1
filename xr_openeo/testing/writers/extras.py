"""Files that are no raster results but sit next to them: ``*_gdalinfo.json`` metadata and model files."""

from __future__ import annotations

import gzip
import io
import json
import math
import tarfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pyproj import Transformer

from ..assets import ModelInfo, WrittenAsset
from .options import ML_MODELS

GDALINFO_SUFFIX = "_gdalinfo.json"  # appended to the full file name, as geopyspark does
_GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "uint64": "UInt64",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
}


def write_gdalinfo(tif: WrittenAsset, values: np.ndarray) -> WrittenAsset:
    """``{tif}_gdalinfo.json``: what ``gdalinfo -json -stats`` says of the file, a ``metadata`` asset.

    ``values`` are the ``(bands, y, x)`` pixels just written to ``tif`` (for the statistics).
    """
    path = tif.path.with_name(tif.path.name + GDALINFO_SUFFIX)
    path.write_text(json.dumps(gdalinfo(tif.path, values), allow_nan=False, indent=2), encoding="utf-8")
    return WrittenAsset(
        key=path.name,
        path=path,
        media_type="application/json",
        roles=("metadata",),
        datetime=tif.datetime,
        tile=tif.tile,
        describes=tif.key,
        job_proj=True,
    )


def gdalinfo(path: Path, values: np.ndarray) -> dict[str, Any]:
    """A ``gdalinfo -json -stats`` document of a GeoTIFF, built from its header and its pixels."""
    with rasterio.open(path) as src:
        transform, (width, height), crs = src.transform, (src.width, src.height), src.crs
        nodata, descriptions, dtypes = src.nodata, src.descriptions, src.dtypes
        blocks = src.block_shapes
        overviews = [src.overviews(i + 1) for i in range(src.count)]
        tags = src.tags()
        structure = src.tags(ns="IMAGE_STRUCTURE")
    corners = {
        "upperLeft": transform @ (0, 0),
        "lowerLeft": transform @ (0, height),
        "lowerRight": transform @ (width, height),
        "upperRight": transform @ (width, 0),
        "center": transform @ (width / 2, height / 2),
    }
    to_lonlat = Transformer.from_crs(crs, 4326, always_xy=True)
    ring = [list(to_lonlat.transform(*corners[k])) for k in ("upperLeft", "lowerLeft", "lowerRight", "upperRight")]
    stats = [_statistics(band, nodata) for band in values]
    bands = [
        {
            "band": i + 1,
            "block": [blocks[i][1], blocks[i][0]],
            "type": _GDAL_TYPES.get(dtypes[i], dtypes[i]),
            "description": descriptions[i] or "",
            "colorInterpretation": "Gray",
            **({} if nodata is None else {"noDataValue": _json_number(nodata)}),
            **{k: v for k, v in stats[i].items() if k != "valid_percent"},
            "overviews": [{"size": [math.ceil(width / f), math.ceil(height / f)]} for f in overviews[i]],
            "metadata": {"": {f"STATISTICS_{k.upper()}": str(v) for k, v in stats[i].items()}},
        }
        for i in range(len(dtypes))
    ]
    return {
        "description": str(path),
        "driverShortName": "GTiff",
        "driverLongName": "GeoTIFF",
        "files": [str(path)],
        "size": [width, height],
        "coordinateSystem": {"wkt": crs.to_wkt(), "dataAxisToSRSAxisMapping": [1, 2]},
        "geoTransform": list(transform.to_gdal()),
        "metadata": {"": tags, "IMAGE_STRUCTURE": structure},
        "cornerCoordinates": {k: list(v) for k, v in corners.items()},
        "wgs84Extent": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        "bands": bands,
        "stac": {
            "proj:shape": [height, width],
            "proj:transform": list(transform)[:6],
            **({"proj:epsg": crs.to_epsg()} if crs.to_epsg() else {}),
            "raster:bands": [
                {"data_type": dtypes[i], **({} if nodata is None else {"nodata": _json_number(nodata)})}
                | {"stats": stats[i]}
                for i in range(len(dtypes))
            ],
            "eo:bands": [{"name": f"b{i + 1}", "description": d or ""} for i, d in enumerate(descriptions)],
        },
    }


def _statistics(band: np.ndarray, nodata: float | None) -> dict[str, float]:
    valid = ~np.isnan(band) if band.dtype.kind == "f" else np.ones(band.shape, dtype=bool)
    if nodata is not None and not math.isnan(nodata):
        valid &= band != nodata
    values = band[valid].astype("float64")
    if values.size == 0:
        return {"valid_percent": 0.0}
    return {
        "minimum": float(values.min()),
        "maximum": float(values.max()),
        "mean": float(values.mean()),
        "stdDev": float(values.std()),
        "valid_percent": round(100.0 * values.size / band.size, 3),
    }


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else "nan" if math.isnan(value) else str(value)


def write_model(out_dir: Path, architecture: str, bands: tuple[str, ...]) -> WrittenAsset:
    """A model archive as geopyspark's ``save_ml_model`` leaves it, with its ml-model item.

    The archive is a real ``.tar.gz`` (a folder with a JSON description of the "model": its
    architecture and input bands); what matters to readers is that it is an
    ``application/octet-stream`` asset with an item valid until 9999-12-31T23:59:59Z.
    """
    file_name, title, prefix = ML_MODELS[architecture]
    path = out_dir / file_name
    folder = file_name.removesuffix(".tar.gz")
    description = json.dumps({"class": title, "architecture": architecture, "bands": list(bands)}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(f"{folder}/metadata.json")
        info.size = len(description)
        tar.addfile(info, io.BytesIO(description))
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return WrittenAsset(
        key=path.name,
        path=path,
        media_type="application/octet-stream",
        job_proj=True,
        model=ModelInfo(id=f"{prefix}-{uuid.uuid4().hex}", architecture=architecture, title=title, bands=bands),
    )
