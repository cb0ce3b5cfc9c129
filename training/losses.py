"""VAE training losses (paper §3.3, eq. 17–20) and the Table 3 ablation switches.

    L = L_sdf + λ_sn·L_sn + λ_eik·L_eik + λ_kl·L_kl
    L_sdf = |s − ŝ| + (s − ŝ)²            on the supervision points (near-surface, volume, on-surface)
    L_sn  = 1 − cos(∇D(x), n̂)              on the on-surface points only
    L_eik = (‖∇D(x)‖ − 1)²                 where the target is inside the truncation band
    L_kl  = KL(q(z|x) ‖ N(0, I))

Optional, not in the paper: a **routing** term, KL(t ‖ softmax(scores)) per query and head of the decoder's
query cross-attention, with t ∝ exp(−|x − p_m|² / 2σ²) over the tokens' source points p_m. A small VAE trained
from scratch on a CPU budget leaves that attention position-agnostic for thousands of steps (each query reads
34–117 of 256 tokens per head, at about the mean distance of all of them; measured at step 2,500), so it hedges ≈ 0 near every
surface. The term teaches queries to read the tokens around them; the architecture is unchanged, so weights
trained with it are ordinary TripoSG VAE weights.

Optional, not in the paper: an **anchor** term, the squared difference between latent channels 0–5 and the
xyz + normal of the surface point each token started from. With routing alone the tokens carry their position
(linear-probe R² 0.96–0.98 at step 1,250) but hardly their normal (R² 0.12–0.52), and the field's sign near a
surface is (x − p)·n: the decoder hedges ≈ 0 across the whole band around surfaces. The term puts n in the latents
from the start.

**Sign convention.** The data holds the usual SDF: negative inside, positive outside, truncated to
±truncation; the on-surface normals point outward. `TripoSGVAEModel.decode` returns the *negated*
network output (positive inside, the release convention). The loss therefore compares the **raw**
network output `D(x) = −decode(x)` with the data, and `∇D` is the outward normal. Callers pass raw
values (`raw_field = -vae(...)`).

The occupancy variant (Table 3 "OCC") replaces L_sdf by binary cross-entropy with logits
`−D(x)` (positive inside, like `decode`) against `inside = sdf < 0`.

Gradients ∇D come from autograd w.r.t. the query xyz. Second derivatives through attention need the
plain-math SDPA backend: run the forward inside `input_gradient_context(config)`.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


@dataclass
class VAELossConfig:
    """Loss terms and weights (the `loss:` section). Defaults are the paper's (eq. 20)."""

    field: str = "sdf"  # "sdf" (eq. 17: L1 + L2 on the TSDF) or "occupancy" (BCE; the Table 3 OCC baseline)
    use_normal_loss: bool = True  # L_sn, eq. 18 (Table 3 "+L_sn")
    use_eikonal_loss: bool = True  # L_eik, eq. 19 (Table 3 "+L_eik"); SDF only
    use_kl_loss: bool = True  # L_kl keeps the latent space smooth for the flow model
    lambda_sn: float = 10.0
    lambda_eik: float = 0.1
    lambda_kl: float = 0.001
    # The truncated target is flat (∇ = 0) beyond ±truncation, so |∇D| = 1 is only asked where |ŝ| < band.
    eikonal_band: float | None = 0.1
    use_anchor_loss: bool = False  # L_anchor (not in the paper): latent channels 0-5 = the token's xyz + normal
    lambda_anchor: float = 0.1
    use_routing_loss: bool = False  # L_route (not in the paper): queries attend to the tokens near them
    lambda_routing: float = 0.01
    routing_sigma: float = 0.05  # width of the target attention kernel around each query, in object units
    # Two-phase schedule (not in the paper): the normal and eikonal terms switch on at this training step. A
    # CPU-budget VAE fits the field faster without them (no double backward, and at the paper's weight from
    # step 0 they made the SDF term 3x worse), but then hedges ≈ 0 across the band around every surface;
    # switched on later they give the field its slope within a few hundred steps.
    gradient_losses_from_step: int = 0

    def __post_init__(self) -> None:
        if self.field not in ("sdf", "occupancy"):
            raise ValueError(f"loss.field must be 'sdf' or 'occupancy', got {self.field!r}")
        if self.routing_sigma <= 0:
            raise ValueError(f"loss.routing_sigma must be positive, got {self.routing_sigma}")
        if self.gradient_losses_from_step < 0:
            raise ValueError(f"loss.gradient_losses_from_step must be >= 0, got {self.gradient_losses_from_step}")
        if self.field == "occupancy" and self.use_eikonal_loss:
            raise ValueError("the eikonal loss needs an SDF; set loss.use_eikonal_loss=false with field=occupancy")

    @property
    def needs_input_gradients(self) -> bool:
        return self.use_normal_loss or self.use_eikonal_loss

    def at_step(self, step: int) -> VAELossConfig:
        """The terms in force at training `step`: before `gradient_losses_from_step`, no normal or eikonal term."""
        if step >= self.gradient_losses_from_step or not self.needs_input_gradients:
            return self
        return replace(self, use_normal_loss=False, use_eikonal_loss=False, gradient_losses_from_step=0)


def input_gradient_context(config: VAELossConfig):
    """The attention backend for the forward: plain-math SDPA when ∇D is needed (double backward)."""
    return sdpa_kernel(SDPBackend.MATH) if config.needs_input_gradients else nullcontext()


