"""Named image encoders for the labelled Fréchet distances Normal-FID reports besides FID (e.g. FD-DINOv2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..fid import BatchFeatureExtractor, dinov2_extractor, pixel_extractor

if TYPE_CHECKING:
    from triposg.pipelines import TripoSGPipeline


@dataclass(frozen=True)
class NamedExtractor:
    """An image encoder for a Fréchet distance: `name` labels the metric ("FD-DINOv2" → `fd_dinov2`),
    `extract` maps uint8 (B, H, W, 3) images to (B, D) features, `source` says whose weights it uses."""

    name: str
    extract: BatchFeatureExtractor
    source: str


def dinov2_named_extractor(pipe: TripoSGPipeline, source: str) -> NamedExtractor:
    """FD-DINOv2 over the DINOv2 encoder of a loaded pipeline (`evaluation.fid.dinov2_extractor`)."""
    return NamedExtractor("FD-DINOv2", dinov2_extractor(pipe), f"DINOv2 encoder of {source}")


def pixel_named_extractor(size: int = 16) -> NamedExtractor:
    """FD-pixels<size> over the normal maps themselves, downsampled (`evaluation.fid.pixel_extractor`)."""
    return NamedExtractor(f"FD-pixels{size}", pixel_extractor(size), f"no encoder: {size}x{size} RGB pixels")
