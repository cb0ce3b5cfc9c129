"""Model variants for side-by-side ablations: a model plus sampling settings, loaded once, run on one image.

A variant (`VariantSpec`) is a model — the pipeline the app was started with (`LOADED_MODEL`), the
embedded default (`DEFAULT_MODEL`), a pipeline folder or a hub id — plus its sampler, steps, guidance,
latent tokens, extraction resolution and extraction method.

Samplers. The sampler must match the objective the model was trained with: a rectified-flow transformer
predicts a velocity, a DDPM one the noise ε, an EDM one the preconditioned F (see `triposg.schedulers`), so
running a rectified-flow model with the DDPM update would feed a velocity where ε is expected and give
noise, not an ablation. The paper's sampler ablation (Table 1) trains one model per objective. So each
sampler here is offered only for models whose own scheduler has that objective; what can vary within an
objective is the update rule (DDPM ancestral vs deterministic DDIM, EDM Euler vs Heun).
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import PIL.Image
import trimesh

from triposg.geometry import EmptySurfaceError, export_mesh
from triposg.loading import DEFAULT_MODEL, GenerationDefaults, default_model_path, load_pipeline
from triposg.pipelines import TripoSGPipeline
from triposg.pipelines.generation_config import check_resolution, checked_number
from triposg.preprocessing import load_image, preprocess_image
from triposg.rendering import EVALUATION_CAMERA, normalize_mesh, render
from triposg.schedulers import RectifiedFlowScheduler, TripoSGDDPMScheduler, TripoSGEDMScheduler

from .arena import Asset
from .normal_fid import GT_FRAME_MARGIN, ModelVariant, model_identity, pipeline_variant

__all__ = [
    "DEFAULT_MODEL",
    "EXTRACTION_METHODS",
    "LOADED_MODEL",
    "MODEL_SAMPLER",
    "SAMPLERS",
    "SHIPPED_VARIANTS_DIR",
    "PipelineCache",
    "VariantRun",
    "VariantSpec",
    "generate_assets",
    "normal_render",
    "parse_variant_rows",
    "pipeline_with_sampler",
    "run_variant",
    "shipped_variant_groups",
    "shipped_variant_specs",
    "spec_model_variant",
    "timings_table",
]

LOADED_MODEL = "loaded"  # the pipeline the app (or caller) already holds
MODEL_SAMPLER = "model"  # the model's own scheduler, unchanged
EXTRACTION_METHODS = ("tracking", "hierarchical", "dense")  # the first is the default
NORMAL_RENDER_RESOLUTION = 256  # side of the side-by-side normal renders
FOREGROUND_RATIO = 0.9  # paper §5.1, as in preprocess_image
# Trained ablation variants shipped for side-by-side viewing: `<dir>/<group>/<variant>/` pipeline folders
# (experiments.ablations trains them; assets/ablation-variants/README.md says how they were made).
SHIPPED_VARIANTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "ablation-variants"


@dataclass(frozen=True)
class Sampler:
    """A sampler choice: the scheduler class (= the training objective it needs) and config overrides."""

    scheduler: type
    overrides: Mapping[str, Any] = field(default_factory=dict)
    objective: str = ""


SAMPLERS: dict[str, Sampler] = {
    "rectified flow": Sampler(RectifiedFlowScheduler, {}, "rectified flow (velocity)"),
    "DDPM": Sampler(TripoSGDDPMScheduler, {"eta": 1.0}, "DDPM (ε-prediction)"),
    "DDIM": Sampler(TripoSGDDPMScheduler, {"eta": 0.0}, "DDPM (ε-prediction)"),
    "EDM Euler": Sampler(TripoSGEDMScheduler, {"solver": "euler"}, "EDM (preconditioned)"),
    "EDM Heun": Sampler(TripoSGEDMScheduler, {"solver": "heun"}, "EDM (preconditioned)"),
}


@dataclass(frozen=True)
class VariantSpec:
    """One variant: `model` (LOADED_MODEL, DEFAULT_MODEL, a pipeline folder or hub id), `sampler` (a key of
    `SAMPLERS` or MODEL_SAMPLER) and the sampling/extraction settings."""

    model: str = LOADED_MODEL
    sampler: str = MODEL_SAMPLER
    num_inference_steps: int = 10
    guidance_scale: float = 3.0
    num_tokens: int = 256
    octree_resolution: int = 128
    extraction: str = EXTRACTION_METHODS[0]

    @property
    def label(self) -> str:
        model = Path(self.model).name if os.sep in self.model else self.model
        sampler = "" if self.sampler == MODEL_SAMPLER else f" · {self.sampler}"
        return (f"{model}{sampler} · {self.num_inference_steps} steps · cfg {self.guidance_scale:g} · "
                f"{self.num_tokens} tok · {self.extraction} {self.octree_resolution}")

    def pipeline_kwargs(self) -> dict[str, Any]:
        return {"num_inference_steps": self.num_inference_steps, "guidance_scale": self.guidance_scale,
                "num_tokens": self.num_tokens, "octree_resolution": self.octree_resolution,
                "extraction": self.extraction}


VARIANT_COLUMNS = tuple(f.name for f in dataclasses.fields(VariantSpec))


def parse_variant_rows(rows: Iterable[Mapping[str, Any]], min_count: int = 2, max_count: int = 4
                       ) -> list[VariantSpec]:
    """Validated variants from table rows (keys = `VARIANT_COLUMNS`; blank model = skip the row).
    Raises `ValueError` naming the row and the bad value, or the allowed count."""
    specs = []
    for number, row in enumerate(rows, start=1):
        model = str(row.get("model") or "").strip()
        if not model:
            continue
        sampler = str(row.get("sampler") or MODEL_SAMPLER).strip()
        if sampler != MODEL_SAMPLER and sampler not in SAMPLERS:
            raise ValueError(f"variant {number}: sampler must be {MODEL_SAMPLER!r} or one of "
                             f"{', '.join(SAMPLERS)}, got {sampler!r}")
        extraction = str(row.get("extraction") or EXTRACTION_METHODS[0]).strip()
        if extraction not in EXTRACTION_METHODS:
            raise ValueError(f"variant {number}: extraction must be one of {', '.join(EXTRACTION_METHODS)}, "
                             f"got {extraction!r}")
        try:
            resolution = check_resolution(row.get("octree_resolution"), extraction)
            specs.append(VariantSpec(
                model=model, sampler=sampler,
                num_inference_steps=checked_number("num_inference_steps", row.get("num_inference_steps"), int),
                guidance_scale=checked_number("guidance_scale", row.get("guidance_scale"), float),
                num_tokens=checked_number("num_tokens", row.get("num_tokens"), int),
                octree_resolution=resolution, extraction=extraction,
            ))
        except ValueError as error:
            raise ValueError(f"variant {number}: {error}") from None
    if not min_count <= len(specs) <= max_count:
        raise ValueError(f"choose {min_count} to {max_count} variants (rows with a model), got {len(specs)}")
    return specs


def _natural_key(path: Path) -> list:
    """"tokens-32" before "tokens-128": digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def shipped_variant_groups(folder: str | os.PathLike = SHIPPED_VARIANTS_DIR) -> dict[str, list[Path]]:
    """Shipped ablation variants: group name → its variants' pipeline folders (those holding a
    `model_index.json` at `<folder>/<group>/<variant>/`), groups by name, variants in natural order."""
    groups: dict[str, list[Path]] = {}
    for index in sorted(Path(folder).glob("*/*/model_index.json")):
        groups.setdefault(index.parent.parent.name, []).append(index.parent)
    return {group: sorted(paths, key=_natural_key) for group, paths in groups.items()}


