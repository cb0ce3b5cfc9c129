"""Image grids of renders (model card, reports)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported lazily at run time: PIL is not needed to import this module
    from PIL import Image


def make_image_grid(
    images: Sequence[np.ndarray | Image.Image],
    ncols: int = 4,
    background: Sequence[int] = (255, 255, 255),
) -> Image.Image:
    """Tile images row-major into one RGB image; every tile is resized to the first image's size.

    `images` are PIL images or (H, W), (H, W, 3) or (H, W, 4) uint8 / bool arrays.
    """
    from PIL import Image

    if len(images) == 0:
        raise ValueError("images is empty")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    tiles = []
    for image in images:
        if isinstance(image, np.ndarray):
            array = image.astype(np.uint8) * 255 if image.dtype == bool else image
            image = Image.fromarray(np.ascontiguousarray(array))
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            flattened = Image.new("RGB", image.size, tuple(background))
            flattened.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
            image = flattened
        tiles.append(image.convert("RGB"))
    width, height = tiles[0].size
    ncols = min(ncols, len(tiles))
    nrows = math.ceil(len(tiles) / ncols)
    grid = Image.new("RGB", (ncols * width, nrows * height), tuple(background))
    for index, tile in enumerate(tiles):
        if tile.size != (width, height):
            tile = tile.resize((width, height), Image.Resampling.LANCZOS)
        grid.paste(tile, ((index % ncols) * width, (index // ncols) * height))
    return grid


def save_image_grid(
    images: Sequence[np.ndarray | Image.Image],
    path: str | Path,
    ncols: int = 4,
    background: Sequence[int] = (255, 255, 255),
) -> Image.Image:
    """`make_image_grid` and save it to `path` (format from the suffix); returns the grid."""
    grid = make_image_grid(images, ncols=ncols, background=background)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return grid
