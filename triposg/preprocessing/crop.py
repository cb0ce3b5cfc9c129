"""Crop to the foreground, composite on white and pad to a square with a fixed foreground ratio."""

from __future__ import annotations

import numpy as np
import PIL.Image

from .image_io import ImageError


def foreground_bbox(alpha: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), exclusive end, of pixels with alpha above `threshold`; ImageError if none."""
    ys, xs = np.nonzero(alpha > threshold)
    if len(xs) == 0:
        raise ImageError(
            "no foreground object was found in the image: give an image of one object with an alpha channel "
            "or on a plain background"
        )
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def square_side(long_side: int, foreground_ratio: float) -> int:
    """Side of the padded square in which a foreground of `long_side` pixels fills `foreground_ratio`."""
    if not 0.0 < foreground_ratio <= 1.0:
        raise ValueError(f"foreground_ratio must be in (0, 1], got {foreground_ratio}")
    return max(long_side, round(long_side / foreground_ratio))


def crop_and_pad(
    rgb: np.ndarray,
    alpha: np.ndarray,
    bbox: tuple[int, int, int, int],
    foreground_ratio: float,
    output_size: int | None = None,
) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """Composite `rgb` (H, W, 3) over white with `alpha` (H, W) in [0, 1], crop to `bbox` and pad to a
    square whose side is long-side / `foreground_ratio`, the object centred.

    Returns the RGB image and its alpha (mode "L"), resized to `output_size` when given.
    """
    if output_size is not None and (not isinstance(output_size, (int, np.integer)) or output_size < 1):
        raise ValueError(f"output_size must be a positive integer or None, got {output_size!r}")
    x0, y0, x1, y1 = bbox
    crop_alpha = alpha[y0:y1, x0:x1, None].astype(np.float32)
    composite = rgb[y0:y1, x0:x1].astype(np.float32) * crop_alpha + 255.0 * (1.0 - crop_alpha)
    h, w = y1 - y0, x1 - x0
    side = square_side(max(h, w), foreground_ratio)
    top, left = (side - h) // 2, (side - w) // 2
    canvas = np.full((side, side, 3), 255.0, np.float32)
    canvas[top:top + h, left:left + w] = composite
    canvas_alpha = np.zeros((side, side), np.float32)
    canvas_alpha[top:top + h, left:left + w] = crop_alpha[..., 0]
    image = PIL.Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), "RGB")
    mask = PIL.Image.fromarray(np.clip(canvas_alpha * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if output_size is not None:
        image = image.resize((output_size, output_size), PIL.Image.Resampling.LANCZOS)
        mask = mask.resize((output_size, output_size), PIL.Image.Resampling.BILINEAR)
    return image, mask


# A prepared image's outer ring (this share of the side, at least 2 px) is white paper: every pixel this close
# to 255 in all channels, allowing for JPEG ringing on a few.
_PREPARED_RING = 0.02
_PREPARED_WHITE = 245
_PREPARED_WHITE_SHARE = 0.995


def looks_prepared(image: PIL.Image.Image) -> bool:
    """Whether `image` is already framed for the model: opaque, square (±2 px), with a white outer ring, the frame
    `crop_and_pad` and the release's `prepare_image` make. Such an image is used as it is, not re-cropped."""
    if image.mode in ("RGBA", "LA", "PA") and np.asarray(image.getchannel("A")).min() < 255:
        return False
    if abs(image.width - image.height) > 2 or min(image.size) < 8:
        return False
    rgb = np.asarray(image.convert("RGB"))
    ring = max(2, round(_PREPARED_RING * min(image.size)))
    band = np.concatenate([rgb[:ring].reshape(-1, 3), rgb[-ring:].reshape(-1, 3),
                           rgb[:, :ring].reshape(-1, 3), rgb[:, -ring:].reshape(-1, 3)])
    return float((band.min(axis=1) >= _PREPARED_WHITE).mean()) >= _PREPARED_WHITE_SHARE