def field_gradient(raw_field: torch.Tensor, query_xyz: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """∇D at the queries: `raw_field` (B, Q) computed from `query_xyz` (B, Q, 3, requires_grad) → (B, Q, 3).

    Points are independent given the latents, so the gradient of the sum is the per-point gradient.
    `create_graph=True` when training, so the losses on ∇D are differentiable w.r.t. the weights.
    """
    (gradient,) = torch.autograd.grad(raw_field.sum(), query_xyz, create_graph=create_graph)
    return gradient


def routing_loss(
    logits: torch.Tensor, query_xyz: torch.Tensor, token_xyz: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Mean KL(t ‖ softmax(logits)) with t = softmax(−|x − p|² / 2σ²) over tokens (0 = reads like the kernel).

    `logits`: (B, H, Q, M) query cross-attention scores; `query_xyz`: (B, Q, 3); `token_xyz`: (B, M, 3).
    """
    target = torch.log_softmax(-torch.cdist(query_xyz.detach().float(), token_xyz.float()).pow(2) / (2 * sigma**2),
                               dim=-1)[:, None]  # (B, 1, Q, M) log t
    kl = (target.exp() * (target - torch.log_softmax(logits.float(), dim=-1))).sum(-1)
    return kl.mean()


def anchor_loss(latent_mean: torch.Tensor, token_points: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the first 6 latent channels (B, M, C ≥ 6) and the xyz + normal (B, M, 6)
    of the point each token started from."""
    channels = token_points.shape[-1]
    if latent_mean.shape[-1] < channels:
        raise ValueError(f"the anchor term needs at least {channels} latent channels, the VAE has "
                         f"{latent_mean.shape[-1]}; set loss.use_anchor_loss=false")
    return (latent_mean[..., :channels].float() - token_points.float()).pow(2).mean()


def vae_loss(
    query_xyz: torch.Tensor,
    raw_field: torch.Tensor,
    target_sdf: torch.Tensor,
    surface_normals: torch.Tensor,
    posterior=None,
    config: VAELossConfig | None = None,
    create_graph: bool = True,
    query_attention=None,
) -> dict[str, torch.Tensor]:
    """The VAE loss terms and their weighted sum.

    Args:
        query_xyz: (B, Q + O, 3) queries, `requires_grad` when normal/eikonal terms are on: the Q
            supervision points first, then the O on-surface points.
        raw_field: (B, Q + O) raw network output D at `query_xyz` (positive outside; = −decode).
        target_sdf: (B, Q) usual-sign truncated SDF of the supervision points (on-surface targets are 0).
        surface_normals: (B, O, 3) outward unit normals at the on-surface points.
        posterior: the encoder's `DiagonalGaussian` (needed when the KL term is on).
        config: term switches and weights; None = the paper's defaults.
        create_graph: keep the graph of ∇D (True for training, False for evaluation).
        query_attention: the VAE's `QueryAttention` for `query_xyz` (needed by the anchor and routing terms).
    Returns:
        {"sdf" or "occupancy", "normal", "eikonal", "kl", "anchor", "routing" (those switched on), "loss"}.
    """
    config = config or VAELossConfig()
    num_supervision, num_surface = target_sdf.shape[1], surface_normals.shape[1]
    if raw_field.shape[1] != num_supervision + num_surface:
        raise ValueError(f"raw_field has {raw_field.shape[1]} values per shape; expected "
                         f"{num_supervision} supervision + {num_surface} on-surface points")
    target = torch.cat([target_sdf, target_sdf.new_zeros(target_sdf.shape[0], num_surface)], dim=1)  # (B, Q + O)
    raw_field = raw_field.float()
    terms: dict[str, torch.Tensor] = {}
    if config.field == "sdf":
        error = raw_field - target
        terms["sdf"] = (error.abs() + error.pow(2)).mean()  # eq. 17
    else:
        # On-surface points are ambiguous for occupancy; supervise the supervision points only.
        inside = (target_sdf < 0).float()
        terms["occupancy"] = F.binary_cross_entropy_with_logits(-raw_field[:, :num_supervision], inside)
    weighted = terms[config.field]

    if config.needs_input_gradients:
        gradient = field_gradient(raw_field, query_xyz, create_graph).float()  # (B, Q + O, 3)
        if config.use_normal_loss:
            cosine = F.cosine_similarity(gradient[:, num_supervision:], surface_normals.float(), dim=-1, eps=1e-8)
            terms["normal"] = (1.0 - cosine).mean()  # eq. 18
            weighted = weighted + config.lambda_sn * terms["normal"]
        if config.use_eikonal_loss:
            residual = (gradient.norm(dim=-1) - 1.0).pow(2)  # eq. 19
            if config.eikonal_band is not None:
                band = (target.abs() < config.eikonal_band).float()
                terms["eikonal"] = (residual * band).sum() / band.sum().clamp_min(1.0)
            else:
                terms["eikonal"] = residual.mean()
            weighted = weighted + config.lambda_eik * terms["eikonal"]
    if config.use_kl_loss:
        if posterior is None:
            raise ValueError("the KL term needs the posterior; pass posterior= or set loss.use_kl_loss=false")
        terms["kl"] = posterior.kl().mean()
        weighted = weighted + config.lambda_kl * terms["kl"]
    if config.use_anchor_loss:
        if posterior is None or query_attention is None:
            raise ValueError("the anchor term needs the posterior and the token points; pass posterior= and "
                             "query_attention= or set loss.use_anchor_loss=false")
        terms["anchor"] = anchor_loss(posterior.mean, query_attention.token_points)
        weighted = weighted + config.lambda_anchor * terms["anchor"]
    if config.use_routing_loss:
        if query_attention is None:
            raise ValueError("the routing term needs the query attention; pass query_attention= "
                             "or set loss.use_routing_loss=false")
        terms["routing"] = routing_loss(query_attention.logits, query_xyz, query_attention.token_points[..., :3],
                                        config.routing_sigma)
        weighted = weighted + config.lambda_routing * terms["routing"]
    terms["loss"] = weighted
    return terms
