"""Pieces every tab of the app shares: the image input, per-session folders, opening an upload, turning a
failure into one message for the user, ZeroGPU wrapping, and numbers rounded for tables."""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd
import PIL.Image

from triposg.preprocessing import MAX_SIDE, ImageError, ImageFileInfo, load_image, read_image_info

try:  # Hugging Face ZeroGPU Spaces: `spaces` must be imported before CUDA is initialised
    import spaces
except ImportError:
    spaces = None

logger = logging.getLogger(__name__)

SESSION_MAX_AGE_S = 24 * 3600  # API clients never fire "unload": their folders are swept after a day
VIEWER_BACKDROP = (0.86, 0.88, 0.91, 1.0)  # a light grey: untextured meshes render near-white
SIGNIFICANT_DIGITS = 3  # table numbers: a Chamfer of 0.0123, an FD of 61.7, an Elo of 1012
# An absolute path inside a message (a server's temp or install folder): users see only its last part.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:)?[/\\](?:[^\s'\"`/\\]+[/\\])+([^\s'\"`/\\]+)")


class GenerationCancelled(Exception):
    """The user left or cancelled while the pipeline was still sampling."""


def pass_raw_file(image: gr.Image) -> gr.Image:
    """Make a `type="filepath"` image input hand its handler the uploaded file untouched; returns it.

    Gradio's own preprocessing opens the file with PIL and fails with a generic error on corrupt or
    non-image uploads; the handler validates the raw file itself (`read_image_info`, `load_image`) so each
    problem gets a message that names the fix. Gradio has already checked that the path is an upload.
    An instance override, not a subclass: gradio writes a `.pyi` stub next to any module defining one.
    """
    decode = image.preprocess

    def preprocess(payload):
        if payload is None or payload.path is None:  # pasted data URLs: gradio decodes them
            return decode(payload)
        return str(payload.path)

    image.preprocess = preprocess
    return image


def image_input(label: str = "Input image", **kwargs) -> gr.Image:
    """An image upload (file or clipboard) whose handler receives the raw file's path (`pass_raw_file`)."""
    return pass_raw_file(gr.Image(label=label, type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                  **kwargs))


@dataclass
class SessionFolders:
    """One temporary folder per browser session under `root`: created on load, deleted on unload."""

    root: Path

    def path(self, request: gr.Request | None) -> Path:
        session = getattr(request, "session_hash", None) or "no-session"
        return self.root / session

    def ensure(self, request: gr.Request | None) -> Path:
        """Make (or keep) the session's folder and return it; stale folders of other sessions are swept."""
        self.sweep()
        folder = self.path(request)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def create(self, request: gr.Request) -> None:
        self.ensure(request)

    def delete(self, request: gr.Request) -> None:
        shutil.rmtree(self.path(request), ignore_errors=True)

    def sweep(self, max_age_s: float = SESSION_MAX_AGE_S) -> None:
        """Delete session folders untouched for `max_age_s` (API sessions, crashed browsers)."""
        if not self.root.is_dir():
            return
        cutoff = time.time() - max_age_s
        for folder in self.root.iterdir():
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


def open_input_image(path: str | None) -> tuple[PIL.Image.Image, ImageFileInfo]:
    """Validate an uploaded file and decode it; `gr.Error` for anything unusable, `gr.Warning` for an
    animation (its first frame is used) and `gr.Info` for a downscaled or converted image (`ImageFileInfo.notes`)."""
    if path is None:
        raise gr.Error("Upload an image first (or pick one of the examples).", print_exception=False)
    try:
        info = read_image_info(path)
        image = load_image(path)
    except ImageError as error:
        raise user_error(error, "This image cannot be used") from None
    for note in info.notes(MAX_SIDE):  # a dropped part of the file is a warning, the rest information
        show = gr.Warning if note.warning else gr.Info
        show(note[0].upper() + note[1:] + ".")
    return image, info


def hide_paths(text: str) -> str:
    """`text` with every absolute path cut to its last part: a message never shows the server's folders."""
    return _ABSOLUTE_PATH.sub(lambda match: match.group(1), text)


def user_error(error: Exception, context: str = "", hint: str = "") -> gr.Error:
    """The one translation of a failure into what the user sees: a `gr.Error` with the failure's own message
    (bad settings, images, meshes, folders and judges raise `ValueError`/`OSError` subclasses that name the
    fix), prefixed with `context`, without server paths. Anything unexpected is logged with its traceback
    and shown by type, followed by `hint`."""
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, GenerationCancelled):
        return gr.Error("Generation was cancelled.", print_exception=False)
    prefix = f"{context}: " if context else ""
    if isinstance(error, (ValueError, OSError)):  # FileNotFoundError, ImageError, EmptySurfaceError, bad settings
        return gr.Error(hide_paths(prefix + str(error)), print_exception=False)
    logger.error("%sunexpected failure", prefix, exc_info=error)
    message = f"{prefix}{type(error).__name__}: {error}" + (f". {hint}" if hint else "")
    return gr.Error(hide_paths(message), print_exception=False)


def on_gpu(fn: Callable, duration: Callable | int = 120) -> Callable:
    """`spaces.GPU(fn)` on Hugging Face ZeroGPU Spaces (the `spaces` package is installed), else `fn`;
    `duration` may be a function of `fn`'s arguments (ZeroGPU calls it per request)."""
    return spaces.GPU(duration=duration)(fn) if spaces is not None else fn


def rounded(frame: pd.DataFrame, digits: int = SIGNIFICANT_DIGITS) -> pd.DataFrame:
    """A copy of `frame` for display: each float column rounded to `digits` significant digits of its largest
    value, so a column shares one precision (0.0123 and 0.0041, not 0.0041234)."""
    frame = frame.copy()
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        if frame[column].dtype.kind != "f" or not values.notna().any():
            continue
        largest = float(values.abs().max())
        if largest == 0 or not math.isfinite(largest):
            continue
        decimals = max(0, digits - 1 - math.floor(math.log10(largest)))
        frame[column] = values.round(decimals)
    return frame


def with_spread(frame: pd.DataFrame, suffix: str = "_std") -> pd.DataFrame:
    """A copy of `frame` for display where each column `X` that has a spread column `X_std` becomes the text
    "X ± std" (both rounded to the spread's second significant digit) and `X_std` is dropped: an FD or KD is
    never shown without how much it would move with another sample."""
    frame = frame.copy()
    for spread in [column for column in frame.columns if str(column).endswith(suffix)]:
        column = str(spread)[: -len(suffix)]
        if column not in frame.columns:
            continue
        cells = []
        values, spreads = pd.to_numeric(frame[column], errors="coerce"), pd.to_numeric(frame[spread], errors="coerce")
        for value, std in zip(values, spreads):
            if pd.isna(value):
                cells.append("–")
            elif pd.isna(std) or std <= 0:
                cells.append(f"{value:.{SIGNIFICANT_DIGITS}g}")
            else:
                decimals = max(0, 1 - math.floor(math.log10(std)))
                cells.append(f"{value:.{decimals}f} ± {std:.{decimals}f}")
        frame[column] = cells
        frame = frame.drop(columns=spread)
    return frame
