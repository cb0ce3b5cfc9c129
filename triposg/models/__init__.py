"""TripoSG networks: the flow transformer (DiT), the SDF VAE and their building blocks."""

# The alias modules named by the released model_index.json must be imported up front: diffusers only
# resolves component modules that are already in sys.modules.
from .autoencoders import autoencoder_kl_triposg  # noqa: F401
from .moe import MoEFeedForward, MoEStats, upcycle_feed_forward
from .transformer import TripoSGDiTModel, TripoSGDiTModelOutput
from .transformers import triposg_transformer  # noqa: F401
from .sdf_field import QUERY_PRECISIONS, SDFField, cpu_has_fast_bf16, resolve_query_precision
from .vae import DiagonalGaussian, TripoSGVAEModel

__all__ = [
    "DiagonalGaussian",
    "MoEFeedForward",
    "MoEStats",
    "QUERY_PRECISIONS",
    "SDFField",
    "TripoSGDiTModel",
    "TripoSGDiTModelOutput",
    "TripoSGVAEModel",
    "cpu_has_fast_bf16",
    "resolve_query_precision",
    "upcycle_feed_forward",
]
