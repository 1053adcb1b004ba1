"""CF datasets (netCDF, Zarr) as readers: xarray decodes them, the cube reads their windows.

A CF file holds one variable per band on ``(t, y, x)`` (``time`` is renamed ``t``); its grid comes
from its pixel-centre ``x``/``y`` coordinates and its grid-mapping variable, its dates from its
decoded ``t``. xarray's own decoding (``_FillValue``, scale/offset, times) applies, so a masked
read gives NaN where the file has no data. Each reader object opens a file once per process, on
first use, and closes it with :meth:`CFReader.close` (``ds.close()``) or when it is collected.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, TypeVar

import numpy as np
from xarray.backends import BackendArray

from ..errors import AssetReadError
from ..results import Grid
from .base import BandId, Block, FileInfo, Window

log = logging.getLogger("xr_openeo")

X_NAMES = ("x", "lon", "longitude", "X")
Y_NAMES = ("y", "lat", "latitude", "Y")
_T = TypeVar("_T")
_DROPPED_ATTRS = ("grid_mapping", "_FillValue", "missing_value", "scale_factor", "add_offset", "coordinates")


class NotGridded(Exception):
    """The file's variables are not rasters on ``(t, y, x)`` (a vector cube, a point series…)."""


@dataclass
class OpenFile:
    """One file a reader opened: the decoded Dataset, what else to close with it, and what it holds.

    ``source`` is what the Dataset reads from (a netCDF file read by ranges runs every read
    through it); ``info`` is filled on first use of :meth:`CFReader.info`.
    """

    ds: Any
    source: Any = None
    closers: tuple[Callable[[], object], ...] = ()
    info: FileInfo | None = None

    def close(self) -> None:
        for close in (self.ds.close, *self.closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing must not fail
                pass


class CFReader:
    """Base of the netCDF and Zarr readers: ``_open(key)`` gives the file as an :class:`OpenFile` (no dask).

    Each file is opened once per reader object, on first use; files open independently of each
    other (opening one does not wait for another). A reader pickles as its constructor arguments:
    an unpickled copy opens its own files.
    """

    format: ClassVar[str] = "cf"
    shares_bands: ClassVar[bool] = False

    def __init__(self, links: Any, masked: bool = True) -> None:
        self.links, self.masked = links, masked
        self._lock = threading.Lock()
        self._files: dict[str, OpenFile] = {}
        self._opening: dict[str, threading.Lock] = {}
        self._finalizer = weakref.finalize(self, _close_all, self._files)

    def _args(self) -> tuple[Any, ...]:
        """The constructor arguments: what a pickle holds."""
        return (self.links, self.masked)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._args())

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (type(self).__name__, self.token, *self._args()[1:])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.links!r}, masked={self.masked})"

    @property
    def token(self) -> str:
        return f"{self.format}:{self.links.scope}"

    def _open(self, key: str) -> OpenFile:  # pragma: no cover - subclasses
        raise NotImplementedError

    def _file(self, key: str) -> OpenFile:
        """Asset ``key`` opened by this reader (``time`` renamed ``t``); the first caller opens it."""
        with self._lock:
            opened = self._files.get(key)
            if opened is not None:
                return opened
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:  # callers for this file wait for one open; other files open meanwhile
            with self._lock:
                opened = self._files.get(key)
            if opened is not None:
                return opened
            try:
                opened = self._open(key)
                ds = opened.ds
                if "time" in ds.dims and "t" not in ds.dims and "t" not in ds.variables:
                    opened.ds = ds.rename({"time": "t"})
                with self._lock:
                    self._files[key] = opened
            finally:
                with self._lock:
                    if self._opening.get(key) is opening:
                        del self._opening[key]
            return opened

    def dataset(self, key: str) -> Any:
        """The file as xarray decodes it (``time`` renamed ``t``), lazily, for files that are no rasters.

        Its variables read through this reader (which opens the file again if it was closed, and
        pickles by its arguments); closing the Dataset closes the file.
        """
        import xarray as xr
        from xarray.core import indexing

        ds = self._file(key).ds
        variables = {}
        for name, var in ds.variables.items():
            if not isinstance(var, xr.IndexVariable):  # index coordinates are in memory already
                data = indexing.LazilyIndexedArray(VariableArray(self, key, str(name), var.shape, var.dtype))
                var = xr.Variable(var.dims, data, var.attrs, var.encoding)
            variables[name] = var
        out = xr.Dataset(variables, attrs=ds.attrs).set_coords(list(ds.coords))
        out.encoding = dict(ds.encoding)
        out.set_close(partial(self._close_file, key))
        return out

    def close(self) -> None:
        """Close the files this reader opened (in this process); the next read opens them again."""
        with self._lock:
            files = dict(self._files)
            self._files.clear()
        _close_all(files)

    def _close_file(self, key: str) -> None:
        with self._lock:
            opened = self._files.pop(key, None)
        if opened is not None:
            opened.close()

    def _guarded(self, opened: OpenFile, read: Callable[[], _T]) -> _T:
        """``read()``, a read of ``opened``'s Dataset; readers whose files need care around reads override it."""
        return read()

    def info(self, key: str) -> FileInfo:
        opened = self._file(key)
        if opened.info is None:
            opened.info = self._guarded(opened, lambda: describe(opened.ds, key))
        return opened.info

    def read(
        self, key: str, window: Window, bands: Sequence[BandId], dtype: str | None = None, out: np.ndarray | None = None
    ) -> Block:
        """The window of ``bands``, each ``(t, rows, cols)``: the file's steps ``window.t``, or one step
        for a file without ``t``. A variable without ``t`` in a file with one holds for each step.
        (``out`` is not used: xarray's decoding makes its own arrays; the cube copies them.)"""
        info = self.info(key)
        opened = self._file(key)
        data = self._guarded(opened, lambda: _read_window(opened.ds, key, window, bands))
        nodata = None
        if not self.masked:  # (the cube asks one band at a time: its nodata is the block's)
            fills = [_fill(opened.ds[band]) for band in bands]
            nodata = next((f for f in reversed(fills) if f is not None), None)
        return Block(data, nodata=nodata, grid=info.grid, masked=self.masked)


