"""A model under Normal-FID evaluation (`ModelVariant`: a shape generator and its identity), built from a
loaded pipeline (`pipeline_variant`) or a model folder / hub id (`load_model_variant`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trimesh
from PIL import Image

from triposg.loading import GenerationDefaults, load_pipeline

from ..fid import PathLike
from .identity import model_identity
from .test_sets import TestObject

if TYPE_CHECKING:
    from triposg.pipelines import TripoSGPipeline

# The evaluation image (RGBA, alpha = object mask) and its test object → a mesh in any frame, as generated
# (before floater removal: the evaluation measures the whole-shape share on it, then removes floaters).
ShapeGenerator = Callable[[Image.Image, TestObject], trimesh.Trimesh]


@dataclass
class ModelVariant:
    """A model/variant under evaluation: `generate(image, test_object) -> mesh` and the JSON-serialisable
    `identity` (model identity, sampling settings, runtime) that keys its outputs in the cache."""

    name: str
    generate: ShapeGenerator
    identity: dict[str, Any]


def pipeline_variant(
    pipe: TripoSGPipeline, settings: GenerationDefaults, identity: dict[str, Any], name: str = "model",
    **call_kwargs: Any,
) -> ModelVariant:
    """A `ModelVariant` generating with a `TripoSGPipeline` and `settings` (the same seed for every object).
    `identity` is the model's (`model_identity`); settings, the extra pipeline arguments `call_kwargs` (e.g. an
    `extraction` method), device and dtype are added to it. The pipeline is asked for the mesh before floater
    removal (`remove_floaters=False`, unless `call_kwargs` say otherwise): the evaluation measures how whole the
    generated surface is on it and removes the floaters itself. The one place a pipeline becomes a variant: the
    app's variant tables (`evaluation.variants.spec_model_variant`) and the baselines build on it."""

    call_kwargs = {"remove_floaters": False, **call_kwargs}

    def generate(image: Image.Image, test_object: TestObject) -> trimesh.Trimesh:
        output = pipe(
            image, num_inference_steps=settings.num_inference_steps, guidance_scale=settings.guidance_scale,
            num_tokens=settings.num_tokens, octree_resolution=settings.octree_resolution, seed=settings.seed,
            query_precision=settings.query_precision, guidance_interval=settings.guidance_interval, preprocess=True,
            **call_kwargs,
        )
        return output.meshes[0]

    runtime = {"device": pipe.device.type, "dtype": str(pipe.dtype).removeprefix("torch.")}
    full_identity = {"model": identity, "sampling": {**dataclasses.asdict(settings), **call_kwargs}, "runtime": runtime}
    return ModelVariant(name, generate, full_identity)


def load_model_variant(
    model: PathLike | None, device: str | None = None, **overrides: Any
) -> tuple[ModelVariant, TripoSGPipeline]:
    """Load a pipeline (folder, hub id, or None = the embedded default) as a `ModelVariant`.

    `overrides`: `GenerationDefaults` fields (num_inference_steps, guidance_scale, num_tokens,
    octree_resolution, seed); None values keep the model's own defaults. Returns (variant, pipeline).
    """
    identity = model_identity(model)  # before loading: a missing path fails with a clear message
    pipe, defaults = load_pipeline(model, device)
    pipe.set_progress_bar_config(disable=True)
    settings = dataclasses.replace(defaults, **{key: value for key, value in overrides.items() if value is not None})
    return pipeline_variant(pipe, settings, identity, name=str(model) if model is not None else "default"), pipe
