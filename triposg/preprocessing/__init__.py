"""Image preprocessing: load safely, find the foreground, crop and pad it on white (paper §5.1: 90% ratio).

Background methods, in the order `background="auto"` tries them (no photo is refused for its background):
1. "alpha": the image's own alpha channel, when it has both opaque and transparent pixels;
2. "rembg": a segmentation network (rembg's U²-Net) from a local model file or rembg's cache, or downloaded
   into that cache when the user has not asked for offline (`segmentation`);
3. "uniform": built-in segmentation of a plain background, when the border is plain (exact there, with
   soft edges unmixed from the old background colour); on a nearly plain border only when its cut
   separates colours at least as well as GrabCut's (a low-contrast texture looks nearly plain);
4. "grabcut": the offline cut-out for photos on any background (`grabcut`).
"none" keeps the image as it is (the whole image is the object). Hints (a box, keep / remove strokes) refine
whichever cut-out was made with GrabCut. Every method's mask is cleaned the same way (threshold, small blobs
dropped, main components kept) before the crop, so a stray speck cannot stretch the bounding box.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import PIL.Image

from ..offline import offline_requested
from .background import (
    MIN_PLAIN_BORDER,
    alpha_mask,
    has_usable_alpha,
    uniform_background_mask,
    unmix_background,
)
from .crop import crop_and_pad, foreground_bbox, looks_prepared, square_side
from .grabcut import CutoutHints, colour_separation, grabcut_cutout
from .image_io import MAX_SIDE, ImageError, ImageFileInfo, load_image, read_image_info
from .segmentation import REMBG_MODEL_ENV, download_rembg_model, find_rembg_model, rembg_mask

BACKGROUND_METHODS = ("auto", "alpha", "rembg", "uniform", "grabcut", "none")
# Below this many pixels on a side there is no object to see (the image encoder looks at 224 px crops).
MIN_SIDE = 8
# Under this confidence a cut-out is flagged for the user to check (GrabCut's colour separation at this
# level still gave IoU ≥ 0.8 with the truth on the cut-out test set, `evaluation.cutout`).
LOW_CONFIDENCE = 0.75
# Above this share of one-colour border the plain-background method is taken without comparing (studio shots
# and renders: 1.0); between `MIN_PLAIN_BORDER` and this, it must separate colours at least as well as GrabCut.
CLEARLY_PLAIN_BORDER = 0.97


@dataclass
class PreprocessResult:
    """What `preprocess_image` made of one image.

    `image`: square RGB, the foreground centred on white. `mask`: its alpha in the same frame (mode "L").
    `method`: "alpha", "rembg", "uniform-background", "grabcut" or "none" (with "+hints" when the user's
    hints refined it). `bbox`: (x0, y0, x1, y1), exclusive end, of the foreground in the loaded image (after
    EXIF rotation and the 2000 px cap). `foreground_ratio`: the foreground's long side over the square's side,
    as achieved. `confidence` in [0, 1]: how sure the method is of its cut (1 for an alpha channel or no
    cut); `notes`: what the chain skipped and why, and a warning under `LOW_CONFIDENCE`.
    """

    image: PIL.Image.Image
    mask: PIL.Image.Image
    method: str
    bbox: tuple[int, int, int, int]
    foreground_ratio: float
    confidence: float = 1.0
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class _Foreground:
    alpha: np.ndarray
    rgb: np.ndarray
    method: str
    confidence: float
    notes: list[str]


def _segmentation_model(background: str, rembg_model_path, allow_download: bool, notes: list[str]):
    """The rembg model file to use, or None (auto: with a note saying why)."""
    model = find_rembg_model(rembg_model_path)
    if model is not None or background not in ("auto", "rembg"):
        return model
    explicit = background == "rembg" or rembg_model_path is not None
    if not allow_download:
        if explicit:
            raise ImageError(
                "rembg background removal needs a model: pass rembg_model_path or set "
                f"{REMBG_MODEL_ENV}=/path/to/u2net.onnx, or allow the download (unset TRIPOSG_OFFLINE and "
                "HF_HUB_OFFLINE)"
            )
        notes.append("no segmentation model offline")
        return None
    try:
        return download_rembg_model()
    except ImageError as error:
        if explicit:
            raise
        notes.append(str(error))
        return None


def _find_foreground(loaded: PIL.Image.Image, background: str, rembg_model_path, allow_download: bool) -> _Foreground:
    rgb = np.asarray(loaded.convert("RGB"))
    notes: list[str] = []
    if background == "none":
        return _Foreground(np.ones(rgb.shape[:2], np.float32), rgb, "none", 1.0, notes)
    if background == "alpha" or (background == "auto" and has_usable_alpha(loaded)):
        return _Foreground(alpha_mask(loaded), rgb, "alpha", 1.0, notes)
    if background in ("auto", "rembg") or rembg_model_path is not None:
        model = _segmentation_model(background, rembg_model_path, allow_download, notes)
        if model is not None:
            alpha, confidence = rembg_mask(loaded, model)
            return _Foreground(alpha, rgb, "rembg", confidence, notes)
    if background in ("auto", "uniform"):
        plain = uniform_background_mask(loaded, check_plain=background == "uniform")
        share = plain.plain_border_share
        # Edge pixels are a mix with the old background: give their share to white instead.
        uniform = _Foreground(plain.alpha, unmix_background(rgb, plain.alpha, plain.color), "uniform-background",
                              share, notes)
        if background == "uniform" or share >= CLEARLY_PLAIN_BORDER:
            return uniform
        if share >= MIN_PLAIN_BORDER:
            # Nearly plain (a low-contrast texture, or an object touching the edge): the cut whose colours
            # separate better wins.
            cut = grabcut_cutout(rgb)
            if colour_separation(rgb, plain.alpha >= 0.5) >= colour_separation(rgb, cut.alpha >= 0.5):
                return uniform
            notes.append(f"the background is nearly plain ({share:.0%} of the border has one colour) but "
                         "the photo cut-out separates it better")
            return _Foreground(cut.alpha, rgb, "grabcut", cut.confidence, notes)
        notes.append(f"the background is not plain ({share:.0%} of the border has one colour)")
    cut = grabcut_cutout(rgb)
    return _Foreground(cut.alpha, rgb, "grabcut", cut.confidence, notes)


def preprocess_image(
    image: str | os.PathLike | PIL.Image.Image | np.ndarray,
    foreground_ratio: float = 0.9,
    background: str = "auto",
    rembg_model_path: str | os.PathLike | None = None,
    output_size: int | None = None,
    hints: CutoutHints | None = None,
    allow_download: bool | None = None,
) -> PreprocessResult:
    """Find the foreground of `image` and return it cropped, centred and padded to a square on white.

    Args:
        image: a path, PIL image or array (see `load_image`).
        foreground_ratio: share of the square's side the foreground's long side fills (paper: 0.9; the
            release pads 10% of the long side on each side, i.e. about 0.83).
        background: "auto" (see the module docstring), or force "alpha", "rembg", "uniform", "grabcut",
            or "none" (keep the image as it is).
        rembg_model_path: local rembg ONNX model; default `$TRIPOSG_REMBG_MODEL` or rembg's cache.
        output_size: resize the square to this many pixels; None keeps the crop's own resolution.
        hints: the user's box / keep / remove strokes in the loaded image's frame (`load_image(image)`):
            the chosen method's cut-out is refined by GrabCut with them.
        allow_download: may the segmentation model be downloaded; default: unless offline was asked for.

    Raises `ImageError` for unreadable images, images under `MIN_SIDE` pixels on a side, fully transparent
    images, images with no foreground, `background="alpha"` without an alpha channel, `"uniform"` on a
    background that is not plain, or `background="rembg"` (or an explicit `rembg_model_path`) with no model.
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
    if allow_download is None:
        allow_download = not offline_requested()
    found = _find_foreground(loaded, background, rembg_model_path, allow_download)
    if hints is not None and not hints.is_empty():
        if found.method == "none":
            found.notes.append("hints ignored: background='none' keeps the whole image")
        else:
            given = CutoutHints(hints.box, hints.keep, hints.remove,
                                hints.initial if hints.initial is not None else found.alpha)
            cut = grabcut_cutout(found.rgb, given)
            found.alpha, found.confidence, found.method = cut.alpha, cut.confidence, f"{found.method}+hints"
    if found.confidence < LOW_CONFIDENCE:
        found.notes.append(
            f"the cut-out is uncertain (confidence {found.confidence:.2f}): check it, and draw keep/remove "
            "strokes or a box if it is wrong"
        )
    bbox = foreground_bbox(found.alpha)
    out_image, out_mask = crop_and_pad(found.rgb, found.alpha, bbox, foreground_ratio, output_size)
    long_side = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
    achieved_ratio = long_side / square_side(long_side, foreground_ratio)
    return PreprocessResult(out_image, out_mask, found.method, bbox, achieved_ratio, round(found.confidence, 3),
                            tuple(found.notes))


