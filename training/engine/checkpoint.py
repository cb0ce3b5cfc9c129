"""Checkpoint folders that a run killed at any moment can resume from.

Layout of `<run>/checkpoints/checkpoint-<step>/`:
    model/                  `save_pretrained` folder of the trained weights
    model_ema/              `save_pretrained` folder of the EMA weights (when EMA is on)
    training_state.pt       optimizer, LR scheduler, EMA shadow, step, extra stateful objects
    rng_state_<rank>.pt     python / numpy / torch (and CUDA) RNG of each process
    COMPLETE                written last; folders without it are ignored

Everything is written into a hidden temporary folder that is renamed into place once complete, so a
crash mid-save never leaves a folder that `latest` would pick.
"""

from __future__ import annotations

import copy
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from triposg.io import write_bytes_atomic

COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step:08d}"


def list_checkpoints(checkpoints_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders in `checkpoints_dir`, oldest first (incomplete ones are skipped)."""
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for path in checkpoints_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir() and (path / COMPLETE_MARKER).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def find_checkpoint(checkpoints_dir: str | Path, resume: str) -> Path | None:
    """Resolve `--resume`: "latest" → newest complete checkpoint (None if there is none yet), or a path."""
    if resume == "latest":
        complete = list_checkpoints(checkpoints_dir)
        return complete[-1] if complete else None
    path = Path(resume)
    if not (path / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint folder (no {COMPLETE_MARKER} marker); "
                                "pass --resume latest or an existing checkpoint-<step> folder")
    return path


def rng_state() -> dict[str, Any]:
    """The RNG state of this process (python, numpy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class PythonRandomState:
    """Adapter giving a `random.Random` (e.g. a collate's token-count RNG) `state_dict`/`load_state_dict`."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate(state["state"])


def _save_model(model: nn.Module, folder: Path) -> None:
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), folder / "model.pt")


def _load_model(model: nn.Module, folder: Path) -> None:
    if (folder / "model.pt").is_file():
        model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
        return
    loaded = type(model).from_pretrained(folder)
    model.load_state_dict(loaded.state_dict())


def _torch_save_atomic(obj: Any, path: Path) -> None:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def save_checkpoint(
    checkpoints_dir: str | Path,
    step: int,
    model: nn.Module,
    training_state: dict[str, Any],
    ema=None,
    rank: int = 0,
    is_main: bool = True,
    barrier=lambda: None,
    total_limit: int | None = None,
) -> Path:
    """Write `checkpoint-<step>` atomically; every process calls this (each saves its own RNG state).

    `training_state`: optimizer/scheduler/EMA/extra state dicts and the step (saved by the main process).
    `barrier`: synchronises processes (`accelerator.wait_for_everyone`). Returns the final folder.
    """
    checkpoints_dir = Path(checkpoints_dir)
    final = checkpoints_dir / checkpoint_name(step)
    temporary = checkpoints_dir / f".{final.name}.tmp"
    if is_main:
        shutil.rmtree(temporary, ignore_errors=True)  # leftovers of a save that crashed
        temporary.mkdir(parents=True)
        _save_model(model, temporary / "model")
        if ema is not None:
            ema_model = copy.deepcopy(model)
            ema.copy_to(ema_model)
            _save_model(ema_model, temporary / "model_ema")
        _torch_save_atomic(training_state, temporary / "training_state.pt")
    barrier()
    _torch_save_atomic(rng_state(), temporary / f"rng_state_{rank}.pt")
    barrier()
    if is_main:
        (temporary / COMPLETE_MARKER).write_text(f"{step}\n")
        if final.exists():  # re-saving the same step (e.g. the end of a resumed run): replace it
            shutil.rmtree(final)
        temporary.rename(final)
        if total_limit is not None:
            for old in list_checkpoints(checkpoints_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_checkpoint(folder: str | Path, model: nn.Module, rank: int = 0) -> dict[str, Any]:
    """Load the weights into `model`, restore this process's RNG, and return the training state dict."""
    folder = Path(folder)
    _load_model(model, folder / "model")
    rng_file = folder / f"rng_state_{rank}.pt"
    if not rng_file.is_file():  # resumed with more processes than saved: fall back to rank 0's stream
        rng_file = folder / "rng_state_0.pt"
    set_rng_state(torch.load(rng_file, weights_only=False))
    return torch.load(folder / "training_state.pt", map_location="cpu", weights_only=False)