def shipped_variant_specs(paths: Iterable[str | os.PathLike]) -> list[VariantSpec]:
    """A variant per pipeline folder, each with the model's own sampler and its `generation_config.json`
    settings (steps, guidance and tokens as evaluated; the ablation evaluation extracted meshes at octree 64,
    the exported setting is finer). Paths under the working folder are written relative to it, as a user
    would type them."""
    specs = []
    for path in map(Path, paths):
        defaults = GenerationDefaults.from_folder(path)
        shown = os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
        specs.append(VariantSpec(shown, MODEL_SAMPLER, defaults.num_inference_steps, defaults.guidance_scale,
                                 defaults.num_tokens, defaults.octree_resolution))
    return specs


class PipelineCache:
    """Pipelines by model, each loaded once (thread-safe); `LOADED_MODEL` is the pipeline passed in.

    `loader(model, device) -> (pipeline, defaults)` defaults to `triposg.loading.load_pipeline`. At most
    `max_models` other models stay loaded: asking for one more drops the least recently used (memory stays
    bounded however many variants a long-running app is asked for; a dropped model loads again when asked).
    """

    def __init__(self, loaded: TripoSGPipeline, loaded_defaults: GenerationDefaults, device: str | None = None,
                 loader: Callable[..., tuple[TripoSGPipeline, GenerationDefaults]] = load_pipeline,
                 loaded_source: str | None = None, max_models: int = 2):
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        self.device = device
        self.loader = loader
        self.max_models = max_models
        self._loaded = (loaded, loaded_defaults)
        self._pipelines: OrderedDict[str, tuple[TripoSGPipeline, GenerationDefaults]] = OrderedDict()
        # Where the loaded pipeline came from (a folder, hub id or DEFAULT_MODEL): asking for it by that name
        # reuses it instead of loading a second copy.
        self._aliases = {self._resolve(loaded_source): LOADED_MODEL} if loaded_source else {}
        self._lock = threading.Lock()

    @staticmethod
    def _resolve(model: str) -> str:
        if model == LOADED_MODEL:
            return model
        path = default_model_path() if model == DEFAULT_MODEL else Path(model).expanduser()
        return str(path.resolve()) if path.exists() else model

    def key(self, model: str) -> str:
        """The cache key: LOADED_MODEL (also for the loaded pipeline's source), a resolved folder, or the hub id."""
        resolved = self._resolve(model)
        return self._aliases.get(resolved, resolved)

    def get(self, model: str) -> tuple[TripoSGPipeline, GenerationDefaults]:
        """The pipeline and its defaults for `model`, loading it on first use. Raises `FileNotFoundError`
        for a path that is not a pipeline folder and a string that is not a hub id."""
        key = self.key(model)
        if key == LOADED_MODEL:
            return self._loaded
        with self._lock:  # one load per model even when two requests ask at once
            if key not in self._pipelines:
                model_identity(key)  # a clear error before any loading
                pipe, defaults = self.loader(key, self.device)
                pipe.set_progress_bar_config(disable=True)
                self._pipelines[key] = (pipe, defaults)
                while len(self._pipelines) > self.max_models:
                    self._pipelines.popitem(last=False)
            self._pipelines.move_to_end(key)
            return self._pipelines[key]

    def identity(self, model: str) -> dict[str, Any]:
        """What identifies the model's outputs (`normal_fid.model_identity`); the loaded pipeline by object."""
        key = self.key(model)
        return {"kind": "loaded", "object": id(self._loaded[0])} if key == LOADED_MODEL else model_identity(key)

    def __contains__(self, model: str) -> bool:
        key = self.key(model)
        return key == LOADED_MODEL or key in self._pipelines


