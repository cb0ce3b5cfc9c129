"""How much of a shape can M surface tokens carry? A reference decoder for choosing the token count.

`LocalPlaneVAE` stands in for a VAE in `evaluation.vae_recon`: it "encodes" a shape as M surface points picked
by farthest-point sampling (the encoder's token positions) with their normals, and "decodes" the field at x as
the signed distance to the tangent plane of the nearest token, (x − p)·n, or a Gaussian-weighted mean of those
planes (`sigma`). It learns nothing: it is what a decoder gets from reading only each token's position and normal
near a query — the local information the routing loss makes the real decoder read. A trained VAE should beat it;
if the oracle itself scores low at M tokens, thin parts and edges are finer than the token spacing and more tokens
(or a decoder that carries the local shape in the latents) are needed.

    python -m evaluation vae-recon --local-plane-oracle 0.02 --num-tokens 1024 --corpus data/procedural --split val

Measured on 8 validation objects of the procedural corpus (resolution 96): nearest plane at 256 tokens F-score@0.02
0.59 / normal consistency 0.71; Gaussian σ 0.03 at 256: 0.62 / 0.73; nearest at 1024: 0.80 / 0.84; σ 0.02 at
1024: 0.86 / 0.89.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from triposg.models.fps import farthest_point_sampling

__all__ = ["LocalPlaneVAE", "plane_field"]


def plane_field(
    xyz: torch.Tensor, token_xyz: torch.Tensor, token_normals: torch.Tensor, sigma: float | None = None
) -> torch.Tensor:
    """Signed distance to the tokens' tangent planes, positive on the normals' side (outside).

    `xyz`: (Q, 3); `token_xyz`, `token_normals`: (M, 3). `sigma` None: the nearest token's plane; otherwise the
    planes' mean weighted by softmax(−|x − p|² / 2σ²). → (Q,)
    """
    squared = torch.cdist(xyz, token_xyz).pow(2)  # (Q, M)
    offsets = xyz @ token_normals.T - (token_xyz * token_normals).sum(-1)  # (Q, M): (x − p_m)·n_m
    if sigma is None:
        return offsets.gather(1, squared.argmin(1, keepdim=True))[:, 0]
    if not sigma > 0:
        raise ValueError(f"sigma must be positive or None, got {sigma}")
    return (torch.softmax(-squared / (2 * sigma**2), dim=1) * offsets).sum(1)


class LocalPlaneVAE(nn.Module):
    """A stand-in for `TripoSGVAEModel` in `encode_surface` / `latent_to_mesh`: latents (B, M, 6) = the FPS
    token points' xyz + normal; the decoded field (positive inside, like the VAE) = −`plane_field`, clamped to
    ±`truncation`."""

    def __init__(self, sigma: float | None = None, truncation: float = 0.1, chunk_size: int = 20_000):
        super().__init__()
        if sigma is not None and not sigma > 0:
            raise ValueError(f"sigma must be positive or None, got {sigma}")
        self.sigma, self.truncation, self.chunk_size = sigma, truncation, chunk_size
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # gives callers a device and dtype

    def encode(self, points: torch.Tensor, num_tokens: int, generator: torch.Generator | None = None):
        indices = farthest_point_sampling(points[..., :3], num_tokens, generator=generator)  # (B, M)
        latents = torch.gather(points[..., :6], 1, indices[..., None].expand(-1, -1, 6))
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: latents, mean=latents))

    def decode_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        return latents

    def query(self, tokens: torch.Tensor, xyz: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """`tokens` (B, M, 6), `xyz` (B, Q, 3) → (B, Q, 1), positive inside."""
        chunk = min(chunk_size or self.chunk_size, self.chunk_size)  # (chunk, M) distances in memory
        fields = []
        for shape_tokens, shape_xyz in zip(tokens, xyz):
            values = [plane_field(part.float(), shape_tokens[:, :3].float(), shape_tokens[:, 3:6].float(), self.sigma)
                      for part in shape_xyz.split(chunk)]
            fields.append(-torch.cat(values).clamp(-self.truncation, self.truncation))
        return torch.stack(fields)[..., None].to(xyz.dtype)
