"""Rectified-flow Euler sampler in the released TripoSG convention (paper §3.1.2, eqs. 9–11).

Convention (must match the released checkpoint):

- Interpolation ``x_σ = (1 − σ)·x0 + σ·ε`` with the noise fraction σ ∈ [0, 1]; the transformer's
  ``timestep`` is ``1000·σ`` (a float). The paper's eq. 9 time is ``t = 1 − σ``.
- The network predicts the velocity from noise to data, ``v ≈ x0 − ε``. Since ``dx/dσ = ε − x0 = −v``,
  an Euler step from σ_i down to σ_{i+1} is ``x ← x + (σ_i − σ_{i+1})·v`` and the clean estimate is
  ``x̂0 = x + σ·v``.
- This sign is **opposite** to diffusers' ``FlowMatchEulerDiscreteScheduler``, whose model predicts
  ``ε − x0`` and steps ``x ← x + (σ_{i+1} − σ_i)·v``. The two are not interchangeable with the same weights.

Inference grid: ``s_i = 1 − i/N`` (i = 0..N−1), ``σ_i = shift·s_i / (1 + (shift − 1)·s_i)``, then a final
σ = 0. With ``use_dynamic_shifting=True`` the shift is additionally multiplied by eq. 11's
``sqrt(num_tokens / base_num_tokens)``, applied to σ so that more tokens ⇒ more steps at high noise
(SD3's behaviour; see ``timesteps.py`` for how eq. 11's ``t`` maps onto σ).

Solvers (one model call per step either way): ``"euler"``, the release's. ``"dpmpp_2m"``, DPM-Solver++(2M) (Lu et
al. 2022) written for this path (α = 1 − σ): in the half-log-SNR λ = log(α/σ), with the clean estimate
x̂0 = x + σ·v and D = x̂0_i + (x̂0_i − x̂0_{i−1})·h_i / (2·h_{i−1}) (h the λ step), the step is
``x ← (σ_{i+1}/σ_i)·x + (α_{i+1} − α_i·σ_{i+1}/σ_i)·D``. With D = x̂0_i this *is* the Euler step (DDIM), so the
first step, a step after one taken from σ = 1 (λ = −∞) and the last step (into σ = 0, λ = +∞) are Euler steps;
the others extrapolate the clean estimate linearly in λ, second order where Euler is first.
"""

import math
from collections.abc import Sequence

import torch
from diffusers.configuration_utils import register_to_config
# Pipeline folders name this module; diffusers looks up the loader base (SchedulerMixin) as its attribute.
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .scheduling_utils import SchedulerOutput, TripoSGSchedulerMixin, expand_to_sample
from .timesteps import logit_normal_timesteps, resolution_shift_factor, shift_sigmas

__all__ = ["SchedulerMixin", "RectifiedFlowScheduler"]

SOLVERS = ("euler", "dpmpp_2m")


