"""One shape's decoded SDF as a function of position: the fast path of every mesh extraction.

:class:`SDFField` runs the parts of the VAE decoder that depend on the shape alone once — the self-attention
stack over the latent tokens and the keys/values of the query cross-attention — so a call on query points runs
only the per-query layers (point embedding, query projection, one cross-attention, the FFN, the output head).

Precision: "full" computes in the VAE's dtype and equals ``TripoSGVAEModel.query`` to float rounding. "bf16" keeps
a bfloat16 copy of the per-query linear layers (no per-call weight casts, unlike autocast) while the point
embedding, the layer norms and the output head stay in float32 — positions in bfloat16 would be off by up to
1/128 of the box, a whole 128-grid cell. "auto" picks bf16 for a float32 model on a CPU where bf16 is the fast path
(AMX tiles, or AVX512-BF16 measured faster; see :func:`cpu_has_fast_bf16`), full precision otherwise (a CUDA model is
normally loaded in fp16 already).
"""

from __future__ import annotations

import copy
import functools
import os
import time
import weakref

import torch
from torch import nn

from .vae import TripoSGVAEModel

QUERY_PRECISIONS = ("auto", "full", "bf16")
# Query points per decoder pass. The FFN's hidden activations (chunk x 4 width floats) of ~4k points stay near the CPU's
# caches; 10k points (31 MB each at width 192) made every query 1.2x (1 thread) to 1.3x (2 threads) slower.
DEFAULT_CHUNK_SIZE = 4096


# bf16 counts as the fast path when a width-192 FFN-sized matmul runs at least this much faster in it than in fp32.
FAST_BF16_MIN_SPEEDUP = 1.3
BF16_ENV = "TRIPOSG_CPU_BF16"  # "1" / "0" decide without measuring (e.g. to pin a benchmark)


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether bfloat16 is the fast path on this CPU, decided once per process.

    AMX tiles (Intel Sapphire Rapids and later): yes. No AVX512-BF16: no. AVX512-BF16 without AMX differs between
    CPUs, so it is measured (about 50 ms, once): a (2048 x 192) @ (192 x 768) matmul — the query FFN's shape — in
    both dtypes, bf16 counting as fast when it is `FAST_BF16_MIN_SPEEDUP` times faster. Measured with torch 2.14 on
    2 threads: a Xeon with AVX512-BF16 ran the default model's 40k field queries in 0.20 s fp32 vs 0.23 s bf16 and a
    flow training step at batch 32 in 2.3 vs 3.3 s (bf16 slower); an AMD EPYC with AVX512-BF16 ran that matmul 2.2x
    faster in bf16; an AMD EPYC with AVX2 only (no AVX-512) ran it 5-10x *slower* in bf16 (never chosen there).
    ``TRIPOSG_CPU_BF16=1`` or ``0`` overrides the decision."""
    forced = os.environ.get(BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        if torch.cpu._is_amx_tile_supported():
            return True
        if not torch.cpu._is_avx512_bf16_supported():
            return False
    except (AttributeError, RuntimeError):  # private helpers: treat an older or newer torch as "no"
        return False
    return _bf16_matmul_speedup() >= FAST_BF16_MIN_SPEEDUP


def _bf16_matmul_speedup(repeats: int = 5) -> float:
    """fp32 time / bf16 time of the query FFN's matmul on this CPU, best of ``repeats`` each."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 192, generator=generator)
    weight = torch.randn(768, 192, generator=generator)

    def best(a: torch.Tensor, w: torch.Tensor) -> float:
        torch.nn.functional.linear(a, w)  # warm-up (kernel selection)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.nn.functional.linear(a, w)
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.no_grad():
        return best(x, weight) / max(best(x.bfloat16(), weight.bfloat16()), 1e-9)


