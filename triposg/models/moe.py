"""Mixture-of-Experts feed-forward layer (paper §3.2), which the released checkpoint lacks.

Each token is routed to its top-k of N experts (each expert is the dense two-layer GELU MLP) with the
router probabilities of the chosen experts renormalised to sum to one; one shared expert sees every
token. The auxiliary load-balancing loss (Switch/GShard form) is *returned*, never hidden in a
global, so the training loss adds it explicitly:

    aux = N · Σ_e f_e · P_e,  f_e = share of routed (token, slot) pairs that went to expert e,
                              P_e = mean router probability of expert e.

It equals 1 when routing is perfectly balanced and grows to N when one expert takes everything.

Upcycling (`upcycle_feed_forward`): every routed expert and the shared expert start as copies of the
dense FFN with their output layer halved, so `shared(x) + Σ_k w_k·expert_k(x) = ½·FFN(x) + ½·FFN(x)`:
the upcycled layer computes exactly the dense function at initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import FeedForward


@dataclass
class MoEStats:
    """What one MoE layer reports for a forward pass.

    `aux_loss`: scalar load-balancing loss (differentiable w.r.t. the router).
    `expert_load`: (N,) share of routed (token, slot) pairs per expert, sums to 1 (no grad).
    """

    aux_loss: torch.Tensor
    expert_load: torch.Tensor


class MoEFeedForward(nn.Module):
    """Top-k routed experts plus a shared expert, on (B, L, D) tokens.

    Keys: `gate.weight` (N, D), `experts.{e}.net.*`, `shared_expert.net.*` (same layout as `FeedForward`).
    """

    def __init__(self, dim: int, inner_dim: int, num_experts: int = 8, top_k: int = 2, shared_expert: bool = True):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k={top_k} must be between 1 and num_experts={num_experts}")
        self.num_experts = num_experts
        self.top_k = top_k
        self.gate = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList([FeedForward(dim, inner_dim) for _ in range(num_experts)])
        self.shared_expert = FeedForward(dim, inner_dim) if shared_expert else None

    def route(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`tokens`: (T, D). Returns router probabilities (T, N), top-k weights (T, k) and indices (T, k)."""
        probs = torch.softmax(self.gate(tokens).float(), dim=-1)
        weights, indices = probs.topk(self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        return probs, weights, indices

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, MoEStats]:
        """`x`: (B, L, D) → (B, L, D) and the layer's `MoEStats`."""
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])  # (T, D)
        probs, weights, indices = self.route(tokens)

        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            token_idx, slot = torch.nonzero(indices == e, as_tuple=True)
            if token_idx.numel() == 0:
                continue
            expert_out = expert(tokens[token_idx]) * weights[token_idx, slot, None].to(tokens.dtype)
            out.index_add_(0, token_idx, expert_out)
        if self.shared_expert is not None:
            out = out + self.shared_expert(tokens)

        routed = F.one_hot(indices, self.num_experts).float().sum(dim=1)  # (T, N) slots per expert
        load = routed.mean(dim=0) / self.top_k  # f_e, sums to 1
        aux_loss = self.num_experts * (load.detach() * probs.mean(dim=0)).sum()
        return out.reshape(shape), MoEStats(aux_loss=aux_loss, expert_load=load.detach())


@torch.no_grad()
def upcycle_feed_forward(dense: FeedForward, num_experts: int = 8, top_k: int = 2, shared_expert: bool = True) -> MoEFeedForward:
    """Build an MoE layer computing the same function as `dense` (see the module docstring).

    The gate keeps its fresh random init: since all experts are equal copies and the top-k weights
    sum to one, any routing gives the dense output, while a random gate already spreads tokens
    across experts so they receive different gradients and drift apart.
    """
    inner_dim, dim = dense.net[0].proj.weight.shape
    moe = MoEFeedForward(dim, inner_dim, num_experts, top_k, shared_expert)
    moe.to(device=dense.net[0].proj.weight.device, dtype=dense.net[0].proj.weight.dtype)
    # With a shared expert the dense output is split evenly between it and the (renormalised) experts.
    out_scale = 0.5 if shared_expert else 1.0
    copies = list(moe.experts) + ([moe.shared_expert] if shared_expert else [])
    for copy in copies:
        copy.load_state_dict(dense.state_dict())
        copy.net[2].weight.mul_(out_scale)
        copy.net[2].bias.mul_(out_scale)
    return moe
