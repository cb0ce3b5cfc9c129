"""DDPM / DDIM sampler with ε-prediction, for the paper's Table 1 sampling-schedule ablation (eq. 7).

Forward process ``x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε`` with ``ᾱ_t = Π_{s ≤ t} (1 − β_s)`` over the
discrete training steps t = 0..999; the transformer gets ``t`` itself (a float in [0, 999]) as ``timestep``.

Sampling uses the DDIM update (Song et al. 2021, eq. 12) between strided steps t → t' (t' < t)::

    x̂0 = (x_t − sqrt(1 − ᾱ_t)·ε̂) / sqrt(ᾱ_t)
    σ_η = η · sqrt((1 − ᾱ_t') / (1 − ᾱ_t)) · sqrt(1 − ᾱ_t / ᾱ_t')
    x_t' = sqrt(ᾱ_t')·x̂0 + sqrt(1 − ᾱ_t' − σ_η²)·ε̂ + σ_η·z,   z ~ N(0, I)

``eta = 1`` (default) is ancestral DDPM sampling: σ_η² is the DDPM posterior variance β̃ (its strided
generalisation), so the step samples q(x_t' | x_t, x̂0). ``eta = 0`` is deterministic DDIM. After the last
step ᾱ = 1, so the returned sample is x̂0.
"""

import torch
from diffusers.configuration_utils import register_to_config
# Pipeline folders name this module; diffusers looks up the loader base (SchedulerMixin) as its attribute.
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .scheduling_utils import SchedulerOutput, TripoSGSchedulerMixin, expand_to_sample

__all__ = ["SchedulerMixin", "TripoSGDDPMScheduler"]

_BETA_SCHEDULES = ("linear", "scaled_linear")


class TripoSGDDPMScheduler(TripoSGSchedulerMixin):
    """Discrete-time DDPM sampler (ε-prediction) with a DDIM ``eta`` knob; see the module docstring.

    Args:
        num_train_timesteps: number of diffusion steps T; timesteps are integers in [0, T − 1].
        beta_start, beta_end: β at the first and last training step.
        beta_schedule: "linear" (DDPM, Ho et al. 2020) or "scaled_linear" (linear in sqrt β, as LDM/SD).
        prediction_type: what the network outputs; only "epsilon" (ε̂) is supported.
        eta: 1 = ancestral DDPM (stochastic, uses ``generator``), 0 = deterministic DDIM.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        prediction_type: str = "epsilon",
        eta: float = 1.0,
    ):
        if beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        elif beta_schedule == "scaled_linear":
            betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
        else:
            raise ValueError(f"beta_schedule must be one of {_BETA_SCHEDULES}, got {beta_schedule!r}.")
        if prediction_type != "epsilon":
            raise ValueError(f"TripoSGDDPMScheduler supports prediction_type='epsilon' only, got {prediction_type!r}.")
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}.")
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)  # (T,) float64, ᾱ_t
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1, dtype=torch.float32)

    def set_timesteps(
        self, num_inference_steps: int, device: torch.device | str | None = None, num_tokens: int | None = None
    ) -> None:
        """Evenly strided ("trailing") steps from T − 1 down: for T = 1000, N = 50 → 999, 979, ..., 19.

        Starting at T − 1 makes the first step see (nearly) pure noise. ``num_tokens`` is ignored.
        """
        num_train = self.config.num_train_timesteps
        if not 1 <= num_inference_steps <= num_train:
            raise ValueError(f"num_inference_steps must be in [1, {num_train}], got {num_inference_steps}.")
        stride = num_train / num_inference_steps
        timesteps = torch.round(torch.arange(num_inference_steps, 0, -1, dtype=torch.float64) * stride) - 1
        self.timesteps = timesteps.to(device=device, dtype=torch.float32)
        self.num_inference_steps = num_inference_steps
        self._step_index = None

    def _alpha_cumprod_at(self, timestep: torch.Tensor) -> torch.Tensor:
        """ᾱ at integer-valued timesteps (any shape); float64 on the timesteps' device."""
        index = torch.as_tensor(timestep).round().long()
        return self.alphas_cumprod.to(index.device)[index]

    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor | float,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor]:
        """One DDPM (eta = 1) / DDIM (eta = 0) step to the next scheduled timestep, computed in float32.

        Args:
            model_output: (B, M, C) predicted noise ε̂.
            timestep: an entry of ``self.timesteps`` (scalar, or (B,) holding one value).
            sample: (B, M, C) the current ``x_t``.
            generator: drives the ancestral noise z when eta > 0.
        """
        index = self._index_for_step(timestep)
        t = int(self.timesteps[index])
        alpha_bar = float(self.alphas_cumprod[t])
        alpha_bar_prev = (
            float(self.alphas_cumprod[int(self.timesteps[index + 1])]) if index + 1 < len(self.timesteps) else 1.0
        )
        variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev)
        noise_std = self.config.eta * max(variance, 0.0) ** 0.5

        epsilon = model_output.float()
        current = sample.float()
        pred_original_sample = (current - (1.0 - alpha_bar) ** 0.5 * epsilon) / alpha_bar**0.5
        direction = max(1.0 - alpha_bar_prev - noise_std**2, 0.0) ** 0.5 * epsilon
        prev_sample = alpha_bar_prev**0.5 * pred_original_sample + direction
        if noise_std > 0:
            z = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=torch.float32)
            prev_sample = prev_sample + noise_std * z
        return self._finish_step(index, prev_sample, pred_original_sample, sample.dtype, return_dict)

    # ---- training helpers: the same convention as `step` ----

    def sample_training_timesteps(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        num_tokens: int | None = None,
    ) -> torch.Tensor:
        """Uniform integer training timesteps (B,) in [0, T − 1], as floats. ``num_tokens`` is ignored."""
        generator_device = generator.device if generator is not None else device
        timesteps = torch.randint(
            0, self.config.num_train_timesteps, (batch_size,), generator=generator, device=generator_device
        )
        return timesteps.to(device=device, dtype=torch.float32)

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | float
    ) -> torch.Tensor:
        """Eq. 7: ``x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε``. Shapes (B, M, C); ``timesteps`` (B,) or scalar."""
        alpha_bar = expand_to_sample(self._alpha_cumprod_at(torch.as_tensor(timesteps).cpu()), original_samples)
        noisy = alpha_bar.sqrt() * original_samples.float() + (1.0 - alpha_bar).sqrt() * noise.float()
        return noisy.to(original_samples.dtype)

    def get_training_target(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        """The ε-prediction target: the noise itself, with the base's uniform weight (DDPM's "simple" loss).
        Shape (B, M, C)."""
        return noise
