"""Learning-rate schedule: linear warmup, then constant, cosine or warmup-stable-decay (as a multiplier of the peak).

"wsd" (warmup-stable-decay) holds the peak until the last ``decay_fraction`` of ``max_steps`` and only then
decays (half a cosine) to ``min_lr_ratio``. A long run spread over several sessions can so change
``max_steps`` on resume while it is still in the stable phase, without the learning rate it already used
changing: the length of the run can be decided late, and it stays one schedule rather than restarts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SCHEDULES = ("constant", "cosine", "wsd")


def lr_lambda(
    max_steps: int, warmup_steps: int = 0, schedule: str = "constant", min_lr_ratio: float = 0.0,
    decay_fraction: float = 0.2,
) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based), for `LambdaLR`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not 0.0 < decay_fraction <= 1.0:
        raise ValueError(f"decay_fraction must be in (0, 1], got {decay_fraction}")
    # Where the decay starts: after warmup for "cosine", at the last `decay_fraction` of the run for "wsd".
    decay_start = warmup_steps if schedule == "cosine" else max(warmup_steps, round(max_steps * (1 - decay_fraction)))

    def multiplier(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant" or step < decay_start:
            return 1.0
        progress = min(1.0, (step - decay_start) / max(1, max_steps - decay_start))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, max_steps: int, warmup_steps: int = 0,
                    schedule: str = "constant", min_lr_ratio: float = 0.0,
                    decay_fraction: float = 0.2) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(max_steps, warmup_steps, schedule, min_lr_ratio, decay_fraction))
