"""Loading user images safely: clear errors for corrupt, empty, huge or oddly encoded files.

Whatever comes in (a path, a PIL image, an array) comes out as an 8-bit RGB or RGBA PIL image, upright
(EXIF orientation applied) and with its long side capped at `MAX_SIDE` (the release's 2000 px).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps

# Above this an image is rejected from its header, before decoding (decompression bombs, huge scans): Pillow's
# own bomb threshold, so every path (file, PIL image, array) gets the same limit and the same message.
MAX_PIXELS = 89_478_485
MAX_SIDE = 2000  # the release caps the long side at 2000 px before segmentation
# ISO base media "ftyp" brands of HEIF stills and sequences (iPhone photos are "heic"). AVIF shares the container
# but Pillow reads it itself; these need the optional pillow-heif plugin.
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")
HEIF_PLUGIN = "pillow-heif==1.8.1"  # the newest release that supports our Pillow 12 (1.9 needs Pillow 13)

_SIXTEEN_BIT_MAX = 65535.0


class ImageError(ValueError):
    """A problem with an image the user gave; the message names the problem and the fix."""


def _array_to_image(array: np.ndarray) -> PIL.Image.Image:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array → PIL image.

    uint8 is taken as is, uint16 as 16-bit (scaled by 1/257), bool as black/white, other integer types
    only when their values fit in [0, 255], floats must lie in [0, 1].
    """
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(
            f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {array.shape}"
        )
    if array.size == 0:
        raise ImageError(f"the image has zero size (array shape {array.shape})")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.dtype == np.uint8:
        pass
    elif array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        array = (array / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise ImageError(
                f"an integer image array must hold values in [0, 255] (or be uint16); got {array.dtype} "
                f"values in [{array.min()}, {array.max()}]. Convert it to uint8 first."
            )
        array = array.astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("the image array contains NaN or infinite values")
        if array.min() < -1e-3 or array.max() > 1.0 + 1e-3:
            raise ImageError(
                f"a float image array must hold values in [0, 1]; got [{array.min():.3g}, {array.max():.3g}]. "
                "Divide 0-255 data by 255 (or pass it as uint8)."
            )
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ImageError(f"unsupported image array dtype {array.dtype}; use uint8, uint16 or float in [0, 1]")
    return PIL.Image.fromarray(np.ascontiguousarray(array))


def _normalise_mode(image: PIL.Image.Image) -> PIL.Image.Image:
    """Any PIL mode → RGB or RGBA (alpha kept when the mode carries transparency)."""
    if image.mode in ("RGB", "RGBA"):
        return image
    if image.mode == "P":
        # A palette may mark one index transparent ("transparency") or carry per-entry alpha ("PA").
        has_alpha = "transparency" in image.info or image.palette is not None and image.palette.mode == "RGBA"
        return image.convert("RGBA" if has_alpha else "RGB")
    if image.mode in ("LA", "PA", "La", "RGBa"):
        return image.convert("RGBA")
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16/32-bit or float greyscale: rescale to 8 bits instead of letting PIL clip at 255.
        values = np.asarray(image, dtype=np.float64)
        peak = float(values.max()) if values.size else 0.0
        if image.mode == "F" and peak <= 1.0:
            top = 1.0  # float data in [0, 1]
        elif peak <= 255:
            top = 255.0  # 8-bit data stored wide (what PIL's own L → I;16 conversion gives)
        else:
            top = max(_SIXTEEN_BIT_MAX, peak)
        scaled = np.clip(values / top, 0.0, 1.0) * 255.0 + 0.5
        return PIL.Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV (CMYK without colour management)


def _cap_size(image: PIL.Image.Image, max_side: int) -> PIL.Image.Image:
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # PIL resizes RGBA premultiplied, so colours under transparent pixels do not bleed into edges.
    return image.resize(size, PIL.Image.Resampling.LANCZOS)


def _check_pixel_count(width: int, height: int, name: str) -> None:
    if width == 0 or height == 0:
        raise ImageError(f"{name} has zero size ({width}×{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name} is {width}×{height} pixels, more than the {MAX_PIXELS:,} allowed (a decompression bomb "
            f"or a scan); resize it to at most {MAX_SIDE} px on the long side first"
        )


def _register_heif_plugin() -> bool:
    """Let Pillow open HEIC/HEIF files when the optional pillow-heif package is installed; True if it is.
    Imported only when a HEIF file turns up, so the package costs nothing when it is absent or unused."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _is_heif(path: Path) -> bool:
    """Whether the file is an ISO base media file whose brand is HEIF (bytes 4–8 "ftyp", 8–12 the brand)."""
    with path.open("rb") as file:
        head = file.read(12)
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def _upright_size(image: PIL.Image.Image) -> tuple[int, int]:
    """(width, height) as the image is shown: EXIF orientations 5–8 turn it a quarter."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError):  # a broken EXIF block: `load_image` keeps the stored orientation
        return image.size
    return image.size[::-1] if orientation in (5, 6, 7, 8) else image.size


class ImageNote(str):
    """One note on what loading does to a file: its text, and `warning` — True when something of the file is
    dropped (an animation's later frames), False for information (a downscale, a colour conversion)."""

    warning: bool

    def __new__(cls, text: str, warning: bool = False) -> "ImageNote":
        note = super().__new__(cls, text)
        note.warning = warning
        return note


@dataclass(frozen=True)
class ImageFileInfo:
    """What an image file's header says. `format`: e.g. "PNG"; `mode`: the stored PIL mode (e.g. "CMYK",
    "P", "L", "I;16"); `size`: (width, height) as shown, EXIF rotation applied (the frame `load_image`
    returns before its size cap); `num_frames`: more than 1 for animations (only the first is used)."""

    format: str
    mode: str
    size: tuple[int, int]
    num_frames: int

    def notes(self, max_side: int = MAX_SIDE) -> list[ImageNote]:
        """What loading will do to this file that its owner may not expect (for a log or a status line)."""
        notes = []
        if self.num_frames > 1:
            notes.append(ImageNote(f"the image is animated ({self.num_frames} frames); only the first frame is used",
                                   warning=True))
        if max(self.size) > max_side:
            notes.append(ImageNote(f"the image is {self.size[0]}×{self.size[1]}; it is downscaled to {max_side} px "
                                   "on the long side"))
        if self.mode == "CMYK":
            notes.append(ImageNote("the image is CMYK; it is converted to RGB without colour management, so colours "
                                   "may shift"))
        return notes


def _open_file(path: Path, decode: bool = True) -> tuple[PIL.Image.Image | None, ImageFileInfo]:
    """Read an image file's header and, when `decode`, its first frame fully; ImageError naming what is wrong."""
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty (0 bytes): {path}")
    needs_heif_plugin = _is_heif(path) and not _register_heif_plugin()
    try:
        with warnings.catch_warnings():
            # Our own size check below gives the clearer message for Pillow's bomb warning range.
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(path) as opened:
                # The header alone gives the size, so bombs are refused before any pixel is decoded.
                _check_pixel_count(opened.width, opened.height, path.name)
                info = ImageFileInfo(
                    opened.format or "unknown", opened.mode, _upright_size(opened), getattr(opened, "n_frames", 1)
                )
                if not decode:
                    return None, info
                opened.load()
                return opened.copy(), info
    except ImageError:
        raise
    except PIL.Image.DecompressionBombError as error:  # raised by Pillow above twice its threshold
        raise ImageError(
            f"{path.name} is too large to decode safely ({error}); resize it to at most {MAX_SIDE} px on the "
            "long side first"
        ) from error
    except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for corrupt or truncated data
        if needs_heif_plugin and isinstance(error, PIL.UnidentifiedImageError):
            raise ImageError(
                f"{path.name} is a HEIC/HEIF photo, which this installation cannot read: pip install {HEIF_PLUGIN} "
                "(used automatically once installed), or export the photo as JPEG (on an iPhone: Settings > "
                "Camera > Formats > Most Compatible)"
            ) from error
        raise ImageError(
            f"cannot read {path.name} as an image ({error}); the file is corrupt, truncated or not an image. "
            "Re-export it as PNG or JPEG."
        ) from error


def read_image_info(path: str | os.PathLike) -> ImageFileInfo:
    """Format, stored mode, size and frame count of an image file, from its header only (no decoding).

    Raises `ImageError` like `load_image` for missing, empty, unreadable or oversized files; a file that
    passes may still be truncated further on, which only `load_image` finds.
    """
    return _open_file(Path(path), decode=False)[1]


def load_image(
    source: str | os.PathLike | PIL.Image.Image | np.ndarray, max_side: int = MAX_SIDE
) -> PIL.Image.Image:
    """Open an image from a path, PIL image or array as 8-bit RGB or RGBA, long side capped at `max_side`.

    Modes with transparency (RGBA, LA, P with a transparent index, premultiplied) become RGBA, every
    other mode RGB; 16-bit and float greyscale are rescaled, not clipped. EXIF orientation is applied.

    Raises `ImageError` for missing, empty, corrupt, truncated, zero-size or oversized images and for
    arrays of an unsupported shape, dtype or value range.
    """
    if isinstance(source, np.ndarray):
        image = _array_to_image(source)
    elif isinstance(source, PIL.Image.Image):
        image = source
        _check_pixel_count(image.width, image.height, "the image")
    elif isinstance(source, (str, os.PathLike)):
        image, _ = _open_file(Path(source))
    else:
        raise ImageError(f"expected an image path, PIL image or array, got {type(source).__name__}")
    _check_pixel_count(image.width, image.height, "the image")
    try:
        # Photos from phones are stored sideways with an EXIF rotation tag.
        image = PIL.ImageOps.exif_transpose(image)
        return _cap_size(_normalise_mode(image), max_side)
    except (OSError, SyntaxError) as error:  # a lazily opened PIL image may fail only when decoded here
        raise ImageError(
            f"cannot decode the image ({error}); it is corrupt or truncated. Re-export it as PNG or JPEG."
        ) from error
