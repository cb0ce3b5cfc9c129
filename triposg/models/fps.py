"""Farthest-point sampling in plain torch (no compiled extension), used to pick the VAE's latent queries."""

from __future__ import annotations

import torch


def farthest_point_sampling(
    points: torch.Tensor, num_samples: int, generator: torch.Generator | None = None, random_start: bool = True
) -> torch.Tensor:
    """Greedy farthest-point sampling.

    Args:
        points: (B, N, 3) xyz.
        num_samples: M ≤ N points to keep.
        generator: seeds the random first point (the first point is index 0 when `random_start` is False).
    Returns:
        (B, M) int64 indices into N. Each step adds the point farthest from those already chosen, so the
        samples cover the surface evenly; cost O(M·N) distance updates, vectorised over the batch.
    """
    b, n, _ = points.shape
    if not 0 < num_samples <= n:
        raise ValueError(f"cannot sample {num_samples} of {n} points")
    pts = points.detach().float()
    indices = torch.empty(b, num_samples, dtype=torch.long, device=points.device)
    if random_start:
        current = torch.randint(n, (b,), generator=generator, device="cpu").to(points.device)
    else:
        current = torch.zeros(b, dtype=torch.long, device=points.device)
    min_dist = torch.full((b, n), float("inf"), device=points.device)
    batch = torch.arange(b, device=points.device)
    for i in range(num_samples):
        indices[:, i] = current
        chosen = pts[batch, current]  # (B, 3)
        min_dist = torch.minimum(min_dist, (pts - chosen[:, None]).pow(2).sum(-1))
        current = min_dist.argmax(dim=-1)
    return indices
