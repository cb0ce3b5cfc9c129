"""Appearance augmentation for conditioning images: other lighting, exposure, colour and focus than the renderer's.

The corpus renders every object with one lighting rig and one material model, so a flow trained on them alone
meets an image lit differently as something new. :class:`AppearanceJitter` changes, per access and with
probability ``probability``, the foreground's brightness, contrast, saturation and gamma (lighting and
exposure), tints it (coloured light), and sometimes blurs it (focus, JPEG-like softness). The background stays
white: the preprocessing composites every input on white, so that is what the model sees at inference.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import PIL.Image
import PIL.ImageFilter


@dataclass(frozen=True)
class AppearanceJitter:
    """Random photometric changes of the foreground of a preprocessed image (object on white + its mask)."""

    probability: float = 0.5  # share of images changed at all; the rest are left exactly as rendered
    brightness: float = 0.35  # multiply by U(1 - b, 1 + b)
    contrast: float = 0.3  # scale around the foreground's mean by U(1 - c, 1 + c)
    saturation: float = 0.4  # blend with grey by U(1 - s, 1 + s)
    gamma: float = 0.3  # raise to U(1 - g, 1 + g)
    tint: float = 0.08  # per-channel gain U(1 - t, 1 + t): coloured light
    blur_probability: float = 0.15  # Gaussian blur of radius U(0.3, 1.2) px

    def __post_init__(self) -> None:
        for name in ("probability", "blur_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation", "gamma", "tint"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def __call__(self, image: PIL.Image.Image, mask: PIL.Image.Image, rng: random.Random | None = None
                 ) -> PIL.Image.Image:
        """``image``: RGB, the object on white; ``mask``: its alpha (mode "L", same size). Returns a new RGB image
        (or ``image`` itself when this draw leaves it unchanged)."""
        rng = rng or random
        if rng.random() >= self.probability:
            return image
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        alpha = np.asarray(mask.convert("L"), dtype=np.float32)[..., None] / 255.0
        # Un-composite: the foreground colour where alpha > 0 (white's share removed at the edges).
        foreground = np.where(alpha > 1e-3, (rgb - (1.0 - alpha)) / np.maximum(alpha, 1e-3), 1.0).clip(0.0, 1.0)
        weights = alpha[..., 0]
        mean = float((foreground.mean(-1) * weights).sum() / max(weights.sum(), 1e-6))
        out = foreground * rng.uniform(1 - self.brightness, 1 + self.brightness)
        out = (out - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
        grey = out.mean(-1, keepdims=True)
        out = grey + (out - grey) * rng.uniform(1 - self.saturation, 1 + self.saturation)
        out = out * np.asarray([rng.uniform(1 - self.tint, 1 + self.tint) for _ in range(3)], dtype=np.float32)
        out = out.clip(0.0, 1.0) ** rng.uniform(1 - self.gamma, 1 + self.gamma)
        composited = out * alpha + (1.0 - alpha)
        result = PIL.Image.fromarray((composited.clip(0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")
        if rng.random() < self.blur_probability:
            result = result.filter(PIL.ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
        return result
