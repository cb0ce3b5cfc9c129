"""The demo's Generate tab: upload an image, check and correct its cut-out, set sampling and extraction, and
watch the mesh stream in (a coarse preview every few steps, then the final surface). Needs only `triposg`:
the demo runs without the evaluation lab (`app.py --no-lab`)."""

from __future__ import annotations

import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import PIL.Image
import trimesh

from triposg.geometry import SUPPORTED_FORMATS, export_mesh, read_glb_metadata, read_mesh
from triposg.loading import GenerationDefaults
from triposg.pipelines import PreviewEvent, TripoSGPipeline, TripoSGPipelineOutput
from triposg.pipelines.generation_config import LIMITS, check_resolution, checked_number, guided_steps
from triposg.texturing import TexturingResult
from triposg.preprocessing import (
    LOW_CONFIDENCE,
    CutoutHints,
    ImageError,
    ImageFileInfo,
    PreprocessResult,
    load_image,
    preprocess_image,
)

from .widgets import (
    VIEWER_BACKDROP,
    GenerationCancelled,
    SessionFolders,
    image_input,
    on_gpu,
    open_input_image,
    user_error,
)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
RESOLUTION_CHOICES = (32, 64, 128, 256, 512)  # every extraction method accepts these
DEFAULT_FOREGROUND_RATIO = 0.9  # paper §5.1, as in preprocess_image
DEFAULT_TARGET_FACES = 50_000  # enough for smooth shading, small enough for a browser viewer
PREVIEWS_PER_RUN = 4  # the 3D preview updates about this often per generation (each ~0.1 s: a coarse decode)
# A step that runs the conditional half alone (outside the guidance interval) costs about this share of a guided
# one, until the run has timed both kinds (batch 1 against batch 2 of the default model on 2 CPU cores: 58 / 101 ms).
UNGUIDED_STEP_COST = 0.58
PREVIEW_RESOLUTION = 32  # coarse on purpose: a preview (~0.1 s) should cost less than two sampling steps
MAX_STEPS = int(LIMITS["num_inference_steps"][1])  # the one set of limits (triposg.pipelines.generation_config)
MAX_TOKENS = int(LIMITS["num_tokens"][1])
GPU_DURATION_S = 120  # ZeroGPU time slice for the default settings; `gpu_duration` scales it per request
MAX_GPU_DURATION_S = 300
COLOUR_FORMATS = tuple(f for f in SUPPORTED_FORMATS if f != "stl")  # STL has no colours
GENERATE_LABEL, BUSY_LABEL = "Generate", "Generating…"  # the button says when a run is in progress
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


def example_images() -> list[Path]:
    """The example images shown under the input (assets/examples/*.png)."""
    return sorted(EXAMPLES_DIR.glob("*.png")) if EXAMPLES_DIR.is_dir() else []


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
    texture: bool = False  # colour the mesh from the input image (triposg.texturing)

    def pipeline_kwargs(self) -> dict[str, Any]:
        return {"seed": self.seed, "num_inference_steps": self.num_inference_steps,
                "guidance_scale": self.guidance_scale, "num_tokens": self.num_tokens,
                "octree_resolution": self.octree_resolution, "faces": self.faces, "texture": self.texture}


def checked_setting(name: str, label: str, value, kind: type):
    """`value` as `kind` within the one set of limits (`LIMITS`); `gr.Error` names the value and its range."""
    try:
        return checked_number(name, value, kind, label)
    except ValueError as error:
        raise gr.Error(str(error), print_exception=False) from None


