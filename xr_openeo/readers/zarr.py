"""Zarr assets: a read-only zarr ``Store`` over the asset's URL, decoded by xarray's zarr engine.

Every key of the store is fetched with :func:`xr_openeo.http.fetch` (retries, renewal of expired
signed URLs, the signing query kept on each member URL, the token only where it belongs). The
store needs consolidated metadata: listing a folder over HTTP is not possible.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype

from ..errors import AssetReadError
from ..http import Links, fetch
from .cf import CFReader, OpenFile


class ZarrReader(CFReader):
    """Reads Zarr assets of one results document."""

    format: ClassVar[str] = "zarr"

    def _open(self, key: str) -> OpenFile:
        import xarray as xr

        ds = xr.open_zarr(AssetStore(key, self.links), consolidated=True, chunks=None, mask_and_scale=self.masked)
        return OpenFile(ds)


class AssetStore(Store):
    """The Zarr store that is asset ``key`` of a results document (read-only, no listing)."""

    supports_writes = False
    supports_deletes = False
    supports_listing = False

    def __init__(self, key: str, links: Links) -> None:
        super().__init__(read_only=True)
        self.key, self.links = key, links

    def __reduce__(self) -> tuple[Any, ...]:
        return (AssetStore, (self.key, self.links))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetStore) and (other.key, other.links) == (self.key, self.links)

    def __hash__(self) -> int:
        return hash((AssetStore, self.key))

    def __repr__(self) -> str:
        return f"AssetStore({self.key!r})"

    def _get(self, name: str, byte_range: ByteRequest | None) -> bytes | None:
        try:
            data, total, _ = fetch(self.key, self.links, inner=name, missing_ok=True)
        except AssetReadError as exc:
            exc.what = f"chunk {name!r} of asset {self.key!r}"
            raise
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