class RectifiedFlowScheduler(TripoSGSchedulerMixin):
    """Euler sampler for the rectified-flow velocity ``v ≈ x0 − ε`` (release convention, see module doc).

    Args:
        num_train_timesteps: ``timestep = num_train_timesteps·σ``; 1000 in the release.
        shift: constant timestep shift applied to the inference grid (1 = none, the release setting).
        use_dynamic_shifting: also multiply the shift by eq. 11's ``sqrt(num_tokens / base_num_tokens)``;
            ``set_timesteps`` then needs ``num_tokens``. Off in the release.
        base_num_tokens: eq. 11's base resolution n (512 tokens, the first training stage).
        solver: "euler" (the release's) or "dpmpp_2m" (second order from the previous step's clean estimate, at
            the same one model call per step; see the module doc).
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        shift: float = 1.0,
        use_dynamic_shifting: bool = False,
        base_num_tokens: int = 512,
        solver: str = "euler",
    ):
        if shift <= 0:
            raise ValueError(f"shift must be positive, got {shift}.")
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; choose one of {list(SOLVERS)}")
        self._previous = None  # dpmpp_2m: (step index, clean estimate x̂0) of the last step
        # Before set_timesteps: the full training grid, so len(timesteps) and indexing are meaningful.
        self.sigmas = torch.cat([torch.linspace(1.0, 0.0, num_train_timesteps + 1)[:-1], torch.zeros(1)])
        self.timesteps = self.sigmas[:-1] * num_train_timesteps

    def effective_shift(self, num_tokens: int | None = None) -> float:
        """The shift used for ``num_tokens`` latent tokens: ``shift``, times eq. 11's factor if dynamic."""
        shift = float(self.config.shift)
        if self.config.use_dynamic_shifting:
            if num_tokens is None:
                raise ValueError(
                    "use_dynamic_shifting=True needs the latent token count: pass num_tokens=... "
                    "(e.g. 2048) to set_timesteps / sample_training_timesteps."
                )
            shift *= resolution_shift_factor(num_tokens, self.config.base_num_tokens)
        return shift

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: torch.device | str | None = None,
        num_tokens: int | None = None,
        timesteps: Sequence[float] | torch.Tensor | None = None,
        sigmas: Sequence[float] | torch.Tensor | None = None,
        mu: float | None = None,
    ) -> None:
        """Build the schedule: ``sigmas`` (N+1,) ending in 0 and ``timesteps`` (N,) = 1000·σ_0..σ_{N−1}.

        Args:
            num_inference_steps: N for the default grid ``s_i = 1 − i/N``, shifted (see the module doc).
            num_tokens: the latent token count, for ``use_dynamic_shifting``.
            timesteps: a custom schedule of N timesteps in (0, 1000], high to low, used exactly as given
                (no shift; diffusers' convention for custom timesteps).
            sigmas: N custom unshifted noise levels in (0, 1], high to low; they are shifted like the default
                grid (the release's `set_timesteps(sigmas=...)`).
            mu: the dynamic shift as a log (the release's and diffusers' `mu`): the shift becomes ``e^mu``
                instead of eq. 11's token-count factor. Given, it replaces the config's shift.
        """
        if timesteps is not None and sigmas is not None:
            raise ValueError("pass either timesteps or sigmas to set_timesteps, not both")
        custom = timesteps if timesteps is not None else sigmas
        if custom is None and num_inference_steps is None:
            raise ValueError("set_timesteps needs num_inference_steps, timesteps or sigmas")
        if custom is not None and num_inference_steps is not None and num_inference_steps != len(custom):
            raise ValueError(f"num_inference_steps={num_inference_steps} but {len(custom)} custom entries were given")
        if timesteps is not None:
            schedule = torch.as_tensor(timesteps, dtype=torch.float64).flatten().cpu()
            unshifted, shift = schedule / self.config.num_train_timesteps, 1.0
        elif sigmas is not None:
            unshifted = torch.as_tensor(sigmas, dtype=torch.float64).flatten().cpu()
            shift = math.exp(mu) if mu is not None else self.effective_shift(num_tokens)
        else:
            if num_inference_steps < 1:
                raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}.")
            unshifted = 1.0 - torch.arange(num_inference_steps, dtype=torch.float64) / num_inference_steps
            shift = math.exp(mu) if mu is not None else self.effective_shift(num_tokens)
        if unshifted.numel() == 0 or not bool(((unshifted > 0) & (unshifted <= 1)).all()):
            raise ValueError("custom timesteps must lie in (0, 1000] and sigmas in (0, 1]; "
                             f"got {unshifted.tolist()[:8]} as noise levels")
        if unshifted.numel() > 1 and not bool((unshifted[1:] < unshifted[:-1]).all()):
            raise ValueError("custom timesteps / sigmas must decrease strictly (from noise to data)")
        # As the release: σ in float64, cast to float32, and timestep = 1000·σ in float32 (custom timesteps as given).
        sigmas_ = shift_sigmas(unshifted, shift).to(torch.float32)
        if timesteps is not None:
            timesteps_ = torch.as_tensor(timesteps, dtype=torch.float32).flatten().cpu()
        else:
            timesteps_ = sigmas_ * self.config.num_train_timesteps
        self.sigmas = torch.cat([sigmas_, sigmas_.new_zeros(1)]).to(device)
        self.timesteps = timesteps_.to(device)
        self.num_inference_steps = len(self.timesteps)
        self._step_index = None
        self._previous = None

    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor | float,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor]:
        """One Euler step ``x ← x + (σ_i − σ_{i+1})·v``: the increment in v's dtype, the sum in float32, the
        result cast back to ``model_output.dtype`` (as the release).

        Args:
            model_output: (B, M, C) predicted velocity v ≈ x0 − ε.
            timestep: an entry of ``self.timesteps`` (scalar, or (B,) holding one value).
            sample: (B, M, C) the current ``x_σ``.
            generator: unused (the sampler is deterministic); kept for the common interface.
        """
        index = self._index_for_step(timestep)
        sigma = self.sigmas[index].to(sample.device)
        sigma_next = self.sigmas[index + 1].to(sample.device)
        current = sample.float()
        pred_original_sample = current + sigma * model_output.float()
        previous = self._previous  # None unless dpmpp_2m
        self._previous = (index, pred_original_sample) if self.config.solver == "dpmpp_2m" else None
        if previous is not None and previous[0] == index - 1 and previous[1].shape == sample.shape:
            prev_sample = self._multistep(index, current, pred_original_sample, previous[1])
            if prev_sample is not None:
                return self._finish_step(index, prev_sample, pred_original_sample, model_output.dtype, return_dict)
        # As the release: the increment (σ_i − σ_{i+1})·v is rounded to v's dtype, the sum is taken in fp32
        # (identical to all-fp32 arithmetic for fp32 models; it keeps fp16 results the release's too).
        prev_sample = current + (sigma - sigma_next) * model_output
        return self._finish_step(index, prev_sample, pred_original_sample, model_output.dtype, return_dict)

    def _multistep(self, index: int, current: torch.Tensor, clean: torch.Tensor,
                   previous_clean: torch.Tensor) -> torch.Tensor | None:
        """The DPM-Solver++(2M) step from entry `index` (module doc), or None where it is the Euler step (an end of
        the schedule at σ = 0 or 1, where λ is infinite)."""
        before, sigma, after = (float(self.sigmas[i]) for i in (index - 1, index, index + 1))
        if not (0.0 < after and before < 1.0 and sigma > 0.0):
            return None

        def half_log_snr(s: float) -> float:
            return math.log((1.0 - s) / s)

        step = half_log_snr(after) - half_log_snr(sigma)
        step_before = half_log_snr(sigma) - half_log_snr(before)
        estimate = clean + (clean - previous_clean) * (step / (2.0 * step_before))
        ratio = after / sigma
        return ratio * current + ((1.0 - after) - (1.0 - sigma) * ratio) * estimate

    # ---- training helpers: the same convention as `step` ----

    def sample_training_timesteps(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        num_tokens: int | None = None,
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
    ) -> torch.Tensor:
        """Training timesteps (B,) in (0, 1000): logit-normal σ (eq. 10), shifted like ``set_timesteps``.

        The loss weight stays uniform (SD3-style): this density does the weighting.
        """
        sigma = logit_normal_timesteps(batch_size, logit_mean, logit_std, generator=generator, device=device)
        sigma = shift_sigmas(sigma, self.effective_shift(num_tokens))
        return sigma * self.config.num_train_timesteps

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | float
    ) -> torch.Tensor:
        """``x_σ = (1 − σ)·x0 + σ·ε`` with ``σ = timesteps / 1000``.

        ``original_samples``, ``noise``: (B, M, C); ``timesteps``: (B,) or scalar in [0, 1000].
        """
        sigma = expand_to_sample(torch.as_tensor(timesteps) / self.config.num_train_timesteps, original_samples)
        noisy = (1.0 - sigma) * original_samples.float() + sigma * noise.float()
        return noisy.to(original_samples.dtype)

    def get_training_target(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        """The velocity target ``v = x0 − ε`` (independent of the timestep). Shapes (B, M, C)."""
        return original_samples - noise
