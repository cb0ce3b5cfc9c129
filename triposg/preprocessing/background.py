"""Foreground masks from a usable alpha channel or a plain uniform background (built in, no model needed),
and the cleaning every mask method shares (segmentation networks: `segmentation`; photos: `grabcut`).

Every mask function returns a float alpha in [0, 1] of shape (H, W). As in the release, the foreground is
then cleaned the same way whatever found it: threshold, drop small blobs, keep the largest component
(and any of comparable size), so stray specks cannot stretch the crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
from scipy import ndimage

from .image_io import ImageError

# Components smaller than this share of the largest are specks (dust, shadows, compression noise) when
# the mask was estimated; a given alpha channel is trusted more, so only much smaller parts are dropped.
MIN_COMPONENT_FRACTION = 0.1
MIN_ALPHA_COMPONENT_FRACTION = 0.01
# Blobs below this share of the image are removed before components are compared.
MIN_BLOB_FRACTION = 1e-4
# A background is plain when at least this share of the image's border band has one colour.
MIN_PLAIN_BORDER = 0.8


def has_usable_alpha(image: PIL.Image.Image, min_share: float = 0.001) -> bool:
    """True when the image has an alpha channel with both clearly opaque and clearly transparent pixels."""
    if image.mode != "RGBA":
        return False
    alpha = np.asarray(image.getchannel("A"))
    return (alpha < 128).mean() >= min_share and (alpha >= 128).mean() >= min_share


def keep_main_components(
    mask: np.ndarray, min_fraction: float = MIN_COMPONENT_FRACTION, fill_holes: bool = True
) -> np.ndarray:
    """(H, W) bool: drop blobs under `MIN_BLOB_FRACTION` of the image, keep the largest connected
    component and any other at least `min_fraction` of its area, and optionally fill holes."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    areas = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
    min_area = max(min_fraction * areas.max(), MIN_BLOB_FRACTION * mask.size)
    keep = np.flatnonzero(areas >= min_area) + 1
    kept = np.isin(labels, keep)
    return ndimage.binary_fill_holes(kept) if fill_holes else kept


def restrict_to(alpha: np.ndarray, kept: np.ndarray, ring: int = 2) -> np.ndarray:
    """Zero `alpha` away from the kept components; a `ring`-pixel band keeps their soft edges."""
    return alpha * ndimage.binary_dilation(kept, iterations=ring)


def alpha_mask(image: PIL.Image.Image) -> np.ndarray:
    """(H, W) alpha in [0, 1] from the image's own alpha channel, with stray specks removed.

    Holes stay transparent (a ring's middle is background), and only isolated blobs under
    `MIN_ALPHA_COMPONENT_FRACTION` of the largest part are dropped, so separate parts of the object stay.
    """
    if image.mode != "RGBA":
        raise ImageError("the image has no alpha channel; use background='auto' or 'uniform'")
    alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
    kept = keep_main_components(alpha >= 0.5, min_fraction=MIN_ALPHA_COMPONENT_FRACTION, fill_holes=False)
    return restrict_to(alpha, kept).astype(np.float32)


@dataclass
class UniformBackground:
    """Result of `uniform_background_mask`: `alpha` (H, W) in [0, 1], the estimated `color` (3,) RGB and the
    share of the border band close to it (how plain the background is)."""

    alpha: np.ndarray
    color: np.ndarray
    plain_border_share: float = 1.0


def uniform_background_mask(
    image: PIL.Image.Image, min_threshold: float = 20.0, check_plain: bool = True
) -> UniformBackground:
    """Segment an object on a plain background.

    The background colour is the median of a thin band along the image border. A pixel is foreground when
    its RGB distance to that colour exceeds a threshold set by the border's own noise (at least
    `min_threshold`); blobs are cleaned and holes filled (background-coloured parts inside the object stay
    opaque). On a thin band around the silhouette alpha is each pixel's share of the nearest inner object
    colour (its projection on the background → object colour line), so anti-aliased edges stay soft.

    Raises `ImageError` when `check_plain` and under `MIN_PLAIN_BORDER` of the border is close to the
    background colour (`plain_border_share` says how much is).
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    h, w, _ = rgb.shape
    band = max(1, round(0.02 * min(h, w)))
    border = np.concatenate([
        rgb[:band].reshape(-1, 3), rgb[-band:].reshape(-1, 3),
        rgb[:, :band].reshape(-1, 3), rgb[:, -band:].reshape(-1, 3),
    ])
    color = np.median(border, axis=0)
    border_distance = np.linalg.norm(border - color, axis=-1)
    plain_share = float((border_distance < 2 * min_threshold).mean())
    if check_plain and plain_share < MIN_PLAIN_BORDER:
        raise ImageError(
            f"the background is not plain (only {plain_share:.0%} of the border has one colour): use "
            "background='auto' or 'grabcut' for a photo, or 'rembg' with a segmentation model"
        )
    distance = np.linalg.norm(rgb - color, axis=-1)
    # Noise measured on the background-like part of the border only (the object may touch the border).
    background_like = border_distance[border_distance < 2 * min_threshold]
    noise = float(np.percentile(background_like, 95)) if background_like.size else 0.0
    threshold = max(min_threshold, 2.0 * noise + 8.0)
    hard = keep_main_components(distance > threshold)

    # Anti-aliased pixels can sit two pixels deep (a thin sliver of background is still above threshold),
    # so the soft band spans the last two pixels inside the hard mask and one outside, 8-connected.
    square = np.ones((3, 3), dtype=bool)
    interior = ndimage.binary_erosion(hard, structure=square, iterations=2, border_value=1)
    edge = ndimage.binary_dilation(hard, structure=square, iterations=1) & ~interior
    # A mixed edge pixel c = a * F + (1 - a) * background, with F the colour of the nearest interior
    # pixel: projecting c onto the background → F line gives its alpha a.
    alpha = np.where(interior, 1.0, 0.0)
    if interior.any():
        _, (rows, cols) = ndimage.distance_transform_edt(~interior, return_indices=True)
        ys, xs = np.nonzero(edge)
        offset = rgb[ys, xs] - color  # (E, 3) c - background
        span = rgb[rows[ys, xs], cols[ys, xs]] - color  # (E, 3) F - background
        span_sq = np.maximum((span**2).sum(axis=-1), threshold**2)  # F close to the background: use the threshold
        alpha[ys, xs] = np.clip((offset * span).sum(axis=-1) / span_sq, 0.0, 1.0)
    else:  # an object thinner than the band: no pure colour to compare with
        alpha[edge] = np.clip(distance[edge] / (2.0 * threshold), 0.0, 1.0)
    return UniformBackground(alpha=alpha.astype(np.float32), color=color, plain_border_share=plain_share)


def unmix_background(rgb: np.ndarray, alpha: np.ndarray, background_color: np.ndarray) -> np.ndarray:
    """Foreground colour of each pixel: (rgb - (1 - alpha) * background) / alpha, shape (H, W, 3) float.

    Compositing this over white with `alpha` replaces the old background's share of edge pixels by white
    instead of leaving a dark (or coloured) fringe.
    """
    a = alpha[..., None].astype(np.float32)
    unmixed = (rgb.astype(np.float32) - (1.0 - a) * background_color) / np.maximum(a, 1e-3)
    return np.where(a > 1e-3, np.clip(unmixed, 0.0, 255.0), rgb)
