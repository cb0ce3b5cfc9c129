"""Learning-rate schedule: linear warmup, then constant or cosine decay (as a multiplier of the peak)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def lr_lambda(
    max_steps: int, warmup_steps: int = 0, schedule: str = "constant", min_lr_ratio: float = 0.0
) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based), for `LambdaLR`."""
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {schedule!r}")

    def multiplier(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, max_steps: int, warmup_steps: int = 0,
                    schedule: str = "constant", min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(max_steps, warmup_steps, schedule, min_lr_ratio))
