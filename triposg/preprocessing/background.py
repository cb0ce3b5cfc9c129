"""Foreground masks: from a usable alpha channel, from rembg with a local model file, or from a plain
uniform background (built in, no model needed).

Every function returns a float alpha in [0, 1] of shape (H, W).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import PIL.Image
from scipy import ndimage
from skimage.filters import threshold_otsu

from .image_io import ImageError

REMBG_MODEL_ENV = "TRIPOSG_REMBG_MODEL"


def has_usable_alpha(image: PIL.Image.Image, min_share: float = 0.001) -> bool:
    """True when the image has an alpha channel with both clearly opaque and clearly transparent pixels."""
    if image.mode != "RGBA":
        return False
    alpha = np.asarray(image.getchannel("A"))
    return (alpha < 128).mean() >= min_share and (alpha >= 128).mean() >= min_share


def alpha_mask(image: PIL.Image.Image) -> np.ndarray:
    """(H, W) alpha in [0, 1] from the image's own alpha channel."""
    if image.mode != "RGBA":
        raise ImageError("the image has no alpha channel; use background='auto' or 'uniform'")
    return np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0


def keep_main_components(mask: np.ndarray, min_fraction: float = 0.1) -> np.ndarray:
    """Keep the largest connected component and any others at least `min_fraction` of its area; fill holes."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    areas = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
    keep = np.flatnonzero(areas >= min_fraction * areas.max()) + 1
    return ndimage.binary_fill_holes(np.isin(labels, keep))


def uniform_background_mask(image: PIL.Image.Image, min_threshold: float = 20.0) -> np.ndarray:
    """Segment an object on a plain background: (H, W) soft alpha in [0, 1].

    The background colour is the median of the image border; pixels farther from it (RGB distance) than a
    threshold set by the border's own noise are foreground. Small specks are removed, holes filled, and
    only the main components kept. Raises `ImageError` if the border is not uniform.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    h, w, _ = rgb.shape
    band = max(1, round(0.02 * min(h, w)))
    border = np.concatenate([rgb[:band].reshape(-1, 3), rgb[-band:].reshape(-1, 3),
                             rgb[:, :band].reshape(-1, 3), rgb[:, -band:].reshape(-1, 3)])
    background = np.median(border, axis=0)
    border_distance = np.linalg.norm(border - background, axis=-1)
    if (border_distance < 2 * min_threshold).mean() < 0.8:
        raise ImageError(
            "the background is not plain, so it cannot be removed without a segmentation model: use an image "
            f"with an alpha channel, a uniform background, or set {REMBG_MODEL_ENV} to a local rembg model file"
        )
    distance = np.linalg.norm(rgb - background, axis=-1)
    threshold = max(min_threshold, 2.0 * float(np.percentile(border_distance, 95)) + 8.0)
    hard = ndimage.binary_opening(distance > threshold, iterations=1)
    hard = keep_main_components(hard)
    # Soft edge: distance ramps up to the threshold in a one-pixel ring around the hard mask.
    ring = ndimage.binary_dilation(hard, iterations=1)
    soft = np.clip(distance / threshold, 0.0, 1.0) * ring
    return np.where(hard, 1.0, soft).astype(np.float32)


def find_rembg_model(model_path: str | os.PathLike | None = None) -> Path | None:
    """A local rembg (U²-Net-style ONNX) model file: the argument, `$TRIPOSG_REMBG_MODEL`, or
    `$U2NET_HOME/u2net.onnx`. None when there is none or rembg is not installed. Never downloads."""
    candidates = [model_path, os.environ.get(REMBG_MODEL_ENV)]
    if os.environ.get("U2NET_HOME"):
        candidates.append(Path(os.environ["U2NET_HOME"]) / "u2net.onnx")
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            try:
                import rembg  # noqa: F401
            except ImportError:
                return None
            return Path(candidate)
    return None


@functools.lru_cache(maxsize=2)
def _rembg_session(model_path: str):
    from rembg import new_session

    return new_session("u2net_custom", model_path=model_path)


def rembg_mask(image: PIL.Image.Image, model_path: str | os.PathLike) -> np.ndarray:
    """(H, W) alpha from rembg with a local model; thresholded (Otsu) and cleaned as in the release."""
    from rembg import remove

    soft = np.asarray(remove(image.convert("RGB"), session=_rembg_session(str(model_path)), only_mask=True),
                      dtype=np.float32) / 255.0
    if soft.max() - soft.min() < 1e-3:
        return np.zeros_like(soft)
    hard = keep_main_components(soft > threshold_otsu(soft))
    return np.where(hard, np.maximum(soft, 0.5), soft * ndimage.binary_dilation(hard, iterations=2)).astype(np.float32)
