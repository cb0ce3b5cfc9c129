"""Image conditioning for flow training: DINOv2 local tokens, optional CLIP global token (paper §3.1, eq. 2–6).

:class:`ConditionEncoder` computes exactly what ``TripoSGPipeline.encode_image`` computes, so a model trained
on its output samples correctly through the pipeline. Two ways to build it:

- :meth:`ConditionEncoder.from_pretrained` — pretrained encoders (e.g. ``facebook/dinov2-large`` and
  ``openai/clip-vit-large-patch14`` folders, or a TripoSG pipeline folder), **frozen** (no gradients, always
  in eval mode), as in the paper;
- :meth:`ConditionEncoder.from_config` — small encoders built from a transformers config, **trainable**,
  for from-scratch training on our own corpus when no pretrained weights are available.

:func:`drop_conditions` implements condition dropout for classifier-free guidance: a dropped sample gets the
pipeline's unconditional context, all-zero tokens.
"""

from __future__ import annotations

from pathlib import Path

import PIL.Image
import torch
from torch import nn
from transformers import (
    BitImageProcessor,
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    Dinov2Config,
    Dinov2Model,
)

from triposg.pipelines.random_init import dinov2_processor

# Pipeline component names: `components()` / `save_pretrained` use them so an exported run loads as a pipeline.
DINOV2_ENCODER, DINOV2_PROCESSOR = "image_encoder_dinov2", "feature_extractor_dinov2"
CLIP_ENCODER, CLIP_PROCESSOR = "image_encoder_clip", "feature_extractor_clip"


def clip_processor(image_size: int = 224) -> CLIPImageProcessor:
    """CLIP preprocessing for a from-scratch CLIP at ``image_size`` (resize shortest edge, centre crop)."""
    return CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})


