"""What a job wrote: one record per result file, shared by the writers and the results documents."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What geopyspark's ML models put in their item: valid from the epoch to the end of time.
MODEL_START = "1970-01-01T00:00:00Z"
MODEL_END = "9999-12-31T23:59:59Z"
MODEL_ITEM_ID = "ml_model_metadata.json"


@dataclass(frozen=True)
class ModelInfo:
    """The STAC ml-model description of a model file (geopyspark's ``get_model_metadata``)."""

    id: str  # "rf-<32 hex>" / "cb-<32 hex>"
    architecture: str  # "random-forest" / "catboost"
    title: str  # the model class, as geopyspark titles the asset
    bands: tuple[str, ...] = ()


@dataclass(frozen=True)
class WrittenAsset:
    """One file a batch job wrote, with the metadata a results document publishes about it.

    ``key`` is the file name relative to the job's output folder (``openEO_2023-01-03Z.tif``);
    spatial fields are in the asset's own CRS (``bbox`` = pixel edges, ``shape`` = rows, cols).

    Split outputs (``tile_grid``, ``sample_by_feature``) name their tile or feature in ``tile``:
    the STAC 1.1 style gives each (date, tile) its own item. ``describes`` is the key of the data
    file a metadata asset belongs to (``*_gdalinfo.json``), which shares that file's item.
    ``job_proj`` publishes the job-level ``proj:*`` instead of the asset's own, as geopyspark's
    results view does for assets whose own grid it does not know. ``model`` marks a machine
    learning model file with the item document it gets.
    """

    key: str
    path: Path
    media_type: str
    roles: tuple[str, ...] = ("data",)
    bands: tuple[str, ...] = ()
    datetime: str | None = None
    start_datetime: str | None = None
    end_datetime: str | None = None
    epsg: int | None = None
    shape: tuple[int, int] | None = None
    bbox: tuple[float, float, float, float] | None = None
    dtype: str | None = None
    nodata: float | None = None
    tile: str | None = None
    describes: str | None = None
    job_proj: bool = False
    model: ModelInfo | None = None

    @property
    def file_size(self) -> int:
        """Bytes of the file (of all files, for a folder asset such as a Zarr store)."""
        if self.path.is_dir():
            return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return self.path.stat().st_size

    def member(self, inner: str) -> Path | None:
        """The file ``inner`` inside a folder asset (None if absent or outside the folder)."""
        if not self.path.is_dir():
            return None
        candidate = (self.path / inner).resolve()
        root = self.path.resolve()
        return candidate if candidate.is_file() and root in candidate.parents else None