class VariableArray(BackendArray):
    """Variable ``name`` of asset ``key`` as a lazy array read through ``reader`` (:meth:`CFReader.dataset`)."""

    def __init__(self, reader: CFReader, key: str, name: str, shape: tuple[int, ...], dtype: Any) -> None:
        self.reader, self.key, self.name = reader, key, name
        self.shape, self.dtype = shape, np.dtype(dtype)

    def __getitem__(self, key: Any) -> Any:
        from xarray.core import indexing

        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._raw)

    def _raw(self, index: tuple[Any, ...]) -> np.ndarray:
        opened = self.reader._file(self.key)
        return self.reader._guarded(opened, lambda: np.asarray(opened.ds[self.name].variable[index].values))


def _read_window(ds: Any, key: str, window: Window, bands: Sequence[BandId]) -> list[np.ndarray]:
    y_dim, x_dim = _spatial_dims(ds, key)
    steps = len(range(ds.sizes["t"])[window.t or slice(None)]) if "t" in ds.dims else 1
    data = []
    for band in bands:
        var = ds[band].variable
        index = {y_dim: window.y, x_dim: window.x}
        if "t" in var.dims:
            index["t"] = window.t if window.t is not None else slice(None)
        part = var.isel(index)
        order = [d for d in ("t", y_dim, x_dim) if d in part.dims]
        values = np.asarray(part.transpose(*order).values)
        if "t" not in part.dims:
            values = np.repeat(values[np.newaxis], steps, axis=0)  # a copy of its own: the cube writes into it
        data.append(values)
    return data


def _fill(var: Any) -> float | None:
    fill = var.encoding.get("_FillValue", var.attrs.get("_FillValue"))
    return None if fill is None else float(np.asarray(fill).ravel()[0])


def describe(ds: Any, key: str) -> FileInfo:
    """What a decoded CF Dataset holds: its grid, its band variables on ``(t, y, x)``, dates, chunks."""
    y_dim, x_dim = _spatial_dims(ds, key)
    bands = [
        name
        for name, var in ds.data_vars.items()
        if {y_dim, x_dim} <= set(var.dims) and set(var.dims) <= {"t", y_dim, x_dim} and var.dtype.kind in "iufb"
    ]
    if not bands:
        raise NotGridded(f"asset {key!r} has no variable on ({y_dim}, {x_dim})")
    first = ds[bands[0]]
    times = tuple(np.asarray(ds["t"].values, dtype="datetime64[ns]")) if "t" in ds.dims else None
    return FileInfo(
        grid=_grid(ds, key, y_dim, x_dim),
        bands=tuple(bands),
        names=tuple(str(b) for b in bands),
        dtype=str(first.dtype),
        nodata=_fill(first),
        times=times,
        block=_block(first, y_dim, x_dim),
        attrs={b: {k: v for k, v in ds[b].attrs.items() if k not in _DROPPED_ATTRS} for b in bands},
    )


