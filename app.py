"""Gradio demo: image in, 3D mesh out, streamed while sampling. The UI is built from a pipeline passed in
(`build_demo(pipe, defaults)`); no model code and no global model here. One `build_*_tab` per tab.

    python app.py [--model PATH_OR_HUB_ID] [--device cpu|cuda] [--host 127.0.0.1] [--port 7860] [--share]
                  [--max-concurrency N]

API (gradio_client): `Client(url).predict(handle_file("cone.png"), seed=42, ..., api_name="/generate")`
returns (mesh file, viewer GLB, preprocessed image, statistics, seed). The other tabs' actions:
`/compare` (image, seed, variants table → 4 meshes, 4 normal renders, summary, timings), `/normal_fid`
(variants, test-set folder, split, zip, limit, seed → results, chart, history, status) and `/arena`
(variants, images, number of examples, judge, seed → Elo table, radar chart, status, slider).
A variants table is {"headers": VARIANT_COLUMNS, "data": rows} (see `evaluation.variants`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import queue
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # Hugging Face ZeroGPU Spaces: `spaces` must be imported before CUDA is initialised
    import spaces
except ImportError:
    spaces = None

import gradio as gr
import numpy as np
import pandas as pd
import PIL.Image
import trimesh

from evaluation.arena import ArenaConfig, ViewConfig, make_judge, run_arena
from evaluation.normal_fid import (
    GenerationCache,
    NormalFidConfig,
    dinov2_named_extractor,
    load_test_set,
    run_normal_fid,
)
from evaluation.paper_tables import paper_ablation_tables
from evaluation.results import (
    DEFAULT_RESULTS_DIR,
    append_history,
    bar_chart,
    describe_results_folder,
    read_results_folder,
)
from evaluation.variants import (
    DEFAULT_MODEL,
    EXTRACTION_METHODS,
    LOADED_MODEL,
    MODEL_SAMPLER,
    SAMPLERS,
    VARIANT_COLUMNS,
    PipelineCache,
    VariantSpec,
    generate_assets,
    parse_variant_rows,
    pipeline_with_sampler,
    run_variant,
    shipped_variant_groups,
    shipped_variant_specs,
    spec_model_variant,
    timings_table,
)
from triposg.geometry import SUPPORTED_FORMATS, export_mesh
from triposg.loading import GenerationDefaults, load_pipeline
from triposg.pipelines import PreviewEvent, TripoSGPipeline, TripoSGPipelineOutput
from triposg.pipelines.generation_config import LIMITS, check_resolution, checked_number
from triposg.preprocessing import (
    LOW_CONFIDENCE,
    MAX_SIDE,
    CutoutHints,
    ImageError,
    ImageFileInfo,
    PreprocessResult,
    load_image,
    preprocess_image,
    read_image_info,
)

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent / "assets" / "examples"
# The procedural corpus the training recipe builds; its test split is the built-in Normal-FID test set.
DEFAULT_CORPUS = Path(__file__).resolve().parent / "data" / "procedural"
RESOLUTION_CHOICES = (32, 64, 128, 256, 512)  # every extraction method accepts these
DEFAULT_FOREGROUND_RATIO = 0.9  # paper §5.1, as in preprocess_image
DEFAULT_TARGET_FACES = 50_000  # enough for smooth shading, small enough for a browser viewer
PREVIEWS_PER_RUN = 4  # the 3D preview updates about this often per generation (each ~0.1 s: a coarse decode)
PREVIEW_RESOLUTION = 32  # coarse on purpose: a preview (~0.1 s) should cost less than two sampling steps
MAX_STEPS = int(LIMITS["num_inference_steps"][1])  # the one set of limits (triposg.pipelines.generation_config)
MAX_TOKENS = int(LIMITS["num_tokens"][1])
SESSION_MAX_AGE_S = 24 * 3600  # API clients never fire "unload": their folders are swept after a day
GPU_DURATION_S = 120  # ZeroGPU time slice for the default settings; `gpu_duration` scales it per request
MAX_GPU_DURATION_S = 300
MODEL_ENV = "TRIPOSG_MODEL"  # the model a hosted Space runs, as --model (folder or hub id)
DEVICE_ENV = "TRIPOSG_DEVICE"
CACHE_EXAMPLES_ENV = "TRIPOSG_CACHE_EXAMPLES"  # 1: examples are generated once, on first click, and cached
# (label, preprocess_image background) for the Generate tab's background-removal choice.
BACKGROUND_CHOICES = [
    ("auto: alpha → segmentation model → plain background → photo cut-out", "auto"),
    ("photo cut-out (GrabCut, offline)", "grabcut"),
    ("segmentation model (rembg)", "rembg"),
    ("plain background", "uniform"),
    ("the image's alpha channel", "alpha"),
    ("keep the image as it is", "none"),
]
KEEP_COLOR, REMOVE_COLOR = "#00c040", "#ff2020"  # the correction brushes: object / background


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


@dataclass
class GenerationSettings:
    """The Generate tab's settings, validated (API callers bypass the UI's slider limits)."""

    seed: int
    num_inference_steps: int
    guidance_scale: float
    num_tokens: int
    octree_resolution: int
    foreground_ratio: float
    faces: int | None  # target face count after simplification; None keeps every face

    def pipeline_kwargs(self) -> dict[str, Any]:
        return {"seed": self.seed, "num_inference_steps": self.num_inference_steps,
                "guidance_scale": self.guidance_scale, "num_tokens": self.num_tokens,
                "octree_resolution": self.octree_resolution, "faces": self.faces}


def parse_settings(seed, randomize_seed, steps, guidance_scale, num_tokens, octree_resolution, foreground_ratio,
                   simplify, target_faces) -> GenerationSettings:
    """Check the raw UI/API values and return them typed; `gr.Error` names the bad value and its range."""

    def number(name: str, label: str, value, kind: type):
        try:
            return checked_number(name, value, kind, label)
        except ValueError as error:
            raise gr.Error(str(error)) from None

    def ratio(value) -> float:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise gr.Error(f"foreground ratio must be a number, got {value!r}") from None
        if not 0.05 <= value <= 1.0:
            raise gr.Error(f"foreground ratio must be between 0.05 and 1, got {value:g}")
        return value

    if randomize_seed:
        seed = random.randrange(2**31)
    try:
        resolution = check_resolution(octree_resolution, "tracking", "extraction resolution")
    except ValueError as error:
        raise gr.Error(str(error)) from None
    faces = None
    if simplify:
        try:
            faces = int(float(target_faces))
        except (TypeError, ValueError):
            raise gr.Error(f"target faces must be a number, got {target_faces!r}") from None
        if not 100 <= faces <= 10_000_000:
            raise gr.Error(f"target faces must be between 100 and 10000000, got {faces}")
    return GenerationSettings(
        seed=number("seed", "seed", seed, int),
        num_inference_steps=number("num_inference_steps", "inference steps", steps, int),
        guidance_scale=number("guidance_scale", "guidance scale", guidance_scale, float),
        num_tokens=number("num_tokens", "latent tokens", num_tokens, int),
        octree_resolution=resolution,
        foreground_ratio=ratio(foreground_ratio),
        faces=faces,
    )


def strokes_to_hints(value: dict | None, size: tuple[int, int]) -> CutoutHints | None:
    """The correction editor's painted layers → keep / remove masks in the loaded image's frame (`size` =
    (width, height)); None when nothing is painted. Green-dominant paint keeps, red-dominant removes."""
    layers = (value or {}).get("layers") or []
    keep = np.zeros(size[::-1], dtype=bool)
    remove = np.zeros(size[::-1], dtype=bool)
    for layer in layers:
        if layer is None:
            continue
        rgba = np.asarray(layer)
        if rgba.ndim != 3 or rgba.shape[2] != 4:
            continue
        if rgba.shape[:2] != keep.shape:  # a canvas of another size: map it onto the image
            rgba = np.asarray(PIL.Image.fromarray(rgba).resize(size, PIL.Image.Resampling.NEAREST))
        painted = rgba[..., 3] > 0
        red, green = rgba[..., 0].astype(int), rgba[..., 1].astype(int)
        keep |= painted & (green > red)
        remove |= painted & (red > green)
    if not keep.any() and not remove.any():
        return None
    return CutoutHints(keep=keep, remove=remove & ~keep)


def describe_cutout(prepared: PreprocessResult) -> str:
    """One Markdown line on the cut-out: method, confidence, and the chain's notes."""
    line = f"background: {prepared.method} · confidence {prepared.confidence:.2f}"
    if prepared.confidence < LOW_CONFIDENCE:
        line += " (uncertain: check the preprocessed image; correct it with strokes)"
    return line + "".join(f"\n\n- {note}" for note in prepared.notes)


