"""What a corpus entry is: the job's data (a formula), the files that hold it, and the expected outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Cube:
    """The data a job computed, on its whole pixel grid: every value comes from :meth:`values`.

    A pixel of band ``b`` on date ``d`` at (global) row ``r``, column ``c`` is
    ``1000 (b + 1) + 100 d + (7 r + 3 c) mod 89 + 1`` (never 0), except the holes
    ``(r + 2 c + 5 d + b) mod 41 == 0``, which hold nodata (or NaN once opened).
    """

    bands: tuple[str, ...]
    dates: tuple[str, ...]  # RFC 3339, the data's dates (the t axis)
    shape: tuple[int, int] = (48, 64)  # rows, cols
    epsg: int = 32631
    origin: tuple[float, float] = (640000.0, 5690000.0)  # x of the left edge, y of the top edge
    resolution: float = 10.0
    dtype: str = "uint16"
    nodata: float | None = 0  # what the files hold in the holes; None: the files have no holes

    def values(self, band: int, date: int, window: Window | None = None) -> np.ndarray:
        """The stored values of one band and date on ``window`` (default the whole grid), as ``dtype``."""
        w = window or Window(0, 0, *self.shape)
        r = np.arange(w.row, w.row + w.rows)[:, None]
        c = np.arange(w.col, w.col + w.cols)[None, :]
        out = (1000 * (band + 1) + 100 * date + (7 * r + 3 * c) % 89 + 1).astype("float64")
        if self.nodata is not None:
            out = np.where((r + 2 * c + 5 * date + band) % 41 == 0, self.nodata, out)
        return out.astype(self.dtype)

    def expected(self, band: int, date: int, window: Window | None = None) -> np.ndarray:
        """What an open should give (float32 by default): nodata as NaN."""
        stored = self.values(band, date, window).astype("float64")
        if self.nodata is not None and self.nodata == self.nodata:  # NaN nodata is NaN already
            stored = np.where(stored == self.nodata, np.nan, stored)
        return stored.astype("float32")

    def bbox(self, window: Window | None = None) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the pixel edges of ``window`` (default the whole grid)."""
        w = window or Window(0, 0, *self.shape)
        x0, y0 = self.origin
        res = self.resolution
        return (x0 + w.col * res, y0 - (w.row + w.rows) * res, x0 + (w.col + w.cols) * res, y0 - w.row * res)

    def coords(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre ``y`` and ``x`` of ``window``."""
        minx, _, _, maxy = self.bbox(window)
        w = window or Window(0, 0, *self.shape)
        res = self.resolution
        return maxy - res * (np.arange(w.rows) + 0.5), minx + res * (np.arange(w.cols) + 0.5)


@dataclass(frozen=True)
class Window:
    """Rows and columns of the job grid that one file (or the opened result) covers."""

    row: int
    col: int
    rows: int
    cols: int

    @staticmethod
    def union(windows: list[Window]) -> Window:
        r0, c0 = min(w.row for w in windows), min(w.col for w in windows)
        r1, c1 = max(w.row + w.rows for w in windows), max(w.col + w.cols for w in windows)
        return Window(r0, c0, r1 - r0, c1 - c0)

    def contains(self, row: int, col: int) -> bool:
        return self.row <= row < self.row + self.rows and self.col <= col < self.col + self.cols


@dataclass(frozen=True)
class File:
    """A real file an entry's document points to, written at test time.

    ``path`` is where it is served (the path of its href, without the query) or, for a document on
    disk, where it lies relative to the document. ``kind``: ``geotiff`` (one date, all bands),
    ``geotiff-stack`` (every date's bands in one file, as Sentinel Hub's batch API writes
    ``default.tif``), ``netcdf`` (the dates of ``dates``, one variable per band),
    ``timeseries-json``, ``timeseries-csv``, ``gdalinfo`` (a ``gdalinfo -json`` document of ``of``),
    ``sh-userdata`` (Sentinel Hub's ``userdata.json``), ``process-json`` or ``bytes`` (an opaque
    file such as a model).
    """

    path: str
    kind: str
    dates: tuple[int, ...] = ()  # indices into Cube.dates; () for a file without time
    window: Window | None = None  # None: the whole grid
    descriptions: bool = True  # GeoTIFF band descriptions = band names (geopyspark writes them)
    blocksize: int = 16
    of: str | None = None  # gdalinfo: the path of the GeoTIFF it describes
    size: int = 4096  # bytes: how many


@dataclass(frozen=True)
class Expected:
    """What opening an entry must give.

    ``front``: ``raster`` (``open_results`` gives a Dataset), ``table`` (``open_dataframe``) or
    ``error`` (the open raises ``error`` with ``message`` in its text).
    """

    front: str
    variables: tuple[str, ...] = ()
    dates: tuple[int, ...] | None = None  # indices into Cube.dates along t; None: no t dimension
    window: Window | None = None  # the part of the grid the result covers (None: all of it); NaN where no file is
    fill_value: float | None = None  # encoding["_FillValue"], when the metadata gives the nodata
    grid_in_metadata: bool = False  # proj:* gives the grid: opening sends no asset request
    skipped: tuple[str, ...] = ()  # asset keys skipped by default, with a reason
    table_shape: tuple[int, int] | None = None  # rows, value columns of the DataFrame
    table_columns: tuple[str, ...] = ()
    error: type[Exception] | None = None
    message: str = ""


@dataclass(frozen=True)
class Entry:
    """One results document in the shape a real backend writes, its files, and what opening it gives.

    ``name`` is its folder under ``tests/corpus`` (``NOTE.md`` there cites where the shape comes
    from). ``documents`` maps each JSON template in that folder (``results.json``,
    ``items/….json``) to the path it is served at; ``{root}`` in a template becomes the server's
    address. ``results_path`` is the document to open. ``on_disk``: the entry is opened from a
    folder on disk (paths are relative to it), not over HTTP.
    """

    name: str
    cube: Cube
    documents: dict[str, str]
    files: tuple[File, ...]
    expected: Expected
    results_path: str = ""
    on_disk: bool = False
    parse: dict[str, object] = field(default_factory=dict)  # expectations of the parse-level test

    @property
    def folder(self) -> Path:
        return HERE / self.name

    def template(self, name: str) -> str:
        return (self.folder / name).read_text()

    def note(self) -> str:
        return (self.folder / "NOTE.md").read_text()
