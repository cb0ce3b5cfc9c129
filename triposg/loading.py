"""Finding and loading a pipeline: the embedded default model, a local folder or a hub id."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .pipelines import TripoSGPipeline
from .pipelines.generation_config import GENERATION_CONFIG_NAME, GenerationDefaults

__all__ = ["DEFAULT_MODEL", "DEFAULT_MODEL_PATH", "GENERATION_CONFIG_NAME", "GenerationDefaults", "default_model_path",
           "load_pipeline", "resolve_device"]

DEFAULT_MODEL = "default"  # the name that means the embedded default model (as --model, in variant tables)
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "assets" / "default-model"


def default_model_path() -> Path:
    """The embedded default model (override with the environment variable `TRIPOSG_DEFAULT_MODEL`)."""
    return Path(os.environ.get("TRIPOSG_DEFAULT_MODEL", DEFAULT_MODEL_PATH))


def resolve_device(device: str | None) -> torch.device:
    """`None`/"auto" → CUDA when available else CPU; asking for CUDA without one is a clear error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available; use --device cpu")
    return torch.device(device)


def load_pipeline(
    model: str | os.PathLike | None = None, device: str | None = None, dtype: torch.dtype | None = None
) -> tuple[TripoSGPipeline, GenerationDefaults]:
    """Load a pipeline (None or "default" = the embedded default) onto `device`; returns it with its generation defaults.

    `model` is a local folder laid out like the release, or a hub id such as `VAST-AI/TripoSG`
    (needs network access or a populated Hugging Face cache). fp16 is used on CUDA when `dtype` is None.
    """
    source = default_model_path() if model in (None, DEFAULT_MODEL) else model
    torch_device = resolve_device(device)
    if dtype is None:
        dtype = torch.float16 if torch_device.type == "cuda" else torch.float32
    local = Path(source)
    if model in (None, DEFAULT_MODEL) and not (local / "model_index.json").is_file():
        raise FileNotFoundError(
            f"the embedded default model is missing at {local}. Restore it from git (`git checkout -- assets`) "
            "or pass --model with a pipeline folder or hub id."
        )
    if local.exists() and not (local / "model_index.json").is_file():
        raise FileNotFoundError(f"{local} is not a pipeline folder: it has no model_index.json")
    try:
        pipe = TripoSGPipeline.from_pretrained(str(source), dtype=dtype)
    except OSError as error:
        raise OSError(
            f"could not load the model {str(source)!r}: {error}. A hub id needs network access or a local "
            "Hugging Face cache; otherwise download the folder elsewhere and pass its path."
        ) from error
    pipe.to(torch_device)
    return pipe, pipe.generation_defaults
