"""Exponential moving average of model weights (sampled from and exported instead of the raw weights)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Shadow copy `θ_ema ← d·θ_ema + (1 − d)·θ` of the trainable parameters, kept in float32.

    With `warmup`, the decay is `min(decay, (1 + n) / (10 + n))` after n updates, so early weights
    (random init) fade quickly in short runs.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        self.shadow = [p.detach().float().clone() for _, p in self._parameters(model)]

    def _parameters(self, model: nn.Module) -> list[tuple[str, torch.Tensor]]:
        params = dict(model.named_parameters())
        return [(name, params[name]) for name in self.names]

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        for shadow, (_, param) in zip(self.shadow, self._parameters(model)):
            shadow.lerp_(param.detach().float(), 1.0 - decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights into `model` (same architecture)."""
        for shadow, (_, param) in zip(self.shadow, self._parameters(model)):
            param.copy_(shadow.to(param.dtype))

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": dict(zip(self.names, self.shadow))}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.names) - set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state lacks {len(missing)} parameters (e.g. {sorted(missing)[0]}); wrong model?")
        self.decay, self.warmup, self.num_updates = state["decay"], state["warmup"], state["num_updates"]
        self.shadow = [state["shadow"][name].clone().to(self.shadow[0].device) for name in self.names]