def prepare_as_is(image: PIL.Image.Image) -> PreprocessResult:
    """The result for an image used as it is (`looks_prepared`): composited on white, not re-cropped."""
    rgb = composite_on_white(image)
    alpha = (np.asarray(rgb).min(axis=2) < 250).astype(np.float32)
    bbox = foreground_bbox(alpha) if alpha.any() else (0, 0, rgb.width, rgb.height)
    ratio = max(bbox[2] - bbox[0], bbox[3] - bbox[1]) / max(rgb.size)
    mask = PIL.Image.fromarray((alpha * 255).astype(np.uint8), "L")
    return PreprocessResult(rgb, mask, "as-is", bbox, round(ratio, 3), 1.0,
                            ("already framed on white: used as it is (preprocess=True re-crops it)",))


def composite_on_white(image: PIL.Image.Image) -> PIL.Image.Image:
    """RGB(A) → RGB, transparent pixels white (the background the models are trained on)."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    white = PIL.Image.new("RGBA", image.size, (255, 255, 255, 255))
    return PIL.Image.alpha_composite(white, image).convert("RGB")


__all__ = [
    "BACKGROUND_METHODS",
    "LOW_CONFIDENCE",
    "MAX_SIDE",
    "MIN_SIDE",
    "REMBG_MODEL_ENV",
    "CutoutHints",
    "ImageError",
    "ImageFileInfo",
    "PreprocessResult",
    "composite_on_white",
    "load_image",
    "looks_prepared",
    "prepare_as_is",
    "preprocess_image",
    "read_image_info",
]
