"""Choosing a volume decoder: the registry behind ``decode_volume`` and the default coarse levels per resolution."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from triposg.geometry.tracking import SurfaceTrackingDecoder
from triposg.geometry.volume import (
    DEFAULT_BOUNDS,
    DenseVolumeDecoder,
    HierarchicalVolumeDecoder,
    ProgressCallback,
    SDFFunction,
    VolumeResult,
)

# A volume decoder: `decoder(sdf_fn, bounds, resolution, device=, dtype=, progress=) -> VolumeResult`.
VolumeDecoder = Callable[..., VolumeResult]

VOLUME_DECODERS: dict[str, type] = {
    "tracking": SurfaceTrackingDecoder,
    "hierarchical": HierarchicalVolumeDecoder,
    "dense": DenseVolumeDecoder,
}


def default_coarse_resolution(resolution: int, max_coarse: int = 64) -> int:
    """The coarse level for hierarchical decoding at ``resolution``: halve while above ``max_coarse`` and even,
    so the result always divides ``resolution`` by a power of two (256 -> 64, 96 -> 48, 32 -> 32)."""
    coarse = resolution
    while coarse > max_coarse and coarse % 2 == 0:
        coarse //= 2
    return coarse


def default_probe_resolution(resolution: int, max_probe: int = 32) -> int:
    """The first probe grid for surface tracking at ``resolution``: half of it at most, then halved while above
    ``max_probe`` and even (128 -> 32, 512 -> 32, 48 -> 24, 32 -> 16). 32 cells keep the probe cells' half-diagonal
    (0.054) below the released VAE's truncation (0.1) on the default bounds. An odd ``resolution`` has no probe
    grid; it is returned unchanged and the decoder explains the error."""
    if resolution % 2:
        return resolution
    return default_coarse_resolution(resolution // 2, max_probe)


def decode_volume(
    sdf_fn: SDFFunction,
    bounds: Sequence[float] = DEFAULT_BOUNDS,
    resolution: int = 256,
    method: str | VolumeDecoder = "tracking",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: ProgressCallback | None = None,
    **decoder_kwargs,
) -> VolumeResult:
    """Sample ``sdf_fn`` ((Q, 3) xyz -> (Q,) values) on a grid with ``method`` "tracking", "hierarchical" or
    "dense" (all give the same grid near the surface; they differ in how many points they query), or with a
    volume decoder instance (a configured `SurfaceTrackingDecoder`, or one of your own with the same call).

    ``decoder_kwargs`` configure the decoder (e.g. ``probe_resolution=16``, ``coarse_resolution=32``,
    ``chunk_size=100_000``); the tracking and hierarchical decoders get the default coarse level for
    ``resolution`` when none is given.
    """
    if callable(method):
        if decoder_kwargs:
            raise ValueError(f"options {sorted(decoder_kwargs)} are for named methods; configure the decoder instance")
        return method(sdf_fn, bounds, resolution, device=device, dtype=dtype, progress=progress)
    if method not in VOLUME_DECODERS:
        raise ValueError(f"unknown volume decoding method {method!r}; choose one of {sorted(VOLUME_DECODERS)}")
    if method == "tracking":
        decoder_kwargs.setdefault("probe_resolution", default_probe_resolution(resolution))
    elif method == "hierarchical":
        decoder_kwargs.setdefault("coarse_resolution", default_coarse_resolution(resolution))
    decoder = VOLUME_DECODERS[method](**decoder_kwargs)
    return decoder(sdf_fn, bounds, resolution, device=device, dtype=dtype, progress=progress)
