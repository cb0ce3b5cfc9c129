"""Background removal with a segmentation network: rembg's U²-Net, from a local model file or downloaded
once into rembg's own cache when the machine is online and the user has not asked for offline.

Where the model file comes from, in order: an explicit path, `$TRIPOSG_REMBG_MODEL`, rembg's cache
(`$REMBG_HOME/models/u2net/u2net.onnx`, default `~/.rembg`, or the older flat `$U2NET_HOME`, default
`~/.u2net`), then a download into that cache (skipped when `TRIPOSG_OFFLINE` / `HF_HUB_OFFLINE` is set).
A failed download is remembered for the process, so an offline machine pays for it once, not per image.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import PIL.Image
from scipy import ndimage
from skimage.filters import threshold_otsu

from ..offline import OFFLINE_ENV, offline_requested
from .background import keep_main_components, restrict_to
from .image_io import ImageError

REMBG_MODEL_ENV = "TRIPOSG_REMBG_MODEL"
REMBG_DEFAULT_MODEL_FILE = "u2net.onnx"  # rembg's default model, as named in its cache

_download_failures: dict[str, str] = {}  # model file name → why its download failed (once per process)


def _import_rembg():
    """Import rembg (ImportError when it is missing) keeping torch's CPU thread count: rembg loads pymatting, whose
    numba kernels start an OpenMP pool on import that resets the count torch uses (a user's 1 thread became 2)."""
    import torch

    threads = torch.get_num_threads()
    try:
        import rembg
    finally:
        torch.set_num_threads(threads)
    return rembg


def _rembg_cached_model() -> Path | None:
    """rembg's own cached copy of its default model, wherever its version keeps it."""
    try:
        _import_rembg()
        from rembg.sessions.u2net import U2netSession
    except ImportError:
        return None
    resolve = getattr(U2netSession, "resolve_existing", None)
    if resolve is not None:
        found = resolve(REMBG_DEFAULT_MODEL_FILE)
        return Path(found) if found else None
    legacy = Path(os.environ.get("U2NET_HOME", "~/.u2net")).expanduser() / REMBG_DEFAULT_MODEL_FILE
    return legacy if legacy.is_file() else None


def find_rembg_model(model_path: str | os.PathLike | None = None) -> Path | None:
    """A local rembg (U²-Net-style ONNX) model file, or None when there is none or rembg is not installed.

    Looks at `model_path`, `$TRIPOSG_REMBG_MODEL`, then rembg's cache. Never downloads. An explicit
    `model_path` that is not a file raises `ImageError` (a typo should not silently fall back).
    """
    if model_path is not None and not Path(model_path).expanduser().is_file():
        raise ImageError(f"rembg model file not found: {Path(model_path).name}; pass the path of a local .onnx file")
    try:
        _import_rembg()
    except ImportError:
        return None
    for candidate in (model_path, os.environ.get(REMBG_MODEL_ENV)):
        if candidate and Path(candidate).expanduser().is_file():
            return Path(candidate).expanduser()
    return _rembg_cached_model()


def download_rembg_model() -> Path:
    """Download rembg's default model into its cache (progress on stderr) and return its path.

    Raises `ImageError` naming the fix when offline was asked for, rembg is missing or the download fails
    (a failure is remembered: later calls raise at once).
    """
    if offline_requested():
        raise ImageError(
            f"the segmentation model is not downloaded because offline was asked for ({OFFLINE_ENV} or "
            f"HF_HUB_OFFLINE is set): unset it to download, or set {REMBG_MODEL_ENV}=/path/to/u2net.onnx"
        )
    if REMBG_DEFAULT_MODEL_FILE in _download_failures:
        raise ImageError(_download_failures[REMBG_DEFAULT_MODEL_FILE])
    try:
        _import_rembg()
        from rembg.sessions.u2net import U2netSession
    except ImportError as error:
        raise ImageError(f"background removal with a segmentation model needs rembg ({error}); pip install rembg") from error
    try:
        return Path(U2netSession.download_models())
    except Exception as error:  # noqa: BLE001 - network, disk and checksum errors all mean "no model"
        message = (
            f"the segmentation model could not be downloaded ({type(error).__name__}); check the internet "
            f"connection, or download u2net.onnx yourself and set {REMBG_MODEL_ENV} to its path"
        )
        _download_failures[REMBG_DEFAULT_MODEL_FILE] = message
        raise ImageError(message) from error


@functools.lru_cache(maxsize=2)
def _rembg_session(model_path: str):
    """One rembg session per model file (loading the ONNX model takes seconds)."""
    new_session = _import_rembg().new_session

    # "u2net_custom" loads exactly this file; the named sessions would fetch their model if the hash differs.
    return new_session("u2net_custom", model_path=model_path)


def rembg_mask(image: PIL.Image.Image, model_path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """(H, W) alpha from rembg with a local model, thresholded (Otsu) and cleaned as in the release, and a
    confidence in [0, 1]: the share of pixels the network is decided about (matte under 0.1 or over 0.9).

    Inside the cleaned foreground alpha is 1; on its two-pixel edge band it is rembg's soft matte.
    """
    try:
        remove = _import_rembg().remove
        matte = remove(image.convert("RGB"), session=_rembg_session(str(model_path)), only_mask=True)
    except ImportError as error:
        raise ImageError(f"background='rembg' needs the rembg package ({error}); pip install rembg") from error
    except Exception as error:  # onnxruntime raises its own types for bad model files
        raise ImageError(
            f"rembg failed with model {Path(model_path).name} ({type(error).__name__}); check that the file is "
            "a U²-Net-style ONNX model such as u2net.onnx"
        ) from error
    soft = np.asarray(matte.convert("L"), dtype=np.float32) / 255.0
    if soft.max() - soft.min() < 1e-3:
        return np.zeros_like(soft), 0.0
    hard = keep_main_components(soft > threshold_otsu(soft))
    interior = ndimage.binary_erosion(hard, iterations=1, border_value=1)
    decided = float(((soft < 0.1) | (soft > 0.9)).mean())
    return np.where(interior, 1.0, restrict_to(soft, hard)).astype(np.float32), decided
