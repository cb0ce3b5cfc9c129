"""Schedulers: the release's rectified-flow convention, eq. 10/11 helpers, and the DDPM/EDM ablation samplers."""

import importlib
import json
import math

import pytest
import torch

from triposg.schedulers import (
    RectifiedFlowScheduler,
    SchedulerOutput,
    TripoSGDDPMScheduler,
    TripoSGEDMScheduler,
    TripoSGSchedulerMixin,
    logit_normal_timesteps,
    paper_t_to_sigma,
    resolution_dependent_shift,
    shift_sigmas,
    sigma_to_paper_t,
)

RELEASE_SCHEDULER_CONFIG = {
    "_class_name": "RectifiedFlowScheduler",
    "_diffusers_version": "0.30.3",
    "num_train_timesteps": 1000,
    "shift": 1,
    "use_dynamic_shifting": False,
}


def make_latents(seed: int, shape=(2, 16, 64)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def run_sampler(scheduler, latents, predict):
    """The pipeline's loop: scale, predict, step once per timestep. Returns (final, list of x̂0)."""
    previews = []
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        output = scheduler.step(predict(model_input, t), t, latents)
        assert isinstance(output, SchedulerOutput)
        latents = output.prev_sample
        previews.append(output.pred_original_sample)
    return latents, previews


# ---- rectified flow: release values ----


def test_rf_release_grid_for_50_steps():
    scheduler = RectifiedFlowScheduler()
    scheduler.set_timesteps(50)
    assert scheduler.timesteps.dtype == torch.float32
    assert torch.equal(scheduler.timesteps, torch.arange(1000, 0, -20, dtype=torch.float32))
    assert scheduler.sigmas.shape == (51,)
    assert scheduler.sigmas[-1] == 0
    torch.testing.assert_close(scheduler.sigmas[:-1] * 1000, scheduler.timesteps)


def test_rf_shift_3_follows_formula():
    scheduler = RectifiedFlowScheduler(shift=3.0)
    scheduler.set_timesteps(10)
    expected = [3 * (1 - i / 10) / (1 + 2 * (1 - i / 10)) for i in range(10)] + [0.0]
    torch.testing.assert_close(scheduler.sigmas, torch.tensor(expected), rtol=0, atol=1e-6)
    torch.testing.assert_close(scheduler.timesteps, torch.tensor(expected[:-1]) * 1000, rtol=1e-6, atol=1e-4)
    assert scheduler.sigmas[1] > 0.9  # shift > 1 lingers at high noise


@pytest.mark.parametrize("solver", ["euler", "dpmpp_2m"])
@pytest.mark.parametrize("num_steps", [1, 7, 50])
def test_rf_perfect_velocity_lands_on_x0(num_steps, solver):
    x0, noise = make_latents(0), make_latents(1)
    scheduler = RectifiedFlowScheduler(shift=2.0, solver=solver)
    scheduler.set_timesteps(num_steps)

    def perfect_velocity(model_input, t):
        return x0 - noise  # v = x0 − ε, constant along the straight path

    final, previews = run_sampler(scheduler, noise * scheduler.init_noise_sigma, perfect_velocity)
    torch.testing.assert_close(final, x0, rtol=0, atol=1e-5)
    assert len(previews) == num_steps
    for preview in previews:
        torch.testing.assert_close(preview, x0, rtol=0, atol=1e-5)


def test_rf_training_interpolation_agrees_with_step():
    x0, noise = make_latents(2), make_latents(3)
    scheduler = RectifiedFlowScheduler(shift=3.0)
    scheduler.set_timesteps(20)
    for k in (0, 5, 19):
        t, t_next = scheduler.timesteps[k], (scheduler.timesteps[k + 1] if k + 1 < 20 else torch.tensor(0.0))
        noisy = scheduler.add_noise(x0, noise, t.expand(2))
        sigma = t / 1000
        torch.testing.assert_close(noisy, (1 - sigma) * x0 + sigma * noise)
        target = scheduler.get_training_target(x0, noise, t.expand(2))
        prev = scheduler.step(target, t, noisy).prev_sample
        torch.testing.assert_close(prev, scheduler.add_noise(x0, noise, t_next.expand(2)), rtol=0, atol=1e-5)


def test_rf_step_rounds_like_the_release_in_fp16_and_returns_one_item_tuples():
    scheduler = RectifiedFlowScheduler(shift=3.0)
    scheduler.set_timesteps(7)
    sample = make_latents(4, (4, 256, 64)).half()
    velocity = make_latents(5, (4, 256, 64)).half()
    t = scheduler.timesteps[3]
    out = scheduler.step(velocity, t, sample, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 1  # diffusers' and the release's (prev_sample,)
    prev = out[0]
    assert prev.dtype == torch.float16
    # The release: the fp32 σ difference times the fp16 velocity (an fp16 increment), summed with the fp32
    # sample, cast to fp16 at the end.
    increment = (scheduler.sigmas[3] - scheduler.sigmas[4]) * velocity
    assert increment.dtype == torch.float16
    release = (sample.float() + increment).half()
    delta = float(scheduler.sigmas[3]) - float(scheduler.sigmas[4])
    single_rounding = (sample.float() + delta * velocity.float()).half()
    assert not torch.equal(single_rounding, release)  # the check below can tell the two roundings apart
    assert torch.equal(prev, release)
    # fp32 models: plain fp32 arithmetic
    prev32 = scheduler.step(velocity.float(), scheduler.timesteps[4], sample.float()).prev_sample
    delta = float(scheduler.sigmas[4] - scheduler.sigmas[5])
    assert torch.equal(prev32, sample.float() + torch.tensor(delta) * velocity.float())


# Gaussian data N(μ, s²) under x_σ = (1 − σ)·x0 + σ·ε: the exact clean estimate is
# E[x0 | x_σ] = μ + α·s²/(α²s² + σ²)·(x_σ − α·μ) (α = 1 − σ), and the probability-flow ODE carries ε to
# x_σ = α·μ + sqrt(α²s² + σ²)·ε, so a solver's error can be measured.
GAUSSIAN_MEAN, GAUSSIAN_STD = 0.7, 0.4


def gaussian_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    sigma = float(t) / 1000
    alpha = 1 - sigma
    s2 = GAUSSIAN_STD**2
    clean = GAUSSIAN_MEAN + alpha * s2 / (alpha**2 * s2 + sigma**2) * (x - alpha * GAUSSIAN_MEAN)
    return (clean - x) / sigma  # v with x̂0 = x + σ·v


def gaussian_ode_solution(noise: torch.Tensor, sigma: float) -> torch.Tensor:
    alpha = 1 - sigma
    return alpha * GAUSSIAN_MEAN + math.sqrt(alpha**2 * GAUSSIAN_STD**2 + sigma**2) * noise


def solver_error(solver: str, num_steps: int, half_log_snr_range: tuple[float, float] | None = None) -> float:
    """Largest error of sampling the Gaussian with `num_steps` steps: the default grid from σ = 1 to 0, or, given
    a range of λ = log(α/σ), a grid uniform in λ over it (finite at both ends)."""
    noise = make_latents(30, (4, 16, 8)).double()
    scheduler = RectifiedFlowScheduler(solver=solver)
    if half_log_snr_range is None:
        scheduler.set_timesteps(num_steps)
        end = 0.0
    else:
        sigmas = torch.sigmoid(-torch.linspace(*half_log_snr_range, num_steps + 1, dtype=torch.float64))
        scheduler.set_timesteps(sigmas=sigmas[:-1].tolist())
        scheduler.sigmas[-1] = end = float(sigmas[-1])  # stop at the range's end instead of σ = 0
    x = gaussian_ode_solution(noise, float(scheduler.sigmas[0])).float()
    final, _ = run_sampler(scheduler, x, gaussian_velocity)
    return (final.double() - gaussian_ode_solution(noise, end)).abs().max().item()


def test_rf_dpmpp_2m_is_second_order_where_euler_is_first():
    # On a grid uniform in λ the error falls ~4x per doubling of the steps for a second-order solver, ~2x for
    # Euler (measured: 2M 5.6e-3 → 1.5e-3, Euler 8.6e-2 → 4.4e-2 from 20 to 40 steps).
    errors = {solver: [solver_error(solver, n, (-3.0, 3.0)) for n in (20, 40)] for solver in ("euler", "dpmpp_2m")}
    assert 1.7 < errors["euler"][0] / errors["euler"][1] < 2.3
    assert errors["dpmpp_2m"][0] / errors["dpmpp_2m"][1] > 3.0
    assert errors["dpmpp_2m"][0] < 0.1 * errors["euler"][0]


def test_rf_dpmpp_2m_beats_euler_on_the_sampling_grid_and_starts_and_ends_with_euler_steps():
    # The default grid runs from σ = 1 to σ = 0 (λ infinite at both ends).
    assert solver_error("dpmpp_2m", 20) < 0.25 * solver_error("euler", 20)  # measured 1.9e-2 vs 1.3e-1
    samples = {}
    for solver in ("euler", "dpmpp_2m"):
        scheduler = RectifiedFlowScheduler(solver=solver)
        scheduler.set_timesteps(6)
        x, samples[solver] = make_latents(31), []
        for t in scheduler.timesteps:
            x = scheduler.step(gaussian_velocity(x, t), t, x).prev_sample
            samples[solver].append(x)
    euler, multistep = samples["euler"], samples["dpmpp_2m"]
    # the step from σ = 1 and the one after it (its λ step back is infinite) are Euler steps...
    assert torch.equal(euler[0], multistep[0]) and torch.equal(euler[1], multistep[1])
    assert not torch.allclose(euler[2], multistep[2], atol=1e-4)  # ...then the second-order steps differ
    with pytest.raises(ValueError, match="unknown solver 'heun'"):
        RectifiedFlowScheduler(solver="heun")


def test_rf_custom_timesteps_sigmas_and_mu():
    scheduler = RectifiedFlowScheduler(shift=2.0)
    scheduler.set_timesteps(timesteps=[900.0, 500.0, 100.0])
    assert scheduler.timesteps.tolist() == pytest.approx([900.0, 500.0, 100.0])  # used as given, no shift
    assert scheduler.sigmas.tolist() == pytest.approx([0.9, 0.5, 0.1, 0.0])
    scheduler.set_timesteps(sigmas=[1.0, 0.5])  # shifted like the grid: 2·0.5/(1 + 0.5) = 2/3
    assert scheduler.sigmas.tolist() == pytest.approx([1.0, 2 / 3, 0.0])
    scheduler.set_timesteps(4, mu=math.log(3.0))  # mu replaces the shift with e^mu
    reference = RectifiedFlowScheduler(shift=3.0)
    reference.set_timesteps(4)
    torch.testing.assert_close(scheduler.sigmas, reference.sigmas)
    with pytest.raises(ValueError, match="decrease"):
        scheduler.set_timesteps(timesteps=[100.0, 500.0])
    with pytest.raises(ValueError, match="not both"):
        scheduler.set_timesteps(timesteps=[500.0], sigmas=[0.5])
    with pytest.raises(ValueError, match="custom entries"):
        scheduler.set_timesteps(3, timesteps=[500.0])


def test_rf_step_finds_index_from_timestep_and_rejects_unknown():
    x0, noise = make_latents(6), make_latents(7)
    scheduler = RectifiedFlowScheduler()
    scheduler.set_timesteps(10)
    t = scheduler.timesteps[4]  # out of order: first call, not timesteps[0]
    noisy = scheduler.add_noise(x0, noise, t)
    out = scheduler.step(x0 - noise, t.expand(2), noisy)  # batched (B,) timestep
    torch.testing.assert_close(out.prev_sample, scheduler.add_noise(x0, noise, scheduler.timesteps[5]))
    assert scheduler.step_index == 5
    with pytest.raises(ValueError):
        scheduler.step(x0, 555.0, noisy)


def test_rf_dynamic_shifting_uses_eq11_factor():
    plain = RectifiedFlowScheduler()
    plain.set_timesteps(12)
    dynamic = RectifiedFlowScheduler(use_dynamic_shifting=True, base_num_tokens=512)
    dynamic.set_timesteps(12, num_tokens=512)
    torch.testing.assert_close(dynamic.sigmas, plain.sigmas)
    dynamic.set_timesteps(12, num_tokens=2048)  # sqrt(2048/512) = 2
    torch.testing.assert_close(dynamic.sigmas, shift_sigmas(plain.sigmas, 2.0))
    assert torch.all(dynamic.sigmas[1:-1] > plain.sigmas[1:-1])
    with pytest.raises(ValueError, match="num_tokens"):
        dynamic.set_timesteps(12)


def test_rf_training_timesteps_follow_the_sampling_shift():
    scheduler = RectifiedFlowScheduler(use_dynamic_shifting=True)
    base = scheduler.sample_training_timesteps(4096, generator=torch.Generator().manual_seed(0), num_tokens=512)
    fine = scheduler.sample_training_timesteps(4096, generator=torch.Generator().manual_seed(0), num_tokens=2048)
    assert base.min() > 0 and base.max() < 1000
    torch.testing.assert_close(fine / 1000, shift_sigmas(base / 1000, 2.0))


# ---- eq. 10 / eq. 11 helpers ----


def test_resolution_shift_identity_direction_monotone_and_eq11():
    sigma = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(resolution_dependent_shift(sigma, 512, 512), sigma)
    shifted = resolution_dependent_shift(sigma, 4096, 512)
    assert torch.all(shifted[1:-1] > sigma[1:-1])  # more tokens ⇒ noisier
    assert shifted[0] == 0 and shifted[-1] == 1
    assert torch.all(torch.diff(shifted) > 0)
    k = math.sqrt(4096 / 512)
    torch.testing.assert_close(shifted, k * sigma / (1 + (k - 1) * sigma))
    assert resolution_dependent_shift(0.5, 2048, 512) == pytest.approx(2 / 3)
    assert resolution_dependent_shift(0.5, 4096) > resolution_dependent_shift(0.5, 2048)  # monotone in m


def test_resolution_shift_in_paper_time_moves_toward_noise():
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)  # paper's eq. 9 t: data weight
    t_shifted = sigma_to_paper_t(resolution_dependent_shift(paper_t_to_sigma(t), 2048, 512))
    torch.testing.assert_close(t_shifted, t / (2 - t))  # k = 2: t_m = t_n / (k − (k − 1)·t_n)
    assert torch.all(t_shifted < t)


def test_shift_composes_multiplicatively():
    sigma = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(shift_sigmas(shift_sigmas(sigma, 3.0), 0.5), shift_sigmas(sigma, 1.5))


def test_logit_normal_statistics():
    sigma = logit_normal_timesteps(200_000, mean=0.5, std=0.8, generator=torch.Generator().manual_seed(0))
    assert sigma.shape == (200_000,) and sigma.dtype == torch.float32
    assert sigma.min() > 0 and sigma.max() < 1
    logit = torch.logit(sigma.double())
    assert logit.mean().item() == pytest.approx(0.5, abs=0.01)
    assert logit.std().item() == pytest.approx(0.8, abs=0.01)
    again = logit_normal_timesteps(200_000, mean=0.5, std=0.8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sigma, again)


def test_logit_normal_stays_in_open_interval_for_wide_std():
    sigma = logit_normal_timesteps(10_000, std=60.0, generator=torch.Generator().manual_seed(1))
    assert sigma.min() > 0 and sigma.max() < 1


# ---- DDPM ----


def test_ddpm_grid_and_forward_process():
    scheduler = TripoSGDDPMScheduler()
    scheduler.set_timesteps(50)
    assert torch.equal(scheduler.timesteps, torch.arange(999, 0, -20, dtype=torch.float32))
    x0, noise = make_latents(8), make_latents(9)
    t = torch.tensor([0.0, 500.0])
    noisy = scheduler.add_noise(x0, noise, t)
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[500].item()
    torch.testing.assert_close(noisy[1], math.sqrt(alpha_bar) * x0[1] + math.sqrt(1 - alpha_bar) * noise[1])
    torch.testing.assert_close(scheduler.get_training_target(x0, noise, t), noise)


@pytest.mark.parametrize("eta", [1.0, 0.0])
@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear"])
def test_ddpm_oracle_epsilon_recovers_x0(eta, beta_schedule):
    x0 = make_latents(10)
    scheduler = TripoSGDDPMScheduler(beta_schedule=beta_schedule, eta=eta)
    scheduler.set_timesteps(25)
    generator = torch.Generator().manual_seed(0)

    def oracle_epsilon(model_input, t):
        alpha_bar = scheduler.alphas_cumprod[int(t)].item()
        return (model_input - math.sqrt(alpha_bar) * x0) / math.sqrt(1 - alpha_bar)

    latents = make_latents(11) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        epsilon = oracle_epsilon(scheduler.scale_model_input(latents, t), t)
        out = scheduler.step(epsilon, t, latents, generator=generator)
        torch.testing.assert_close(out.pred_original_sample, x0, rtol=0, atol=1e-4)
        latents = out.prev_sample
    torch.testing.assert_close(latents, x0, rtol=0, atol=1e-4)


def test_ddpm_ancestral_step_samples_the_ddpm_posterior():
    # eta = 1 with consecutive steps must draw from q(x_{t−1} | x_t, x0) = N(μ̃, β̃): Ho et al. eqs. 6–7.
    x0, noise = make_latents(20, (1, 4096, 64)), make_latents(21, (1, 4096, 64))
    scheduler = TripoSGDDPMScheduler(eta=1.0)
    scheduler.set_timesteps(1000)
    t = 500
    noisy = scheduler.add_noise(x0, noise, torch.tensor(float(t)))
    prev = scheduler.step(noise, float(t), noisy, generator=torch.Generator().manual_seed(0)).prev_sample
    alpha_bar, alpha_bar_prev = scheduler.alphas_cumprod[t].item(), scheduler.alphas_cumprod[t - 1].item()
    beta = scheduler.betas[t].item()
    posterior_mean = (
        math.sqrt(alpha_bar_prev) * beta / (1 - alpha_bar) * x0
        + math.sqrt(1 - beta) * (1 - alpha_bar_prev) / (1 - alpha_bar) * noisy
    )
    posterior_variance = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
    residual = (prev - posterior_mean).double()
    # The residual must be fresh noise: no component along x0 or ε (a wrong mean would leave one).
    five_standard_errors = 5 * math.sqrt(posterior_variance / residual.numel())
    for direction in (x0.double(), noise.double()):
        coefficient = (residual * direction).sum() / direction.pow(2).sum()
        assert abs(coefficient.item()) < five_standard_errors
    assert residual.pow(2).mean().item() == pytest.approx(posterior_variance, rel=0.02)


def test_ddpm_eta_controls_stochasticity():
    x0, noise = make_latents(12), make_latents(13)
    t = torch.tensor(499.0)

    def prev_with_seed(eta, seed):
        scheduler = TripoSGDDPMScheduler(eta=eta)
        scheduler.set_timesteps(10)
        noisy = scheduler.add_noise(x0, noise, t)
        return scheduler.step(noise * 0.5, t, noisy, generator=torch.Generator().manual_seed(seed)).prev_sample

    assert not torch.allclose(prev_with_seed(1.0, 0), prev_with_seed(1.0, 1))
    assert torch.equal(prev_with_seed(1.0, 0), prev_with_seed(1.0, 0))
    assert torch.equal(prev_with_seed(0.0, 0), prev_with_seed(0.0, 1))


# ---- EDM ----


def test_edm_grid_preconditioning_and_timestep_map():
    scheduler = TripoSGEDMScheduler()
    scheduler.set_timesteps(18)
    assert scheduler.sigmas.shape == (19,) and scheduler.sigmas[-1] == 0
    assert scheduler.sigmas[0].item() == pytest.approx(80.0) and scheduler.sigmas[-2].item() == pytest.approx(0.002)
    assert torch.all(torch.diff(scheduler.sigmas) < 0)
    assert scheduler.timesteps[0].item() == pytest.approx(1000.0, abs=1e-3)
    assert scheduler.timesteps[-1].item() == pytest.approx(0.0, abs=1e-3)
    assert torch.all(torch.diff(scheduler.timesteps) < 0)
    sigma = torch.tensor([0.01, 0.5, 1.0, 7.0], dtype=torch.float64)
    torch.testing.assert_close(scheduler.sigma_from_timestep(scheduler.timestep_from_sigma(sigma)), sigma)
    c_skip, c_out, c_in = scheduler.preconditioning(torch.tensor(1.0, dtype=torch.float64))  # σ = σ_data
    assert (c_skip.item(), c_out.item(), c_in.item()) == pytest.approx((0.5, 0.5**0.5, 0.5**0.5))
    sample = make_latents(14)
    t = scheduler.timesteps[5]
    expected_c_in = 1 / math.sqrt(scheduler.sigmas[5].item() ** 2 + 1)
    torch.testing.assert_close(scheduler.scale_model_input(sample, t), expected_c_in * sample)


def test_edm_heun_timesteps_repeat_corrector_levels():
    scheduler = TripoSGEDMScheduler(solver="heun")
    scheduler.set_timesteps(4)
    assert len(scheduler.timesteps) == 7  # 2N − 1 model calls
    torch.testing.assert_close(scheduler.timesteps[1::2], scheduler.timesteps[2::2])


def test_edm_training_target_gives_exact_denoiser():
    scheduler = TripoSGEDMScheduler(sigma_data=0.5)
    x0, noise = make_latents(15), make_latents(16)
    timesteps = scheduler.timestep_from_sigma(torch.tensor([0.002, 3.0])).float()
    noisy = scheduler.add_noise(x0, noise, timesteps)
    sigma = scheduler.sigma_from_timestep(timesteps).float()
    torch.testing.assert_close(noisy, x0 + sigma[:, None, None] * noise)
    target = scheduler.get_training_target(x0, noise, timesteps)
    c_skip, c_out, _ = scheduler.preconditioning(sigma.double())
    denoised = c_skip.float()[:, None, None] * noisy + c_out.float()[:, None, None] * target
    torch.testing.assert_close(denoised, x0, rtol=0, atol=1e-5)
    torch.testing.assert_close(scheduler.loss_weighting(timesteps), torch.ones(2))


def test_edm_training_sigmas_are_lognormal():
    scheduler = TripoSGEDMScheduler()
    sigma = scheduler.sample_training_sigmas(100_000, generator=torch.Generator().manual_seed(0))
    assert sigma.min() >= 0.002 and sigma.max() <= 80.0
    assert sigma.log().mean().item() == pytest.approx(-1.2, abs=0.02)
    assert sigma.log().std().item() == pytest.approx(1.2, abs=0.02)
    timesteps = scheduler.sample_training_timesteps(1000, generator=torch.Generator().manual_seed(0))
    assert timesteps.min() >= 0 and timesteps.max() <= 1000


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_edm_oracle_network_recovers_x0(solver):
    x0 = make_latents(17)
    scheduler = TripoSGEDMScheduler(solver=solver)
    scheduler.set_timesteps(12)

    def oracle_f(model_input, t):
        # Undo c_in with the scheduler's own map, then the F that makes D(x; σ) = x0 exactly.
        sigma = scheduler.sigma_from_timestep(t)
        c_skip, c_out, c_in = (c.item() for c in scheduler.preconditioning(sigma))
        return (x0 - c_skip * model_input / c_in) / c_out

    final, previews = run_sampler(scheduler, make_latents(18) * scheduler.init_noise_sigma, oracle_f)
    torch.testing.assert_close(final, x0, rtol=0, atol=1e-4)
    torch.testing.assert_close(previews[-1], x0, rtol=0, atol=1e-4)


def test_edm_heun_is_more_accurate_than_euler():
    # Gaussian data N(0, s²): the exact denoiser is D = s²/(s² + σ²)·x and the probability-flow ODE
    # solution is x(σ) = x_T·sqrt((s² + σ²)/(s² + σ_T²)), so the solver error can be measured.
    data_std = 0.5
    x_start = make_latents(19) * 80.0
    exact = x_start * data_std / math.sqrt(data_std**2 + 80.0**2)

    def gaussian_f(scheduler):
        def predict(model_input, t):
            sigma = scheduler.sigma_from_timestep(t)
            c_skip, c_out, c_in = (c.item() for c in scheduler.preconditioning(sigma))
            x = model_input / c_in
            return (data_std**2 / (data_std**2 + sigma.item() ** 2) * x - c_skip * x) / c_out

        return predict

    errors = {}
    for solver in ("euler", "heun"):
        scheduler = TripoSGEDMScheduler(solver=solver)
        scheduler.set_timesteps(40)
        final, _ = run_sampler(scheduler, x_start, gaussian_f(scheduler))
        errors[solver] = (final - exact).abs().max().item()
    # At 40 steps the relative errors are about 7% (Euler, 1st order) and 1% (Heun, 2nd order).
    assert errors["heun"] < 0.25 * errors["euler"]


# ---- the common base ----


@pytest.mark.parametrize(
    "make",
    [RectifiedFlowScheduler, lambda: TripoSGDDPMScheduler(eta=0.0), lambda: TripoSGEDMScheduler(solver="heun")],
    ids=["rectified_flow", "ddpm", "edm"],
)
def test_every_scheduler_counts_steps_and_returns_a_one_item_tuple(make):
    x0, sample = make_latents(20), make_latents(21)
    tuple_run, dict_run = make(), make()
    assert isinstance(tuple_run, TripoSGSchedulerMixin)
    for scheduler in (tuple_run, dict_run):
        scheduler.set_timesteps(3)
        assert scheduler.step_index is None
    for k, t in enumerate(tuple_run.timesteps):
        out = tuple_run.step(x0, t, sample, return_dict=False)
        assert isinstance(out, tuple) and len(out) == 1
        assert torch.equal(out[0], dict_run.step(x0, t, sample).prev_sample)
        assert tuple_run.step_index == k + 1
        sample = out[0]


@pytest.mark.parametrize("scheduler_class", [RectifiedFlowScheduler, TripoSGDDPMScheduler, TripoSGEDMScheduler])
def test_pipeline_folders_can_load_each_scheduler_by_its_module(scheduler_class):
    # model_index.json names the module (the release: triposg.schedulers.scheduling_rectified_flow); diffusers
    # finds how to load the class by looking its loader base up as an attribute of that module.
    module = importlib.import_module(scheduler_class.__module__)
    assert issubclass(scheduler_class, getattr(module, "SchedulerMixin", type(None)))


def test_a_scheduler_without_the_training_interface_cannot_be_built():
    class SamplingOnly(TripoSGSchedulerMixin):
        def set_timesteps(self, num_inference_steps, device=None, num_tokens=None):
            self.timesteps = torch.linspace(1000, 0, num_inference_steps)

        def step(self, model_output, timestep, sample, generator=None, return_dict=True):
            return self._finish_step(self._index_for_step(timestep), sample, sample, sample.dtype, return_dict)

    with pytest.raises(TypeError, match="add_noise"):
        SamplingOnly()


# ---- save / load ----


def public_config(scheduler) -> dict:
    """The config without diffusers' bookkeeping keys (``_use_default_values`` etc.)."""
    return {key: value for key, value in scheduler.config.items() if not key.startswith("_")}


@pytest.mark.parametrize(
    "scheduler",
    [
        RectifiedFlowScheduler(shift=3.0, use_dynamic_shifting=True, base_num_tokens=1024, solver="dpmpp_2m"),
        TripoSGDDPMScheduler(beta_schedule="scaled_linear", beta_end=0.012, eta=0.0),
        TripoSGEDMScheduler(sigma_data=0.5, solver="heun", rho=5.0),
    ],
    ids=["rectified_flow", "ddpm", "edm"],
)
def test_save_pretrained_round_trip(scheduler, tmp_path):
    scheduler.save_pretrained(tmp_path)
    loaded = type(scheduler).from_pretrained(tmp_path)
    assert public_config(loaded) == public_config(scheduler)
    scheduler.set_timesteps(8, num_tokens=2048)
    loaded.set_timesteps(8, num_tokens=2048)
    assert torch.equal(loaded.timesteps, scheduler.timesteps)


def test_release_scheduler_config_loads(tmp_path):
    folder = tmp_path / "scheduler"
    folder.mkdir()
    (folder / "scheduler_config.json").write_text(json.dumps(RELEASE_SCHEDULER_CONFIG))
    scheduler = RectifiedFlowScheduler.from_pretrained(tmp_path, subfolder="scheduler")
    assert scheduler.config.shift == 1.0
    assert scheduler.config.use_dynamic_shifting is False
    assert scheduler.config.num_train_timesteps == 1000
    scheduler.set_timesteps(50)
    assert torch.equal(scheduler.timesteps, torch.arange(1000, 0, -20, dtype=torch.float32))