def pipeline_with_sampler(pipe: TripoSGPipeline, sampler: str = MODEL_SAMPLER) -> TripoSGPipeline:
    """A pipeline sharing `pipe`'s weights with a scheduler of its own (schedulers keep per-run state, so
    concurrent runs must not share one): a copy of the model's, or `sampler` (a key of `SAMPLERS`) made
    from the model's scheduler config. Raises `ValueError` when the sampler needs another objective."""
    scheduler = None  # a copy of the model's
    if sampler != MODEL_SAMPLER:
        choice = SAMPLERS[sampler]
        own = type(pipe.scheduler)
        if own is not choice.scheduler:
            usable = [name for name, s in SAMPLERS.items() if s.scheduler is own]
            raise ValueError(
                f"sampler {sampler!r} needs a model trained with the {choice.objective} objective, but this model's "
                f"scheduler is {own.__name__}; use {MODEL_SAMPLER!r} or one of {usable or 'none'} (module docstring)")
        scheduler = choice.scheduler.from_config(pipe.scheduler.config, **choice.overrides)
    run = pipe.with_scheduler(scheduler)
    run.set_progress_bar_config(disable=True)
    return run


@dataclass
class VariantRun:
    """One variant's result on one image: `mesh` (None when it failed, then `error` says why), its
    `normal` render from the evaluation view ((H, W, 3) uint8) and `timings` in seconds per stage."""

    spec: VariantSpec
    mesh: trimesh.Trimesh | None
    normal: np.ndarray | None
    timings: dict[str, float]
    error: str | None = None


def normal_render(mesh: trimesh.Trimesh, resolution: int = NORMAL_RENDER_RESOLUTION) -> np.ndarray:
    """(H, W, 3) uint8 normal map of `mesh` from `EVALUATION_CAMERA`, in the Normal-FID frame."""
    return render(normalize_mesh(mesh, margin=GT_FRAME_MARGIN), EVALUATION_CAMERA, resolution=resolution)[0].normal


