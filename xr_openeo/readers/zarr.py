"""Zarr assets: a read-only zarr ``Store`` over the asset's URL, so xarray's zarr engine reads it.

Every key is fetched with :func:`xr_openeo.http.fetch` (retries, renewal of expired signed URLs,
the signing query kept on each member URL, the token only where it belongs).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype

from ..http import AssetLocator, fetch
from ..results import AssetSpec


class AssetStore(Store):
    """The Zarr store that is asset ``key`` of a results document (read-only, no listing)."""

    supports_writes = False
    supports_deletes = False
    supports_listing = False

    def __init__(self, key: str, locator: AssetLocator) -> None:
        super().__init__(read_only=True)
        self.key, self.locator = key, locator

    def __reduce__(self) -> tuple[Any, ...]:
        return (AssetStore, (self.key, self.locator))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetStore) and (other.key, other.locator) == (self.key, self.locator)

    def __hash__(self) -> int:
        return hash((AssetStore, self.key))

    def __repr__(self) -> str:
        return f"AssetStore({self.key!r})"

    def _get(self, name: str, byte_range: ByteRequest | None) -> bytes | None:
        data, total, _ = fetch(self.key, self.locator, inner=name, missing_ok=True)
        if total is None and not data:  # 404: the key does not exist
            return None
        if byte_range is None:
            return data
        if isinstance(byte_range, RangeByteRequest):
            return data[byte_range.start : byte_range.end]
        if isinstance(byte_range, OffsetByteRequest):
            return data[byte_range.offset :]
        if isinstance(byte_range, SuffixByteRequest):
            return data[-byte_range.suffix :]
        raise TypeError(f"unexpected byte range {byte_range!r}")

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        data = await asyncio.to_thread(self._get, key, byte_range)
        return None if data is None else prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._get, key, None) is not None

    async def set(self, key: str, value: Buffer) -> None:
        raise PermissionError("openEO results are read-only")

    async def delete(self, key: str) -> None:
        raise PermissionError("openEO results are read-only")

    async def list(self) -> AsyncIterator[str]:
        raise NotImplementedError("listing a Zarr asset over HTTP is not possible; it needs consolidated metadata")
        yield ""  # pragma: no cover  (makes this an async generator)

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        raise NotImplementedError("listing a Zarr asset over HTTP is not possible; it needs consolidated metadata")
        yield ""  # pragma: no cover

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        raise NotImplementedError("listing a Zarr asset over HTTP is not possible; it needs consolidated metadata")
        yield ""  # pragma: no cover


def open_zarr(spec: AssetSpec, locator: AssetLocator, *, chunks: Any = None) -> Any:
    """The Zarr asset as a lazy Dataset (xarray's zarr engine, consolidated metadata), ``t``/CRS as CF says."""
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    ds = xr.open_zarr(AssetStore(spec.key, locator), consolidated=True, chunks={} if chunks is None else chunks)
    if "time" in ds.dims and "t" not in ds.dims:
        ds = ds.rename(time="t")
    if "crs" in ds.variables:
        wkt = ds["crs"].attrs.get("crs_wkt") or ds["crs"].attrs.get("spatial_ref")
        ds = ds.drop_vars("crs")
        if wkt:
            ds = ds.rio.write_crs(wkt)
    return ds
