"""The sampling settings a model was made for, stored beside its weights as `generation_config.json`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..offline import offline_requested

GENERATION_CONFIG_NAME = "generation_config.json"


@dataclass
class GenerationDefaults:
    """Sampling settings a model was made for; a pipeline folder may override them in
    `generation_config.json`. Defaults are the release script's (a folder without the file, like the release)."""

    num_inference_steps: int = 50
    guidance_scale: float = 7.0
    num_tokens: int = 2048
    octree_resolution: int = 256
    seed: int = 42
    # Precision of the field queries during extraction: "full" (the weights' own, the release's semantics) unless
    # the model was checked with bf16 queries ("auto": bf16 on CPUs with native bf16, about 2x faster).
    query_precision: str = "full"

    @classmethod
    def from_folder(cls, folder: str | os.PathLike | None) -> "GenerationDefaults":
        path = Path(folder) / GENERATION_CONFIG_NAME if folder is not None else None
        if path is None or not path.is_file():
            return cls()
        known = {f.name for f in fields(cls)}
        values = json.loads(path.read_text())
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike) -> "GenerationDefaults":
        """From a local pipeline folder, or a hub id's file (from the cache when offline); the release script's
        defaults when the model has no such file."""
        if Path(source).is_dir():
            return cls.from_folder(source)
        try:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(str(source), GENERATION_CONFIG_NAME, local_files_only=offline_requested())
        except Exception:  # noqa: BLE001 - no such file, no network, no cache: the model keeps the defaults
            return cls()
        return cls.from_folder(Path(path).parent)

    def save(self, folder: str | os.PathLike) -> None:
        (Path(folder) / GENERATION_CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")
