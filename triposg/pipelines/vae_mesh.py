"""Surface points → latent tokens → mesh with the VAE alone: the decode path shared by the pipeline, the
VAE training samples and the reconstruction benchmark."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
import trimesh

from ..geometry import DEFAULT_BOUNDS, EmptySurfaceError, decode_volume, extract_mesh
from ..geometry.decoding import VolumeDecoder
from ..geometry.volume import SDFFunction
from ..models import TripoSGVAEModel
from ..models.sdf_field import DEFAULT_CHUNK_SIZE, QUERY_PRECISIONS, SDFField, resolve_query_precision

__all__ = ["QUERY_PRECISIONS", "encode_surface", "field_function", "latent_to_mesh", "query_autocast"]


def query_autocast(device: torch.device, dtype: torch.dtype, precision: str = "auto") -> contextlib.AbstractContextManager:
    """The context a generic field (a VAE stand-in without `SDFField`'s fast path) is queried in: bf16 autocast
    when `precision` resolves to "bf16" (see `resolve_query_precision`), otherwise nothing."""
    if resolve_query_precision(precision, device, dtype) == "full":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def field_function(
    vae: TripoSGVAEModel, latent: torch.Tensor, query_precision: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> SDFFunction:
    """One shape's decoded field as `(Q, 3) xyz -> (Q,)` values, positive inside.

    A `TripoSGVAEModel` gets `SDFField` (decoder stack and cross-attention keys/values once per shape, bf16
    weights on CPUs where bf16 is fast); a stand-in with the same `decode_tokens` / `query` interface (analytic
    test fields, the token oracle) is queried through them, under `query_autocast`.
    """
    if latent.ndim == 2:
        latent = latent[None]
    if latent.ndim != 3 or latent.shape[0] != 1:
        raise ValueError(f"latent must be (M, C) or (1, M, C) for one shape, got {tuple(latent.shape)}")
    if isinstance(vae, TripoSGVAEModel):
        return SDFField(vae, latent, query_precision, chunk_size)
    weight = next(vae.parameters(), None)  # the stand-in's device and dtype (it may have no weights)
    if weight is not None:
        latent = latent.to(device=weight.device, dtype=weight.dtype)
    tokens = vae.decode_tokens(latent)
    precision = query_autocast(tokens.device, tokens.dtype, query_precision)

    def sdf_fn(points: torch.Tensor) -> torch.Tensor:  # (Q, 3) → (Q,), positive inside
        points = points.to(device=tokens.device, dtype=tokens.dtype)
        with torch.no_grad(), precision:
            return vae.query(tokens, points[None], chunk_size)[0, :, 0].float()

    return sdf_fn


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
    extraction: str | VolumeDecoder = "tracking",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    query_precision: str = "auto",
    **volume_kwargs,
) -> trimesh.Trimesh | None:
    """Decode one shape's latents, (M, C) or (1, M, C), to its zero-level mesh; None when the field has no
    surface. `extraction` is a volume decoding method ("tracking", "hierarchical", "dense") or decoder instance; `query_precision`
    is "auto", "full" or "bf16" (see `SDFField`); `volume_kwargs` go to the volume decoder (e.g.
    `probe_resolution` for tracking, `coarse_resolution` for hierarchical)."""
    sdf_fn = field_function(vae, latent, query_precision, chunk_size)
    if isinstance(extraction, str):  # a decoder instance carries its own settings
        volume_kwargs.setdefault("chunk_size", chunk_size)
    volume = decode_volume(sdf_fn, bounds, octree_resolution, method=extraction, **volume_kwargs)
    try:
        return extract_mesh(volume)
    except EmptySurfaceError:
        return None