def checked_foreground_ratio(value) -> float:
    """The share of the square the object's long side fills, 0.05–1; `gr.Error` otherwise."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"foreground ratio must be a number, got {value!r}", print_exception=False) from None
    if not 0.05 <= value <= 1.0:
        raise gr.Error(f"foreground ratio must be between 0.05 and 1, got {value:g}", print_exception=False)
    return value


def parse_settings(seed, randomize_seed, steps, guidance_scale, num_tokens, octree_resolution, foreground_ratio,
                   simplify, target_faces, texture=False) -> GenerationSettings:
    """Check the raw UI/API values and return them typed; `gr.Error` names the bad value and its range."""
    if randomize_seed:
        seed = random.randrange(2**31)
    try:
        resolution = check_resolution(octree_resolution, "tracking", "extraction resolution")
    except ValueError as error:
        raise gr.Error(str(error), print_exception=False) from None
    faces = None
    if simplify:
        try:
            faces = int(float(target_faces))
        except (TypeError, ValueError):
            raise gr.Error(f"target faces must be a number, got {target_faces!r}", print_exception=False) from None
        if not 100 <= faces <= 10_000_000:
            raise gr.Error(f"target faces must be between 100 and 10000000, got {faces}", print_exception=False)
    return GenerationSettings(
        seed=checked_setting("seed", "seed", seed, int),
        num_inference_steps=checked_setting("num_inference_steps", "inference steps", steps, int),
        guidance_scale=checked_setting("guidance_scale", "guidance scale", guidance_scale, float),
        num_tokens=checked_setting("num_tokens", "latent tokens", num_tokens, int),
        octree_resolution=resolution,
        foreground_ratio=checked_foreground_ratio(foreground_ratio),
        faces=faces,
        texture=bool(texture),
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


def pipeline_for_run(pipe: TripoSGPipeline) -> TripoSGPipeline:
    """A pipeline sharing `pipe`'s weights with a scheduler of its own: the scheduler keeps per-run state
    (timesteps, step index), so concurrent generations must not share one."""
    run = pipe.with_scheduler()
    run.set_progress_bar_config(disable=True)
    return run


def run_generation(
    pipe: TripoSGPipeline, image: PIL.Image.Image, settings: dict, preview_every: int, cancel: threading.Event
) -> Iterator[tuple[str, Any]]:
    """Run the pipeline on a preprocessed image in a worker thread; yield ("step", (i, `time.perf_counter()` when
    step i ended)), ("preview", PreviewEvent), then ("done", output) or ("error", exception). Setting `cancel`
    stops sampling at the next step (raised from the step callback, so no surface is extracted for nobody).
    Previews are decoded at `PREVIEW_RESOLUTION`, or the final resolution when that is lower."""
    events: queue.Queue = queue.Queue()

    def on_step_end(_pipe, step: int, _timestep, tensors: dict) -> dict:
        if cancel.is_set():
            raise GenerationCancelled()
        events.put(("step", (step + 1, time.perf_counter())))
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


def sampling_eta(step_ends: Sequence[float], num_steps: int, guided: Container[int]) -> float:
    """Seconds of sampling left after `len(step_ends)` steps that ended at `step_ends` (seconds since sampling
    began), when the steps in `guided` pay for classifier-free guidance and the others do not: each kind's mean
    step time so far, the kind not yet seen priced from the other by `UNGUIDED_STEP_COST`."""
    durations = np.diff(np.asarray(step_ends, dtype=float), prepend=0.0)
    kinds = np.array([i in guided for i in range(len(durations))], dtype=bool)
    guided_mean = durations[kinds].mean() if kinds.any() else None
    unguided_mean = durations[~kinds].mean() if (~kinds).any() else None
    if guided_mean is None:
        guided_mean = unguided_mean / UNGUIDED_STEP_COST
    if unguided_mean is None:
        unguided_mean = guided_mean * UNGUIDED_STEP_COST
    return float(sum(guided_mean if i in guided else unguided_mean for i in range(len(durations), num_steps)))


def format_progress(step_ends: Sequence[float], num_steps: int, guided: Container[int] = range(0)) -> str:
    """Markdown progress line: step i of N, elapsed time and the sampling ETA (`sampling_eta`)."""
    step, elapsed = len(step_ends), step_ends[-1]
    eta = sampling_eta(step_ends, num_steps, guided)
    return f"**Sampling** step {step} of {num_steps} · {elapsed:.1f} s elapsed · about {eta:.1f} s left"


def format_stats(mesh: trimesh.Trimesh, timings: dict[str, float], info: ImageFileInfo, prepared: PreprocessResult,
                 settings: GenerationSettings, texturing: TexturingResult | None = None,
                 guided: range | None = None) -> str:
    """Markdown mesh statistics, time per stage, what was done to the input, and how it was coloured.
    `guided`: the steps that were guided (`guided_steps` of the model's interval), named when only some were;
    None: every step."""
    guided = range(settings.num_inference_steps) if guided is None else guided
    if settings.guidance_scale > 1.0 and len(guided) < settings.num_inference_steps:
        guidance = (f"{settings.guidance_scale:g} on steps {guided.start + 1}-{guided.stop} of "
                    f"{settings.num_inference_steps}" if len(guided) else f"{settings.guidance_scale:g} on no step")
    else:
        guidance = f"{settings.guidance_scale:g}"
    stages = " · ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
    faces = f"simplified to ≤{settings.faces:,}" if settings.faces else "not simplified"
    watertight = "yes" if mesh.is_watertight else "no"
    lines = [
        f"**Mesh** {len(mesh.vertices):,} vertices · {len(mesh.faces):,} faces · watertight: {watertight} · {faces}",
        f"**Time** {stages} · total {sum(timings.values()):.2f} s",
        f"**Input** {info.format} {info.size[0]}×{info.size[1]} {info.mode} · foreground ratio "
        + f"{prepared.foreground_ratio:.2f} · {describe_cutout(prepared)}",
        f"**Settings** seed {settings.seed} · {settings.num_inference_steps} steps · guidance "
        + f"{guidance} · {settings.num_tokens} tokens · resolution {settings.octree_resolution}",
    ]
    if texturing is not None:
        camera = texturing.camera
        lines.append(f"**Colour** from the image, seen from azimuth {camera.azimuth_deg:.0f}°, elevation "
                     f"{camera.elevation_deg:.0f}° (outline match {camera.iou:.2f}) · {texturing.seen_fraction:.0%} "
                     "of the surface seen, the rest filled from it")
    return "\n\n".join(lines)


@dataclass
class GenerateHandlers:
    """The Generate tab's event handlers, bound to one pipeline and the session folders.
    `example_settings`: the handler arguments an example click runs with (the model's defaults)."""

    pipe: TripoSGPipeline
    sessions: SessionFolders
    example_settings: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def prepare(image: str | None, background: str, strokes: dict | None,
                foreground_ratio: float) -> tuple[PreprocessResult, ImageFileInfo]:
        """Open the upload and cut the object out with the chosen method and the user's strokes."""
        choices = [value for _, value in BACKGROUND_CHOICES]
        if background not in choices:
            raise gr.Error(f"background must be one of {', '.join(choices)}, got {background!r}",
                           print_exception=False)
        loaded, info = open_input_image(image)
        try:
            hints = strokes_to_hints(strokes, loaded.size)
            return preprocess_image(loaded, foreground_ratio=foreground_ratio, background=background,
                                    hints=hints), info
        except ImageError as error:
            raise user_error(error, "This image cannot be used") from None

    def cutout(self, image: str | None, background: str, strokes: dict | None, foreground_ratio: float):
        """Only the cut-out, to check (and correct) it before generating: (preprocessed image, status)."""
        prepared, info = self.prepare(image, background, strokes, checked_foreground_ratio(foreground_ratio))
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
                 texture: bool = False, request: gr.Request = None):
        """Stream (mesh file, viewer, preprocessed image, status, seed, GLB path) while generating."""
        start = time.perf_counter()
        settings = parse_settings(seed, randomize_seed, steps, guidance_scale, num_tokens, octree_resolution,
                                  foreground_ratio, simplify, target_faces, texture)
        if file_format not in SUPPORTED_FORMATS:
            raise gr.Error(f"file format must be one of {', '.join(SUPPORTED_FORMATS)}, got {file_format!r}",
                           print_exception=False)
        if settings.texture and file_format not in COLOUR_FORMATS:
            raise gr.Error(f"{file_format.upper()} cannot hold colours: choose {', '.join(COLOUR_FORMATS)} or turn "
                           "Colour from the image off", print_exception=False)
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
        interval = self.pipe.generation_defaults.guidance_interval  # the pipeline's default, which it uses
        guided = guided_steps(num_steps, interval) if settings.guidance_scale > 1.0 else range(0)  # as it decides
        step_ends: list[float] = []
        sample_start = time.perf_counter()
        output: TripoSGPipelineOutput | None = None
        try:
            events = run_generation(pipeline_for_run(self.pipe), prepared.image, settings.pipeline_kwargs(),
                                    max(1, num_steps // PREVIEWS_PER_RUN), cancel)
            for kind, payload in events:
                if kind == "step":
                    step, ended = payload
                    step_ends.append(ended - sample_start)
                    status = format_progress(step_ends, num_steps, guided)
                    if step == num_steps:
                        status += " · extracting the surface…"
                    yield skip, skip, skip, status, skip, skip
                elif kind == "preview" and payload.mesh is not None:
                    event: PreviewEvent = payload
                    preview = export_mesh(event.mesh, folder / f"preview_{run_id}_{event.step}.glb")
                    yield skip, str(preview), skip, skip, skip, skip
                elif kind == "error":
                    raise user_error(payload, "Generation failed", "Try fewer tokens or a lower resolution.")
                elif kind == "done":
                    output = payload
        finally:
            cancel.set()  # stops the worker if the client went away mid-run

        # 3. Export: the GLB (with the settings) for the viewer, and the requested download format
        mesh = output.meshes[0]
        timings.update({k: v for k, v in output.timings.items() if k != "preprocess"})
        metadata = {**settings.pipeline_kwargs(), "guidance_interval": list(interval),
                    "foreground_ratio": settings.foreground_ratio, "background": prepared.method, "timings": timings}
        if output.texturing:
            metadata["texturing"] = output.texturing[0].metadata()
        stem = f"triposg_{run_id}"
        glb = export_mesh(mesh, folder / f"{stem}.glb", metadata=metadata)
        download = glb if file_format == "glb" else export_mesh(mesh, folder / f"{stem}.{file_format}")
        stats = format_stats(mesh, timings, info, prepared, settings, output.texturing[0] if output.texturing else None,
                             guided)
        yield str(download), str(glb), prepared.image, stats, settings.seed, str(glb)

    def generate_example(self, image: str, request: gr.Request = None):
        """An example's final result with the tab's defaults (what the lazy example cache stores)."""
        *_, last = self.generate(image, **self.example_settings, request=request)
        download, viewer, processed, status, *_ = last
        return download, viewer, processed, status

    def convert(self, glb_path: str | None, file_format: str, request: gr.Request):
        """Re-export the last generated mesh in another format (no new generation)."""
        if not glb_path or not Path(glb_path).is_file():
            return gr.skip()
        if file_format == "glb":
            return glb_path
        if file_format not in COLOUR_FORMATS and read_glb_metadata(glb_path).get("texture"):
            raise gr.Error(f"{file_format.upper()} cannot hold the mesh's colours: choose "
                           f"{', '.join(COLOUR_FORMATS)}", print_exception=False)
        mesh = read_mesh(glb_path)  # colours as the image shows them (a GLB stores them linear)
        folder = self.sessions.ensure(request)
        return str(export_mesh(mesh, folder / f"{Path(glb_path).stem}.{file_format}"))


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


def busy() -> tuple[Any, Any]:
    """While a run is in progress: the Generate button says so and, like Cut out, waits."""
    return gr.update(value=BUSY_LABEL, interactive=False), gr.update(interactive=False)


def idle() -> tuple[Any, Any]:
    """After a run (finished, failed or cancelled): the buttons are usable again."""
    return gr.update(value=GENERATE_LABEL, interactive=True), gr.update(interactive=True)


def build_generate_tab(handlers: GenerateHandlers, defaults: GenerationDefaults, cache_examples: bool = False) -> None:
    """The Generate tab: upload or pick an image, check and correct the cut-out, set sampling and extraction,
    stream the result. `cache_examples`: each example is generated once, when first clicked, and cached."""
    with gr.Row():
        with gr.Column(scale=1):
            image = image_input(elem_id="input-image")
            with gr.Row():
                button = gr.Button(GENERATE_LABEL, variant="primary", elem_id="generate", scale=2)
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
                texture = gr.Checkbox(label="Colour from the image", value=False, elem_id="texture",
                                      info="paint the mesh with the input's colours (the unseen side is guessed)")
                with gr.Row():
                    simplify = gr.Checkbox(label="Simplify", value=False)
                    target_faces = gr.Number(label="Target faces", value=DEFAULT_TARGET_FACES, precision=0, minimum=100)
        with gr.Column(scale=1):
            viewer = gr.Model3D(label="3D model", height=420, clear_color=VIEWER_BACKDROP, elem_id="viewer")
            status = gr.Markdown("Upload an image and press **Generate**.", label="Statistics", elem_id="status")
            with gr.Row():
                processed = gr.Image(label="Preprocessed", interactive=False, height=220, elem_id="preprocessed")
                with gr.Column():
                    file_format = gr.Dropdown(list(SUPPORTED_FORMATS), value="glb", label="Download format")
                    download = gr.File(label="Download", interactive=False, elem_id="download")
    last_glb = gr.State(None)  # a file path, never tensors: UI state stays small
    examples = example_images()
    if examples:
        handlers.example_settings = {
            "seed": defaults.seed, "randomize_seed": False, "steps": defaults.num_inference_steps,
            "guidance_scale": defaults.guidance_scale, "num_tokens": defaults.num_tokens,
            "octree_resolution": defaults.octree_resolution, "foreground_ratio": DEFAULT_FOREGROUND_RATIO,
            "simplify": False, "target_faces": DEFAULT_TARGET_FACES, "file_format": "glb", "texture": False}
        cached = {"fn": on_gpu(handlers.generate_example, GPU_DURATION_S), "outputs": [download, viewer, processed, status],
                  "cache_examples": True, "cache_mode": "lazy"} if cache_examples else {}
        gr.Examples([[str(path)] for path in examples], inputs=[image], label="Examples", examples_per_page=16,
                    **cached)

    # A run locks the buttons (Generate reads "Generating…") until it ends, so a second click cannot be lost
    # silently. (The input is not locked: an update would give the session a fresh copy of the component,
    # without `pass_raw_file`.) An error is shown once, on the status line, not on every output.
    controls = [button, cutout_button]
    run = button.click(busy, None, controls, queue=False, api_visibility="private").then(
        on_gpu(handlers.generate, gpu_duration),
        [image, seed, randomize_seed, steps, guidance_scale, num_tokens, octree_resolution, foreground_ratio,
         simplify, target_faces, file_format, background, strokes, texture],
        [download, viewer, processed, status, seed, last_glb],
        api_name="generate", show_progress_on=[status],
    )
    for ended in (run.then, run.failure):  # the page runs `.then` only after a success; `.failure` after an error
        ended(idle, None, controls, queue=False, api_visibility="private")
    cutout_button.click(handlers.cutout, [image, background, strokes, foreground_ratio], [processed, status],
                        api_name="cutout", show_progress_on=[status])
    image.change(handlers.editable, [image], [strokes], api_visibility="private")
    file_format.change(handlers.convert, [last_glb, file_format], [download], api_visibility="private")


def describe_model(pipe: TripoSGPipeline, defaults: GenerationDefaults, model: str | None) -> str:
    """One line on the loaded model: what it is, how big, what it was trained on (so nobody expects more).
    `model`: where it came from (a folder or hub id); None for the embedded default."""
    millions = sum(p.numel() for p in pipe.transformer.parameters()) / 1e6
    size = f"{millions:.0f}M" if millions >= 10 else f"{millions:.1f}M"
    what = (f"a {size}-parameter flow transformer, {defaults.num_tokens} latent tokens, "
            f"{defaults.num_inference_steps} steps by default")
    if model is None:
        return (f"**Model: the embedded default** — {what}. It is small and was trained only on this project's 20 "
                "procedural shape families (boxes, chairs, mugs, lamps, …): expect the nearest such shape, and "
                "thin parts that may break. For real objects start the demo with `--model VAST-AI/TripoSG`.")
    name = Path(model).name if os.sep in str(model) else str(model)  # a folder's name, never the server's path
    return f"**Model: {name}** — {what}."
