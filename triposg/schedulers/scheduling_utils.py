"""The one base of the TripoSG schedulers: what every sampler shares, and the interface training relies on.

A scheduler serves two callers with one convention, so that training and sampling agree by construction:

- **Sampling** (the pipeline): ``set_timesteps`` builds ``timesteps``; starting from ``init_noise_sigma·ε``,
  each entry ``t`` is one model call on ``scale_model_input(x, t)`` followed by ``step(output, t, x)``.
- **Training** (``training/flow_objectives.py``): for clean latents x0 and noise ε it draws
  ``t = sample_training_timesteps(B, ...)``, feeds the transformer ``scale_model_input(add_noise(x0, ε, t), t)``
  and regresses ``get_training_target(x0, ε, t)`` with the per-sample weight ``loss_weighting(t)``.

The two halves are tied by one contract, tested for every scheduler: a perfect prediction, the training
target used as the model output, makes ``step`` from ``add_noise(x0, ε, t_i)`` land on
``add_noise(x0, ε, t_{i+1})`` (and on x0 after the last entry).

Everything shared lives here: the step output, the timestep → step-index bookkeeping, the cast of a
step's float32 results back to the sample dtype, and the per-sample broadcast the training helpers use.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

# A timestep passed to ``step`` may have been through a lower-precision cast (fp16 spacing is 0.5
# near 1000); farther than this from every scheduled timestep it is a caller bug, not rounding.
_TIMESTEP_MATCH_TOLERANCE = 0.5


@dataclass
class SchedulerOutput(BaseOutput):
    """Output of a scheduler ``step``.

    Args:
        prev_sample: (B, M, C) the sample at the next (less noisy) entry of the schedule.
        pred_original_sample: (B, M, C) the current clean-latent estimate x̂0 (for streaming previews).
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def expand_to_sample(values: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """Reshape per-sample scalars (B,) or () to broadcast against ``sample`` (B, ...), as float32."""
    values = values.to(device=sample.device, dtype=torch.float32)
    if values.ndim == 0:
        return values
    return values.reshape(values.shape[0], *([1] * (sample.ndim - 1)))


class TripoSGSchedulerMixin(SchedulerMixin, ConfigMixin, ABC):
    """Base of the rectified-flow, DDPM and EDM schedulers (see the module docstring for the two interfaces).

    Subclasses register their config on ``__init__`` (so ``save_pretrained``/``from_pretrained`` keep their
    keys), set ``timesteps`` in ``set_timesteps`` and reset ``_step_index`` there, and end ``step`` with
    :meth:`_finish_step`. The training methods are the ones :class:`training.flow_objectives.FlowObjective`
    calls; all objective math lives behind them.
    """

    _compatibles = []
    order = 1
    # x_T = init_noise_sigma·ε; a scheduler whose noise is not unit variance (EDM's σ_max) overrides it.
    init_noise_sigma: float = 1.0
    num_inference_steps: int | None = None
    timesteps: torch.Tensor
    _step_index: int | None = None

    @property
    def step_index(self) -> int | None:
        """Index into ``timesteps`` of the next ``step`` call (None before the first step)."""
        return self._step_index

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    # ---- sampling interface ----

    @abstractmethod
    def set_timesteps(
        self, num_inference_steps: int, device: torch.device | str | None = None, num_tokens: int | None = None
    ) -> None:
        """Build ``timesteps`` (one entry per ``step`` call, high noise to low) for ``num_inference_steps``
        steps, and reset the step counter. ``num_tokens`` is the latent token count M, for schedulers whose
        grid depends on it (the rectified flow's eq. 11 shift); others ignore it."""

    def scale_model_input(self, sample: torch.Tensor, timestep: torch.Tensor | float | None = None) -> torch.Tensor:
        """What the network sees for the noisy ``sample`` (B, M, C) at ``timestep`` (scalar or (B,)).
        Identity by default; EDM scales by its preconditioning ``c_in``."""
        return sample

    @abstractmethod
    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor | float,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor]:
        """Move ``sample`` (B, M, C) from ``timestep`` (an entry of ``timesteps``) to the next entry, given the
        network's ``model_output`` (B, M, C). Returns a :class:`SchedulerOutput`, or ``(prev_sample,)`` with
        ``return_dict=False`` (diffusers' and the release's convention)."""

    def _index_for_step(self, timestep: torch.Tensor | float) -> int:
        """Index of ``timestep`` in ``timesteps``.

        The running counter wins when it matches, so schedules with a repeated timestep (EDM's Heun
        corrector) are walked in order; otherwise the nearest entry is used (the first among repeats).
        A ``timestep`` given as a batch (B,) must hold one value.
        """
        if isinstance(timestep, torch.Tensor):
            flat = timestep.detach().flatten().double().cpu()
            if flat.numel() == 0:
                raise ValueError("step() got an empty timestep tensor.")
            if not torch.all(flat == flat[0]):
                raise ValueError("step() needs one timestep for the whole batch, got different values.")
            value = float(flat[0])
        else:
            value = float(timestep)
        distance = (self.timesteps.detach().double().cpu() - value).abs()
        expected = self._step_index
        if expected is not None and expected < len(distance) and distance[expected] <= _TIMESTEP_MATCH_TOLERANCE:
            return expected
        index = int(torch.argmin(distance))
        if distance[index] > _TIMESTEP_MATCH_TOLERANCE:
            raise ValueError(
                f"timestep {value} is not in the scheduler's timesteps; call step() with an entry of "
                "scheduler.timesteps after set_timesteps()."
            )
        return index

    def _finish_step(
        self,
        index: int,
        prev_sample: torch.Tensor,
        pred_original_sample: torch.Tensor,
        dtype: torch.dtype,
        return_dict: bool,
    ) -> SchedulerOutput | tuple[torch.Tensor]:
        """Advance the step counter past ``index``, cast the step's float32 results to ``dtype`` and package
        them: ``(prev_sample,)`` without ``return_dict``."""
        self._step_index = index + 1
        prev_sample, pred_original_sample = prev_sample.to(dtype), pred_original_sample.to(dtype)
        if not return_dict:
            return (prev_sample,)
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)

    # ---- training interface (what training/flow_objectives.py calls) ----

    @abstractmethod
    def sample_training_timesteps(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        num_tokens: int | None = None,
    ) -> torch.Tensor:
        """Training timesteps (B,) float32 in the transformer's convention, drawn from the scheduler's training
        density. ``num_tokens`` as in ``set_timesteps``. Subclasses may take extra keyword options of the
        density (the rectified flow's logit-normal ``logit_mean``/``logit_std``); objectives pass them through."""

    @abstractmethod
    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | float
    ) -> torch.Tensor:
        """The forward process: clean latents x0 and noise ε, both (B, M, C), at ``timesteps`` ((B,) or scalar)
        → the noisy sample (B, M, C) in x0's dtype, the same ``sample`` that ``step`` expects at that entry."""

    @abstractmethod
    def get_training_target(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | float
    ) -> torch.Tensor:
        """The regression target (B, M, C) of the network output for ``add_noise(x0, ε, timesteps)``: the
        output that, given to ``step``, is a perfect prediction."""

    def loss_weighting(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Per-sample weight (B,) float32 of the MSE on the target. Uniform by default: all three objectives
        put their weighting in the timestep density or (EDM) in the target's parametrisation."""
        return torch.ones_like(torch.as_tensor(timesteps, dtype=torch.float32))
