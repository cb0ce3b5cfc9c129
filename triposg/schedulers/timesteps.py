"""Noise-level sampling and shifting for rectified-flow training and sampling (paper eqs. 10, 11).

One convention everywhere in this package: **σ is the noise fraction**,
``x_σ = (1 − σ)·x0 + σ·ε`` with σ ∈ [0, 1] (σ = 1 is pure noise), and the transformer's
``timestep`` is ``1000·σ``. This is the released checkpoint's convention and SD3's ``t``.

The paper writes the same interpolation with the opposite time direction,
``x_t = t·x0 + (1 − t)·ε`` (eq. 9), so its ``t`` is the *data* weight and ``t = 1 − σ``.
:func:`sigma_to_paper_t` / :func:`paper_t_to_sigma` convert between the two.

Eq. 11 (resolution-dependent shift) is SD3's formula, and SD3's ``t`` is the noise level. Read
literally on the paper's data-weight ``t`` it would move samples *toward data* when the token count
grows, contradicting the paper's own motivation ("higher resolutions require more noise"). We
therefore apply eq. 11 to σ::

    σ_m = k·σ_n / (1 + (k − 1)·σ_n),   k = sqrt(m / n)

which multiplies the noise-to-signal odds σ/(1 − σ) by k, so more tokens ⇒ more time at high noise.
In the paper's ``t`` this is ``t_m = t_n / (k − (k − 1)·t_n)`` (eq. 11 with k replaced by 1/k).
"""

import math

import torch
from diffusers.utils.torch_utils import randn_tensor

# sigmoid() of a large |u| rounds to exactly 0 or 1; keep samples strictly inside (0, 1) so that
# logit(σ) and σ/(1 − σ) stay finite. 1 − 1e-7 is still below 1 in float32.
_OPEN_INTERVAL_MARGIN = 1e-7


def sigma_to_paper_t(sigma: torch.Tensor | float) -> torch.Tensor | float:
    """Noise fraction σ (release convention) → the paper's eq. 9 time ``t`` (data weight): ``t = 1 − σ``."""
    return 1.0 - sigma


def paper_t_to_sigma(t: torch.Tensor | float) -> torch.Tensor | float:
    """The paper's eq. 9 time ``t`` (data weight) → noise fraction σ: ``σ = 1 − t``."""
    return 1.0 - t


def logit_normal_timesteps(
    batch_size: int,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sample training noise levels from the logit-normal density π_ln(·; m, s) (paper eq. 10, SD3).

    ``σ = sigmoid(u)``, ``u ~ N(mean, std²)``. The returned values are **σ, the noise fraction**
    (multiply by ``num_train_timesteps`` for the transformer's ``timestep``). Because
    ``logit(1 − σ) = −logit(σ)``, the paper's density on its data-weight ``t`` with location m is
    this density on σ with ``mean = −m``; for the default m = 0 the two coincide.

    Returns: (batch_size,) float32 tensor with values strictly in (0, 1).
    """
    if std <= 0:
        raise ValueError(f"logit-normal std must be positive, got {std}.")
    u = randn_tensor((batch_size,), generator=generator, device=device, dtype=torch.float64)
    sigma = torch.sigmoid(mean + std * u)
    sigma = sigma.clamp(_OPEN_INTERVAL_MARGIN, 1.0 - _OPEN_INTERVAL_MARGIN)
    return sigma.to(torch.float32)


def shift_sigmas(sigma: torch.Tensor | float, shift: float) -> torch.Tensor | float:
    """Timestep shift ``σ' = shift·σ / (1 + (shift − 1)·σ)``: the noise odds σ/(1 − σ) times ``shift``.

    ``shift > 1`` moves every σ toward noise (σ = 0 and σ = 1 are fixed points); ``shift = 1`` is the
    identity. Shifts compose multiplicatively: ``shift_sigmas(shift_sigmas(σ, a), b) == shift_sigmas(σ, a·b)``.
    Used by :class:`RectifiedFlowScheduler` (config ``shift``) and by eq. 11 below.

    ``sigma``: any shape, values in [0, 1].
    """
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}.")
    return shift * sigma / (1.0 + (shift - 1.0) * sigma)


def resolution_shift_factor(num_tokens: int, base_num_tokens: int = 512) -> float:
    """The eq. 11 factor ``sqrt(m / n)`` for ``m = num_tokens`` latent tokens and base resolution ``n``."""
    if num_tokens <= 0 or base_num_tokens <= 0:
        raise ValueError(
            f"token counts must be positive, got num_tokens={num_tokens}, base_num_tokens={base_num_tokens}."
        )
    return math.sqrt(num_tokens / base_num_tokens)


def resolution_dependent_shift(
    sigma: torch.Tensor | float, num_tokens: int, base_num_tokens: int = 512
) -> torch.Tensor | float:
    """Paper eq. 11, applied to the noise fraction σ (see the module docstring for why σ and not ``t``).

    ``σ_m = sqrt(m/n)·σ_n / (1 + (sqrt(m/n) − 1)·σ_n)`` with ``m = num_tokens`` and
    ``n = base_num_tokens`` (512, the first training stage). ``m = n`` is the identity and ``m > n``
    moves σ toward noise. ``sigma``: any shape, values in [0, 1].
    """
    return shift_sigmas(sigma, resolution_shift_factor(num_tokens, base_num_tokens))
