"""EDM sampler and preconditioning (Karras et al. 2022), for the paper's Table 1 ablation (eq. 8).

Noising ``x_σ = x0 + σ·ε`` (variance exploding). The network F is wrapped by EDM's preconditioning
(Karras et al., Table 1) into the denoiser::

    D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ))
    c_skip = σ_d² / (σ² + σ_d²)    c_out = σ·σ_d / sqrt(σ² + σ_d²)    c_in = 1 / sqrt(σ² + σ_d²)

so the pipeline feeds ``scale_model_input(x) = c_in·x`` to the transformer and ``step`` applies
c_skip/c_out to its raw output F (``prediction_type="edm"``).

Transformer timestep. EDM conditions on ``c_noise = ¼·ln σ``. Our transformer expects a float in
[0, 1000], so we use the affine rescaling of c_noise (equivalently of ln σ) that sends σ_min → 0 and
σ_max → 1000::

    timestep = 1000 · (ln σ − ln σ_min) / (ln σ_max − ln σ_min)

(with the defaults σ_min = 0.002, σ_max = 80: σ = 1 ↦ 586.5). ``timestep_from_sigma`` and
``sigma_from_timestep`` implement the map and its inverse; training uses them through
``sample_training_timesteps`` / ``add_noise``, so both sides agree.

Sampling grid (ρ-schedule, Karras eq. 5): ``σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ``
for i = 0..N−1, then σ_N = 0. ``solver="euler"`` (default) takes one model call per step.
``solver="heun"`` is Karras' Algorithm 1 (2nd order, deterministic): each step σ_i → σ_{i+1} > 0 takes an
Euler predictor and a trapezoidal corrector, so ``timesteps`` lists the corrector's noise level twice
(2N − 1 entries in all) and the caller simply calls ``step`` once per entry, in order.

Training (Karras §5): ln σ ~ N(P_mean, P_std²); the F-target is ``(x0 − c_skip·x_σ) / c_out``, and with
the loss weight λ(σ) = 1 / c_out² the denoiser loss λ·|D − x0|² equals the plain F-space MSE.
"""

import math

import torch
from diffusers.configuration_utils import register_to_config
# Pipeline folders name this module; diffusers looks up the loader base (SchedulerMixin) as its attribute.
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .scheduling_utils import SchedulerOutput, TripoSGSchedulerMixin, expand_to_sample

__all__ = ["SchedulerMixin", "TripoSGEDMScheduler"]

_SOLVERS = ("euler", "heun")


