"""TripoSG networks: the flow transformer (DiT), the SDF VAE and their building blocks."""

from .moe import MoEFeedForward, MoEStats, upcycle_feed_forward
from .transformer import TripoSGDiTModel, TripoSGDiTModelOutput
from .vae import DiagonalGaussian, TripoSGVAEModel

__all__ = [
    "DiagonalGaussian",
    "MoEFeedForward",
    "MoEStats",
    "TripoSGDiTModel",
    "TripoSGDiTModelOutput",
    "TripoSGVAEModel",
    "upcycle_feed_forward",
]
