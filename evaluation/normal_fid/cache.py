"""The generation cache (`GenerationCache`): one entry per (model identity, sampling settings, runtime
device/dtype, object id, input image bytes), the SHA-256 of those as canonical JSON. The model identity is
`identity.model_identity`'s."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from triposg.io import write_bytes_atomic

from ..fid import PathLike

CACHE_FORMAT_VERSION = 1  # bump when what a cache entry holds changes meaning


@dataclass
class CachedGeneration:
    """A cache entry: the generated mesh, or the error of a deterministic failure (then `mesh` is None)."""

    mesh: trimesh.Trimesh | None
    error: str | None
    seconds: float


class GenerationCache:
    """Generated meshes on disk under `root/<key[:2]>/<key>.npz` (+ `.json` with what the key was made of).

    Meshes are stored exactly (float vertices, int faces), before normalisation. Failures that repeat
    deterministically (no surface found) are stored too, so a re-run does not retry them.
    """

    def __init__(self, root: PathLike):
        self.root = Path(root)

    @staticmethod
    def key(identity: dict[str, Any], object_id: str, image_bytes: bytes) -> str:
        """SHA-256 of canonical JSON of (cache format, variant identity, object id, SHA-256 of the image bytes)."""
        material = {"format": CACHE_FORMAT_VERSION, "variant": identity, "object_id": object_id,
                    "image_sha256": hashlib.sha256(image_bytes).hexdigest()}
        return hashlib.sha256(canonical_json(material).encode()).hexdigest()

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / f"{key}{suffix}"

    def load(self, key: str) -> CachedGeneration | None:
        """The stored entry, or None when missing or unreadable (then it is regenerated)."""
        try:
            record = json.loads(self._path(key, ".json").read_text())
            if record.get("error") is not None:
                return CachedGeneration(None, record["error"], record.get("seconds", 0.0))
            with np.load(self._path(key, ".npz"), allow_pickle=False) as stored:
                mesh = trimesh.Trimesh(vertices=stored["vertices"], faces=stored["faces"], process=False)
            return CachedGeneration(mesh, None, record.get("seconds", 0.0))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None

    def store(self, key: str, entry: CachedGeneration, description: dict[str, Any]) -> None:
        """Write the mesh first and the record last, so a record always points at a complete mesh."""
        if entry.mesh is not None:
            buffer = io.BytesIO()
            np.savez(buffer, vertices=np.asarray(entry.mesh.vertices), faces=np.asarray(entry.mesh.faces))
            write_bytes_atomic(self._path(key, ".npz"), buffer.getvalue())
        record = {**description, "error": entry.error, "seconds": entry.seconds}
        write_bytes_atomic(self._path(key, ".json"), json.dumps(record, indent=1, default=str).encode())


def canonical_json(value: Any) -> str:
    """`value` as JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
