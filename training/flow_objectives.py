"""Training objectives for the latent flow model (paper §3.1–3.2, Table 1), one per core scheduler.

Each objective wraps the scheduler that samples with the trained model, and draws its noise, timesteps,
model input, target and weight from that scheduler's training interface (stated once, on
:class:`triposg.schedulers.TripoSGSchedulerMixin`), so training and sampling share one convention by
construction:

- ``"rectified_flow"`` (the release): ``x_σ = (1 − σ)·x0 + σ·ε``, timestep ``1000·σ`` with σ logit-normal
  (eq. 10) and shifted toward noise for more tokens (eq. 11, when the scheduler uses dynamic shifting);
  target the velocity ``v = x0 − ε``; uniform weight.
- ``"ddpm"``: ``x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε``, integer timestep t uniform in [0, 999];
  target ε; uniform weight (the "simple" loss).
- ``"edm"``: ``x_σ = x0 + σ·ε`` with ln σ ~ N(P_mean, P_std²), timestep = the scheduler's rescaled ln σ;
  the network sees ``c_in·x_σ`` and regresses the F-target ``(x0 − c_skip·x_σ) / c_out``; weight 1
  (λ(σ)·c_out² = 1, Karras Table 1).

The backbone stays ignorant of the objective (as in SiT): :func:`flow_loss` runs the transformer on what
the objective prepares and adds the MoE balance loss (§3.2) when the model has MoE layers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from diffusers.utils.torch_utils import randn_tensor
from scipy.optimize import linear_sum_assignment
from torch import nn

from triposg.schedulers import (
    RectifiedFlowScheduler,
    TripoSGDDPMScheduler,
    TripoSGEDMScheduler,
    TripoSGSchedulerMixin,
)

# The MoE balance loss is a regulariser: small next to the flow loss (≈1 for unit-variance latents) so it
# spreads tokens across experts without steering the velocity field; ST-MoE / Switch use 1e-2.
DEFAULT_AUX_LOSS_WEIGHT = 0.01


class FlowTrainingBatch(NamedTuple):
    """What one objective draw gives the training step.

    model_input: (B, M, C) what the transformer sees (the noisy latents, scaled by the objective).
    timestep: (B,) float32 timesteps in the transformer's convention.
    target: (B, M, C) the regression target of the transformer output.
    weight: (B,) float32 per-sample loss weight.
    """

    model_input: torch.Tensor
    timestep: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor


class FlowObjective:
    """Noise, timestep, input, target and weight for one training step, from a core scheduler.

    Subclasses only choose the scheduler (and its training-time sampling options); all math lives in the
    scheduler's training interface: ``sample_training_timesteps`` / ``add_noise`` / ``scale_model_input`` /
    ``get_training_target`` / ``loss_weighting`` (see :class:`TripoSGSchedulerMixin`).
    """

    name: str = ""
    # Pair each noise token with a clean token by a minimum-cost assignment (see `match_tokens_to_noise`).
    match_tokens: bool = False

    def __init__(self, scheduler: TripoSGSchedulerMixin, **timestep_options):
        self.scheduler = scheduler
        # extra keyword arguments of the scheduler's `sample_training_timesteps` (e.g. the logit-normal m, s)
        self.timestep_options = timestep_options

    def sample_timesteps(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        num_tokens: int | None = None,
    ) -> torch.Tensor:
        """Training timesteps (B,) float32 in the transformer's convention."""
        return self.scheduler.sample_training_timesteps(
            batch_size, generator=generator, device=device, num_tokens=num_tokens, **self.timestep_options
        ).to(torch.float32)

    def training_pair(self, x0: torch.Tensor, noise: torch.Tensor, timestep: torch.Tensor) -> FlowTrainingBatch:
        """Deterministic part of a draw: (B, M, C) clean latents + noise at timesteps (B,) → a batch."""
        noisy = self.scheduler.add_noise(x0, noise, timestep)
        model_input = self.scheduler.scale_model_input(noisy, timestep)
        target = self.scheduler.get_training_target(x0, noise, timestep)
        weight = self.scheduler.loss_weighting(timestep).to(device=x0.device, dtype=torch.float32)
        return FlowTrainingBatch(model_input, timestep.to(torch.float32), target, weight)

    def sample(
        self, x0: torch.Tensor, generator: torch.Generator | None = None, num_tokens: int | None = None
    ) -> FlowTrainingBatch:
        """Draw timesteps, then noise ε ~ N(0, I), for clean latents ``x0`` (B, M, C).

        ``num_tokens`` drives the resolution shift (eq. 11); it defaults to M, the latents' token count.
        The draw order (timesteps, then noise) is fixed so a seeded generator reproduces a batch.
        """
        batch, tokens = x0.shape[0], x0.shape[1]
        timestep = self.sample_timesteps(batch, generator, x0.device, num_tokens or tokens).to(x0.device)
        noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        if self.match_tokens:
            x0 = match_tokens_to_noise(x0, noise)
        return self.training_pair(x0, noise, timestep)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Weighted MSE: per-sample mean over (M, C) of the squared error (float32), times ``weight`` (B,),
        averaged over the batch. Mean (not sum) over tokens keeps the scale the same for every M."""
        per_sample = (prediction.float() - target.float()).pow(2).flatten(1).mean(dim=1)  # (B,)
        return (weight.to(per_sample.device) * per_sample).mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scheduler={type(self.scheduler).__name__})"


class RectifiedFlowObjective(FlowObjective):
    """Rectified flow (the release; paper eqs. 9–11): velocity target ``x0 − ε``, logit-normal σ.

    Args:
        scheduler: the sampler the model will be used with. Default: 1000 train timesteps, no constant
            shift, and eq. 11's dynamic shift from 512 tokens (identity at 512 tokens, toward noise above).
        logit_mean, logit_std: the logit-normal location m and scale s of σ (eq. 10; SD3 uses 0, 1).
    """

    name = "rectified_flow"

    def __init__(
        self, scheduler: RectifiedFlowScheduler | None = None, logit_mean: float = 0.0, logit_std: float = 1.0
    ):
        # σ logit-normal (eq. 10), then shifted exactly like the scheduler's inference grid (eq. 11).
        super().__init__(
            scheduler or RectifiedFlowScheduler(use_dynamic_shifting=True, base_num_tokens=512),
            logit_mean=logit_mean,
            logit_std=logit_std,
        )


class DDPMObjective(FlowObjective):
    """DDPM ε-prediction (Table 1 ablation): uniform integer t, target ε. Default scheduler: linear β,
    deterministic DDIM sampling (``eta=0``); the objective itself does not depend on ``eta``."""

    name = "ddpm"

    def __init__(self, scheduler: TripoSGDDPMScheduler | None = None):
        super().__init__(scheduler or TripoSGDDPMScheduler(eta=0.0))


class EDMObjective(FlowObjective):
    """EDM (Karras et al. 2022; Table 1 ablation): log-normal σ, preconditioned input, F-target.
    Default scheduler: σ ∈ [0.002, 80], σ_data = 1, Euler sampling."""

    name = "edm"

    def __init__(self, scheduler: TripoSGEDMScheduler | None = None):
        super().__init__(scheduler or TripoSGEDMScheduler())


OBJECTIVES: dict[str, type[FlowObjective]] = {
    RectifiedFlowObjective.name: RectifiedFlowObjective,
    DDPMObjective.name: DDPMObjective,
    EDMObjective.name: EDMObjective,
}


@torch.no_grad()
def match_tokens_to_noise(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Reorder each shape's (M, C) clean tokens so token i is the one paired with noise token i by a minimum
    total squared distance assignment (Hungarian, per shape).

    The latent tokens are an unordered set and the transformer has no positional embedding, so any order is
    the same training example; this one makes the noise-to-data paths shorter and less crossed (an optimal
    transport coupling within the set), so at high noise the target is no longer an average over which
    token goes where.
    """
    matched = torch.empty_like(x0)
    for b in range(x0.shape[0]):
        cost = torch.cdist(noise[b].float(), x0[b].float()).pow(2).cpu().numpy()
        rows, cols = linear_sum_assignment(cost)
        matched[b, torch.as_tensor(rows, device=x0.device)] = x0[b, torch.as_tensor(cols, device=x0.device)]
    return matched


