"""TripoSG's rectified-flow transformer (paper §3.1, Fig. 2), loadable from the released checkpoint.

2N+1 blocks: N "encoder" blocks push their outputs on a stack, one middle block, N "decoder" blocks
each pop one and fuse it with `skip_norm(skip_linear(cat[skip, h]))` (U-ViT style long skips). A time
token is prepended to the latent tokens; there is no positional encoding (latents are a set).
Each block: self-attention → cross-attention to the image tokens (DINOv2 local features; optionally a
second branch on CLIP global features whose output is summed, paper eq. 2–6) → FFN or MoE (§3.2).

The defaults reproduce the release (1.44e9 parameters, key-for-key); the paper-only parts
(`use_cross_attention_2`, `use_moe`, `use_skip_connections=False` for the ablation) default to the release.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput, scale_lora_layers, unscale_lora_layers
from torch import nn

from .attention import Attention, ContextKV, FeedForward, FP32LayerNorm
from .embeddings import TimestepEmbedding, timestep_sinusoids
from .moe import MoEFeedForward, MoEStats, upcycle_feed_forward


@dataclass
class TripoSGDiTModelOutput(BaseOutput):
    """`sample`: (B, L, C) predicted velocity (or whatever the objective trains it to predict).
    `aux_loss`: summed MoE load-balancing loss (a scalar), None for a dense model.
    `expert_load`: (num_moe_layers, N) share of tokens per expert, None for a dense model.
    """

    sample: torch.Tensor
    aux_loss: torch.Tensor | None = None
    expert_load: torch.Tensor | None = None


@dataclass
class ContextCache:
    """Every block's cross-attention keys/values of one call's condition (`TripoSGDiTModel.cache_context`).

    The image tokens are the same at every sampling step, so a sampler projects them once per call and passes this
    to each step (`context_cache=`). `image`: one `ContextKV` per block (None for a block without cross-attention);
    `image_2`: the same for the second (CLIP) branch, None where a block has no such branch or no tokens were given.
    """

    image: list[ContextKV | None]
    image_2: list[ContextKV | None]

    def check_batch(self, batch: int, encoder_hidden_states: torch.Tensor | None = None) -> None:
        """Raise ValueError unless the cache was made for `batch` rows (and, when the step is also given
        `encoder_hidden_states`, for as many rows as those): a cache of another call's condition is a mistake the
        blocks would not notice, as they read only the cache."""
        cached = next((kv.k.shape[0] for kv in (*self.image, *self.image_2) if kv is not None), None)
        if cached is None:
            return
        if cached != batch:
            raise ValueError(f"context_cache holds {cached} condition rows but hidden_states has {batch}: make the "
                             "cache with cache_context() from this call's encoder_hidden_states")
        if encoder_hidden_states is not None and encoder_hidden_states.shape[0] != cached:
            raise ValueError(f"encoder_hidden_states has {encoder_hidden_states.shape[0]} rows but context_cache was "
                             f"made from {cached}: pass the cache of these same tokens (or no cache)")


def run_block(owner: nn.Module, block: nn.Module, *args) -> tuple[torch.Tensor, MoEStats | None]:
    """Call `block(*args)`, through gradient checkpointing when `owner` has it switched on (training)."""
    if torch.is_grad_enabled() and getattr(owner, "gradient_checkpointing", False):
        return owner._gradient_checkpointing_func(block, *args)
    return block(*args)


class DiTBlock(nn.Module):
    """One transformer block; also the building block of the VAE (attention parts switch on and off).

    Args:
        dim: width D. heads: attention heads. inner_dim: FFN hidden width.
        self_attention / cross_attention_dim: which attentions exist (`attn1`, `attn2`).
        cross_attention_2_dim: a second context (`norm2_2`, `attn2_2`), summed with `attn2`'s output.
        qk_norm: per-head RMSNorm on q and k. cross_attention_norm: LayerNorm on the context.
        skip: this block fuses a long-skip input (`skip_linear`, `skip_norm`).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        inner_dim: int,
        self_attention: bool = True,
        cross_attention_dim: int | None = None,
        cross_attention_2_dim: int | None = None,
        qk_norm: bool = True,
        cross_attention_norm: bool = False,
        skip: bool = False,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None
        self.skip_norm = FP32LayerNorm(dim, eps=norm_eps) if skip else None
        if self_attention:
            self.norm1 = FP32LayerNorm(dim, eps=norm_eps)
            self.attn1 = Attention(dim, heads, qk_norm=qk_norm)
        else:
            self.norm1 = self.attn1 = None
        if cross_attention_dim is not None:
            self.norm2 = FP32LayerNorm(dim, eps=norm_eps)
            self.attn2 = Attention(dim, heads, cross_attention_dim, qk_norm, cross_attention_norm)
        else:
            self.norm2 = self.attn2 = None
        if cross_attention_2_dim is not None:
            self.norm2_2 = FP32LayerNorm(dim, eps=norm_eps)
            self.attn2_2 = Attention(dim, heads, cross_attention_2_dim, qk_norm, cross_attention_norm)
        else:
            self.norm2_2 = self.attn2_2 = None
        self.norm3 = FP32LayerNorm(dim, eps=norm_eps)
        self.ff: FeedForward | MoEFeedForward = FeedForward(dim, inner_dim)

    def forward(
        self,
        h: torch.Tensor,
        context: torch.Tensor | ContextKV | None = None,
        context_2: torch.Tensor | ContextKV | None = None,
        skip: torch.Tensor | None = None,
        cross_attention_scale: float = 1.0,
        cross_attention_2_scale: float = 1.0,
    ) -> tuple[torch.Tensor, MoEStats | None]:
        """`h`: (B, L, D); contexts (B, S, C), or their precomputed keys/values (`Attention.project_context`);
        `skip`: (B, L, D). Returns (B, L, D) and MoE stats or None."""
        if self.skip_linear is not None:
            h = self.skip_norm(self.skip_linear(torch.cat([skip, h], dim=-1)))
        if self.attn1 is not None:
            h = h + self.attn1(self.norm1(h))
        if self.attn2 is not None:
            cross = cross_attention_scale * self.attn2(self.norm2(h), context)
            if self.attn2_2 is not None and context_2 is not None:
                # Paper eq. 5-6: both branches read the same h, their outputs are summed.
                cross = cross + cross_attention_2_scale * self.attn2_2(self.norm2_2(h), context_2)
            h = h + cross
        stats = None
        if isinstance(self.ff, MoEFeedForward):
            ff_out, stats = self.ff(self.norm3(h))
        else:
            ff_out = self.ff(self.norm3(h))
        return h + ff_out, stats


