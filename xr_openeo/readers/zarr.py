"""Zarr assets: a read-only zarr ``Store`` over the asset's URL, so xarray's zarr engine reads it.

Every key is fetched with :func:`xr_openeo.http.fetch` (retries, renewal of expired signed URLs,
the signing query kept on each member URL, the token only where it belongs). With
``on_read_error="fill"`` a chunk whose fetch fails after the retries reads as missing, which zarr
answers with the array's fill value (the variable's ``_FillValue``: NaN once decoded), and a
:class:`~xr_openeo.errors.FailedReadWarning` names the asset and chunk.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Iterable
from typing import Any

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype

from ..errors import AssetReadError, FailedReadWarning
from ..http import Links, fetch
from ..results import AssetSpec

_METADATA = (".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json")


class AssetStore(Store):
    """The Zarr store that is asset ``key`` of a results document (read-only, no listing)."""

    supports_writes = False
    supports_deletes = False
    supports_listing = False

    def __init__(self, key: str, locator: Links, on_read_error: str = "raise") -> None:
        super().__init__(read_only=True)
        if on_read_error not in ("raise", "fill"):
            raise ValueError(f"on_read_error must be 'raise' or 'fill', got {on_read_error!r}")
        self.key, self.locator, self.on_read_error = key, locator, on_read_error

    def __reduce__(self) -> tuple[Any, ...]:
        return (AssetStore, (self.key, self.locator, self.on_read_error))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetStore) and (other.key, other.locator, other.on_read_error) == (
            self.key,
            self.locator,
            self.on_read_error,
        )

    def __hash__(self) -> int:
        return hash((AssetStore, self.key))

    def __repr__(self) -> str:
        return f"AssetStore({self.key!r})"

    def _get(self, name: str, byte_range: ByteRequest | None) -> bytes | None:
        try:
            data, total, _ = fetch(self.key, self.locator, inner=name, missing_ok=True)
        except AssetReadError as exc:
            # Metadata never: a store without it is no dataset. A chunk only when a request failed.
            if self.on_read_error != "fill" or exc.href is None or name.rsplit("/", 1)[-1] in _METADATA:
                raise
            warnings.warn(FailedReadWarning.from_errors([exc], float("nan"), f"chunk {name!r}"), stacklevel=2)
            return None  # a missing chunk: zarr gives the fill value
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


def open_zarr(spec: AssetSpec, locator: Links, *, chunks: Any = None, on_read_error: str = "raise") -> Any:
    """The Zarr asset as a lazy Dataset (xarray's zarr engine, consolidated metadata), ``t``/CRS as CF says.

    ``on_read_error="fill"`` needs a ``_FillValue`` on every data variable (what a failed chunk
    becomes); ValueError otherwise.
    """
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    store = AssetStore(spec.key, locator, on_read_error)
    ds = xr.open_zarr(store, consolidated=True, chunks={} if chunks is None else chunks)
    if on_read_error == "fill":
        unmarked = sorted(str(n) for n, v in ds.data_vars.items() if v.ndim and v.encoding.get("_FillValue") is None)
        if unmarked:
            raise ValueError(
                f"on_read_error='fill' has nothing to fill failed chunks of Zarr asset {spec.key!r} with: "
                f"variable(s) {unmarked} have no _FillValue. Use on_read_error='raise'."
            )
    if "time" in ds.dims and "t" not in ds.dims:
        ds = ds.rename(time="t")
    if "crs" in ds.variables:
        wkt = ds["crs"].attrs.get("crs_wkt") or ds["crs"].attrs.get("spatial_ref")
        ds = ds.drop_vars("crs")
        if wkt:
            ds = ds.rio.write_crs(wkt)
    return ds