def open_input_image(path: str | None) -> tuple[PIL.Image.Image, ImageFileInfo]:
    """Validate an uploaded file and decode it; `gr.Error` for anything unusable, `gr.Warning` for an
    animation (its first frame is used) and `gr.Info` for a downscaled or converted image."""
    if path is None:
        raise gr.Error("Upload an image first (or pick one of the examples).")
    try:
        info = read_image_info(path)
        image = load_image(path)
    except ImageError as error:
        raise gr.Error(f"This image cannot be used: {error}", print_exception=False) from None
    if info.num_frames > 1:
        gr.Warning(f"The image is animated ({info.num_frames} frames); only the first frame is used.")
    if max(info.size) > MAX_SIDE:
        gr.Info(f"The image is {info.size[0]}×{info.size[1]}; it is downscaled to {MAX_SIDE} px on the long side.")
    if info.mode == "CMYK":
        gr.Info("The image is CMYK; it is converted to RGB without colour management, so colours may shift.")
    return image, info


def pipeline_for_run(pipe: TripoSGPipeline) -> TripoSGPipeline:
    """A pipeline sharing `pipe`'s weights with a scheduler of its own: the scheduler keeps per-run state
    (timesteps, step index), so concurrent generations must not share one."""
    return pipeline_with_sampler(pipe)


def run_generation(
    pipe: TripoSGPipeline, image: PIL.Image.Image, settings: dict, preview_every: int, cancel: threading.Event
) -> Iterator[tuple[str, Any]]:
    """Run the pipeline on a preprocessed image in a worker thread; yield ("step", i), ("preview",
    PreviewEvent), then ("done", output) or ("error", exception). Setting `cancel` stops sampling at the
    next step. Previews are decoded at `PREVIEW_RESOLUTION`, or the final resolution when that is lower."""
    events: queue.Queue = queue.Queue()

    def on_step_end(_pipe, step: int, _timestep, tensors: dict) -> dict:
        if cancel.is_set():
            raise GenerationCancelled()
        events.put(("step", step + 1))
        return tensors

    def work() -> None:
        try:
            preview_resolution = min(PREVIEW_RESOLUTION, settings.get("octree_resolution", PREVIEW_RESOLUTION))
            output = pipe(image, preprocess=False, preview_every=preview_every, preview_resolution=preview_resolution,
                          preview_callback=lambda event: events.put(("preview", event)),
                          callback_on_step_end=on_step_end, **settings)
            events.put(("done", output))
        except Exception as error:  # noqa: BLE001 - every failure must reach the waiting handler
            events.put(("error", error))

    threading.Thread(target=work, daemon=True, name="triposg-generate").start()
    while True:
        kind, payload = events.get()
        yield kind, payload
        if kind in ("done", "error"):
            return


def format_progress(step: int, num_steps: int, elapsed: float) -> str:
    """Markdown progress line: step i of N, elapsed time and the sampling ETA."""
    eta = elapsed / step * (num_steps - step)
    return f"**Sampling** step {step} of {num_steps} · {elapsed:.1f} s elapsed · about {eta:.1f} s left"


def format_stats(mesh: trimesh.Trimesh, timings: dict[str, float], info: ImageFileInfo, prepared: PreprocessResult,
                 settings: GenerationSettings) -> str:
    """Markdown mesh statistics, time per stage and what was done to the input."""
    stages = " · ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
    faces = f"simplified to ≤{settings.faces:,}" if settings.faces else "not simplified"
    watertight = "yes" if mesh.is_watertight else "no"
    lines = [
        f"**Mesh** {len(mesh.vertices):,} vertices · {len(mesh.faces):,} faces · watertight: {watertight} · {faces}",
        f"**Time** {stages} · total {sum(timings.values()):.2f} s",
        f"**Input** {info.format} {info.size[0]}×{info.size[1]} {info.mode} · foreground ratio "
        + f"{prepared.foreground_ratio:.2f} · {describe_cutout(prepared)}",
        f"**Settings** seed {settings.seed} · {settings.num_inference_steps} steps · guidance "
        + f"{settings.guidance_scale:g} · {settings.num_tokens} tokens · resolution {settings.octree_resolution}",
    ]
    return "\n\n".join(lines)