def _block(var: Any, y_dim: str, x_dim: str) -> tuple[int, int]:
    """The variable's native chunk ``(rows, cols)`` (HDF5 chunks, Zarr chunks), else 256²."""
    preferred = var.encoding.get("preferred_chunks")
    if not isinstance(preferred, Mapping):
        sizes = var.encoding.get("chunksizes") or var.encoding.get("chunks")
        preferred = dict(zip(var.dims, sizes, strict=False)) if sizes else {}
    rows, cols = preferred.get(y_dim), preferred.get(x_dim)
    if isinstance(rows, int) and isinstance(cols, int) and rows > 0 and cols > 0:
        return (rows, cols)
    return (256, 256)


def _close_all(files: dict[str, OpenFile]) -> None:
    for opened in list(files.values()):
        opened.close()
    files.clear()


def _spatial_dims(ds: Any, key: str) -> tuple[str, str]:
    y = next((d for d in Y_NAMES if d in ds.dims), None)
    x = next((d for d in X_NAMES if d in ds.dims), None)
    if x is None or y is None:
        raise NotGridded(f"asset {key!r} has no x/y dimensions (it has {sorted(map(str, ds.dims))})")
    return str(y), str(x)


def _grid(ds: Any, key: str, y_dim: str, x_dim: str) -> Grid:
    """The grid of the pixel-centre coordinates; an axis of one pixel takes its size from the grid
    mapping's ``GeoTransform`` (GDAL, rioxarray), else from the other axis (square pixels)."""
    x = np.asarray(ds[x_dim].values, dtype="float64")
    y = np.asarray(ds[y_dim].values, dtype="float64")
    a, e = _step(x, x_dim, key), _step(y, y_dim, key)
    if a is None or e is None:
        transform = _geotransform(ds)
        if transform is not None:
            a, e = a if a is not None else transform[1], e if e is not None else transform[5]
    if a is None:
        if e is None:
            raise NotGridded(
                f"asset {key!r} holds a single pixel and no GeoTransform: its pixel size is unknown, so it is "
                "opened on its own"
            )
        a = abs(e)
    if e is None:
        e = -abs(a)
    return Grid(_crs(ds, key), (y.size, x.size), (a, 0.0, float(x[0]) - a / 2, 0.0, e, float(y[0]) - e / 2))


def _step(values: np.ndarray, dim: str, key: str) -> float | None:
    """The spacing of regular coordinates; None for fewer than two."""
    if values.size < 2:
        return None
    steps = np.diff(values)
    if not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
        raise NotGridded(f"asset {key!r} has irregular {dim} coordinates")
    return float(steps[0])


def _grid_mappings(ds: Any) -> list[Hashable]:
    """Names of the file's grid-mapping variables (those its bands name, and ``crs``/``spatial_ref``)."""
    names: set[Hashable] = {var.attrs.get("grid_mapping") for var in ds.data_vars.values()} - {None}
    names |= {n for n in ("crs", "spatial_ref") if n in ds.variables and ds[n].ndim == 0}
    return sorted((n for n in names if n in ds.variables), key=str)


def _geotransform(ds: Any) -> tuple[float, ...] | None:
    """GDAL's ``GeoTransform`` of a grid-mapping variable (``c a b f d e``), if one has it."""
    for name in _grid_mappings(ds):
        text = ds[name].attrs.get("GeoTransform")
        try:
            values = tuple(float(v) for v in str(text).split())
        except ValueError:
            continue
        if len(values) == 6 and values[1] and values[5]:
            return values
    return None


def _crs(ds: Any, key: str) -> str:
    """The CRS of the file's grid-mapping variable (``crs_wkt``, ``spatial_ref`` or CF parameters)."""
    import pyproj

    for name in _grid_mappings(ds):
        attrs: Mapping[str, Any] = ds[name].attrs
        for source in ("crs_wkt", "spatial_ref", "cf"):
            try:
                crs = pyproj.CRS.from_cf(dict(attrs)) if source == "cf" else pyproj.CRS.from_user_input(attrs[source])
            except (KeyError, pyproj.exceptions.CRSError):
                continue
            code = crs.to_epsg()
            return f"EPSG:{code}" if code is not None else crs.to_wkt()
    log.info("asset %r has no readable CRS; its grid has none", key)
    return ""


def check_magic(head: bytes, key: str, href: str) -> None:
    """Refuse what is not netCDF-4/HDF5 with a message that says what it is."""
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return
    if head.startswith((b"CDF\x01", b"CDF\x02", b"CDF\x05")):
        why = "it is a netCDF-3 (classic) file, which h5netcdf cannot read; download it and open it with scipy"
    else:
        why = f"it does not start with the HDF5 signature (first bytes {head[:8]!r})"
    raise AssetReadError(f"Cannot read netCDF asset {key!r} at {href}: {why}.", key=key, href=href)