class TripoSGDiTModel(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """The flow transformer. Defaults = the released 1.5B model.

    LoRA adapters come through diffusers' `PeftAdapterMixin` (`add_adapter`, `load_lora_adapter`,
    `save_lora_adapter`, `set_adapters`, `fuse_lora`, ...); `attention_kwargs={"scale": s}` scales them per call.

    Config:
        num_attention_heads, width: attention heads and token width (head dim = width / heads).
        in_channels: latent channels (64, the VAE's).
        num_layers: 2N+1 blocks (21 released). An even count is accepted as the release code builds it: blocks
            before the middle index L//2 push, blocks after it pop, so block 0's output is left unused.
        cross_attention_dim: DINOv2 token width (1024 for dinov2-large).
        use_cross_attention_2, cross_attention_2_dim: the paper's CLIP global branch (off in the release).
        mlp_ratio: FFN hidden width / width (4 in the release).
        use_skip_connections: U-ViT long skips (on in the release; off only for the Table 1 ablation).
        use_moe, num_experts, moe_top_k, moe_shared_expert, moe_layers: MoE FFNs (paper §3.2); with
            `moe_layers=None` the last 6 decoder blocks get them.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 16,
        width: int = 2048,
        in_channels: int = 64,
        num_layers: int = 21,
        cross_attention_dim: int = 1024,
        use_cross_attention_2: bool = False,
        cross_attention_2_dim: int | None = None,
        mlp_ratio: float = 4.0,
        use_skip_connections: bool = True,
        use_moe: bool = False,
        num_experts: int = 8,
        moe_top_k: int = 2,
        moe_shared_expert: bool = True,
        moe_layers: list[int] | None = None,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if use_cross_attention_2 and cross_attention_2_dim is None:
            raise ValueError("use_cross_attention_2=True needs cross_attention_2_dim (the CLIP embedding width)")
        self.gradient_checkpointing = False
        inner_dim = int(width * mlp_ratio)
        self.time_proj = TimestepEmbedding(width, inner_dim, width)
        self.proj_in = nn.Linear(in_channels, width)
        self.blocks = nn.ModuleList(
            [
                DiTBlock(
                    width,
                    num_attention_heads,
                    inner_dim,
                    cross_attention_dim=cross_attention_dim,
                    cross_attention_2_dim=cross_attention_2_dim if use_cross_attention_2 else None,
                    skip=use_skip_connections and i > num_layers // 2,
                )
                for i in range(num_layers)
            ]
        )
        if use_moe:
            for i in self.moe_layer_indices:
                self.blocks[i].ff = MoEFeedForward(width, inner_dim, num_experts, moe_top_k, moe_shared_expert)
        self.norm_out = nn.LayerNorm(width)  # plain (in the weights' dtype), as released; the blocks' are fp32
        self.proj_out = nn.Linear(width, in_channels)
        self.initialize_weights()

    @property
    def moe_layer_indices(self) -> list[int]:
        """Blocks that hold (or would hold) MoE FFNs: the config's list, or the last 6 decoder blocks."""
        if self.config.moe_layers is not None:
            return list(self.config.moe_layers)
        num_decoder = self.config.num_layers // 2
        return list(range(self.config.num_layers - min(6, num_decoder), self.config.num_layers))

    def initialize_weights(self) -> None:
        """Xavier-uniform linears with zero biases; skip fusion starts as the identity on `h`; output zeroed
        so a fresh model predicts zero velocity."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.time_proj.linear_1.weight, std=0.02)
        nn.init.normal_(self.time_proj.linear_2.weight, std=0.02)
        nn.init.zeros_(self.proj_out.weight)

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_hidden_states_2: torch.Tensor | None = None,
        attention_kwargs: dict | None = None,
        return_dict: bool = True,
        context_cache: ContextCache | None = None,
    ) -> TripoSGDiTModelOutput | tuple:
        """Predict the velocity for noisy latents.

        Args:
            hidden_states: (B, L, in_channels) noisy latents.
            timestep: (B,) or scalar floats in [0, 1000] (1000·σ for rectified flow).
            encoder_hidden_states: (B, S, cross_attention_dim) image tokens (zeros = unconditional).
            encoder_hidden_states_2: (B, S2, cross_attention_2_dim) CLIP tokens for the second branch.
            attention_kwargs: optional `{"cross_attention_scale": s, "cross_attention_2_scale": s2}`, and
                `"scale"`: the LoRA adapters' strength for this call (1 = as trained).
            context_cache: `cache_context(encoder_hidden_states, encoder_hidden_states_2, attention_kwargs)` of these
                same tokens: the blocks attend to its keys/values instead of projecting the tokens again (the same
                result; samplers compute it once per call, as the condition does not change between steps).
        Returns:
            `TripoSGDiTModelOutput` (`.sample` (B, L, in_channels)); with `return_dict=False` the tuple
            `(sample,)` for a dense model or `(sample, aux_loss)` for an MoE model.
        """
        attention_kwargs = dict(attention_kwargs or {})
        with self._lora_scale(float(attention_kwargs.pop("scale", 1.0))):
            return self._forward(hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_2,
                                 attention_kwargs, return_dict, context_cache)

    def cache_context(
        self,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_2: torch.Tensor | None = None,
        attention_kwargs: dict | None = None,
    ) -> ContextCache:
        """Every block's cross-attention keys/values of the condition tokens, for `forward(..., context_cache=)`.

        `encoder_hidden_states`: (B, S, cross_attention_dim); `encoder_hidden_states_2`: (B, S2, cross_attention_2_dim)
        for the second branch. `attention_kwargs`: those the steps will get (their LoRA `"scale"` applies to the key
        and value projections too). Rows of all-zero tokens (guidance's unconditional half) are marked blank: their
        cross-attention output is a constant the blocks fill in instead of computing.
        """
        attention_kwargs = dict(attention_kwargs or {})
        if self.config.use_cross_attention_2 and encoder_hidden_states_2 is None:
            raise ValueError("this model has a second cross-attention branch: pass encoder_hidden_states_2")
        with self._lora_scale(float(attention_kwargs.pop("scale", 1.0))):
            image = [block.attn2.project_context(encoder_hidden_states) if block.attn2 is not None else None
                     for block in self.blocks]
            image_2 = [block.attn2_2.project_context(encoder_hidden_states_2)
                       if block.attn2_2 is not None and encoder_hidden_states_2 is not None else None
                       for block in self.blocks]
        return ContextCache(image=image, image_2=image_2)

    @contextlib.contextmanager
    def _lora_scale(self, scale: float) -> Iterator[None]:
        """The LoRA adapters scaled by `scale` inside the block (nothing to do at 1 or without adapters)."""
        if scale == 1.0 or not getattr(self, "_hf_peft_config_loaded", False):
            yield
            return
        scale_lora_layers(self, scale)
        try:
            yield
        finally:
            unscale_lora_layers(self, scale)

    def _forward(self, hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_2, attention_kwargs,
                 return_dict, context_cache=None):
        scales = (
            float(attention_kwargs.get("cross_attention_scale", 1.0)),
            float(attention_kwargs.get("cross_attention_2_scale", 1.0)),
        )
        if self.config.use_cross_attention_2 and encoder_hidden_states_2 is None and context_cache is None:
            raise ValueError("this model has a second cross-attention branch: pass encoder_hidden_states_2")
        batch = hidden_states.shape[0]
        if context_cache is not None:
            context_cache.check_batch(batch, encoder_hidden_states)
        timestep = torch.as_tensor(timestep, device=hidden_states.device).reshape(-1).expand(batch)

        temb = self.time_proj(timestep_sinusoids(timestep, self.config.width).to(hidden_states.dtype))  # (B, D)
        h = torch.cat([temb[:, None], self.proj_in(hidden_states)], dim=1)  # (B, 1 + L, D)

        skips: list[torch.Tensor] = []
        moe_stats: list[MoEStats] = []
        num_encoder = self.config.num_layers // 2
        for i, block in enumerate(self.blocks):
            skip = skips.pop() if block.skip_linear is not None else None
            if context_cache is not None:
                context, context_2 = context_cache.image[i], context_cache.image_2[i]
            else:
                context, context_2 = encoder_hidden_states, encoder_hidden_states_2
            h, stats = run_block(self, block, h, context, context_2, skip, *scales)
            if self.config.use_skip_connections and i < num_encoder:
                skips.append(h)
            if stats is not None:
                moe_stats.append(stats)

        sample = self.proj_out(self.norm_out(h))[:, 1:]  # drop the time token → (B, L, C)
        aux_loss = torch.stack([s.aux_loss for s in moe_stats]).sum() if moe_stats else None
        expert_load = torch.stack([s.expert_load for s in moe_stats]) if moe_stats else None
        if not return_dict:
            return (sample,) if aux_loss is None else (sample, aux_loss)
        return TripoSGDiTModelOutput(sample=sample, aux_loss=aux_loss, expert_load=expert_load)

    @classmethod
    def upcycle(
        cls,
        dense: "TripoSGDiTModel",
        num_experts: int = 8,
        moe_top_k: int = 2,
        moe_shared_expert: bool = True,
        moe_layers: list[int] | None = None,
    ) -> "TripoSGDiTModel":
        """A new MoE model whose chosen blocks' experts are copies of `dense`'s FFNs (paper §3.2).

        Everything else is copied as is; at initialisation the result computes the same function as
        `dense` (see `triposg.models.moe`).
        """
        if dense.config.use_moe:
            raise ValueError("the model already uses MoE; upcycle a dense model")
        # Private keys such as `_use_default_values` would make `from_config` drop the MoE switches.
        config = {k: v for k, v in dense.config.items() if not k.startswith("_")}
        config.update(use_moe=True, num_experts=num_experts, moe_top_k=moe_top_k,
                      moe_shared_expert=moe_shared_expert, moe_layers=moe_layers)
        with torch.device("meta"):
            moe_model = cls(**config)
        moe_model.to_empty(device=dense.device)
        if dense.dtype != torch.float32:
            nn.Module.to(moe_model, dense.dtype)
        dense_state = dense.state_dict()
        for i in moe_model.moe_layer_indices:
            prefix = f"blocks.{i}.ff."
            dense_state = {k: v for k, v in dense_state.items() if not k.startswith(prefix)}
            moe_model.blocks[i].ff = upcycle_feed_forward(dense.blocks[i].ff, num_experts, moe_top_k, moe_shared_expert)
        missing, unexpected = moe_model.load_state_dict(dense_state, strict=False)
        missing = [k for k in missing if not any(k.startswith(f"blocks.{i}.ff.") for i in moe_model.moe_layer_indices)]
        if missing or unexpected:
            raise RuntimeError(f"upcycling mismatch: missing {missing}, unexpected {unexpected}")
        return moe_model

    def moe_parameters_summary(self) -> dict[str, int]:
        """Total and per-token active parameter counts (top-k experts + shared expert active per token)."""
        total = sum(p.numel() for p in self.parameters())
        inactive = 0
        for block in self.blocks:
            if isinstance(block.ff, MoEFeedForward):
                per_expert = sum(p.numel() for p in block.ff.experts[0].parameters())
                inactive += per_expert * (block.ff.num_experts - block.ff.top_k)
        return {"total": total, "active": total - inactive}
