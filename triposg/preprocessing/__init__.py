"""Image preprocessing: load safely, find the foreground, crop and pad it on white (paper §5.1: 90% ratio).

Background methods, in the order `background="auto"` tries them:
1. "alpha": the image's own alpha channel, when it has both opaque and transparent pixels;
2. "rembg": rembg with a *local* model file (argument, `$TRIPOSG_REMBG_MODEL` or `$U2NET_HOME/u2net.onnx`);
   nothing is ever downloaded;
3. "uniform-background": built-in segmentation for objects on a plain background.

Every method's mask is cleaned the same way (threshold, small blobs dropped, main components kept) before
the crop, so a stray speck cannot stretch the bounding box.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import PIL.Image

from .background import (
    REMBG_MODEL_ENV,
    alpha_mask,
    find_rembg_model,
    has_usable_alpha,
    rembg_mask,
    uniform_background_mask,
    unmix_background,
)
from .crop import crop_and_pad, foreground_bbox, square_side
from .image_io import MAX_SIDE, ImageError, ImageFileInfo, load_image, read_image_info

BACKGROUND_METHODS = ("auto", "alpha", "rembg", "uniform")
# Below this many pixels on a side there is no object to see (the image encoder looks at 224 px crops).
MIN_SIDE = 8


@dataclass
class PreprocessResult:
    """What `preprocess_image` made of one image.

    `image`: square RGB, the foreground centred on white. `mask`: its alpha in the same frame (mode "L").
    `method`: "alpha", "rembg" or "uniform-background". `bbox`: (x0, y0, x1, y1), exclusive end, of the
    foreground in the loaded image (after EXIF rotation and the 2000 px cap). `foreground_ratio`: the
    foreground's long side over the square's side, as achieved (the request up to one pixel of rounding).
    """

    image: PIL.Image.Image
    mask: PIL.Image.Image
    method: str
    bbox: tuple[int, int, int, int]
    foreground_ratio: float


def preprocess_image(
    image: str | os.PathLike | PIL.Image.Image | np.ndarray,
    foreground_ratio: float = 0.9,
    background: str = "auto",
    rembg_model_path: str | os.PathLike | None = None,
    output_size: int | None = None,
) -> PreprocessResult:
    """Find the foreground of `image` and return it cropped, centred and padded to a square on white.

    Args:
        image: a path, PIL image or array (see `load_image`).
        foreground_ratio: share of the square's side the foreground's long side fills (paper: 0.9; the
            release pads 10% of the long side on each side, i.e. about 0.83).
        background: "auto" (alpha, else rembg with a local model, else plain background), or force
            "alpha", "rembg" or "uniform".
        rembg_model_path: local rembg ONNX model; default `$TRIPOSG_REMBG_MODEL` or `$U2NET_HOME/u2net.onnx`.
        output_size: resize the square to this many pixels; None keeps the crop's own resolution.

    Raises `ImageError` for unreadable images, images under `MIN_SIDE` pixels on a side, fully transparent
    images, images with no foreground, a non-plain background with no segmentation model,
    `background="alpha"` without an alpha channel, or `background="rembg"` (or an explicit
    `rembg_model_path`) without rembg and a local model file.
    """
    if background not in BACKGROUND_METHODS:
        raise ValueError(f"background must be one of {BACKGROUND_METHODS}, got {background!r}")
    square_side(1, foreground_ratio)  # validates the ratio before any work
    loaded = load_image(image)
    if min(loaded.size) < MIN_SIDE:
        raise ImageError(
            f"the image is {loaded.width}×{loaded.height} pixels, too small to show an object: give an image at "
            f"least {MIN_SIDE} px on each side (a few hundred pixels works best)"
        )
    if background in ("auto", "alpha") and loaded.mode == "RGBA" and np.asarray(loaded.getchannel("A")).max() < 128:
        # Colours under transparent pixels are leftovers, not an object: do not segment them.
        raise ImageError(
            "the image is fully transparent (no pixel is even half opaque), so there is no foreground object: "
            "export it with the object opaque, or without an alpha channel"
        )
    rgb = np.asarray(loaded.convert("RGB"))
    if background == "alpha" or (background == "auto" and has_usable_alpha(loaded)):
        alpha, method = alpha_mask(loaded), "alpha"
    else:
        model = find_rembg_model(rembg_model_path) if background != "uniform" else None
        wants_rembg = background == "rembg" or rembg_model_path is not None
        if wants_rembg and model is None:
            raise ImageError(
                "rembg background removal needs the rembg package (pip install rembg) and a local model file: "
                f"pass rembg_model_path or set {REMBG_MODEL_ENV}=/path/to/u2net.onnx (or put u2net.onnx in "
                "$U2NET_HOME, default ~/.u2net); it is never downloaded"
            )
        if model is not None:
            alpha, method = rembg_mask(loaded, model), "rembg"
        else:
            plain = uniform_background_mask(loaded)
            alpha, method = plain.alpha, "uniform-background"
            # Edge pixels are a mix with the old background: give its share to white instead.
            rgb = unmix_background(rgb, alpha, plain.color)
    bbox = foreground_bbox(alpha)
    out_image, out_mask = crop_and_pad(rgb, alpha, bbox, foreground_ratio, output_size)
    long_side = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
    achieved_ratio = long_side / square_side(long_side, foreground_ratio)
    return PreprocessResult(out_image, out_mask, method, bbox, achieved_ratio)


__all__ = [
    "BACKGROUND_METHODS",
    "MAX_SIDE",
    "MIN_SIDE",
    "REMBG_MODEL_ENV",
    "ImageError",
    "ImageFileInfo",
    "PreprocessResult",
    "load_image",
    "preprocess_image",
    "read_image_info",
]