def resolve_query_precision(precision: str, device: torch.device, dtype: torch.dtype) -> str:
    """"auto" -> "bf16" or "full" for a model on ``device`` in ``dtype``; other values are checked and returned."""
    if precision not in QUERY_PRECISIONS:
        raise ValueError(f"unknown query precision {precision!r}; choose one of {list(QUERY_PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cpu" and dtype == torch.float32 and cpu_has_fast_bf16() else "full"
    return precision


class SDFField:
    """(Q, 3) xyz -> (Q,) float32 field values of one shape, positive inside (the sign `TripoSGVAEModel.decode`
    returns).

    Args:
        vae: the VAE whose decoder defines the field.
        latent: (M, C) or (1, M, C) latents of one shape.
        precision: "auto", "full" or "bf16" (module docstring).
        chunk_size: query points per decoder pass (bounds peak memory; see `DEFAULT_CHUNK_SIZE`).
    """

    def __init__(self, vae: TripoSGVAEModel, latent: torch.Tensor, precision: str = "auto",
                 chunk_size: int = DEFAULT_CHUNK_SIZE):
        if latent.ndim == 2:
            latent = latent[None]
        if latent.ndim != 3 or latent.shape[0] != 1:
            raise ValueError(f"latent must be (M, C) or (1, M, C) for one shape, got {tuple(latent.shape)}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        decoder = vae.decoder
        block = decoder.blocks[-1]
        if block.attn1 is not None or block.attn2 is None or block.attn2_2 is not None or block.skip_linear is not None:
            raise ValueError("the VAE decoder's last block must be a single cross-attention block (the release layout)")
        weight = next(vae.parameters())
        self.device, self.chunk_size = weight.device, chunk_size
        self.precision = resolve_query_precision(precision, weight.device, weight.dtype)
        self.embedder = vae.embedder
        self.norm_out, self.proj_out = decoder.norm_out, decoder.proj_out  # the head stays in the model's dtype
        self.out_dtype = weight.dtype
        with torch.no_grad():
            tokens = vae.decode_tokens(latent.to(device=weight.device, dtype=weight.dtype))
            if self.precision == "bf16":
                self.dtype = torch.bfloat16
                self.proj_query, self.block = _bf16_query_layers(decoder)
                # keys/values from the full-precision tokens, then cast
                self.context_kv = block.attn2.project_context(tokens).to(self.dtype)
            else:
                self.dtype = weight.dtype
                self.proj_query, self.block = decoder.proj_query, block
                self.context_kv = block.attn2.project_context(tokens)

    @torch.no_grad()
    def __call__(self, xyz: torch.Tensor) -> torch.Tensor:
        """(Q, 3) query points (any float dtype, any device) -> (Q,) float32 values on the points' device."""
        if xyz.ndim != 2 or xyz.shape[-1] != 3:
            raise ValueError(f"query points must be (Q, 3) xyz, got {tuple(xyz.shape)}")
        out_device = xyz.device
        xyz = xyz.to(device=self.device, dtype=torch.float32)
        values = [self._query(chunk) for chunk in xyz.split(self.chunk_size)]
        if not values:
            return torch.empty(0, device=out_device)
        return torch.cat(values).to(device=out_device, dtype=torch.float32)

    def _query(self, xyz: torch.Tensor) -> torch.Tensor:
        """The decoder's last block (`DiTBlock.forward` with cross-attention only) on precomputed keys/values."""
        block = self.block
        features = self.embedder(xyz[None]).to(self.dtype)  # the embedding in float32, then cast
        h = self.proj_query(features)
        h = h + block.attn2.attend(block.norm2(h), self.context_kv)
        h = h + block.ff(block.norm3(h))
        raw = self.proj_out(self.norm_out(h.to(self.out_dtype)))  # (1, Q, 1), SDF-like: positive outside
        return -raw[0, :, 0].float()


# Per VAE decoder: (a stamp of the query layers' weights, bf16 proj_query, bf16 last block). Weak keys: a VAE that is
# dropped takes its copies with it.
_BF16_QUERY_LAYERS: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def _bf16_query_layers(decoder: nn.Module) -> tuple[nn.Module, nn.Module]:
    """bf16 copies of the decoder's query layers (`proj_query` and the last block), made once per VAE and shared by
    every shape and preview; remade when those weights change in place (an optimizer step, `load_state_dict`) or move
    (`.to()`), which the parameters' version counters and storage pointers tell."""
    block = decoder.blocks[-1]
    stamp = tuple((p.data_ptr(), p._version, p.dtype, p.device)
                  for p in (*decoder.proj_query.parameters(), *block.parameters()))
    cached = _BF16_QUERY_LAYERS.get(decoder)
    if cached is None or cached[0] != stamp:
        cached = (stamp, _bf16_linear_copy(decoder.proj_query), _bf16_linear_copy(block))
        _BF16_QUERY_LAYERS[decoder] = cached
    return cached[1], cached[2]


def _bf16_linear_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose linear layers hold bfloat16 weights; norms keep theirs (they compute in fp32)."""
    module = copy.deepcopy(module)
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            layer.to(torch.bfloat16)
    return module
