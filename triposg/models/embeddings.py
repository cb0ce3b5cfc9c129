"""Embeddings: sinusoidal timestep features, the timestep MLP and the VAE's frequency point embedding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_sinusoids(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of float timesteps, release order: `[sin(t·f_k), cos(t·f_k)]`.

    `timesteps`: (B,) floats in [0, 1000]. `f_k = exp(-ln(max_period)·k / (dim/2))`, k = 0..dim/2-1 (no
    frequency shift). Returns (B, dim) in float32.
    """
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    angles = timesteps.float()[:, None] * torch.exp(exponent)[None]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    """Linear → GELU → Linear on the sinusoidal features (keys `linear_1`, `linear_2`)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, hidden_dim)
        self.linear_2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(features)))


class FrequencyPointEmbedding(nn.Module):
    """NeRF-style embedding of xyz: `[xyz, sin(xyz·f), cos(xyz·f)]`, coordinate-major.

    Frequencies are `2^0 .. 2^(num_freqs-1)` (times π when `include_pi`). Coordinate-major means the
    sine block reads `x·f0..x·f7, y·f0..y·f7, z·f0..z·f7`. With 3 inputs and 8 frequencies the output
    has 3 + 2·24 = 51 dims. The frequencies are a non-persistent buffer (not in the state dict).
    """

    def __init__(self, in_channels: int = 3, num_freqs: int = 8, include_pi: bool = False, include_input: bool = True):
        super().__init__()
        freqs = 2.0 ** torch.arange(num_freqs, dtype=torch.float32)
        if include_pi:
            freqs = freqs * math.pi
        self.register_buffer("frequencies", freqs, persistent=False)
        self.include_input = include_input
        self.out_dim = in_channels * num_freqs * 2 + (in_channels if include_input else 0)

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        """`xyz`: (..., 3) → (..., out_dim)."""
        angles = (xyz[..., None] * self.frequencies.to(xyz.dtype)).flatten(-2)  # (..., 3·F) coordinate-major
        parts = [xyz] if self.include_input else []
        return torch.cat(parts + [torch.sin(angles), torch.cos(angles)], dim=-1)
