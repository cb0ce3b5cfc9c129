"""The cut-out test set: our renders composited onto real photographic backgrounds, with the true mask.

scikit-image ships the backgrounds (no download). Backgrounds proper: the textures grass, brick and gravel
(greyscale, tinted to plausible colours), and crops of photographs: a wooden table (coffee), fur (chelsea's
forehead), a stained tissue (immunohistochemistry) and a dark star field (hubble). Stress cases, reported
apart (`STRESS_CASES`): whole photographs whose own salient content sits where the object goes (a cat's
face, an astronaut with a rocket), which no method without a notion of "object" can tell from ours. The
objects are the demo's example renders, their true mask from their alpha channel (or, for renders on a
plain colour, from the plain-background method, exact on a synthetic render); each is scaled, placed
off-centre and composited with its soft edge.

`cutout_iou` scores a method on the set: the IoU of its mask with the truth, per background.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
import zlib

import numpy as np
import PIL.Image

from triposg.preprocessing.background import uniform_background_mask

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "examples"
# name → (scikit-image loader, RGB tint for greyscale textures or None, crop (y0, y1, x0, x1) or None)
BACKGROUNDS: dict[str, tuple[str, tuple[float, float, float] | None, tuple[int, int, int, int] | None]] = {
    "grass": ("grass", (0.55, 0.85, 0.35), None),
    "brick": ("brick", (0.95, 0.55, 0.4), None),
    "gravel": ("gravel", (0.9, 0.85, 0.75), None),
    "table": ("coffee", None, (0, 400, 465, 600)),  # the coffee photo's wooden table, right of the saucer
    "fur": ("chelsea", None, (0, 95, 140, 330)),  # the cat's forehead
    "tissue": ("immunohistochemistry", None, None),
    "stars": ("hubble_deep_field", None, None),
    "face": ("chelsea", None, None),
    "scene": ("astronaut", None, None),
}
STRESS_CASES = ("face", "scene")


def background_image(name: str, size: int) -> np.ndarray:
    """(size, size, 3) uint8: background `name` resized (cropped to square first)."""
    import skimage.data

    loader, tint, crop = BACKGROUNDS[name]
    image = getattr(skimage.data, loader)()
    if crop is not None:
        image = image[crop[0]:crop[1], crop[2]:crop[3]]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1).astype(np.float32) * np.asarray(tint if tint else (1, 1, 1))
        image = np.clip(image, 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    side = min(h, w)
    image = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    return np.asarray(PIL.Image.fromarray(image[..., :3]).resize((size, size), PIL.Image.Resampling.BICUBIC))


def example_object(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (H, W, 3) uint8, alpha (H, W) float) of one example render, trimmed to its bounding box."""
    image = PIL.Image.open(path)
    rgb = np.asarray(image.convert("RGB"))
    if image.mode == "RGBA":
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
    else:  # rendered on a plain colour: the plain-background method is exact there
        alpha = uniform_background_mask(image).alpha
    ys, xs = np.nonzero(alpha > 0.5)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]


@dataclass
class CutoutCase:
    background: str
    object: str
    image: np.ndarray  # (S, S, 3) uint8 composite
    mask: np.ndarray  # (S, S) bool truth


def composite(background: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, scale: float,
              offset: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Paste the object (long side `scale` of the background's side, centre shifted by `offset` × side)."""
    side = background.shape[0]
    factor = scale * side / max(rgb.shape[:2])
    size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
    rgb = np.asarray(PIL.Image.fromarray(rgb).resize(size, PIL.Image.Resampling.BICUBIC), dtype=np.float32)
    alpha = np.asarray(PIL.Image.fromarray(alpha).resize(size, PIL.Image.Resampling.BILINEAR), dtype=np.float32)
    top = int(round((side - size[1]) / 2 + offset[1] * side))
    left = int(round((side - size[0]) / 2 + offset[0] * side))
    top, left = min(max(top, 0), side - size[1]), min(max(left, 0), side - size[0])
    out = background.astype(np.float32).copy()
    window = out[top:top + size[1], left:left + size[0]]
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    window[:] = a * rgb + (1.0 - a) * window
    mask = np.zeros((side, side), dtype=bool)
    mask[top:top + size[1], left:left + size[0]] = alpha >= 0.5
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), mask


def cutout_cases(backgrounds: list[str] | None = None, objects: list[str] | None = None, size: int = 384,
                 seed: int = 0) -> Iterator[CutoutCase]:
    """Every (background, example object) pair (default: every background but the stress cases), scale 0.45–0.75 and centre offset up to ±0.12."""
    paths = sorted(EXAMPLES_DIR.glob("*.png"))
    if objects is not None:
        paths = [p for p in paths if p.stem in objects]
    for name in backgrounds or [name for name in BACKGROUNDS if name not in STRESS_CASES]:
        base = background_image(name, size)
        for path in paths:
            rgb, alpha = example_object(path)
            # One generator per pair: a subset of the set holds exactly the same cases.
            rng = np.random.default_rng([seed, zlib.crc32(f"{name}/{path.stem}".encode())])
            scale, offset = rng.uniform(0.45, 0.75), tuple(rng.uniform(-0.12, 0.12, size=2))
            image, mask = composite(base, rgb, alpha, scale, offset)
            yield CutoutCase(name, path.stem, image, mask)


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    union = (predicted | truth).sum()
    return float((predicted & truth).sum() / union) if union else 1.0


def cutout_iou(method: Callable[[np.ndarray], np.ndarray], cases) -> dict[str, list[float]]:
    """IoU of `method(image) -> (H, W) alpha` (thresholded at 0.5) with the truth, grouped by background."""
    scores: dict[str, list[float]] = {}
    for case in cases:
        scores.setdefault(case.background, []).append(mask_iou(method(case.image) >= 0.5, case.mask))
    return scores