class GenerateHandlers:
    """The Generate tab's event handlers, bound to one pipeline and the session folders."""

    def __init__(self, pipe: TripoSGPipeline, sessions: SessionFolders):
        self.pipe = pipe
        self.sessions = sessions

    @staticmethod
    def prepare(image: str | None, background: str, strokes: dict | None,
                foreground_ratio: float) -> tuple[PreprocessResult, ImageFileInfo]:
        """Open the upload and cut the object out with the chosen method and the user's strokes."""
        choices = [value for _, value in BACKGROUND_CHOICES]
        if background not in choices:
            raise gr.Error(f"background must be one of {', '.join(choices)}, got {background!r}")
        loaded, info = open_input_image(image)
        try:
            hints = strokes_to_hints(strokes, loaded.size)
            return preprocess_image(loaded, foreground_ratio=foreground_ratio, background=background,
                                    hints=hints), info
        except ImageError as error:
            raise gr.Error(f"This image cannot be used: {error}", print_exception=False) from None

    def cutout(self, image: str | None, background: str, strokes: dict | None, foreground_ratio: float):
        """Only the cut-out, to check (and correct) it before generating: (preprocessed image, status)."""
        try:
            ratio = float(foreground_ratio)
        except (TypeError, ValueError):
            raise gr.Error(f"foreground ratio must be a number, got {foreground_ratio!r}") from None
        if not 0.05 <= ratio <= 1.0:  # the range parse_settings enforces for Generate
            raise gr.Error(f"foreground ratio must be between 0.05 and 1.0, got {ratio}")
        prepared, info = self.prepare(image, background, strokes, ratio)
        x0, y0, x1, y1 = prepared.bbox
        status = (f"**Cut-out** {info.format} {info.size[0]}×{info.size[1]} · object in x {x0}–{x1}, y {y0}–{y1} · "
                  + describe_cutout(prepared))
        return prepared.image, status

    @staticmethod
    def editable(image: str | None):
        """The correction editor's value for a new upload: the loaded image to paint on, no strokes yet."""
        if image is None:
            return None
        try:
            loaded = load_image(image)
        except ImageError:
            return None  # Generate / Cut out name the problem
        return {"background": np.asarray(loaded.convert("RGB")), "layers": [], "composite": None}

    def generate(self, image: str | None, seed: float, randomize_seed: bool, steps: float, guidance_scale: float,
                 num_tokens: float, octree_resolution: float, foreground_ratio: float, simplify: bool,
                 target_faces: float, file_format: str, background: str = "auto", strokes: dict | None = None,
                 request: gr.Request = None):
        """Stream (mesh file, viewer, preprocessed image, status, seed, GLB path) while generating."""
        start = time.perf_counter()
        settings = parse_settings(seed, randomize_seed, steps, guidance_scale, num_tokens, octree_resolution,
                                  foreground_ratio, simplify, target_faces)
        if file_format not in SUPPORTED_FORMATS:
            raise gr.Error(f"file format must be one of {', '.join(SUPPORTED_FORMATS)}, got {file_format!r}")
        # 1. Preprocess here rather than in the pipeline, so the result shows before sampling starts
        prepared, info = self.prepare(image, background, strokes, settings.foreground_ratio)
        timings = {"preprocess": time.perf_counter() - start}
        processed = gr.update(value=prepared.image, label=f"Preprocessed · {prepared.method}")
        folder = self.sessions.ensure(request)  # API clients never fire "load"
        run_id = f"{settings.seed}_{uuid.uuid4().hex[:8]}"  # runs of one session may overlap (API clients)
        skip = gr.skip()
        yield skip, None, processed, "**Encoding the image…**", settings.seed, skip

        # 2. Sample, streaming progress and coarse previews; then extract the final surface
        cancel = threading.Event()
        num_steps = settings.num_inference_steps
        sample_start = time.perf_counter()
        output: TripoSGPipelineOutput | None = None
        try:
            events = run_generation(pipeline_for_run(self.pipe), prepared.image, settings.pipeline_kwargs(),
                                    max(1, num_steps // PREVIEWS_PER_RUN), cancel)
            for kind, payload in events:
                if kind == "step":
                    status = format_progress(payload, num_steps, time.perf_counter() - sample_start)
                    if payload == num_steps:
                        status += " · extracting the surface…"
                    yield skip, skip, skip, status, skip, skip
                elif kind == "preview" and payload.mesh is not None:
                    event: PreviewEvent = payload
                    preview = export_mesh(event.mesh, folder / f"preview_{run_id}_{event.step}.glb")
                    yield skip, str(preview), skip, skip, skip, skip
                elif kind == "error":
                    raise_as_gradio_error(payload)
                elif kind == "done":
                    output = payload
        finally:
            cancel.set()  # stops the worker if the client went away mid-run

        # 3. Export: the GLB (with the settings) for the viewer, and the requested download format
        mesh = output.meshes[0]
        timings.update({k: v for k, v in output.timings.items() if k != "preprocess"})
        metadata = {**settings.pipeline_kwargs(), "foreground_ratio": settings.foreground_ratio,
                    "background": prepared.method, "timings": timings}
        stem = f"triposg_{run_id}"
        glb = export_mesh(mesh, folder / f"{stem}.glb", metadata=metadata)
        download = glb if file_format == "glb" else export_mesh(mesh, folder / f"{stem}.{file_format}")
        stats = format_stats(mesh, timings, info, prepared, settings)
        yield str(download), str(glb), prepared.image, stats, settings.seed, str(glb)

    def generate_example(self, image: str, request: gr.Request = None):
        """An example's final result with the tab's defaults (what the lazy example cache stores)."""
        *_, last = self.generate(image, **self.example_settings, request=request)
        download, viewer, processed, status, *_ = last
        return download, viewer, processed, status

    example_settings: dict[str, Any] = {}  # set by build_generate_tab from the model's defaults

    def convert(self, glb_path: str | None, file_format: str, request: gr.Request):
        """Re-export the last generated mesh in another format (no new generation)."""
        if not glb_path or not Path(glb_path).is_file():
            return gr.skip()
        if file_format == "glb":
            return glb_path
        mesh = trimesh.load(glb_path, force="mesh")
        folder = self.sessions.ensure(request)
        return str(export_mesh(mesh, folder / f"{Path(glb_path).stem}.{file_format}"))


def raise_as_gradio_error(error: Exception) -> None:
    """Turn a pipeline failure into a `gr.Error` with a message for the user (never a bare 500)."""
    if isinstance(error, gr.Error):
        raise error
    if isinstance(error, GenerationCancelled):
        raise gr.Error("Generation was cancelled.", print_exception=False)
    if isinstance(error, ValueError):  # ImageError, EmptySurfaceError and bad settings carry a usable message
        raise gr.Error(str(error), print_exception=False)
    logger.error("generation failed", exc_info=error)
    raise gr.Error(f"Generation failed ({type(error).__name__}: {error}). Try fewer tokens or a lower resolution.")


def gpu_duration(image=None, seed=None, randomize_seed=None, steps=50, guidance_scale=7.0, num_tokens=2048,
                 octree_resolution=256, *_, **__) -> int:
    """ZeroGPU seconds to ask for one generation with these settings (the handler's own arguments): a fixed
    part (loading, the image encoder, export) plus sampling, which grows with steps × tokens (twice with
    guidance), plus extraction, which grows with the resolution's cube. `GPU_DURATION_S` at the release's
    defaults (50 steps, 2048 tokens, 256³), at most `MAX_GPU_DURATION_S`."""
    try:
        steps, tokens, resolution = float(steps), float(num_tokens), float(octree_resolution)
        guided = float(guidance_scale) > 1.0
    except (TypeError, ValueError):
        return GPU_DURATION_S  # the handler names the bad value
    sampling = 40.0 * (steps / 50.0) * (tokens / 2048.0) * (1.0 if guided else 0.5)
    extraction = 40.0 * (resolution / 256.0) ** 3
    return int(min(MAX_GPU_DURATION_S, max(30.0, 40.0 + sampling + extraction)))


def on_gpu(fn: Callable, duration: Callable | int = gpu_duration) -> Callable:
    """`spaces.GPU(fn)` on Hugging Face ZeroGPU Spaces (the `spaces` package is installed), else `fn`;
    `duration` may be a function of `fn`'s arguments (ZeroGPU calls it per request)."""
    return spaces.GPU(duration=duration)(fn) if spaces is not None else fn


def build_generate_tab(handlers: GenerateHandlers, defaults: GenerationDefaults, cache_examples: bool = False) -> None:
    """The Generate tab: upload or pick an image, check and correct the cut-out, set sampling and extraction,
    stream the result. `cache_examples`: each example is generated once, when first clicked, and cached."""
    with gr.Row():
        with gr.Column(scale=1):
            image = pass_raw_file(gr.Image(label="Input image", type="filepath", image_mode=None,
                                           sources=["upload", "clipboard"], elem_id="input-image"))
            with gr.Row():
                button = gr.Button("Generate", variant="primary", elem_id="generate", scale=2)
                cutout_button = gr.Button("Cut out only", elem_id="cutout", scale=1)
            background = gr.Dropdown(BACKGROUND_CHOICES, value="auto", label="Background removal",
                                     elem_id="background")
            with gr.Accordion("Correct the cut-out", open=False, elem_id="correct"):
                gr.Markdown("Paint **green** over parts of the object the cut-out missed and **red** over "
                            "background it kept, then press *Cut out only* (or *Generate*).")
                strokes = gr.ImageEditor(
                    # An empty value (not None), so API callers may leave the strokes out.
                    value={"background": None, "layers": [], "composite": None},
                    label="Keep / remove strokes", type="numpy", image_mode="RGBA", sources=(), transforms=(),
                    layers=False, format="png", elem_id="strokes", height=360,
                    brush=gr.Brush(colors=[KEEP_COLOR, REMOVE_COLOR], default_color=KEEP_COLOR, color_mode="fixed"),
                    eraser=gr.Eraser(),
                )
            foreground_ratio = gr.Slider(0.5, 1.0, value=DEFAULT_FOREGROUND_RATIO, step=0.01, label="Foreground ratio",
                                         info="share of the square the object's long side fills")
            with gr.Row():
                seed = gr.Number(label="Seed", value=defaults.seed, precision=0, minimum=0)
                randomize_seed = gr.Checkbox(label="Randomize seed", value=False)
            with gr.Accordion("Sampling and extraction", open=True):
                steps = gr.Slider(1, MAX_STEPS, value=defaults.num_inference_steps, step=1, label="Inference steps")
                guidance_scale = gr.Slider(0.0, 15.0, value=defaults.guidance_scale, step=0.5, label="Guidance scale",
                                           info="≤ 1 turns classifier-free guidance off")
                num_tokens = gr.Slider(16, MAX_TOKENS, value=defaults.num_tokens, step=16, label="Latent tokens")
                resolutions = sorted({*RESOLUTION_CHOICES, defaults.octree_resolution})
                octree_resolution = gr.Dropdown(resolutions, value=defaults.octree_resolution,
                                                label="Extraction resolution")
                with gr.Row():
                    simplify = gr.Checkbox(label="Simplify", value=False)
                    target_faces = gr.Number(label="Target faces", value=DEFAULT_TARGET_FACES, precision=0, minimum=100)
        with gr.Column(scale=1):
            # A light grey backdrop: untextured meshes render near-white.
            viewer = gr.Model3D(label="3D model", height=420, clear_color=(0.86, 0.88, 0.91, 1.0), elem_id="viewer")
            status = gr.Markdown("Upload an image and press **Generate**.", label="Statistics", elem_id="status")
            with gr.Row():
                processed = gr.Image(label="Preprocessed", interactive=False, height=220, elem_id="preprocessed")
                with gr.Column():
                    file_format = gr.Dropdown(list(SUPPORTED_FORMATS), value="glb", label="Download format")
                    download = gr.File(label="Download", interactive=False, elem_id="download")
    last_glb = gr.State(None)  # a file path, never tensors: UI state stays small
    examples = sorted(EXAMPLES_DIR.glob("*.png")) if EXAMPLES_DIR.is_dir() else []
    if examples:
        handlers.example_settings = {
            "seed": defaults.seed, "randomize_seed": False, "steps": defaults.num_inference_steps,
            "guidance_scale": defaults.guidance_scale, "num_tokens": defaults.num_tokens,
            "octree_resolution": defaults.octree_resolution, "foreground_ratio": DEFAULT_FOREGROUND_RATIO,
            "simplify": False, "target_faces": DEFAULT_TARGET_FACES, "file_format": "glb"}
        cached = {"fn": on_gpu(handlers.generate_example, GPU_DURATION_S), "outputs": [download, viewer, processed, status],
                  "cache_examples": True, "cache_mode": "lazy"} if cache_examples else {}
        gr.Examples([[str(path)] for path in examples], inputs=[image], label="Examples", examples_per_page=16,
                    **cached)

    button.click(
        on_gpu(handlers.generate),
        [image, seed, randomize_seed, steps, guidance_scale, num_tokens, octree_resolution, foreground_ratio,
         simplify, target_faces, file_format, background, strokes],
        [download, viewer, processed, status, seed, last_glb],
        api_name="generate",
    )
    cutout_button.click(handlers.cutout, [image, background, strokes, foreground_ratio], [processed, status],
                        api_name="cutout")
    image.change(handlers.editable, [image], [strokes], api_visibility="private")
    file_format.change(handlers.convert, [last_glb, file_format], [download], api_visibility="private")


# ----------------------------------------------------------------------------------------------
# Ablations and evaluation tabs
# ----------------------------------------------------------------------------------------------

MAX_VARIANTS = 4  # side-by-side slots in the Ablations tab
ARENA_VIEWS = ViewConfig(num_views=8, resolution=192)  # 4 of 8 turntable views per comparison: fast on CPU
ARENA_BOOTSTRAP = 100  # replicates for the Elo intervals; a demo run has few comparisons
JUDGE_CHOICES = [("offline proxy (no network; measured quantities, not a visual judge)", "offline"),
                 ("OpenAI-compatible API (OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL)", "openai"),
                 ("Anthropic API (ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL / ANTHROPIC_MODEL)", "anthropic")]


def default_variants(defaults: GenerationDefaults) -> pd.DataFrame:
    """The variants table's starting rows: the loaded model as it ships, with half the steps, and two
    empty slots (a row without a model is skipped)."""
    base = VariantSpec(LOADED_MODEL, MODEL_SAMPLER, defaults.num_inference_steps, defaults.guidance_scale,
                       defaults.num_tokens, defaults.octree_resolution)
    fewer_steps = dataclasses.replace(base, num_inference_steps=max(1, base.num_inference_steps // 2))
    rows = [dataclasses.asdict(base), dataclasses.asdict(fewer_steps)]
    rows += [{column: "" for column in VARIANT_COLUMNS}] * (MAX_VARIANTS - len(rows))
    return pd.DataFrame(rows, columns=list(VARIANT_COLUMNS))


def read_variants(table: pd.DataFrame | dict | list | None, min_count: int = 2) -> list[VariantSpec]:
    """The variants table (a DataFrame from the UI, or {"headers", "data"} from an API client) as specs;
    `gr.Error` for a bad value."""
    if isinstance(table, dict):
        table = pd.DataFrame(table.get("data") or [], columns=table.get("headers"))
    frame = pd.DataFrame(table if table is not None else [])
    rows = [{key: (None if isinstance(value, float) and np.isnan(value) else value) for key, value in row.items()}
            for row in frame.to_dict("records")]
    try:
        return parse_variant_rows(rows, min_count=min_count, max_count=MAX_VARIANTS)
    except ValueError as error:
        raise gr.Error(str(error), print_exception=False) from None


def as_gradio_error(error: Exception) -> gr.Error:
    """A load, test-set or judge failure the user can fix, as a `gr.Error` with its message."""
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, (FileNotFoundError, ValueError, OSError)):
        return gr.Error(str(error), print_exception=False)
    logger.error("evaluation failed", exc_info=error)
    return gr.Error(f"{type(error).__name__}: {error}")


class AblationHandlers:
    """The Ablations and Evaluation tabs' handlers: variants come from `pipelines` (each model loaded once),
    files go to the session folders, measured ablation CSVs are read from `results_dir`."""

    def __init__(self, pipelines: PipelineCache, sessions: SessionFolders, results_dir: Path):
        self.pipelines = pipelines
        self.sessions = sessions
        self.results_dir = results_dir

    def compare(self, image: str | None, seed: float, variants, request: gr.Request, progress=gr.Progress()):  # noqa: B008 - gradio's idiom
        """Run 2–4 variants on one image and seed → 4 meshes, 4 normal renders, a summary and timings."""
        specs = read_variants(variants)
        settings = parse_settings(seed, False, 1, 0.0, 1, 32, DEFAULT_FOREGROUND_RATIO, False, 100)
        loaded, _ = open_input_image(image)
        try:
            prepared = preprocess_image(loaded, foreground_ratio=settings.foreground_ratio)
        except ImageError as error:
            raise gr.Error(f"This image cannot be used: {error}", print_exception=False) from None
        folder = self.sessions.ensure(request) / "compare" / uuid.uuid4().hex[:8]
        runs = []
        for number, spec in enumerate(specs, start=1):
            progress((number - 1) / len(specs), desc=f"variant {number} of {len(specs)}: {spec.label}")
            try:
                runs.append(run_variant(self.pipelines, prepared.image, spec, settings.seed))
            except Exception as error:  # noqa: BLE001 - name the variant in the message
                raise gr.Error(f"variant {number} ({spec.model}): {as_gradio_error(error).message}",
                               print_exception=False) from None
        meshes, normals = [None] * MAX_VARIANTS, [None] * MAX_VARIANTS
        for index, run in enumerate(runs):
            if run.mesh is not None:
                meshes[index] = str(export_mesh(run.mesh, folder / f"variant_{index + 1}.glb",
                                                metadata={**dataclasses.asdict(run.spec), "seed": settings.seed}))
                normals[index] = run.normal
        lines = [f"**Variant {i}** {run.spec.label} · " + (f"failed: {run.error}" if run.error else
                 f"{len(run.mesh.faces):,} faces · {sum(run.timings.values()):.2f} s")
                 for i, run in enumerate(runs, start=1)]
        summary = f"Seed {settings.seed} · background: {prepared.method}\n\n" + "\n\n".join(lines)
        return (*meshes, *normals, summary, timings_table(runs))

    def measured(self) -> tuple[str, Any]:
        """Reload the measured-results folder: (status, dropdown update)."""
        status, names = describe_results_folder(self.results_dir)
        return status, gr.update(choices=names, value=names[0] if names else None)

    def show_measured(self, name: str | None) -> tuple[Any, Any]:
        """One measured CSV as (table, bar chart)."""
        table = next((t for t in read_results_folder(self.results_dir) if t.name == name and t.frame is not None), None)
        if table is None:
            return None, None
        return table.frame, bar_chart(table.frame, title=f"measured: {name}")

    def normal_fid(self, variants, test_set_path: str, split: str, test_zip: str | None, limit: float, seed: float,
                   request: gr.Request, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - gradio's idiom
        """Normal-FID of 1–4 variants on a test set → (results table, bar chart, history, status)."""
        specs = read_variants(variants, min_count=1)
        seed = parse_settings(seed, False, 1, 0.0, 1, 32, DEFAULT_FOREGROUND_RATIO, False, 100).seed
        folder = self.sessions.ensure(request) / "normal_fid"
        limit = int(limit) if limit else None
        source = test_zip or (test_set_path or "").strip()
        if not source:
            raise gr.Error("Choose a test set: a corpus folder (built by `python -m training.data build`), a folder "
                           "of meshes, or upload a .zip of meshes.", print_exception=False)
        try:
            progress(0.0, desc="loading the test set")
            test_set = load_test_set(source, split=split, work_dir=folder / "test_set", limit=limit, progress=False)
            extractor = dinov2_named_extractor(self.pipelines.get(LOADED_MODEL)[0], "the app's loaded model")
            rows = []
            for number, spec in enumerate(specs, start=1):
                progress((number - 1) / len(specs), desc=f"variant {number} of {len(specs)}")
                variant = spec_model_variant(self.pipelines, spec, seed)
                result = run_normal_fid(test_set, variant, folder / "runs" / uuid.uuid4().hex[:8],
                                        NormalFidConfig(seed=seed), [extractor], GenerationCache(folder / "cache"))
                summary = result.summary
                rows.append({"variant": f"{number}: {spec.label}", **summary["metrics"],
                             "objects": summary["counts"]["total"], "failed": summary["counts"]["failed"],
                             "seconds": summary["seconds"]})
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            raise as_gradio_error(error) from None
        results = pd.DataFrame(rows)
        metric = next((m for m in ("fid", "fd_dinov2", "chamfer") if m in results and results[m].notna().any()), None)
        chart = bar_chart(results, metric=metric, label="variant", title=f"Normal-FID run on {test_set.name}")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        history = append_history(folder / "history.csv", [{"time": stamp, "test_set": test_set.name, "seed": seed,
                                                            **row} for row in rows])
        fid_note = "" if results["fid"].notna().any() else (
            " FID is unavailable (no local Inception weights, see `TRIPOSG_INCEPTION_WEIGHTS`); FD-DINOv2 is a "
            "Fréchet distance over DINOv2 features, not FID.")
        status = f"**{len(test_set)} objects** from {test_set.name} · seed {seed}.{fid_note}"
        return results, chart, history, status

    def arena(self, variants, images: list[str] | None, num_examples: float, judge_kind: str, seed: float,
              request: gr.Request, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - gradio's idiom
        """Generate each variant's mesh for each image, have the judge compare them pairwise, fit Elo →
        (Elo table, radar chart, status, comparison slider, run folder)."""
        specs = read_variants(variants)
        seed = parse_settings(seed, False, 1, 0.0, 1, 32, DEFAULT_FOREGROUND_RATIO, False, 100).seed
        paths = [str(p) for p in images or []]
        if not paths:
            examples = sorted(EXAMPLES_DIR.glob("*.png")) if EXAMPLES_DIR.is_dir() else []
            paths = [str(p) for p in examples[:max(0, int(num_examples or 0))]]
        if not paths:
            raise gr.Error("Upload images or choose at least one example image to compare on.", print_exception=False)
        try:
            judge = make_judge(judge_kind)  # API judges read their settings from environment variables only
        except ValueError as error:
            raise gr.Error(f"judge: {error}", print_exception=False) from None
        folder = self.sessions.ensure(request) / "arena" / uuid.uuid4().hex[:8]
        config = ArenaConfig(views=ARENA_VIEWS, num_completions=1, n_bootstrap=ARENA_BOOTSTRAP, seed=seed)
        try:
            methods, failures = generate_assets(self.pipelines, specs, paths, seed, folder / "meshes",
                                                lambda fraction, text: progress(fraction, desc=text))
            result = run_arena(methods, judge, folder, config=config, progress=True)  # tqdm → the progress bar
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            raise as_gradio_error(error) from None
        table = result.table.reset_index().rename(columns={"index": "method"}).round(1)
        proxy = " (a PROXY: it decides from measured quantities, not by looking)" if result.judge.get("is_proxy") else ""
        counts = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in result.counts.items())
        status = f"**Judge** {result.judge.get('name')}{proxy} · {counts}" + "".join(
            f"\n\nNo mesh: {failure}" for failure in failures)
        slider = gr.update(minimum=0, maximum=max(0, len(result.records) - 1), value=0, visible=True)
        return table, str(result.files["radar.png"]), status, slider, str(folder)

    def comparison(self, run_folder: str | None, index: float) -> tuple[Any, str]:
        """One comparison of an arena run: (its image as the judge saw it, the pair, replies and votes)."""
        if not run_folder or not (Path(run_folder) / "comparisons.jsonl").is_file():
            return None, "Run an arena first."
        records = [json.loads(line) for line in (Path(run_folder) / "comparisons.jsonl").read_text().splitlines()]
        records.sort(key=lambda record: record["comparison_id"])
        record = records[min(max(int(index or 0), 0), len(records) - 1)]
        votes = " · ".join(f"{criterion}: {vote}" for parsed in record["parsed"] if parsed["votes"]
                           for criterion, vote in zip(record["criteria"], parsed["votes"]))
        replies = "\n\n".join(f"```\n{reply.strip()}\n```" for reply in record["replies"]) or "(no reply)"
        text = (f"**Comparison {record['comparison_id']}** on `{record['asset_id']}` · left: {record['left']} · "
                f"right: {record['right']}\n\n**Votes** (1 = {record['method_a']}, 2 = {record['method_b']}, "
                f"3 = draw): {votes or 'none valid'}" + (f"\n\n**Error** {record['error']}" if record["error"] else "")
                + f"\n\n**Judge replies**\n\n{replies}")
        return str(Path(run_folder) / record["image"]), text


def shipped_variants_table(group: str | None) -> pd.DataFrame:
    """The variants table filled with a shipped ablation group's variants (up to `MAX_VARIANTS`), each
    with its own sampler and `generation_config.json` settings."""
    paths = shipped_variant_groups().get(group or "")
    if not paths:
        raise gr.Error(f"no shipped ablation variants named {group!r}; the shipped groups are in "
                       "assets/ablation-variants")
    rows = [dataclasses.asdict(spec) for spec in shipped_variant_specs(paths[:MAX_VARIANTS])]
    rows += [{column: "" for column in VARIANT_COLUMNS}] * (MAX_VARIANTS - len(rows))
    return pd.DataFrame(rows, columns=list(VARIANT_COLUMNS))


def variants_input(defaults: GenerationDefaults, label: str) -> gr.Dataframe:
    """The editable variants table (one row per variant; a row without a model is skipped)."""
    return gr.Dataframe(
        default_variants(defaults), headers=list(VARIANT_COLUMNS), label=label, interactive=True,
        datatype=["str", "str", "number", "number", "number", "number", "str"], column_count=len(VARIANT_COLUMNS),
    )


VARIANTS_HELP = (
    f"**model**: `{LOADED_MODEL}` (the model this app runs), `default` (the embedded model), a pipeline folder "
    f"or a hub id; each is loaded once. **sampler**: `{MODEL_SAMPLER}` (the model's own) or one of "
    f"{', '.join(f'`{name}`' for name in SAMPLERS)} — only those matching the objective the model was trained "
    "with (a rectified-flow model predicts a velocity; running it with a DDPM or EDM update is not an "
    "ablation, so it is refused). **extraction**: " + " or ".join(f"`{m}`" for m in EXTRACTION_METHODS) + "."
)


def build_ablations_tab(handlers: AblationHandlers, defaults: GenerationDefaults) -> None:
    """Side-by-side variants on one image and seed, and the paper's ablation tables beside measured ones."""
    with gr.Row():
        with gr.Column(scale=1):
            image = pass_raw_file(gr.Image(label="Input image", type="filepath", image_mode=None,
                                           sources=["upload", "clipboard"]))
            seed = gr.Number(label="Seed (the same for every variant)", value=defaults.seed, precision=0, minimum=0)
        with gr.Column(scale=2):
            variants = variants_input(defaults, "Variants (2–4 rows)")
            gr.Markdown(VARIANTS_HELP)
            shipped = shipped_variant_groups()
            if shipped:  # trained ablation variants that ship with the repo (training.ablations)
                with gr.Row():
                    group = gr.Dropdown(
                        [(f"{name} ({', '.join(p.name for p in paths)})", name) for name, paths in shipped.items()],
                        value=next(iter(shipped)), label="Shipped ablation variants", scale=3)
                    fill = gr.Button("Put them in the table", scale=1)
                fill.click(shipped_variants_table, [group], [variants], api_visibility="private")
            button = gr.Button("Compare", variant="primary")
    meshes, normals = [], []
    with gr.Row():
        for number in range(1, MAX_VARIANTS + 1):
            with gr.Column(min_width=160):
                meshes.append(gr.Model3D(label=f"Variant {number}", height=260, clear_color=(0.86, 0.88, 0.91, 1.0)))
                normals.append(gr.Image(label=f"Normals {number} (evaluation view)", interactive=False, height=200))
    summary = gr.Markdown()
    timings = gr.Dataframe(label="Timings (seconds per stage)", interactive=False)
    button.click(on_gpu(handlers.compare), [image, seed, variants], [*meshes, *normals, summary, timings],
                 api_name="compare")

    with gr.Accordion("Ablation tables: the paper (§7) and our measurements", open=False), gr.Row():
        with gr.Column():
            gr.Markdown("### The paper's Tables 1–4")
            for table in paper_ablation_tables():
                gr.Markdown(f"**Table {table.number}.** {table.title}" + (f" _{table.note}_" if table.note else ""))
                gr.Dataframe(table.frame, interactive=False)
                gr.Plot(bar_chart(table.frame, table.metric, "label", f"Table {table.number}",
                                  table.lower_is_better))
        with gr.Column():
            gr.Markdown("### Measured")
            status, names = describe_results_folder(handlers.results_dir)
            measured_status = gr.Markdown(status)
            choice = gr.Dropdown(names, value=names[0] if names else None, label="Result file")
            reload = gr.Button("Reload results folder")
            first = handlers.show_measured(names[0]) if names else (None, None)
            measured_table = gr.Dataframe(first[0], interactive=False)
            measured_plot = gr.Plot(first[1])
    reload.click(handlers.measured, None, [measured_status, choice], api_visibility="private")
    choice.change(handlers.show_measured, [choice], [measured_table, measured_plot], api_visibility="private")


def build_normal_fid_tab(handlers: AblationHandlers, defaults: GenerationDefaults) -> None:
    """Normal-FID (paper §5.2.2) of variants on a corpus split or an uploaded zip of meshes."""
    with gr.Row():
        with gr.Column(scale=2):
            variants = variants_input(defaults, "Variants (1–4 rows)")
            gr.Markdown(VARIANTS_HELP)
        with gr.Column(scale=1):
            test_set = gr.Textbox(label="Test set folder", placeholder="a corpus (python -m training.data build) "
                                  "or a folder of meshes",
                                  value=str(DEFAULT_CORPUS) if (DEFAULT_CORPUS / "manifest.csv").is_file() else "")
            split = gr.Dropdown(["test", "val", "train"], value="test", label="Corpus split")
            test_zip = gr.File(label="…or a .zip of meshes", file_types=[".zip"], type="filepath")
            limit = gr.Number(label="Objects (0 = all)", value=0, precision=0, minimum=0)
            seed = gr.Number(label="Seed", value=defaults.seed, precision=0, minimum=0)
            button = gr.Button("Run Normal-FID", variant="primary")
    status = gr.Markdown()
    with gr.Row():
        results = gr.Dataframe(label="Results", interactive=False)
        chart = gr.Plot(label="Bar chart")
    history = gr.Dataframe(label="History of runs (this session)", interactive=False)
    button.click(on_gpu(handlers.normal_fid), [variants, test_set, split, test_zip, limit, seed],
                 [results, chart, history, status], api_name="normal_fid")


def build_arena_tab(handlers: AblationHandlers, defaults: GenerationDefaults) -> None:
    """GPTEval3D-style arena: a judge compares the variants' meshes pairwise; Elo per criterion."""
    with gr.Row():
        with gr.Column(scale=2):
            variants = variants_input(defaults, "Variants (2–4 rows)")
            gr.Markdown(VARIANTS_HELP)
        with gr.Column(scale=1):
            images = gr.File(label="Input images (none = the examples)", file_count="multiple", type="filepath",
                             file_types=["image"])
            num_examples = gr.Slider(1, 14, value=3, step=1, label="Example images to use when none are uploaded")
            judge = gr.Radio(JUDGE_CHOICES, value="offline", label="Judge",
                             info="API settings come from environment variables only")
            seed = gr.Number(label="Seed", value=defaults.seed, precision=0, minimum=0)
            button = gr.Button("Run arena", variant="primary")
    status = gr.Markdown()
    with gr.Row():
        elo = gr.Dataframe(label="Elo ratings (methods × criteria)", interactive=False)
        radar = gr.Image(label="Radar chart", interactive=False, height=380)
    run_folder = gr.State(None)
    with gr.Accordion("Browse comparisons", open=True):
        index = gr.Slider(0, 1, value=0, step=1, label="Comparison", visible=False)
        with gr.Row():
            comparison_image = gr.Image(label="As the judge saw it (left | right)", interactive=False)
            comparison_text = gr.Markdown()
    button.click(on_gpu(handlers.arena), [variants, images, num_examples, judge, seed],
                 [elo, radar, status, index, run_folder], api_name="arena").then(
        handlers.comparison, [run_folder, index], [comparison_image, comparison_text], api_visibility="private")
    index.change(handlers.comparison, [run_folder, index], [comparison_image, comparison_text],
                 api_visibility="private")


def describe_model(pipe: TripoSGPipeline, defaults: GenerationDefaults, model: str | None) -> str:
    """One line on the loaded model: what it is, how big, what it was trained on (so nobody expects more)."""
    millions = sum(p.numel() for p in pipe.transformer.parameters()) / 1e6
    size = f"{millions:.0f}M" if millions >= 10 else f"{millions:.1f}M"
    what = (f"a {size}-parameter flow transformer, {defaults.num_tokens} latent tokens, "
            f"{defaults.num_inference_steps} steps by default")
    if model in (None, DEFAULT_MODEL):
        return (f"**Model: the embedded default** — {what}. It is small and was trained only on this project's 20 "
                "procedural shape families (boxes, chairs, mugs, lamps, …): expect the nearest such shape, and "
                "thin parts that may break. For real objects start the demo with `--model VAST-AI/TripoSG`.")
    name = Path(model).name if os.sep in str(model) else str(model)
    return f"**Model: {name}** — {what}."


def build_demo(pipe: TripoSGPipeline, defaults: GenerationDefaults, sessions_root: str | os.PathLike | None = None,
               results_dir: str | os.PathLike = DEFAULT_RESULTS_DIR, model: str | None = None,
               cache_examples: bool = False) -> gr.Blocks:
    """The Blocks app for `pipe`; `defaults` are the model's sampling settings; per-session files go under
    `sessions_root` (default: a `triposg-sessions` folder in the system temp folder); measured ablation CSVs
    are read from `results_dir`. `model` names where `pipe` came from (a folder, hub id or "default"), so the
    ablation tabs reuse it under that name; other models they ask for are loaded once each."""
    pipe.set_progress_bar_config(disable=True)
    root = Path(sessions_root) if sessions_root is not None else Path(tempfile.gettempdir()) / "triposg-sessions"
    sessions = SessionFolders(root)
    handlers = GenerateHandlers(pipe, sessions)
    pipelines = PipelineCache(pipe, defaults, device=pipe.device.type, loaded_source=model)
    ablations = AblationHandlers(pipelines, sessions, Path(results_dir))
    # Gradio keeps its own copies of served files; drop those a day old, checked hourly.
    with gr.Blocks(title="TripoSG", delete_cache=(3600, SESSION_MAX_AGE_S)) as demo:
        gr.Markdown("# TripoSG — image to 3D\nUpload a photo or render of one object; check its cut-out "
                    "(*Cut out only*) and correct it with strokes when the background fooled it.")
        gr.Markdown(describe_model(pipe, defaults, model), elem_id="model-summary")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                build_generate_tab(handlers, defaults, cache_examples)
            with gr.Tab("Ablations", id="ablations"):
                build_ablations_tab(ablations, defaults)
            with gr.Tab("Normal-FID", id="normal_fid"):
                build_normal_fid_tab(ablations, defaults)
            with gr.Tab("Arena", id="arena"):
                build_arena_tab(ablations, defaults)
        demo.load(sessions.create, api_visibility="private")
        demo.unload(sessions.delete)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="TripoSG Gradio demo")
    parser.add_argument("--model", default=os.environ.get(MODEL_ENV) or None,
                        help=f"pipeline folder or hub id (default: ${MODEL_ENV}, else the embedded model)")
    parser.add_argument("--device", default=os.environ.get(DEVICE_ENV) or None,
                        help=f"cpu, cuda (default: ${DEVICE_ENV}, else cuda when available)")
    parser.add_argument("--cache-examples", action=argparse.BooleanOptionalAction,
                        default=os.environ.get(CACHE_EXAMPLES_ENV, "").lower() in ("1", "true", "yes"),
                        help=f"generate each example once, on first click, and cache it (default: ${CACHE_EXAMPLES_ENV})")
    # Hugging Face Spaces sets GRADIO_SERVER_NAME/PORT; locally the demo stays on this machine.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--max-concurrency", type=int, default=1,
                        help="generations run at once; the others wait in the queue")
    args = parser.parse_args(argv)
    if args.max_concurrency < 1:
        parser.error("--max-concurrency must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the demo works offline: no telemetry calls
    pipe, defaults = load_pipeline(args.model, args.device)
    demo = build_demo(pipe, defaults, model=args.model or DEFAULT_MODEL, cache_examples=args.cache_examples)
    demo.queue(default_concurrency_limit=args.max_concurrency)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