def make_objective(name: str, scheduler: TripoSGSchedulerMixin | None = None, **kwargs) -> FlowObjective:
    """Objective by name ("rectified_flow", "ddpm", "edm"); ``scheduler`` overrides the default sampler."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown flow objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name](scheduler, **kwargs)


def flow_loss(
    transformer: nn.Module,
    latents: torch.Tensor,
    cond: torch.Tensor,
    cond_2: torch.Tensor | None,
    objective: FlowObjective,
    generator: torch.Generator | None = None,
    aux_loss_weight: float = DEFAULT_AUX_LOSS_WEIGHT,
    num_tokens: int | None = None,
    teacher: nn.Module | None = None,
    guidance_scale: float = 1.0,
) -> dict[str, torch.Tensor]:
    """One flow-matching training loss.

    Args:
        transformer: a ``TripoSGDiTModel`` (dense or MoE).
        latents: (B, M, C) clean latents x0.
        cond: (B, S, D) DINOv2 tokens (zeros for dropped conditions); cond_2: (B, 1, D2) CLIP tokens or None.
        objective: a :class:`FlowObjective`.
        generator: seeds timesteps and noise.
        aux_loss_weight: weight of the MoE load-balancing loss (§3.2).
        num_tokens: token count for the resolution shift (default M).
        teacher, guidance_scale: guidance distillation. The target is not the objective's but the frozen
            `teacher`'s classifier-free-guided prediction at the same input, `u + w·(c − u)` with u its output
            for the zero context and c for `cond`: the trained model learns to give in one conditional pass
            what guidance gives in two (Meng et al. 2023, for a fixed w), so sampling needs no unconditional half.
    Returns:
        ``"flow"`` (the objective's weighted MSE), ``"moe_aux"`` (the weighted balance loss, MoE models only),
        ``"loss"`` (their sum, to backpropagate) — all scalars — and, for MoE models, ``"expert_load"``
        (num_moe_layers, num_experts), detached, the share of routed tokens per expert (not a loss term;
        :func:`expert_load_summary` turns it into scalars for logging).
    """
    batch = objective.sample(latents, generator=generator, num_tokens=num_tokens)
    if teacher is not None:
        batch = batch._replace(target=guided_teacher_prediction(teacher, batch, cond, cond_2, guidance_scale))
    output = transformer(
        batch.model_input,
        batch.timestep.to(batch.model_input.dtype),
        encoder_hidden_states=cond,
        encoder_hidden_states_2=cond_2,
    )
    terms = {"flow": objective.loss(output.sample, batch.target, batch.weight)}
    if output.aux_loss is not None:
        terms["moe_aux"] = aux_loss_weight * output.aux_loss.float()
    terms["loss"] = sum(terms.values())
    if output.expert_load is not None:
        terms["expert_load"] = output.expert_load.detach()
    return terms


@torch.no_grad()
def guided_teacher_prediction(
    teacher: nn.Module, batch: FlowTrainingBatch, cond: torch.Tensor, cond_2: torch.Tensor | None,
    guidance_scale: float,
) -> torch.Tensor:
    """The teacher's guided output at `batch`'s input, as the pipeline's sampling loop forms it: one call on
    [unconditional, conditional] rows (zero contexts first), then `u + w·(c − u)`."""
    both = lambda x: torch.cat([torch.zeros_like(x), x]) if x is not None else None  # noqa: E731
    output = teacher(
        torch.cat([batch.model_input] * 2),
        torch.cat([batch.timestep] * 2).to(batch.model_input.dtype),
        encoder_hidden_states=both(cond),
        encoder_hidden_states_2=both(cond_2),
    ).sample
    uncond, conditional = output.float().chunk(2)
    return uncond + guidance_scale * (conditional - uncond)


def expert_load_summary(expert_load: torch.Tensor) -> dict[str, float]:
    """Scalars for the log from an (L, N) expert-load table: per-layer max and min share, averaged over
    the L MoE layers. Balanced routing gives 1/N for both; a collapsed router gives a max near 1/top_k."""
    return {
        "expert_load_max": float(expert_load.max(dim=-1).values.mean()),
        "expert_load_min": float(expert_load.min(dim=-1).values.mean()),
    }