def run_variant(cache: PipelineCache, image: PIL.Image.Image, spec: VariantSpec, seed: int,
                callback_on_step_end: Callable | None = None) -> VariantRun:
    """Generate from a preprocessed `image` with `spec` and render its normal map. Load and sampler errors
    propagate (the user must fix the variant); a generation without a surface gives a `VariantRun` with
    its error. `timings` has "load" (0 when cached) and the pipeline's stages plus "render"."""
    start = time.perf_counter()
    pipe, _ = cache.get(spec.model)
    load_seconds = time.perf_counter() - start
    run = pipeline_with_sampler(pipe, spec.sampler)
    try:
        output = run(image, preprocess=False, seed=seed, callback_on_step_end=callback_on_step_end,
                     **spec.pipeline_kwargs())
    except EmptySurfaceError as error:
        return VariantRun(spec, None, None, {"load": load_seconds}, str(error))
    mesh = output.meshes[0]
    start = time.perf_counter()
    normal = normal_render(mesh)
    timings = {"load": load_seconds, **{k: v for k, v in output.timings.items() if k != "preprocess"},
               "render": time.perf_counter() - start}
    return VariantRun(spec, mesh, normal, timings)


def spec_model_variant(cache: PipelineCache, spec: VariantSpec, seed: int) -> ModelVariant:
    """A Normal-FID `ModelVariant` generating with `spec` (loads the model now, so errors come first):
    `normal_fid.pipeline_variant` over the model with the spec's sampler, settings and extraction."""
    pipe, defaults = cache.get(spec.model)
    settings = dataclasses.replace(defaults, num_inference_steps=spec.num_inference_steps,
                                   guidance_scale=spec.guidance_scale, num_tokens=spec.num_tokens,
                                   octree_resolution=spec.octree_resolution, seed=seed)
    identity = {**cache.identity(spec.model), "sampler": spec.sampler}
    return pipeline_variant(pipeline_with_sampler(pipe, spec.sampler), settings, identity, spec.label,
                            extraction=spec.extraction)


def timings_table(runs: list[VariantRun]) -> pd.DataFrame:
    """One row per run: the variant's number and label, mesh size, seconds per stage, total and error."""
    rows = []
    for number, run in enumerate(runs, start=1):
        row = {"variant": f"{number}: {run.spec.label}", "vertices": len(run.mesh.vertices) if run.mesh else 0,
               "faces": len(run.mesh.faces) if run.mesh else 0}
        row.update({f"{stage}_s": round(seconds, 3) for stage, seconds in run.timings.items()})
        row["total_s"] = round(sum(run.timings.values()), 3)
        row["error"] = run.error or ""
        rows.append(row)
    return pd.DataFrame(rows)


def generate_assets(
    cache: PipelineCache, specs: list[VariantSpec], image_paths: list[str], seed: int, out_dir: str | os.PathLike,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[dict[str, list[Asset]], list[str]]:
    """Each variant's mesh for each image (background removed, cropped), saved as GLB under `out_dir`, as
    arena methods: ({"v<number> <label>": [Asset, ...]}, failures). A generation without a surface is left
    out and listed in failures; an unusable image or model raises `ValueError`/`FileNotFoundError`."""
    out_dir = Path(out_dir)
    prepared = {}
    for path in image_paths:
        try:
            prepared[path] = preprocess_image(load_image(path), foreground_ratio=FOREGROUND_RATIO).image
        except ValueError as error:  # ImageError: name the file
            raise ValueError(f"{Path(path).name}: {error}") from error
    methods: dict[str, list[Asset]] = {}
    failures = []
    for number, spec in enumerate(specs, start=1):
        name = f"v{number} {spec.label}"
        methods[name] = []
        for index, path in enumerate(image_paths):
            if progress is not None:
                progress(((number - 1) * len(image_paths) + index) / (len(specs) * len(image_paths)),
                         f"generating {name} on {Path(path).name}")
            try:
                run = run_variant(cache, prepared[path], spec, seed)
            except (ValueError, OSError) as error:
                raise type(error)(f"variant {number} ({spec.model}): {error}") from error
            if run.mesh is None:
                failures.append(f"{name} on {Path(path).name}: {run.error}")
                continue
            asset_id = f"{index}_{Path(path).stem}"  # unique even when two uploads share a name
            mesh_path = export_mesh(run.mesh, out_dir / f"v{number}" / f"{asset_id}.glb")
            methods[name].append(Asset(str(mesh_path), path, asset_id=asset_id))
    return methods, failures
