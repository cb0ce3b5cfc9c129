"""scripts/probe_vae.py: the per-band sign accuracy that shows whether a VAE locates surfaces yet."""

from __future__ import annotations

import math

import torch
from script_loader import load_script


def load_probe():
    return load_script("probe_vae")


def test_band_accuracy_separates_a_located_surface_from_a_hedging_band():
    probe = load_probe()
    sdf = torch.tensor([-0.003, 0.003, -0.015, 0.015, -0.1, 0.1])
    exact = probe.band_accuracy(sdf, sdf)
    assert [row[0] for row in exact if row[2]] == [1.0, 1.0, 1.0]
    assert all(row[1] == 0.0 for row in exact if row[2])
    # Knows the far field, predicts a thin positive value near every surface: right only outside.
    hedging = torch.where(sdf.abs() < 0.0999, torch.full_like(sdf, 1e-4), sdf)
    rows = probe.band_accuracy(hedging, sdf)
    assert rows[0][0] == 0.5 and rows[2][0] == 0.5 and rows[-1][0] == 1.0
    assert math.isclose(rows[2][1], 0.015, abs_tol=2e-4)  # error ≈ |SDF|: the band is not located
    assert rows[1][2] == 0 and math.isnan(rows[1][0])  # an empty band is reported, not averaged


def test_locality_figures_tell_a_routing_decoder_from_a_pooling_one():
    probe = load_probe()
    distances = torch.rand(20, 64, generator=torch.Generator().manual_seed(0))  # (Q, M)
    pooling = torch.full((2, 20, 64), 1 / 64)
    tokens, read, nearest, mean = probe.locality_figures(pooling, distances)
    assert math.isclose(tokens, 64, rel_tol=1e-4) and math.isclose(read, mean, rel_tol=1e-5)
    routing = torch.nn.functional.one_hot(distances.argmin(-1), 64).float()[None].expand(2, -1, -1)
    tokens, read, nearest, _ = probe.locality_figures(routing, distances)
    assert math.isclose(tokens, 1.0, rel_tol=1e-4) and math.isclose(read, nearest, rel_tol=1e-5)


def test_signed_band_means_follow_a_located_field_and_are_flat_for_a_hedging_one():
    probe = load_probe()
    sdf = torch.linspace(-0.099, 0.099, 400)
    located = probe.signed_band_means(sdf, sdf)
    assert all(a < b for a, b in zip(located, located[1:]))
    assert located[0] < -0.03 and located[-1] > 0.03
    hedging = probe.signed_band_means(torch.full_like(sdf, -0.001), sdf)
    assert max(hedging) - min(hedging) < 1e-6
