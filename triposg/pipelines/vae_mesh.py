"""Surface points → latent tokens → mesh with the VAE alone: the decode path shared by the pipeline, the
VAE training samples and the reconstruction benchmark."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import trimesh

from ..geometry import DEFAULT_BOUNDS, EmptySurfaceError, decode_volume, default_coarse_resolution, extract_mesh
from ..models import TripoSGVAEModel

__all__ = ["encode_surface", "latent_to_mesh"]


@torch.no_grad()
def encode_surface(
    vae: TripoSGVAEModel, surface: torch.Tensor | np.ndarray, num_tokens: int, seed: int = 0
) -> torch.Tensor:
    """(S, 6) surface points (xyz + normal) → (1, M, C) posterior mean, M = min(num_tokens, S).

    `seed` fixes the choice of latent queries, so repeated calls give the same latents.
    """
    device = next(vae.parameters()).device
    points = torch.as_tensor(surface, dtype=torch.float32, device=device)[None]
    generator = torch.Generator().manual_seed(seed)
    return vae.encode(points, min(num_tokens, points.shape[1]), generator=generator).latent_dist.mode()


@torch.no_grad()
def latent_to_mesh(
    vae: TripoSGVAEModel,
    latent: torch.Tensor,
    octree_resolution: int = 256,
    bounds: Sequence[float] = DEFAULT_BOUNDS,
    extraction: str = "hierarchical",
    chunk_size: int = 50_000,
    **volume_kwargs,
) -> trimesh.Trimesh | None:
    """Decode one shape's latents, (M, C) or (1, M, C), to its zero-level mesh; None when the field has no
    surface. `volume_kwargs` go to the volume decoder (e.g. `coarse_resolution`)."""
    if latent.ndim == 2:
        latent = latent[None]
    if latent.ndim != 3 or latent.shape[0] != 1:
        raise ValueError(f"latent must be (M, C) or (1, M, C) for one shape, got {tuple(latent.shape)}")
    weight = next(vae.parameters(), None)  # the VAE's device and dtype (stand-ins may have no weights)
    if weight is not None:
        latent = latent.to(device=weight.device, dtype=weight.dtype)
    tokens = vae.decode_tokens(latent)

    def sdf_fn(points: torch.Tensor) -> torch.Tensor:  # (Q, 3) → (Q,), positive inside
        points = points.to(device=tokens.device, dtype=tokens.dtype)
        return vae.query(tokens, points[None], chunk_size)[0, :, 0].float()

    volume_kwargs.setdefault("chunk_size", chunk_size)
    if extraction == "hierarchical":
        volume_kwargs.setdefault("coarse_resolution", default_coarse_resolution(octree_resolution))
    volume = decode_volume(sdf_fn, bounds, octree_resolution, method=extraction, **volume_kwargs)
    try:
        return extract_mesh(volume)
    except EmptySurfaceError:
        return None