class TripoSGEDMScheduler(TripoSGSchedulerMixin):
    """EDM ρ-schedule sampler (Euler or Heun) with EDM preconditioning; see the module docstring.

    Args:
        num_train_timesteps: upper end of the transformer's timestep range (σ_max ↦ this value).
        sigma_min, sigma_max: noise range of the sampler and of the timestep map.
        sigma_data: std of the clean latents (≈1 for the VAE's latents).
        rho: curvature of the sampling grid (7 in EDM).
        p_mean, p_std: log-normal training distribution of σ.
        solver: "euler" (one model call per step) or "heun" (Karras Algorithm 1).
        prediction_type: "edm" — the network outputs the raw F of the preconditioned denoiser.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 1.0,
        rho: float = 7.0,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        solver: str = "euler",
        prediction_type: str = "edm",
    ):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}.")
        if solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {_SOLVERS}, got {solver!r}.")
        if prediction_type != "edm":
            raise ValueError(f"TripoSGEDMScheduler supports prediction_type='edm' only, got {prediction_type!r}.")
        # x_T = σ_max·ε (Karras Algorithm 1, line 1).
        self.init_noise_sigma = float(sigma_max)
        self._heun_state: tuple[torch.Tensor, torch.Tensor] | None = None  # (x at σ_i, Euler derivative d_i)
        self.set_timesteps(num_train_timesteps)

    # ---- σ ↔ transformer timestep ----

    def timestep_from_sigma(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """``1000·(ln σ − ln σ_min) / (ln σ_max − ln σ_min)``: EDM's c_noise = ¼ ln σ, rescaled to [0, 1000]."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        log_min, log_max = math.log(self.config.sigma_min), math.log(self.config.sigma_max)
        return (sigma.log() - log_min) / (log_max - log_min) * self.config.num_train_timesteps

    def sigma_from_timestep(self, timestep: torch.Tensor | float) -> torch.Tensor:
        """Inverse of :meth:`timestep_from_sigma` (float64)."""
        timestep = torch.as_tensor(timestep, dtype=torch.float64)
        log_min, log_max = math.log(self.config.sigma_min), math.log(self.config.sigma_max)
        return torch.exp(log_min + timestep / self.config.num_train_timesteps * (log_max - log_min))

    def preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(c_skip, c_out, c_in)`` at noise level ``sigma`` (any shape), Karras et al. Table 1."""
        sigma_data = self.config.sigma_data
        total = sigma**2 + sigma_data**2
        return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), 1.0 / total.sqrt()

    # ---- sampling ----

    def set_timesteps(
        self, num_inference_steps: int, device: torch.device | str | None = None, num_tokens: int | None = None
    ) -> None:
        """Build the ρ-schedule ``sigmas`` (N+1,) ending in 0 and ``timesteps`` (one per ``step`` call).

        Euler: N timesteps. Heun: 2N − 1 (each level after the first appears twice: corrector, then
        predictor). ``num_tokens`` is ignored.
        """
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}.")
        inv_rho = 1.0 / self.config.rho
        ramp = torch.linspace(0.0, 1.0, num_inference_steps, dtype=torch.float64)
        max_root, min_root = self.config.sigma_max**inv_rho, self.config.sigma_min**inv_rho
        levels = (max_root + ramp * (min_root - max_root)) ** self.config.rho
        if self.config.solver == "heun":
            # entry k → (noise level whose model call it is, whether it is a corrector call)
            level_index = [0] + [i for i in range(1, num_inference_steps) for _ in range(2)]
            is_corrector = [False] + [flag for _ in range(1, num_inference_steps) for flag in (True, False)]
        else:
            level_index = list(range(num_inference_steps))
            is_corrector = [False] * num_inference_steps
        self._level_index = level_index
        self._is_corrector = is_corrector
        self.sigmas = torch.cat([levels, levels.new_zeros(1)]).to(device=device, dtype=torch.float32)
        self.timesteps = self.timestep_from_sigma(levels[level_index]).to(device=device, dtype=torch.float32)
        self.num_inference_steps = num_inference_steps
        self._step_index = None
        self._heun_state = None

    def scale_model_input(self, sample: torch.Tensor, timestep: torch.Tensor | float) -> torch.Tensor:
        """``c_in(σ)·x``; ``timestep``: scalar or (B,), from ``timesteps`` or ``sample_training_timesteps``."""
        _, _, c_in = self.preconditioning(self.sigma_from_timestep(torch.as_tensor(timestep).cpu()))
        return (expand_to_sample(c_in, sample) * sample.float()).to(sample.dtype)

    def _denoise(self, model_output: torch.Tensor, sample: torch.Tensor, sigma: float) -> torch.Tensor:
        """D(x; σ) = c_skip·x + c_out·F, float32."""
        c_skip, c_out, _ = self.preconditioning(torch.tensor(sigma, dtype=torch.float64))
        return float(c_skip) * sample + float(c_out) * model_output

    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor | float,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor]:
        """One Euler step (or one half of a Heun step) of ``dx/dσ = (x − D(x; σ)) / σ``, in float32.

        Args:
            model_output: (B, M, C) raw network output F at ``scale_model_input(sample, timestep)``.
            timestep: the current entry of ``self.timesteps`` (scalar, or (B,) holding one value).
            sample: (B, M, C) the current (unscaled) ``x_σ``.
            generator: unused (deterministic sampler); kept for the common interface.
        """
        index = self._index_for_step(timestep)
        level = self._level_index[index]
        current = sample.float()
        denoised = self._denoise(model_output.float(), current, float(self.sigmas[level]))

        if self._is_corrector[index]:
            # Heun corrector: `sample` is the Euler prediction at σ_{i+1}; average the two slopes.
            if self._heun_state is None:
                raise RuntimeError("Heun corrector step without its predictor; call step() in timesteps order.")
            start, slope = self._heun_state
            sigma, sigma_next = float(self.sigmas[level - 1]), float(self.sigmas[level])
            slope_next = (current - denoised) / sigma_next
            prev_sample = start + (sigma_next - sigma) * 0.5 * (slope + slope_next)
            self._heun_state = None
        else:
            sigma, sigma_next = float(self.sigmas[level]), float(self.sigmas[level + 1])
            slope = (current - denoised) / sigma
            prev_sample = current + (sigma_next - sigma) * slope
            # Karras Alg. 1: the 2nd-order correction is skipped on the last step (σ_{i+1} = 0).
            if self.config.solver == "heun" and sigma_next > 0:
                self._heun_state = (current, slope)
        return self._finish_step(index, prev_sample, denoised, sample.dtype, return_dict)

    # ---- training helpers: the same convention as `step` ----

    def sample_training_sigmas(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """σ (B,) with ln σ ~ N(P_mean, P_std²) (Karras §5), clamped to [σ_min, σ_max] so timesteps stay in range."""
        log_sigma = self.config.p_mean + self.config.p_std * randn_tensor(
            (batch_size,), generator=generator, device=device, dtype=torch.float32
        )
        return log_sigma.exp().clamp(self.config.sigma_min, self.config.sigma_max)

    def sample_training_timesteps(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        num_tokens: int | None = None,
    ) -> torch.Tensor:
        """``timestep_from_sigma(sample_training_sigmas(...))`` as float32 (B,). ``num_tokens`` is ignored."""
        sigma = self.sample_training_sigmas(batch_size, generator=generator, device=device)
        return self.timestep_from_sigma(sigma).to(torch.float32)

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | float
    ) -> torch.Tensor:
        """Eq. 8: ``x_σ = x0 + σ·ε`` with σ = ``sigma_from_timestep(timesteps)``. Shapes (B, M, C)."""
        sigma = expand_to_sample(self.sigma_from_timestep(torch.as_tensor(timesteps).cpu()), original_samples)
        return (original_samples.float() + sigma * noise.float()).to(original_samples.dtype)

    def get_training_target(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | float
    ) -> torch.Tensor:
        """The F-target ``(x0 − c_skip·x_σ) / c_out`` for the noisy sample ``add_noise(x0, ε, timesteps)``.

        The base's uniform loss weight is exact here: the denoiser-space weight λ(σ) = (σ² + σ_d²) / (σ·σ_d)²
        is cancelled by c_out² when the loss is expressed on F (Karras Table 1).
        """
        sigma = self.sigma_from_timestep(torch.as_tensor(timesteps).cpu())
        c_skip, c_out, _ = self.preconditioning(sigma)
        # Expanded as a·x0 + b·ε with float64 coefficients: at small σ, x0 − c_skip·x_σ cancels
        # almost exactly and dividing the float32 difference by a tiny c_out would amplify rounding.
        data_weight = expand_to_sample((1.0 - c_skip) / c_out, original_samples)
        noise_weight = expand_to_sample(-c_skip * sigma / c_out, original_samples)
        target = data_weight * original_samples.float() + noise_weight * noise.float()
        return target.to(original_samples.dtype)
