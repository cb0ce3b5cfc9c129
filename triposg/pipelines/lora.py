"""LoRA adapters on the pipeline's transformer, through diffusers' PEFT integration (`PeftAdapterMixin`).

The transformer holds the adapters; these pipeline methods carry diffusers' pipeline-level names
(`load_lora_weights`, `set_adapters`, `fuse_lora`, ...). Adapters are written and read as safetensors only.
"""

from __future__ import annotations

import os
from pathlib import Path

# The file LoRA adapters are written to and read from (diffusers' name).
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


class TripoSGLoraLoaderMixin:
    """LoRA methods for a pipeline with a `transformer` (a `TripoSGDiTModel`)."""

    def load_lora_weights(
        self, pretrained_model_name_or_path_or_dict, adapter_name: str | None = None, weight_name: str | None = None,
        **kwargs,
    ) -> None:
        """Load LoRA adapters into the transformer: a folder or hub id holding `pytorch_lora_weights.safetensors`
        (what `save_lora_weights` and `training.train_flow` with `lora:` write), a .safetensors file, or a state
        dict. Several adapters can be loaded under different `adapter_name`s and mixed with `set_adapters`.
        Only safetensors are read (a pickled .bin is refused)."""
        source = pretrained_model_name_or_path_or_dict
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_file():
                if path.suffix != ".safetensors":
                    raise ValueError(f"LoRA weights must be a .safetensors file (got {path.name}); pickles are not loaded")
                source, weight_name = str(path.parent), path.name
            weight_name = weight_name or LORA_WEIGHT_NAME
            if not weight_name.endswith(".safetensors"):
                raise ValueError(f"weight_name must name a .safetensors file, got {weight_name!r}")
            kwargs.setdefault("use_safetensors", True)
        self.transformer.load_lora_adapter(source, prefix=None, adapter_name=adapter_name, weight_name=weight_name, **kwargs)

    def save_lora_weights(self, save_directory, adapter_name: str = "default") -> None:
        """Write the transformer's adapter `adapter_name` as `pytorch_lora_weights.safetensors` (+ its config)."""
        self.transformer.save_lora_adapter(save_directory, adapter_name=adapter_name, safe_serialization=True,
                                           weight_name=LORA_WEIGHT_NAME)

    def set_adapters(self, adapter_names: str | list[str], weights: float | list[float] | None = None) -> None:
        """Which loaded LoRA adapters are active, and at what strength each."""
        self.transformer.set_adapters(adapter_names, weights)

    def fuse_lora(self, lora_scale: float = 1.0) -> None:
        """Merge the active adapters into the transformer's weights (no per-step LoRA cost)."""
        self.transformer.fuse_lora(lora_scale)

    def unfuse_lora(self) -> None:
        self.transformer.unfuse_lora()

    def unload_lora_weights(self) -> None:
        """Remove every LoRA adapter: the transformer is the base model again."""
        self.transformer.unload_lora()