class ConditionEncoder(nn.Module):
    """DINOv2 (+ optional CLIP) image encoder producing the flow model's cross-attention contexts.

    Args:
        dinov2, dinov2_processor: the local-feature encoder and its preprocessing.
        clip, clip_processor: the global-feature encoder (``CLIPVisionModelWithProjection``) and its
            preprocessing, or None for a DINOv2-only model (the release).
        trainable: train the encoders (from-scratch training) or keep them frozen (pretrained weights).
    """

    def __init__(
        self,
        dinov2: Dinov2Model,
        dinov2_processor: BitImageProcessor,
        clip: CLIPVisionModelWithProjection | None = None,
        clip_processor: CLIPImageProcessor | None = None,
        trainable: bool = False,
    ):
        super().__init__()
        if (clip is None) != (clip_processor is None):
            raise ValueError("pass both clip and clip_processor, or neither")
        self.dinov2 = dinov2
        self.dinov2_processor = dinov2_processor
        self.clip = clip
        self.clip_processor = clip_processor
        self.trainable = trainable
        self.requires_grad_(trainable)
        if not trainable:
            self.eval()

    # ---- construction ----

    @classmethod
    def from_pretrained(
        cls,
        dinov2: str | Path,
        clip: str | Path | None = None,
        trainable: bool = False,
        subfolders: bool = False,
        **kwargs,
    ) -> ConditionEncoder:
        """Load pretrained encoders and their processors (frozen unless ``trainable``).

        Args:
            dinov2: hub id or folder of a ``Dinov2Model`` (with its preprocessor config if it has one;
                otherwise the release's DINOv2 preprocessing at the model's image size is used).
            clip: hub id or folder of a ``CLIPVisionModelWithProjection`` and its ``CLIPImageProcessor``.
            subfolders: ``dinov2`` is a TripoSG pipeline folder; read its ``image_encoder_dinov2`` /
                ``feature_extractor_dinov2`` (and CLIP, when present) subfolders. ``clip`` is ignored.
            kwargs: passed to the models' ``from_pretrained`` (e.g. ``torch_dtype``).
        """
        if subfolders:
            root = Path(dinov2)
            has_clip = (root / CLIP_ENCODER).is_dir()
            dinov2_model = Dinov2Model.from_pretrained(root / DINOV2_ENCODER, **kwargs)
            processor = BitImageProcessor.from_pretrained(root / DINOV2_PROCESSOR)
            clip_model = (
                CLIPVisionModelWithProjection.from_pretrained(root / CLIP_ENCODER, **kwargs) if has_clip else None
            )
            clip_proc = CLIPImageProcessor.from_pretrained(root / CLIP_PROCESSOR) if has_clip else None
            return cls(dinov2_model, processor, clip_model, clip_proc, trainable=trainable)
        dinov2_model = Dinov2Model.from_pretrained(dinov2, **kwargs)
        try:
            processor = BitImageProcessor.from_pretrained(dinov2)
        except OSError:  # a bare model folder without preprocessor_config.json
            processor = dinov2_processor(dinov2_model.config.image_size)
        clip_model = clip_proc = None
        if clip is not None:
            clip_model = CLIPVisionModelWithProjection.from_pretrained(clip, **kwargs)
            clip_proc = CLIPImageProcessor.from_pretrained(clip)
        return cls(dinov2_model, processor, clip_model, clip_proc, trainable=trainable)

    @classmethod
    def from_config(
        cls,
        dinov2_config: Dinov2Config | dict,
        clip_config: CLIPVisionConfig | dict | None = None,
        trainable: bool = True,
    ) -> ConditionEncoder:
        """Randomly initialised encoders from transformers configs (trainable, for from-scratch training).

        The processors follow the configs' ``image_size`` (DINOv2: the release's preprocessing; CLIP:
        shortest-edge resize + centre crop with CLIP's normalisation).
        """
        if isinstance(dinov2_config, dict):
            dinov2_config = Dinov2Config(**dinov2_config)
        dinov2 = Dinov2Model(dinov2_config)
        clip = clip_proc = None
        if clip_config is not None:
            if isinstance(clip_config, dict):
                clip_config = CLIPVisionConfig(**clip_config)
            clip = CLIPVisionModelWithProjection(clip_config)
            clip_proc = clip_processor(clip_config.image_size)
        return cls(dinov2, dinov2_processor(dinov2_config.image_size), clip, clip_proc, trainable=trainable)

    # ---- use ----

    @property
    def local_dim(self) -> int:
        """Width of the local tokens: the transformer's ``cross_attention_dim``."""
        return self.dinov2.config.hidden_size

    @property
    def global_dim(self) -> int | None:
        """Width of the global token: the transformer's ``cross_attention_2_dim`` (None without CLIP)."""
        return self.clip.config.projection_dim if self.clip is not None else None

    def train(self, mode: bool = True) -> ConditionEncoder:
        """Frozen encoders stay in eval mode (no dropout/stochastic depth) whatever the trainer asks."""
        return super().train(mode and self.trainable)

    def encode(self, images: list[PIL.Image.Image]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """RGB images (the preprocessed, object-on-white views) → contexts, as ``TripoSGPipeline.encode_image``.

        Returns:
            local: (B, S, D) DINOv2 ``last_hidden_state`` (CLS + register + patch tokens).
            global: (B, 1, D2) CLIP ``image_embeds`` as one token, or None without CLIP.
        Gradients flow only when the encoder is trainable.
        """
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            pixels = self.dinov2_processor(images=images, return_tensors="pt").pixel_values
            local = self.dinov2(pixels.to(device=self.dinov2.device, dtype=self.dinov2.dtype)).last_hidden_state
            global_tokens = None
            if self.clip is not None:
                clip_pixels = self.clip_processor(images=images, return_tensors="pt").pixel_values
                clip_pixels = clip_pixels.to(device=self.clip.device, dtype=self.clip.dtype)
                global_tokens = self.clip(clip_pixels).image_embeds[:, None]
        return local, global_tokens

    forward = encode

    def components(self) -> dict[str, object]:
        """The encoders and processors under the ``TripoSGPipeline`` component names (for export)."""
        parts: dict[str, object] = {DINOV2_ENCODER: self.dinov2, DINOV2_PROCESSOR: self.dinov2_processor}
        if self.clip is not None:
            parts.update({CLIP_ENCODER: self.clip, CLIP_PROCESSOR: self.clip_processor})
        return parts

    def save_pretrained(self, folder: str | Path) -> None:
        """Write each component to its pipeline subfolder of ``folder`` (loadable with ``subfolders=True``)."""
        for name, part in self.components().items():
            part.save_pretrained(Path(folder) / name)


def drop_conditions(
    local: torch.Tensor,
    global_tokens: torch.Tensor | None,
    p: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Condition dropout for classifier-free guidance: each sample independently, with probability ``p``,
    gets the unconditional context — all-zero local **and** global tokens, as the pipeline feeds for CFG.

    Args:
        local: (B, S, D) local tokens; global_tokens: (B, 1, D2) or None.
        p: drop probability in [0, 1].
        generator: seeds the per-sample draws (drawn on the generator's device).
    Returns:
        ``(local, global_tokens, dropped)`` with ``dropped`` a (B,) bool mask of the zeroed samples.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"condition dropout probability must be in [0, 1], got {p}")
    draw_device = generator.device if generator is not None else local.device
    dropped = (torch.rand(local.shape[0], generator=generator, device=draw_device) < p).to(local.device)
    # where(), not a multiply by 0/1: a dropped context must be exactly zero even if it held inf/NaN.
    local = torch.where(dropped.reshape(-1, *([1] * (local.ndim - 1))), torch.zeros_like(local), local)
    if global_tokens is not None:
        mask = dropped.to(global_tokens.device).reshape(-1, *([1] * (global_tokens.ndim - 1)))
        global_tokens = torch.where(mask, torch.zeros_like(global_tokens), global_tokens)
    return local, global_tokens, dropped
