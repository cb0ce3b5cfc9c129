"""Gradio demo: image in, 3D mesh out, streamed while sampling. The UI is built from a pipeline passed in
(`build_demo(pipe, defaults)`); no model code and no global model here. One `build_*_tab` per tab.

    python app.py [--model PATH_OR_HUB_ID] [--device cpu|cuda] [--host 127.0.0.1] [--port 7860] [--share]
                  [--max-concurrency N]

API (gradio_client): `Client(url).predict(handle_file("cone.png"), seed=42, ..., api_name="/generate")`
returns (mesh file, viewer GLB, preprocessed image, statistics, seed).
"""

from __future__ import annotations

import argparse
import copy
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
import PIL.Image
import trimesh

from triposg.geometry import SUPPORTED_FORMATS, export_mesh
from triposg.loading import GenerationDefaults, load_pipeline
from triposg.pipelines import PreviewEvent, TripoSGPipeline, TripoSGPipelineOutput
from triposg.preprocessing import (
    MAX_SIDE,
    ImageError,
    ImageFileInfo,
    PreprocessResult,
    load_image,
    preprocess_image,
    read_image_info,
)

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent / "assets" / "examples"
RESOLUTION_CHOICES = (32, 64, 128, 256, 512)  # hierarchical extraction needs power-of-two multiples of 32
DEFAULT_FOREGROUND_RATIO = 0.9  # paper §5.1, as in preprocess_image
DEFAULT_TARGET_FACES = 50_000  # enough for smooth shading, small enough for a browser viewer
PREVIEWS_PER_RUN = 5  # the 3D preview updates about this often per generation (each costs a coarse decode)
PREVIEW_RESOLUTION = 64  # coarse on purpose: a preview should cost less than a sampling step
MAX_STEPS = 200  # API callers can ask for anything; beyond this a request only blocks the queue
MAX_TOKENS = 4096  # twice the release's 2048; larger sets only cost time and memory
SESSION_MAX_AGE_S = 24 * 3600  # API clients never fire "unload": their folders are swept after a day
GPU_DURATION_S = 120  # ZeroGPU time slice requested per generation


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

    def number(name: str, value, kind: type, low: float, high: float):
        try:
            value = kind(value)
        except (TypeError, ValueError):
            raise gr.Error(f"{name} must be a number, got {value!r}") from None
        if not low <= value <= high:
            raise gr.Error(f"{name} must be between {low} and {high}, got {value}")
        return value

    if randomize_seed:
        seed = random.randrange(2**31)
    resolution = number("extraction resolution", octree_resolution, int, 32, max(RESOLUTION_CHOICES))
    if resolution % 32 or resolution & (resolution - 1):
        raise gr.Error(f"extraction resolution must be one of {RESOLUTION_CHOICES}, got {resolution}")
    return GenerationSettings(
        seed=number("seed", seed, int, 0, 2**32 - 1),
        num_inference_steps=number("inference steps", steps, int, 1, MAX_STEPS),
        guidance_scale=number("guidance scale", guidance_scale, float, 0.0, 50.0),
        num_tokens=number("latent tokens", num_tokens, int, 1, MAX_TOKENS),
        octree_resolution=resolution,
        foreground_ratio=number("foreground ratio", foreground_ratio, float, 0.05, 1.0),
        faces=number("target faces", target_faces, int, 100, 10_000_000) if simplify else None,
    )


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
    run = type(pipe)(**{**pipe.components, "scheduler": copy.deepcopy(pipe.scheduler)})
    run.set_progress_bar_config(disable=True)
    return run


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
        f"**Input** {info.format} {info.size[0]}×{info.size[1]} {info.mode} · background: {prepared.method} · "
        + f"foreground ratio {prepared.foreground_ratio:.2f}",
        f"**Settings** seed {settings.seed} · {settings.num_inference_steps} steps · guidance "
        + f"{settings.guidance_scale:g} · {settings.num_tokens} tokens · resolution {settings.octree_resolution}",
    ]
    return "\n\n".join(lines)


