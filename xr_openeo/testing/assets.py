"""What a job wrote: one record per result file, shared by the writers and the results documents."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WrittenAsset:
    """One file a batch job wrote, with the metadata a results document publishes about it.

    ``key`` is the file name relative to the job's output folder (``openEO_2023-01-03Z.tif``);
    spatial fields are in the asset's own CRS (``bbox`` = pixel edges, ``shape`` = rows, cols).
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
