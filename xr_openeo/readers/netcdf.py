"""netCDF-4 (HDF5) assets: xarray's h5netcdf decoding over a ranged, block-cached remote file.

Opening reads only the HDF5 metadata (and the small index coordinates); a window reads only
the HDF5 chunks it needs, through an :class:`~xr_openeo.http.RemoteFile` (retries, renewal of
expired signed URLs, no HEAD). Files under the ``download_threshold`` option (16 MiB) are
fetched whole in one GET instead. h5py holds a global lock while it reads, so the reads of one
process go one at a time; the remote file reads synchronously (no helper threads) so that no
garbage collection elsewhere can wait on that lock while holding what the read needs.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, ClassVar

from .._options import get_option
from ..errors import AssetReadError
from ..http import RemoteFile
from ..urls import is_local, local_path, redact
from .base import BandId, Block, Window
from .cf import CFReader, check_magic


class NetCDFReader(CFReader):
    """Reads netCDF-4 assets of one results document (see the module docstring)."""

    format: ClassVar[str] = "netcdf"

    def __init__(self, links: Any, masked: bool = True) -> None:
        super().__init__(links, masked)
        self._recorders: dict[str, _Recording] = {}

    def _open(self, key: str) -> Any:
        import xarray as xr

        href = self.links.href(key)
        if is_local(href):
            path = local_path(href)
            if not path.is_file():
                raise AssetReadError(
                    f"Cannot read netCDF asset {key!r}: no file at {redact(href)}",
                    key=key,
                    href=redact(href),
                    cause="file not found",
                )
            with path.open("rb") as f:
                check_magic(f.read(8), key, redact(href))
            source: Any = str(path)
        else:
            remote = RemoteFile(key, self.links)
            if remote.size < get_option("download_threshold"):
                source = io.BytesIO(remote.read_all())
            else:
                source = self._recorders[key] = _Recording(remote)
            check_magic(source.read(8), key, redact(href))
            source.seek(0)
        try:
            return xr.open_dataset(
                source, engine="h5netcdf", chunks=None, cache=False, mask_and_scale=self.masked, phony_dims="sort"
            )
        except Exception as exc:
            _raise_recorded(source, exc)
            raise AssetReadError(
                f"Cannot read netCDF asset {key!r}: {type(exc).__name__}: {exc}", key=key, href=redact(href)
            ) from None

    def read(self, key: str, window: Window, bands: Sequence[BandId], dtype: str | None = None) -> Block:
        try:
            return super().read(key, window, bands, dtype)
        except AssetReadError:
            raise
        except Exception as exc:
            _raise_recorded(self._recorders.get(key), exc)
            raise


class _Recording(io.RawIOBase):
    """The remote file as h5py sees it: an AssetReadError during a read is kept (h5py only reports
    that a read failed) and raised in place of h5py's error."""

    def __init__(self, remote: RemoteFile) -> None:
        super().__init__()
        self.remote = remote
        self.failures: list[AssetReadError] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.remote.seek(offset, whence)

    def tell(self) -> int:
        return self.remote.tell()

    def readinto(self, buffer: Any) -> int:
        try:
            return self.remote.readinto(buffer)
        except AssetReadError as exc:
            self.failures.append(exc)
            raise OSError(str(exc)) from None

    def close(self) -> None:
        self.remote.close()
        super().close()


def _raise_recorded(source: Any, exc: BaseException) -> None:
    failures = getattr(source, "failures", None)
    if failures:
        raise failures[-1] from None