class GenerateHandlers:
    """The Generate tab's event handlers, bound to one pipeline and the session folders."""

    def __init__(self, pipe: TripoSGPipeline, sessions: SessionFolders):
        self.pipe = pipe
        self.sessions = sessions

    def generate(self, image: str | None, seed: float, randomize_seed: bool, steps: float, guidance_scale: float,
                 num_tokens: float, octree_resolution: float, foreground_ratio: float, simplify: bool,
                 target_faces: float, file_format: str, request: gr.Request):
        """Stream (mesh file, viewer, preprocessed image, status, seed, GLB path) while generating."""
        start = time.perf_counter()
        settings = parse_settings(seed, randomize_seed, steps, guidance_scale, num_tokens, octree_resolution,
                                  foreground_ratio, simplify, target_faces)
        if file_format not in SUPPORTED_FORMATS:
            raise gr.Error(f"file format must be one of {', '.join(SUPPORTED_FORMATS)}, got {file_format!r}")
        loaded, info = open_input_image(image)
        # 1. Preprocess here rather than in the pipeline, so the result shows before sampling starts
        try:
            prepared = preprocess_image(loaded, foreground_ratio=settings.foreground_ratio)
        except ImageError as error:
            raise gr.Error(f"This image cannot be used: {error}", print_exception=False) from None
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


def on_gpu(fn: Callable) -> Callable:
    """`spaces.GPU(fn)` on Hugging Face ZeroGPU Spaces (the `spaces` package is installed), else `fn`."""
    return spaces.GPU(duration=GPU_DURATION_S)(fn) if spaces is not None else fn


def build_generate_tab(handlers: GenerateHandlers, defaults: GenerationDefaults) -> None:
    """The Generate tab: upload or pick an image, set sampling and extraction, stream the result."""
    with gr.Row():
        with gr.Column(scale=1):
            image = pass_raw_file(gr.Image(label="Input image", type="filepath", image_mode=None,
                                           sources=["upload", "clipboard"], elem_id="input-image"))
            button = gr.Button("Generate", variant="primary", elem_id="generate")
            examples = sorted(EXAMPLES_DIR.glob("*.png")) if EXAMPLES_DIR.is_dir() else []
            if examples:
                gr.Examples([[str(path)] for path in examples], inputs=[image], label="Examples", examples_per_page=16)
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

    button.click(
        on_gpu(handlers.generate),
        [image, seed, randomize_seed, steps, guidance_scale, num_tokens, octree_resolution, foreground_ratio,
         simplify, target_faces, file_format],
        [download, viewer, processed, status, seed, last_glb],
        api_name="generate",
    )
    file_format.change(handlers.convert, [last_glb, file_format], [download], api_visibility="private")


def build_demo(pipe: TripoSGPipeline, defaults: GenerationDefaults, sessions_root: str | os.PathLike | None = None
               ) -> gr.Blocks:
    """The Blocks app for `pipe`; `defaults` are the model's sampling settings; per-session files go under
    `sessions_root` (default: a `triposg-sessions` folder in the system temp folder)."""
    pipe.set_progress_bar_config(disable=True)
    root = Path(sessions_root) if sessions_root is not None else Path(tempfile.gettempdir()) / "triposg-sessions"
    sessions = SessionFolders(root)
    handlers = GenerateHandlers(pipe, sessions)
    # Gradio keeps its own copies of served files; drop those a day old, checked hourly.
    with gr.Blocks(title="TripoSG", delete_cache=(3600, SESSION_MAX_AGE_S)) as demo:
        gr.Markdown("# TripoSG — image to 3D\nUpload one object on a plain or transparent background.")
        with gr.Tabs():  # noqa: SIM117 - later tabs (ablations, evaluation) each get a build_*_tab here
            with gr.Tab("Generate", id="generate"):
                build_generate_tab(handlers, defaults)
        demo.load(sessions.create, api_visibility="private")
        demo.unload(sessions.delete)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="TripoSG Gradio demo")
    parser.add_argument("--model", default=None, help="pipeline folder or hub id (default: the embedded model)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
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
    demo = build_demo(pipe, defaults)
    demo.queue(default_concurrency_limit=args.max_concurrency)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
