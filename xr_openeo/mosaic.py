"""Which raster files make one cube, and where each lies on it: pure planning, no I/O.

Files on one pixel grid (same CRS, same pixel size, origins a whole number of pixels apart)
form one cube on the union of their extents: several files of one date mosaic (holes stay
missing, overlaps take the first valid pixel in document order); files of different dates stack
along ``t``; bands are the union of the files' bands. Files that cannot share a grid (another
CRS or pixel size, or shifted by a fraction of a pixel) form cubes of their own, which the
caller returns as DataTree groups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .cube import Placement, _crs_key
from .errors import ResultsDocumentError
from .readers.base import BandId, FileInfo
from .results import AssetSpec, Grid


@dataclass(frozen=True)
class Source:
    """One file to place: its spec, what it holds, and whether its grid was read from its header."""

    spec: AssetSpec
    info: FileInfo
    from_header: bool = False

    @property
    def dates(self) -> tuple[np.datetime64 | None, ...]:
        """The file's dates: its own time steps, else the document's datetime for it (None: dateless)."""
        if self.info.times is not None:
            return self.info.times
        when = self.spec.time if self.spec.time is not None else self.spec.start
        return (when,)


@dataclass(frozen=True)
class Layout:
    """One cube: its grid, dates (``(None,)`` when dateless), band names and placements."""

    grid: Grid
    times: tuple[np.datetime64 | None, ...]
    names: tuple[str, ...]
    placements: tuple[Placement, ...]
    sources: tuple[Source, ...]

    @property
    def dateless(self) -> bool:
        return self.times == (None,)

    @property
    def extent(self) -> tuple[int, int]:
        """The most common file size ``(rows, cols)``: chunks follow files by default."""
        sizes = [s.info.grid.shape for s in self.sources]
        return max(set(sizes), key=lambda size: (sizes.count(size), size[0] * size[1]))  # ties: the largest

    @property
    def tile(self) -> tuple[int, int]:
        blocks = [s.info.block for s in self.sources]
        return max(set(blocks), key=blocks.count)


def band_names(spec: AssetSpec, info: FileInfo) -> tuple[str, ...]:
    """Names of a file's bands: the document's (``bands``/``eo:bands``) when their count matches, else the
    file's own (descriptions, variable names), else ``band_1``, ``band_2``…"""
    count = len(info.bands)
    if len(spec.bands) == count:
        names = list(spec.bands)
    elif len(info.names) == count and all(info.names):
        names = [str(n) for n in info.names]
    else:
        names = [f"band_{i + 1}" for i in range(count)]
    return tuple(_unique(names))


def _unique(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        out.append(name if n == 0 else f"{name}_{n}")
        seen[name] = n + 1
    return out


def grid_key(grid: Grid) -> tuple[object, ...]:
    """What files must share to lie on one pixel grid: CRS, pixel size, and the origin's sub-pixel phase."""
    a, b, c, d, e, f = grid.transform
    scale = max(abs(a), abs(e))
    return (
        _crs_key(grid.crs),
        round(a / scale, 9),
        round(e / scale, 9),
        round(b / scale, 9),
        round(d / scale, 9),
        round(scale, 9),
        _phase(c, a),
        _phase(f, e),
    )


def _phase(origin: float, size: float) -> float:
    """The origin's offset within a pixel, in pixels, rounded so that float noise does not split grids."""
    frac = (origin / size) % 1.0 if size else 0.0
    frac = round(frac, 6)
    return 0.0 if frac in (0.0, 1.0) else frac


def duplicated_grids(sources: Sequence[Source]) -> list[str]:
    """Keys of files whose document grid is the same as another file's of the same date.

    Several files of one date cannot all lie on the same pixels: the grid the document gives
    them is the job's, not theirs (geopyspark's ``tile_grid``), so their headers must be read.
    """
    seen: dict[tuple[object, ...], list[str]] = {}
    for s in sources:
        if s.from_header:
            continue
        for when in s.dates:
            seen.setdefault((str(when), s.info.grid), []).append(s.spec.key)
    out: dict[str, None] = {}  # ordered, without the quadratic cost of a list's `in` for many tiles
    for keys in seen.values():
        if len(keys) > 1:
            out.update(dict.fromkeys(keys))
    return list(out)


def plan(sources: Sequence[Source]) -> list[Layout]:
    """Group ``sources`` into cubes (one per pixel grid) and place every file on its cube."""
    groups: dict[tuple[object, ...], list[Source]] = {}
    for source in sources:
        groups.setdefault(grid_key(source.info.grid), []).append(source)
    return [_layout(members) for members in groups.values()]


def _layout(sources: Sequence[Source]) -> Layout:
    first = sources[0].info.grid
    a, _, _, _, e, _ = first.transform
    minx = min(s.info.grid.bounds[0] for s in sources)
    maxy = max(s.info.grid.bounds[3] for s in sources)
    maxx = max(s.info.grid.bounds[2] for s in sources)
    miny = min(s.info.grid.bounds[1] for s in sources)
    cols = int(round((maxx - minx) / abs(a)))
    rows = int(round((maxy - miny) / abs(e)))
    grid = Grid(first.crs, (rows, cols), (a, 0.0, minx if a > 0 else maxx, 0.0, e, maxy if e < 0 else miny))
    times = _times(sources)
    index = {_ns(t): i for i, t in enumerate(times)}
    names: list[str] = []
    per_file: list[tuple[str, ...]] = []
    for s in sources:
        file_names = band_names(s.spec, s.info)
        per_file.append(file_names)
        names.extend(n for n in file_names if n not in names)
    placements = []
    for s, file_names in zip(sources, per_file, strict=True):
        bands: list[BandId | None] = [s.info.bands[file_names.index(n)] if n in file_names else None for n in names]
        row, col = _offset(grid, s.info.grid)
        placements.append(
            Placement(
                key=s.spec.key,
                row=row,
                col=col,
                shape=s.info.grid.shape,
                steps=tuple(index[_ns(t)] for t in s.dates),
                bands=tuple(bands),
                grid=s.info.grid,
                timed=s.info.times is not None,
            )
        )
    return Layout(grid, times, tuple(names), tuple(placements), tuple(sources))


def _offset(grid: Grid, file_grid: Grid) -> tuple[int, int]:
    a, _, c, _, e, f = grid.transform
    col = (file_grid.transform[2] - c) / a
    row = (file_grid.transform[5] - f) / e
    if not (math.isclose(col, round(col), abs_tol=1e-6) and math.isclose(row, round(row), abs_tol=1e-6)):
        raise ValueError(f"file grid is {col - round(col):+.6f}, {row - round(row):+.6f} pixels off the cube grid")
    return int(round(row)), int(round(col))


def _times(sources: Sequence[Source]) -> tuple[np.datetime64 | None, ...]:
    dated = [s for s in sources if any(t is not None for t in s.dates)]
    undated = [s for s in sources if all(t is None for t in s.dates)]
    if dated and undated:
        raise ResultsDocumentError(
            f"Assets {', '.join(s.spec.key for s in undated)} have no datetime (not in their items, properties or "
            "file names) while the others have one; open them separately with assets=[...]",
            field="datetime",
        )
    if undated:
        return (None,)
    values = {_ns(t) for s in dated for t in s.dates if t is not None}
    return tuple(sorted(values))  # type: ignore[type-var]


def _ns(when: np.datetime64 | None) -> np.datetime64 | None:
    return None if when is None else np.datetime64(when).astype("datetime64[ns]")
