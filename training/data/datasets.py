"""Torch datasets over a built corpus (reads the manifest).

- `FieldDataset` for VAE training: surface points with normals (encoder input) and supervision points
  with truncated SDF (near-surface + volume) and on-surface points with normals (normal loss, eq. 18).
  `MultiResolutionCollate` draws the latent token count M once per batch (paper §3.3: M ∈ {512, 2048}).
- `ImageViewDataset` for flow training: a random rendered view per object with the paper's augmentation
  (§5.1: foreground resized to a fixed 90% ratio; rotation uniform in ±10° with probability 0.2), plus
  the object's surface points so latents can be encoded on the fly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import PIL.Image
import torch
from torch.utils.data import Dataset

from triposg.preprocessing import preprocess_image

from .augment import AppearanceJitter
from .fields import FieldData
from .manifest import read_manifest, select, select_rows
from .procedural import undo_yaw


def usable_rows(corpus: str | Path, split: str | None, include_flagged: bool, per_family: int | None = None
                ) -> tuple[Path, pd.DataFrame]:
    """The corpus root and its usable manifest rows (only the first `per_family` of each family when
    given); a clear error when there are none."""
    table = read_manifest(corpus)
    root = Path(table.attrs["root"])
    rows = select_rows(select(table, split, include_flagged), per_family)
    if len(rows) == 0:
        raise ValueError(f"the corpus at {root} has no usable objects in split {split!r}")
    return root, rows


def spread_indices(length: int, count: int) -> list[int]:
    """Up to `count` indices spread evenly over `range(length)` (every length//count-th). Splits are ordered by
    family, so the first `count` objects would all be of one family."""
    step = max(1, length // max(1, count))
    return list(range(0, length, step))[:count]


class FieldDataset(Dataset):
    """Per object: `surface` (S, 6) xyz+normal, `points` (Q, 3) with `sdf` (Q,) (near-surface and volume
    points, usual sign: negative inside), `on_surface` (O, 6) xyz+normal, `object_id`.

    `num_surface` / `num_near` / `num_volume` / `num_on_surface` subsample each set at random per access
    (None keeps all); subsets are drawn with Python's `random`, which DataLoader seeds per worker.
    """

    def __init__(
        self,
        corpus: str | Path,
        split: str | None = "train",
        num_surface: int | None = None,
        num_near: int | None = None,
        num_volume: int | None = None,
        num_on_surface: int | None = None,
        include_flagged: bool = False,
    ):
        self.root, self.rows = usable_rows(corpus, split, include_flagged)
        self.sizes = dict(surface=num_surface, near=num_near, volume=num_volume, on_surface=num_on_surface)

    def __len__(self) -> int:
        return len(self.rows)

    def _subset(self, array: np.ndarray, size: int | None) -> torch.Tensor:
        if size is not None:
            if size > len(array):
                raise ValueError(f"asked for {size} points but the object has {len(array)}")
            array = array[random.sample(range(len(array)), size)]
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows.iloc[index]
        data = FieldData.load(self.root / row["field_path"])
        near = self._subset(data.near, self.sizes["near"])
        volume = self._subset(data.volume, self.sizes["volume"])
        supervision = torch.cat([near, volume])
        return {
            "object_id": row["object_id"],
            "surface": self._subset(data.surface, self.sizes["surface"]),
            "points": supervision[:, :3],
            "sdf": supervision[:, 3],
            "on_surface": self._subset(data.on_surface, self.sizes["on_surface"]),
        }


class MultiResolutionCollate:
    """Stack a batch and draw its latent token count from `token_counts` (shared weights across M)."""

    def __init__(self, token_counts: Sequence[int] = (512, 2048), seed: int | None = None):
        if not token_counts:
            raise ValueError("token_counts is empty")
        self.token_counts = tuple(int(m) for m in token_counts)
        self.rng = random.Random(seed)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {"object_id": [item["object_id"] for item in items]}
        for key in ("surface", "points", "sdf", "on_surface"):
            batch[key] = torch.stack([item[key] for item in items])
        batch["num_tokens"] = self.rng.choice(self.token_counts)
        return batch


def rotate_on_white(image: PIL.Image.Image, degrees: float) -> PIL.Image.Image:
    """Rotate an RGB image about its centre, filling uncovered corners with white (the background)."""
    return image.rotate(degrees, resample=PIL.Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))


class ImageViewDataset(Dataset):
    """Per object: `image` (PIL RGB, square, object on white at `foreground_ratio`), `surface` (S, 6) for
    encoding latents, `object_id`, `view` (the view file used).

    A random one of the object's rendered views is used per access; with probability `rotation_prob`
    the image is rotated uniformly in ±`max_rotation_deg` (paper §5.1). `use_eval_view=True` always
    returns the fixed evaluation view without augmentation (for evaluation). `load_surface=False` leaves
    `surface` out (half the read time, for image-only work); `load_image=False` leaves `image` and `view` out
    (for surface-only work such as encoding latents). `appearance` (an `AppearanceJitter`) changes the
    foreground's lighting and colour of training views (never of the evaluation view). `undo_yaw`: the surface
    of a procedural object turned back to yaw 0 (`procedural.undo_yaw`; the views stay as rendered).
    """

    def __init__(
        self,
        corpus: str | Path,
        split: str | None = "train",
        foreground_ratio: float = 0.9,
        rotation_prob: float = 0.2,
        max_rotation_deg: float = 10.0,
        image_size: int | None = None,
        num_surface: int | None = None,
        use_eval_view: bool = False,
        include_flagged: bool = False,
        load_surface: bool = True,
        per_family: int | None = None,
        load_image: bool = True,
        appearance: AppearanceJitter | None = None,
        undo_yaw: bool = False,
    ):
        self.root, self.rows = usable_rows(corpus, split, include_flagged, per_family)
        self.undo_yaw = undo_yaw
        self.appearance = appearance
        self.load_surface = load_surface
        self.load_image = load_image
        self.foreground_ratio = foreground_ratio
        self.rotation_prob = rotation_prob
        self.max_rotation_deg = max_rotation_deg
        self.image_size = image_size
        self.num_surface = num_surface
        self.use_eval_view = use_eval_view

    def __len__(self) -> int:
        return len(self.rows)

    def view_files(self, index: int) -> list[Path]:
        """The RGB view files of object `index` (the evaluation view alone when `use_eval_view`)."""
        views_dir = self.root / self.rows.iloc[index]["views_dir"]
        if self.use_eval_view:
            return [views_dir / "eval_rgb.png"]
        files = sorted(views_dir.glob("view_*_rgb.png"))
        if not files:
            raise FileNotFoundError(f"no rendered views in {views_dir}; rebuild the object")
        return files

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows.iloc[index]
        item = {"object_id": row["object_id"]}
        if self.load_image:
            view = random.choice(self.view_files(index))
            prepared = preprocess_image(view, foreground_ratio=self.foreground_ratio, background="alpha",
                                        output_size=self.image_size)
            image = prepared.image
            if self.appearance is not None and not self.use_eval_view:
                image = self.appearance(image, prepared.mask)
            if not self.use_eval_view and random.random() < self.rotation_prob:
                image = rotate_on_white(image, random.uniform(-self.max_rotation_deg, self.max_rotation_deg))
            item.update(image=image, view=view.name)
        if self.load_surface:
            surface = FieldData.load(self.root / row["field_path"]).surface
            if self.undo_yaw and row["params"].get("yaw_deg"):
                surface = undo_yaw(surface, row["params"]["yaw_deg"])  # before subsampling: one frame per object
            if self.num_surface is not None:
                surface = surface[random.sample(range(len(surface)), self.num_surface)]
            item["surface"] = torch.from_numpy(np.ascontiguousarray(surface, dtype=np.float32))
        return item


def collate_views(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch `ImageViewDataset` items: images stay a list of PIL images (the image processor batches them)."""
    batch = {key: [item[key] for item in items] for key in ("object_id", "image", "view")}
    if "surface" in items[0]:
        batch["surface"] = torch.stack([item["surface"] for item in items])
    return batch
