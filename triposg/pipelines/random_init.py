"""Small randomly initialised pipelines: for tests, benchmarks and the placeholder demo model.

They run the full code path (same classes, same folder layout as the release) at a size a CPU handles
in seconds; their meshes are meaningless until trained. A random decoder's field need not cross zero
anywhere, so `add_sphere_prior` rewires a few decoder weights to make its zero level set a bumpy
sphere whose bumps still depend on the latents: every random pipeline then yields a surface.
"""

from __future__ import annotations

import math

import torch
from transformers import BitImageProcessor, CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection
from transformers import Dinov2Config, Dinov2Model

from ..models import TripoSGDiTModel, TripoSGVAEModel
from ..schedulers import RectifiedFlowScheduler
from .pipeline_triposg import TripoSGPipeline

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def dinov2_processor(crop_size: int = 224) -> BitImageProcessor:
    """The release's DINOv2 preprocessing (shortest edge 256·crop/224 bicubic, centre crop, ImageNet norm)."""
    return BitImageProcessor(
        size={"shortest_edge": round(crop_size * 256 / 224)},
        crop_size={"height": crop_size, "width": crop_size},
        resample=3,
        do_convert_rgb=True,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )


def make_random_pipeline(
    seed: int = 0,
    width: int = 64,
    num_layers: int = 3,
    num_heads: int = 2,
    latent_channels: int = 8,
    vae_width: int = 32,
    vae_layers: int = 1,
    image_width: int = 32,
    image_size: int = 56,
    use_clip: bool = False,
    use_moe: bool = False,
    scheduler=None,
    sphere_prior: bool = True,
) -> TripoSGPipeline:
    """A tiny TripoSG pipeline with random weights (default: ~0.2M parameters, 56 px images)."""
    torch.manual_seed(seed)
    clip_dim = 24
    transformer = TripoSGDiTModel(
        num_attention_heads=num_heads, width=width, in_channels=latent_channels, num_layers=num_layers,
        cross_attention_dim=image_width, use_cross_attention_2=use_clip,
        cross_attention_2_dim=clip_dim if use_clip else None, use_moe=use_moe, num_experts=4, moe_top_k=2,
        moe_layers=[num_layers - 1] if use_moe else None,
    )
    vae = TripoSGVAEModel(
        latent_channels=latent_channels, num_attention_heads=num_heads, width_encoder=vae_width,
        width_decoder=vae_width, num_layers_encoder=vae_layers, num_layers_decoder=vae_layers,
    )
    if sphere_prior:
        add_sphere_prior(vae)
    dinov2 = Dinov2Model(Dinov2Config(
        hidden_size=image_width, num_hidden_layers=1, num_attention_heads=2, intermediate_size=2 * image_width,
        image_size=image_size, patch_size=14,
    ))
    components = dict(
        vae=vae.eval(), transformer=transformer.eval(), scheduler=scheduler or RectifiedFlowScheduler(),
        image_encoder_dinov2=dinov2.eval(), feature_extractor_dinov2=dinov2_processor(image_size),
    )
    if use_clip:
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=image_width, intermediate_size=2 * image_width, num_hidden_layers=1,
            num_attention_heads=2, image_size=image_size, patch_size=14, projection_dim=clip_dim,
        ))
        components["image_encoder_clip"] = clip.eval()
        components["feature_extractor_clip"] = CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        )
    return TripoSGPipeline(**components)


@torch.no_grad()
def add_sphere_prior(vae: TripoSGVAEModel, radius: float = 0.6, perturbation: float = 0.1) -> None:
    """Make a random VAE decoder's zero level set a sphere of `radius` with latent-dependent bumps.

    The query embedding holds cos(x), cos(y), cos(z) (lowest frequency); `s = cos x + cos y + cos z −
    (2 + cos r)` is positive near the origin and zero at distance ≈ r. Query channel 0 carries +s and
    channel 1 carries −s; the decoder's final LayerNorm keeps the sign of that pair (and is linear in s
    near zero because of its eps), and `proj_out` reads channel 0 minus channel 1. The random attention
    and FFN outputs are scaled by `perturbation`, so the latents only perturb the surface.
    """
    decoder = vae.decoder
    freqs = vae.config.embed_frequency
    cos_index = [3 + 3 * freqs + axis * freqs for axis in range(3)]  # cos(2^0 · x|y|z)
    decoder.proj_query.weight.mul_(perturbation)
    decoder.proj_query.bias.zero_()
    decoder.proj_query.weight[0:2] = 0.0
    decoder.proj_query.weight[0, cos_index] = 1.0
    decoder.proj_query.weight[1, cos_index] = -1.0
    offset = 2.0 + math.cos(radius)
    decoder.proj_query.bias[0:2] = torch.tensor([-offset, offset])
    cross_block = decoder.blocks[-1]
    cross_block.attn2.to_out[0].weight.mul_(perturbation)
    cross_block.ff.net[2].weight.mul_(perturbation)
    # decode() negates the network output, so the network gives channel 1 − channel 0 (negative inside).
    decoder.proj_out.weight.zero_()
    decoder.proj_out.weight[0, 0:2] = torch.tensor([-1.0, 1.0])
    decoder.proj_out.bias.zero_()
