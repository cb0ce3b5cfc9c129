"""Baselines an image-to-3D model must beat: the same model without its image, and a fixed mean shape.

- `unconditional_variant`: the pipeline with the image condition replaced by zeros — exactly the
  context the model sees for the unconditional branch of classifier-free guidance (and for the
  `condition_dropout` share of training samples) — and guidance off. What it produces is the model's
  prior over shapes, with the same seed and sampling settings; if the image did not matter, this
  baseline would score like the model.
- `mean_shape_variant`: one fixed mesh for every input. `mean_occupancy_shape` builds it from a
  procedural corpus: the set of points inside at least half of the training shapes (voxel-wise majority
  of their occupancies, from the analytic SDFs), meshed by marching cubes. It is the best single shape
  under a per-voxel agreement criterion, so it is a fair "ignore the input" answer.

Both are `ModelVariant`s, so `run_normal_fid` measures them exactly like a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from PIL import Image

from triposg.loading import GenerationDefaults
from triposg.pipelines import TripoSGPipeline

from .normal_fid import ModelVariant, TestObject, pipeline_variant

__all__ = ["mean_occupancy_shape", "mean_shape_variant", "unconditional_variant", "zero_image_condition"]


@contextmanager
def zero_image_condition(pipe: TripoSGPipeline) -> Iterator[TripoSGPipeline]:
    """Within the block, `pipe` encodes every image to zeros of the usual shape (the unconditional context)."""
    encode = pipe.encode_image

    def encode_zeros(images, device):
        local, global_tokens = encode(images, device)
        return torch.zeros_like(local), None if global_tokens is None else torch.zeros_like(global_tokens)

    pipe.encode_image = encode_zeros
    try:
        yield pipe
    finally:
        del pipe.encode_image  # back to the class's method


def unconditional_variant(
    pipe: TripoSGPipeline, settings: GenerationDefaults, identity: dict[str, Any], name: str = "unconditional"
) -> ModelVariant:
    """The pipeline with a zeroed image condition and no guidance (see the module docstring)."""
    unguided = pipeline_variant(pipe, dataclasses.replace(settings, guidance_scale=1.0), identity, name)

    def generate(image: Image.Image, test_object: TestObject) -> trimesh.Trimesh:
        with zero_image_condition(pipe):
            return unguided.generate(image, test_object)

    return ModelVariant(name, generate, {**unguided.identity, "baseline": "zero image condition"})


def mean_occupancy_shape(corpus: str | Path, split: str = "train", resolution: int = 64,
                         limit: int | None = None) -> trimesh.Trimesh:
    """The majority-occupancy shape of a procedural corpus split (see the module docstring).

    Args:
        corpus: a corpus folder built with `python -m training.data build --source procedural`.
        split: the objects to average (never the test split when the result is a test baseline).
        resolution: grid cells per side over the corpus frame [-1, 1]^3.
        limit: use only the first N objects (None: all usable ones).
    Raises:
        ValueError: the split has no procedural objects (mesh corpora have no analytic SDF to average).
    """
    from skimage.measure import marching_cubes

    from training.data.manifest import read_manifest, select
    from training.data.procedural import sample_shape

    rows = select(read_manifest(Path(corpus)), split)
    rows = rows[rows["source"] == "procedural"]
    if limit is not None:
        rows = rows.head(limit)
    if rows.empty:
        raise ValueError(f"{corpus} has no procedural objects in split {split!r}: the mean shape needs their SDFs")
    axis = np.linspace(-1.0, 1.0, resolution + 1)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = np.zeros(len(grid), dtype=np.float64)
    for row in rows.itertuples(index=False):
        inside += sample_shape(row.family, int(row.seed)).sdf(grid) < 0
    occupancy = (inside / len(rows)).reshape((resolution + 1,) * 3)
    if occupancy.max() < 0.5:
        raise ValueError(f"no point lies inside half of the {len(rows)} shapes; the mean shape is empty")
    padded = np.pad(occupancy, 1)  # closed surface even where the majority touches the border
    spacing = 2.0 / resolution
    vertices, faces, _, _ = marching_cubes(padded, level=0.5, spacing=(spacing,) * 3)
    vertices -= 1.0 + spacing
    return trimesh.Trimesh(vertices, faces[:, ::-1], process=True)  # outward-facing for a positive-inside field


def mean_shape_variant(mesh: trimesh.Trimesh, description: dict[str, Any], name: str = "mean shape") -> ModelVariant:
    """A generator that ignores its input and returns a copy of `mesh`; `description` identifies the mesh."""

    def generate(image: Image.Image, test_object: TestObject) -> trimesh.Trimesh:
        return mesh.copy()

    return ModelVariant(name, generate, {"baseline": "mean shape", **description})
