"""Loading user images safely: clear errors for corrupt, empty, huge or oddly encoded files."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import PIL.Image

MAX_PIXELS = 100_000_000  # above this a file is rejected before decoding (decompression bombs)
MAX_SIDE = 2000  # the release caps the long side at 2000 px before segmentation


class ImageError(ValueError):
    """A problem with an image the user gave; the message names the problem and the fix."""


def _array_to_image(array: np.ndarray) -> PIL.Image.Image:
    """(H, W), (H, W, 3) or (H, W, 4) array, uint8 or float in [0, 1] → PIL image."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {array.shape}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("the image array contains NaN or infinite values")
        array = np.clip(array, 0.0, 1.0) * 255.0 + 0.5
    elif array.dtype == np.uint16:
        array = array / 257.0
    elif array.dtype == bool:
        array = array * 255
    return PIL.Image.fromarray(array.astype(np.uint8))


def _normalise_mode(image: PIL.Image.Image) -> PIL.Image.Image:
    """Any PIL mode → RGB or RGBA (alpha kept when the mode carries transparency)."""
    if image.mode in ("RGB", "RGBA"):
        return image
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "La", "RGBa"):
        return image.convert("RGBA")
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16/32-bit greyscale: rescale to 8 bits instead of clipping. Data that never exceeds 255 is
        # 8-bit data stored wide (as PIL's own L → I;16 conversion gives), so it is kept as is.
        values = np.asarray(image, dtype=np.float64)
        peak = float(values.max()) if values.size else 0.0
        top = 255.0 if peak <= 255 else (65535.0 if peak <= 65535 else peak)
        return PIL.Image.fromarray((np.clip(values / top, 0, 1) * 255 + 0.5).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _cap_size(image: PIL.Image.Image, max_side: int) -> PIL.Image.Image:
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, PIL.Image.Resampling.LANCZOS)


def load_image(source: str | os.PathLike | PIL.Image.Image | np.ndarray, max_side: int = MAX_SIDE) -> PIL.Image.Image:
    """Open an image from a path, PIL image or array as RGB or RGBA, long side capped at `max_side`.

    Raises `ImageError` for missing, empty, corrupt, truncated, zero-size or oversized images.
    """
    if isinstance(source, np.ndarray):
        image = _array_to_image(source)
    elif isinstance(source, PIL.Image.Image):
        image = source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image file not found: {path}")
        if path.stat().st_size == 0:
            raise ImageError(f"image file is empty: {path}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
                with PIL.Image.open(path) as opened:
                    if opened.width * opened.height > MAX_PIXELS:
                        raise ImageError(
                            f"{path.name} is {opened.width}×{opened.height} pixels, more than the {MAX_PIXELS:,} "
                            "allowed; resize it to at most 2000 px on the long side"
                        )
                    opened.load()
                    image = opened.copy()
        except ImageError:
            raise
        except (PIL.Image.DecompressionBombWarning, PIL.Image.DecompressionBombError) as error:
            raise ImageError(f"{path.name} is too large to decode safely ({error}); resize it first") from error
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageError(
                f"cannot read {path.name} as an image ({error}); the file is corrupt, truncated or not an image. "
                "Re-export it as PNG or JPEG."
            ) from error
    else:
        raise ImageError(f"expected an image path, PIL image or array, got {type(source).__name__}")
    if image.width == 0 or image.height == 0:
        raise ImageError(f"the image has zero size ({image.width}×{image.height})")
    if image.width * image.height > MAX_PIXELS:
        raise ImageError(f"the image has {image.width * image.height:,} pixels, more than {MAX_PIXELS:,}; resize it")
    return _cap_size(_normalise_mode(image), max_side)
