"""What identifies a model's outputs, for the generation cache (`model_identity`).

The model identity of a local folder is its resolved path, a hash of the contents of its config files and a hash
of its weight files' names, sizes and modification times (cheap, and a retrained checkpoint saved over the old one
changes it); of a hub id, the id and the commit of the locally cached snapshot.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from triposg.loading import default_model_path

from ..fid import PathLike

HUB_ID_PATTERN = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".txt")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx")


def model_identity(model: PathLike | None) -> dict[str, Any]:
    """What identifies a model's outputs (see the module docstring): for a local pipeline folder
    {"kind": "local", "path", "config_sha256", "weights_stat_sha256"}; for a hub id {"kind": "hub", "id",
    "revision"} (the locally cached commit, or None). None = the embedded default model.
    Raises `FileNotFoundError` when `model` is neither an existing pipeline folder nor a hub id."""
    path = default_model_path() if model is None else Path(model).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(f"{path} is not a pipeline folder: it has no model_index.json")
        configs, weights = hashlib.sha256(), hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            relative = file.relative_to(path).as_posix()
            if file.suffix.lower() in CONFIG_SUFFIXES:
                configs.update(relative.encode() + b"\0" + file.read_bytes() + b"\0")
            elif file.suffix.lower() in WEIGHT_SUFFIXES:
                info = file.stat()
                weights.update(f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
        return {"kind": "local", "path": str(path.resolve()), "config_sha256": configs.hexdigest(),
                "weights_stat_sha256": weights.hexdigest()}
    if HUB_ID_PATTERN.fullmatch(str(model)):
        return {"kind": "hub", "id": str(model), "revision": _cached_hub_revision(str(model))}
    raise FileNotFoundError(f"model {str(model)!r} not found: it is neither an existing pipeline folder "
                            "(with model_index.json) nor a hub id like owner/name")


def _cached_hub_revision(repo_id: str) -> str | None:
    """The commit of the locally cached snapshot of a hub model, or None (no network access is made)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "model_index.json")
    except (ImportError, ValueError, OSError):  # an invalid id or unreadable cache: no revision in the identity
        return None
    return Path(cached).parent.name if isinstance(cached, str) else None
