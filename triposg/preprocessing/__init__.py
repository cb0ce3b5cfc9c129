"""Image preprocessing: load safely, find the foreground, crop and pad it on white (paper §5.1: 90% ratio).

Background methods, in the order `background="auto"` tries them:
1. "alpha": the image's own alpha channel, when it has both opaque and transparent pixels;
2. "rembg": rembg with a *local* model file (argument, `$TRIPOSG_REMBG_MODEL` or `$U2NET_HOME/u2net.onnx`);
   nothing is ever downloaded;
3. "uniform-background": built-in segmentation for objects on a plain background.
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
)
from .crop import crop_and_pad, foreground_bbox
from .image_io import ImageError, load_image

BACKGROUND_METHODS = ("auto", "alpha", "rembg", "uniform")


@dataclass
class PreprocessResult:
    """`image`: square RGB, foreground on white. `mask`: its alpha (mode "L"). `method`: "alpha", "rembg"
    or "uniform-background". `bbox`: (x0, y0, x1, y1) of the foreground in the loaded input image.
    `foreground_ratio`: long side of the foreground / side of the square."""

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
    """Find the foreground of `image` and return it cropped, centred and padded on white.

    Raises `ImageError` for unreadable images, images with no foreground, a non-plain background with
    no segmentation model, or `background="rembg"` without a local model file.
    """
    if background not in BACKGROUND_METHODS:
        raise ValueError(f"background must be one of {BACKGROUND_METHODS}, got {background!r}")
    loaded = load_image(image)
    if background == "alpha" or (background == "auto" and has_usable_alpha(loaded)):
        alpha, method = alpha_mask(loaded), "alpha"
    else:
        model = find_rembg_model(rembg_model_path)
        if background == "rembg" and model is None:
            raise ImageError(
                "background='rembg' needs rembg installed and a local model file: pass rembg_model_path or set "
                f"{REMBG_MODEL_ENV}=/path/to/u2net.onnx (or put u2net.onnx in $U2NET_HOME); it is never downloaded"
            )
        if model is not None and background in ("auto", "rembg"):
            alpha, method = rembg_mask(loaded, model), "rembg"
        else:
            alpha, method = uniform_background_mask(loaded), "uniform-background"
    bbox = foreground_bbox(alpha)
    rgb = np.asarray(loaded.convert("RGB"))
    out_image, out_mask = crop_and_pad(rgb, alpha, bbox, foreground_ratio, output_size)
    return PreprocessResult(out_image, out_mask, method, bbox, foreground_ratio)


__all__ = ["BACKGROUND_METHODS", "ImageError", "PreprocessResult", "load_image", "preprocess_image"]
