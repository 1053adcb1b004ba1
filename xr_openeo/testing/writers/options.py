"""The output options of ``save_result``: its format options, else the job's options.

geopyspark reads ``tile_grid``, ``sample_by_feature`` and ``attach_gdalinfo_assets`` from
``save_result``'s ``options``; the local backend also takes them (and its own ``tile_grid_proj``
and ``ml_model``) as job options, so that a test can switch them without touching the graph.
A format option wins over the job option of the same name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TILE_GRID_PATTERN = re.compile(r"^(?:wgs84-1degree|utm-(\d+)(km|m))$")
TILE_GRID_PROJ = ("tile", "job")
ML_MODELS = {
    # architecture -> (file name, asset title, id prefix), as geopyspark's models write them
    "random-forest": ("randomforest.model.tar.gz", "org.apache.spark.mllib.tree.model.RandomForestModel", "rf"),
    "catboost": ("catboost_model.cbm.tar.gz", "ai.catboost.spark.CatBoostClassificationModel", "cb"),
}


@dataclass(frozen=True)
class OutputOptions:
    """What ``save_result`` writes besides the plain files of its format.

    Attributes
    ----------
    filename_prefix
        Start of every raster file name (``openEO``).
    tile_grid
        ``"wgs84-1degree"``, ``"utm-<n>km"`` or ``"utm-<n>m"``: several files per date, one per grid cell.
    tile_grid_proj
        ``"tile"``: each tile publishes its own ``proj:*``; ``"job"``: every tile publishes the job's.
    sample_by_feature
        One file per feature of the graph's last ``filter_spatial`` (per date for GTiff).
    feature_id_property
        Feature property that names the per-feature files (else the feature's index).
    geometries
        GeoJSON (EPSG:4326) of those features, set by the process runner as geopyspark's job runner does.
    attach_gdalinfo_assets
        A ``{file}_gdalinfo.json`` metadata asset per GeoTIFF.
    ml_model
        Architecture of a model file written next to the results, or None.
    """

    filename_prefix: str = "openEO"
    tile_grid: str | None = None
    tile_grid_proj: str = "tile"
    sample_by_feature: bool = False
    feature_id_property: str | None = None
    geometries: Any = None
    attach_gdalinfo_assets: bool = False
    ml_model: str | None = None

    @property
    def splits(self) -> bool:
        """Whether a raster result is written as several files per date."""
        return self.tile_grid is not None or self.sample_by_feature


def output_options(options: Mapping[str, Any] | None, job_options: Mapping[str, Any] | None) -> OutputOptions:
    """Read and check the output options.

    Raises
    ------
    ValueError
        An option with a value the backend does not understand, naming the allowed values.
    """
    fmt, job = dict(options or {}), dict(job_options or {})

    def get(name: str, default: Any = None) -> Any:
        return fmt.get(name, job.get(name, default))

    tile_grid = get("tile_grid")
    if tile_grid is not None and tile_grid_metres(tile_grid) == 0:
        raise ValueError(
            f"save_result: tile_grid must be 'wgs84-1degree', 'utm-<n>km' or 'utm-<n>m' (e.g. 'utm-10km', "
            f"'utm-1280m'), got {tile_grid!r}."
        )
    tile_grid_proj = get("tile_grid_proj", "tile")
    if tile_grid_proj not in TILE_GRID_PROJ:
        raise ValueError(f"save_result: tile_grid_proj must be 'tile' or 'job', got {tile_grid_proj!r}.")
    sample_by_feature = _flag(get("sample_by_feature", False), "sample_by_feature")
    if tile_grid is not None and sample_by_feature:
        raise ValueError("save_result: choose tile_grid or sample_by_feature, not both.")
    feature_id_property = get("feature_id_property")
    if feature_id_property is not None and not isinstance(feature_id_property, str):
        raise ValueError(f"save_result: feature_id_property must be a property name, got {feature_id_property!r}.")
    return OutputOptions(
        filename_prefix=_filename_prefix(fmt.get("filename_prefix")),
        tile_grid=tile_grid,
        tile_grid_proj=tile_grid_proj,
        sample_by_feature=sample_by_feature,
        feature_id_property=feature_id_property,
        geometries=fmt.get("geometries"),
        attach_gdalinfo_assets=_flag(get("attach_gdalinfo_assets", False), "attach_gdalinfo_assets"),
        ml_model=_ml_model(get("ml_model")),
    )


def tile_grid_metres(tile_grid: Any) -> float | None:
    """Cell size of a ``utm-*`` tile grid in metres, None for ``wgs84-1degree``, 0 if it is no tile grid."""
    match = TILE_GRID_PATTERN.match(tile_grid) if isinstance(tile_grid, str) else None
    if match is None:
        return 0.0
    if match.group(1) is None:
        return None
    return float(match.group(1)) * (1000.0 if match.group(2) == "km" else 1.0)


def _filename_prefix(prefix: Any) -> str:
    prefix = prefix or "openEO"
    if not isinstance(prefix, str) or Path(prefix).name != prefix:
        raise ValueError(f"save_result: filename_prefix must be a plain file name, got {prefix!r}.")
    return prefix


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"save_result: {name} must be true or false, got {value!r}.")


def _ml_model(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return "random-forest"
    if value not in ML_MODELS:
        raise ValueError(f"save_result: ml_model must be true or one of {', '.join(ML_MODELS)}, got {value!r}.")
    return str(value)
