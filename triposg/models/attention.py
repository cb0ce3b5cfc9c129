"""Attention, normalisation and feed-forward layers shared by the TripoSG DiT and VAE.

The modules own the weights (their attribute names are the released checkpoint's key names);
`attention_math` is a small stateless function that does the arithmetic with
`torch.nn.functional.scaled_dot_product_attention`.

Head layout (baked into the released weights, see the reference):
- self-attention: `cat([to_q(x), to_k(x), to_v(x)])` is viewed as (B, L, H, 3·Dh) and split into q, k, v,
  so head h reads *consecutive* slices of the concatenation, not slices of each projection;
- cross-attention: q is split normally (B, L, H, Dh); `cat([to_k(c), to_v(c)])` is viewed as
  (B, S, H, 2·Dh) and split into k, v.

A cross-attention's keys and values depend on the context alone: `Attention.project_context` computes them once as a
`ContextKV`, which `forward` (or `attend`) then takes in place of the context tokens for every call that attends to the
same context (the DiT's sampling steps, the VAE decoder's field queries).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (stable under fp16/bf16), cast back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dimension with a learnable scale (the qk-norm of the paper §3.1)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The variance and the normalisation in float32; as the release (diffusers' RMSNorm), a half-precision
        weight multiplies after the cast back to its dtype, so fp16 results round the release's way."""
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            normed = normed.to(self.weight.dtype)
        return (normed * self.weight).to(x.dtype)


def attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention on (B, L, H, Dh) tensors; returns (B, L, H·Dh).

    Uses SDPA (flash / memory-efficient kernels where the device has them). For losses that need
    second derivatives through attention (eikonal, normals), wrap the call in
    `torch.nn.attention.sdpa_kernel(SDPBackend.MATH)`: the CPU flash kernel has no double backward.
    """
    b, l, h, d = q.shape
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2).reshape(b, l, h * d)


@dataclass
class ContextKV:
    """Cross-attention keys and values of one context, from `Attention.project_context`.

    `k`, `v`: (B, S, H, Dh). `blank`: (B,) True for rows whose values are all zero (the zero context of classifier-free
    guidance's unconditional half): whatever the keys, attention returns zeros there, so `attend` skips those rows.
    """

    k: torch.Tensor
    v: torch.Tensor
    blank: torch.Tensor
    # (index of the rows that are not blank, their k, their v), () when no row is blank: made on first use.
    _live: tuple = field(default=None, repr=False, compare=False)

    def to(self, dtype: torch.dtype) -> "ContextKV":
        """The same keys and values cast to `dtype` (`blank` unchanged: a cast keeps zeros zero)."""
        return ContextKV(self.k.to(dtype), self.v.to(dtype), self.blank)

    def live_rows(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(indices (B',), k, v of the rows that are not blank), or None when no row is blank. Worked out once (one
        look at `blank` on the host) and kept, so the sampling steps that reuse these keys/values do not repeat it."""
        if self._live is None:
            if bool(self.blank.any()):
                index = torch.nonzero(~self.blank).flatten()
                self._live = (index, self.k.index_select(0, index), self.v.index_select(0, index))
            else:
                self._live = ()
        return self._live or None


class Attention(nn.Module):
    """Multi-head self- or cross-attention with the release's concatenate-then-split head layout.

    Args:
        query_dim: width D of the query tokens.
        heads: number of heads H; the head dimension is `query_dim // heads`.
        cross_attention_dim: width of the context tokens; None means self-attention.
        qk_norm: per-head RMSNorm on q and k (`norm_q`, `norm_k`).
        cross_attention_norm: LayerNorm on the context (`norm_cross`), as in the VAE.
        qkv_bias: bias on `to_q/to_k/to_v` (False in the release).
    """

    def __init__(
        self,
        query_dim: int,
        heads: int,
        cross_attention_dim: int | None = None,
        qk_norm: bool = False,
        cross_attention_norm: bool = False,
        qkv_bias: bool = False,
        eps: float = 1e-6,
    ):
        super().__init__()
        if query_dim % heads != 0:
            raise ValueError(f"query_dim={query_dim} is not divisible by heads={heads}")
        self.heads = heads
        self.head_dim = query_dim // heads
        self.is_cross_attention = cross_attention_dim is not None
        context_dim = cross_attention_dim if cross_attention_dim is not None else query_dim

        self.to_q = nn.Linear(query_dim, query_dim, bias=qkv_bias)
        self.to_k = nn.Linear(context_dim, query_dim, bias=qkv_bias)
        self.to_v = nn.Linear(context_dim, query_dim, bias=qkv_bias)
        self.norm_q = RMSNorm(self.head_dim, eps=eps) if qk_norm else None
        self.norm_k = RMSNorm(self.head_dim, eps=eps) if qk_norm else None
        # A plain LayerNorm (in the weights' dtype), as released.
        self.norm_cross = nn.LayerNorm(context_dim) if cross_attention_norm else None
        # A ModuleList so the key reads `to_out.0.*` as in the checkpoint; index 1 is a no-op dropout.
        self.to_out = nn.ModuleList([nn.Linear(query_dim, query_dim, bias=True), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | ContextKV | None = None) -> torch.Tensor:
        """`x`: (B, L, D) queries; `context`: (B, S, C) tokens for cross-attention, or their `project_context`
        keys/values. Returns (B, L, D)."""
        if isinstance(context, ContextKV):
            return self.attend(x, context)
        q, k, v = self.project(x, context)
        out = attention_math(q, k, v)
        return self.to_out[1](self.to_out[0](out))

    def attention_logits(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The pre-softmax scores q·k/√Dh of `forward`: (B, H, L, S) (S = L for self-attention).

        For diagnostics and training-time losses on where queries look (the softmax over the last dim gives the
        attention weights `forward` applies)."""
        q, k, _ = self.project(x, context)
        return torch.einsum("blhd,bshd->bhls", q, k) / self.head_dim**0.5

    def project(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (B, L, H, Dh) and k, v (B, S, H, Dh), in the release's head layout, qk-normed when configured."""
        b, l, _ = x.shape
        h, d = self.heads, self.head_dim
        if self.is_cross_attention:
            if context is None:
                raise ValueError("cross-attention needs a context tensor")
            q = self.to_q(x).view(b, l, h, d)
            context_kv = self.project_context(context)
            return (self.norm_q(q) if self.norm_q is not None else q), context_kv.k, context_kv.v
        qkv = torch.cat([self.to_q(x), self.to_k(x), self.to_v(x)], dim=-1)
        q, k, v = qkv.view(b, l, h, 3 * d).split(d, dim=-1)
        if self.norm_q is not None:
            q = self.norm_q(q)
            k = self.norm_k(k)
        return q, k, v

    def project_context(self, context: torch.Tensor) -> ContextKV:
        """Cross-attention keys and values (B, S, H, Dh) of `context` (B, S, C), qk-normed when configured.

        They depend on the context alone, so a caller that attends to one context many times (the VAE decoder's
        field queries, the DiT's sampling steps) computes them once and passes them to `attend` or `forward`."""
        if not self.is_cross_attention:
            raise ValueError("project_context is for cross-attention layers")
        if self.norm_cross is not None:
            context = self.norm_cross(context)
        b, s, _ = context.shape
        kv = torch.cat([self.to_k(context), self.to_v(context)], dim=-1)
        k, v = kv.view(b, s, self.heads, 2 * self.head_dim).split(self.head_dim, dim=-1)
        if self.norm_k is not None:
            k = self.norm_k(k)
        return ContextKV(k, v, blank=~v.flatten(1).any(dim=1))

    def attend(self, x: torch.Tensor, context_kv: ContextKV) -> torch.Tensor:
        """Cross-attention of queries `x` (B, L, D) to precomputed `project_context` keys/values → (B, L, D).

        Rows of a blank context (all-zero values) read zeros from attention, so their output is `to_out(0)` for every
        query; they are filled with it instead of computed (the same numbers, bit for bit)."""
        live = context_kv.live_rows()
        if live is None:
            return self._attend(x, context_kv.k, context_kv.v)
        index, k, v = live
        out = self.to_out[0](x.new_zeros(1, 1, x.shape[-1])).expand(x.shape).clone()
        if index.numel():
            out.index_copy_(0, index, self._attend(x.index_select(0, index), k, v))
        return out

    def _attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, l, _ = x.shape
        q = self.to_q(x).view(b, l, self.heads, self.head_dim)
        if self.norm_q is not None:
            q = self.norm_q(q)
        return self.to_out[1](self.to_out[0](attention_math(q, k, v)))


class GELUProj(nn.Module):
    """Linear followed by exact-erf GELU; a module so the key reads `net.0.proj.*`.

    Without autograd the GELU is applied in place: the (tokens x 4 width) hidden activations are allocated once, not
    twice. A fresh 12 MB buffer per 4,096-point chunk of VAE queries costs its page faults (glibc maps and unmaps such
    sizes): in place, `SDFField` queries at width 192 ran ~7 % faster on 2 AVX2 cores, the same numbers bit for bit."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.proj(x)
        if hidden.requires_grad:
            return F.gelu(hidden)
        return torch.ops.aten.gelu_(hidden)


class FeedForward(nn.Module):
    """Two-layer GELU MLP, keys `net.0.proj.*` and `net.2.*` (index 1 is a no-op dropout)."""

    def __init__(self, dim: int, inner_dim: int):
        super().__init__()
        self.net = nn.ModuleList([GELUProj(dim, inner_dim), nn.Dropout(0.0), nn.Linear(inner_dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x
