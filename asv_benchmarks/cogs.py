"""What a window of a COG must move at least: its header and the full-resolution tiles under it."""

from __future__ import annotations

from pathlib import Path


def cog_costs(path: Path, window: int) -> tuple[int, int]:
    """Bytes of a COG's header (everything before its first tile of any level) and of the
    full-resolution tiles a ``window`` × ``window`` read at the origin touches."""
    import rasterio

    with rasterio.open(path) as src:
        block_h, block_w = src.block_shapes[0]
        tiles = 0
        for row in range(-(-min(window, src.height) // block_h)):
            for col in range(-(-min(window, src.width) // block_w)):
                tiles += int(src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))
        levels = [None, *range(len(src.overviews(1)))]
        header = min(int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1, ovr=level)) for level in levels)
    return header, tiles


def window_bytes(files: list[Path], window: int) -> int:
    """Bytes of the tiles a ``window``² read at the origin touches, plus each file's header, over ``files``."""
    return sum(sum(cog_costs(path, window)) for path in files if path.suffix == ".tif")
