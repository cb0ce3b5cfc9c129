"""The sampling settings a model was made for, stored beside its weights as `generation_config.json`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..models.sdf_field import QUERY_PRECISIONS
from ..offline import offline_requested
from .official_args import RELEASE_FLASH_OCTREE_DEPTH

GENERATION_CONFIG_NAME = "generation_config.json"

# The one set of limits for settings that arrive from outside (the demo's controls and API, the variant tables,
# a folder's generation_config.json): beyond them a request only blocks a shared queue. The pipeline itself
# refuses only what cannot run (see `TripoSGPipeline.check_inputs`).
LIMITS: dict[str, tuple[float, float]] = {
    "num_inference_steps": (1, 200),
    "guidance_scale": (0.0, 50.0),
    "num_tokens": (1, 4096),  # twice the release's 2048
    "octree_resolution": (8, 1024),
    "seed": (0, 2**32 - 1),
}


def checked_number(name: str, value: Any, kind: type, label: str | None = None) -> int | float:
    """`value` as `kind` within `LIMITS[name]`, or a ValueError naming the setting (as `label`) and its range."""
    label = label or name
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a number, got {value!r}") from None
    if kind is int and float(value) != number:
        raise ValueError(f"{label} must be a whole number, got {value!r}")
    low, high = LIMITS[name]
    if not low <= number <= high:
        raise ValueError(f"{label} must be between {low:g} and {high:g}, got {number:g}")
    return number


def check_resolution(resolution: int, extraction: str, label: str = "octree_resolution") -> int:
    """Surface tracking needs an even number of cells per side (it halves the grid at least once); hierarchical and
    dense extraction take any (the hierarchical coarse level is chosen to divide it)."""
    resolution = checked_number("octree_resolution", resolution, int, label)
    if extraction == "tracking" and resolution % 2:
        raise ValueError(f"tracking extraction needs an even resolution, got {label}={resolution}")
    return resolution


def check_guidance_interval(interval: Any) -> tuple[float, float]:
    """`interval` as (start, stop) with 0 <= start <= stop <= 1, or a ValueError naming the fix."""
    try:
        start, stop = (float(value) for value in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval must be two numbers (start, stop), got {interval!r}") from None
    if not 0.0 <= start <= stop <= 1.0:
        raise ValueError(f"guidance_interval must satisfy 0 <= start <= stop <= 1 (shares of the sampling steps), "
                         f"got {interval!r}")
    return start, stop


def guided_steps(num_steps: int, interval: tuple[float, float]) -> range:
    """The step indices that get guidance: [int(start·N), int(stop·N)), as diffusers' guiders count them."""
    start, stop = interval
    return range(int(start * num_steps), int(stop * num_steps))


@dataclass
class GenerationDefaults:
    """Sampling settings a model was made for; a pipeline folder may override them in
    `generation_config.json`. The field defaults are the release script's sampling settings with this package's
    256 cells per side; a folder without the file (the release's layout) gets `release()`, the release's 512."""

    num_inference_steps: int = 50
    guidance_scale: float = 7.0
    num_tokens: int = 2048
    octree_resolution: int = 256
    seed: int = 42
    # Precision of the field queries during extraction: "full" (the weights' own, the release's semantics) unless
    # the model was checked with bf16 queries ("auto": bf16 on CPUs where it is fast).
    query_precision: str = "full"
    # The share of the sampling steps that get classifier-free guidance, [start, stop) as fractions of the steps
    # (diffusers' guiders count them the same way): steps outside it run the conditional half alone, at about
    # half the cost. (0, 1): every step, as the release samples.
    guidance_interval: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        if isinstance(self.guidance_interval, list):  # as read from a folder's JSON
            self.guidance_interval = tuple(self.guidance_interval)

    @classmethod
    def release(cls) -> "GenerationDefaults":
        """The released pipeline's own settings, for a folder that has no `generation_config.json`: an official
        script's call then extracts at 2**flash_octree_depth = 512 cells per side, as the release does."""
        return cls(octree_resolution=2**RELEASE_FLASH_OCTREE_DEPTH)

    def validate(self, extraction: str = "tracking") -> "GenerationDefaults":
        """These settings checked against `LIMITS` (and the resolution against `extraction`); returns self or
        raises ValueError naming the bad setting."""
        for name, kind in (("num_inference_steps", int), ("guidance_scale", float), ("num_tokens", int),
                           ("seed", int)):
            checked_number(name, getattr(self, name), kind)
        check_resolution(self.octree_resolution, extraction)
        check_guidance_interval(self.guidance_interval)
        if self.query_precision not in QUERY_PRECISIONS:
            raise ValueError(f"query_precision must be one of {QUERY_PRECISIONS}, got {self.query_precision!r}")
        return self

    @classmethod
    def from_folder(cls, folder: str | os.PathLike | None) -> "GenerationDefaults":
        path = Path(folder) / GENERATION_CONFIG_NAME if folder is not None else None
        if path is None or not path.is_file():
            return cls.release()
        known = {f.name for f in fields(cls)}
        values = json.loads(path.read_text())
        try:
            return cls(**{k: v for k, v in values.items() if k in known}).validate()
        except ValueError as error:
            raise ValueError(f"the model folder's {GENERATION_CONFIG_NAME} is invalid: {error}; fix or delete the "
                             "file (without it the release's settings are used)") from None

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike) -> "GenerationDefaults":
        """From a local pipeline folder, or a hub id's file (from the cache when offline); the release script's
        defaults when the model has no such file."""
        if Path(source).is_dir():
            return cls.from_folder(source)
        try:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(str(source), GENERATION_CONFIG_NAME, local_files_only=offline_requested())
        except Exception:  # noqa: BLE001 - no such file, no network, no cache: the model keeps the release's
            return cls.release()
        return cls.from_folder(Path(path).parent)

    def save(self, folder: str | os.PathLike) -> None:
        (Path(folder) / GENERATION_CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")
