"""The released TripoSG checkpoint's state-dict tables, written out from the reference
(`shared/reference/official-checkpoint.md`) independently of our model code.

Each function returns {key: shape}. Tests compare our models' state dicts against these.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def _linear(prefix: str, out_dim: int, in_dim: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    table = {f"{prefix}.weight": (out_dim, in_dim)}
    if bias:
        table[f"{prefix}.bias"] = (out_dim,)
    return table


def _norm(prefix: str, dim: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    table = {f"{prefix}.weight": (dim,)}
    if bias:
        table[f"{prefix}.bias"] = (dim,)
    return table


def _attention(prefix: str, dim: int, context_dim: int, head_dim: int, qk_norm: bool, norm_cross: bool):
    table = {}
    table.update(_linear(f"{prefix}.to_q", dim, dim, bias=False))
    table.update(_linear(f"{prefix}.to_k", dim, context_dim, bias=False))
    table.update(_linear(f"{prefix}.to_v", dim, context_dim, bias=False))
    if qk_norm:
        table.update(_norm(f"{prefix}.norm_q", head_dim, bias=False))
        table.update(_norm(f"{prefix}.norm_k", head_dim, bias=False))
    if norm_cross:
        table.update(_norm(f"{prefix}.norm_cross", context_dim))
    table.update(_linear(f"{prefix}.to_out.0", dim, dim))
    return table


def _ff(prefix: str, dim: int, inner: int):
    return {**_linear(f"{prefix}.net.0.proj", inner, dim), **_linear(f"{prefix}.net.2", dim, inner)}


def release_transformer_layout(cross_attention_2_dim: int | None = None) -> dict[str, tuple[int, ...]]:
    """TripoSGDiTModel: width 2048, 16 heads of 128, 21 blocks, context 1024, FFN 8192, skips on 11..20."""
    width, heads, ctx, inner, in_ch, layers = 2048, 16, 1024, 8192, 64, 21
    head_dim = width // heads
    table = {}
    table.update(_linear("time_proj.linear_1", inner, width))
    table.update(_linear("time_proj.linear_2", width, inner))
    table.update(_linear("proj_in", width, in_ch))
    for i in range(layers):
        p = f"blocks.{i}"
        table.update(_norm(f"{p}.norm1", width))
        table.update(_attention(f"{p}.attn1", width, width, head_dim, qk_norm=True, norm_cross=False))
        table.update(_norm(f"{p}.norm2", width))
        table.update(_attention(f"{p}.attn2", width, ctx, head_dim, qk_norm=True, norm_cross=False))
        if cross_attention_2_dim is not None:
            table.update(_norm(f"{p}.norm2_2", width))
            table.update(_attention(f"{p}.attn2_2", width, cross_attention_2_dim, head_dim, qk_norm=True, norm_cross=False))
        table.update(_norm(f"{p}.norm3", width))
        table.update(_ff(f"{p}.ff", width, inner))
        if i >= 11:
            table.update(_linear(f"{p}.skip_linear", width, 2 * width))
            table.update(_norm(f"{p}.skip_norm", width))
    table.update(_norm("norm_out", width))
    table.update(_linear("proj_out", in_ch, width))
    return table


def release_vae_layout() -> dict[str, tuple[int, ...]]:
    """TripoSGVAEModel: encoder 512 × (1 cross + 8 self), decoder 1024 × (16 self + 1 cross), 8 heads."""
    enc, dec, heads, latent = 512, 1024, 8, 64
    embed = 3 + 2 * 3 * 8  # xyz + sin/cos of 8 frequencies per coordinate = 51
    table = {}
    table.update(_linear("encoder.proj_in", enc, embed + 3))
    table.update(_norm("encoder.blocks.0.norm2", enc))
    table.update(_attention("encoder.blocks.0.attn2", enc, enc, enc // heads, qk_norm=False, norm_cross=True))
    table.update(_norm("encoder.blocks.0.norm3", enc))
    table.update(_ff("encoder.blocks.0.ff", enc, 4 * enc))
    for i in range(1, 9):
        p = f"encoder.blocks.{i}"
        table.update(_norm(f"{p}.norm1", enc))
        table.update(_attention(f"{p}.attn1", enc, enc, enc // heads, qk_norm=False, norm_cross=False))
        table.update(_norm(f"{p}.norm3", enc))
        table.update(_ff(f"{p}.ff", enc, 4 * enc))
    table.update(_norm("encoder.norm_out", enc))
    table.update(_linear("quant", 2 * latent, enc))
    table.update(_linear("post_quant", dec, latent))
    for i in range(16):
        p = f"decoder.blocks.{i}"
        table.update(_norm(f"{p}.norm1", dec))
        table.update(_attention(f"{p}.attn1", dec, dec, dec // heads, qk_norm=False, norm_cross=False))
        table.update(_norm(f"{p}.norm3", dec))
        table.update(_ff(f"{p}.ff", dec, 4 * dec))
    table.update(_linear("decoder.proj_query", dec, embed))
    table.update(_norm("decoder.blocks.16.norm2", dec))
    table.update(_attention("decoder.blocks.16.attn2", dec, dec, dec // heads, qk_norm=False, norm_cross=True))
    table.update(_norm("decoder.blocks.16.norm3", dec))
    table.update(_ff("decoder.blocks.16.ff", dec, 4 * dec))
    table.update(_norm("decoder.norm_out", dec))
    table.update(_linear("decoder.proj_out", 1, dec))
    return table


def rewrite_as_release_folder(folder: Path) -> None:
    """Make a saved pipeline folder read like the release's: its `model_index.json` (module names, diffusers
    0.30.3, DINOv2 only), its scheduler config, and the older VAE class name `Tripo2VAEModel`."""
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "TripoSGPipeline",
        "_diffusers_version": "0.30.3",
        "feature_extractor_dinov2": ["transformers", "BitImageProcessor"],
        "image_encoder_dinov2": ["transformers", "Dinov2Model"],
        "scheduler": ["triposg.schedulers.scheduling_rectified_flow", "RectifiedFlowScheduler"],
        "transformer": ["triposg.models.transformers.triposg_transformer", "TripoSGDiTModel"],
        "vae": ["triposg.models.autoencoders.autoencoder_kl_triposg", "TripoSGVAEModel"],
    }, indent=2))
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({
        "_class_name": "RectifiedFlowScheduler", "_diffusers_version": "0.30.3",
        "num_train_timesteps": 1000, "shift": 1, "use_dynamic_shifting": False,
    }))
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    vae_config["_class_name"] = "Tripo2VAEModel"
    (folder / "vae" / "config.json").write_text(json.dumps(vae_config))
    for optional in ("image_encoder_clip", "feature_extractor_clip"):
        shutil.rmtree(folder / optional, ignore_errors=True)
