"""The shared VAE decode path: surface points → latents → mesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from triposg.models import TripoSGVAEModel
from triposg.models import sdf_field
from triposg.pipelines.vae_mesh import encode_surface, latent_to_mesh, query_autocast


def tiny_vae() -> TripoSGVAEModel:
    torch.manual_seed(0)
    return TripoSGVAEModel(latent_channels=4, num_attention_heads=2, width_encoder=16, width_decoder=16,
                           num_layers_encoder=1, num_layers_decoder=1).eval()


def sphere_surface(n: int = 256) -> np.ndarray:
    xyz = np.random.default_rng(0).normal(size=(n, 3))
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    return np.concatenate([0.5 * xyz, xyz], axis=1).astype(np.float32)


class SphereFieldVAE(torch.nn.Module):
    """Stands in for the VAE: its decoded field is a sphere of radius 0.5 whatever the latents."""

    def decode_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        return latents

    def query(self, tokens: torch.Tensor, xyz: torch.Tensor, chunk_size: int = 50_000) -> torch.Tensor:
        return (0.5 - xyz.norm(dim=-1, keepdim=True)) + 0 * tokens.sum()


def test_encode_surface_is_seeded_and_caps_tokens():
    vae = tiny_vae()
    surface = sphere_surface(64)
    first, again = encode_surface(vae, surface, 32, seed=3), encode_surface(vae, surface, 32, seed=3)
    assert first.shape == (1, 32, 4)
    assert torch.equal(first, again)
    assert not torch.equal(first, encode_surface(vae, surface, 32, seed=4))  # other queries
    assert encode_surface(vae, surface, 1000).shape == (1, 64, 4)  # never more tokens than points


def test_latent_to_mesh_extracts_the_zero_level_set():
    mesh = latent_to_mesh(SphereFieldVAE(), torch.zeros(8, 4), octree_resolution=48)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(radii.mean() - 0.5) < 0.02 and radii.std() < 0.02


def test_latent_to_mesh_without_surface_is_none_and_checks_shape():
    vae = tiny_vae()  # zero output layer: the field is 0 everywhere, never crossing the level set
    assert latent_to_mesh(vae, torch.zeros(1, 8, 4), octree_resolution=32) is None
    with pytest.raises(ValueError, match="one shape"):
        latent_to_mesh(vae, torch.zeros(2, 8, 4))


class PrecisionRecordingVAE(SphereFieldVAE):
    """A sphere field that records whether bf16 autocast was on during each query."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))  # float32 on CPU, like a loaded model
        self.bf16_calls: list[bool] = []

    def query(self, tokens: torch.Tensor, xyz: torch.Tensor, chunk_size: int = 50_000) -> torch.Tensor:
        self.bf16_calls.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return super().query(tokens, xyz, chunk_size)


@pytest.mark.parametrize("precision, fast_cpu, expect_bf16", [
    ("auto", True, True), ("auto", False, False), ("full", True, False), ("bf16", False, True),
])
def test_field_queries_run_in_the_requested_precision(monkeypatch, precision, fast_cpu, expect_bf16):
    monkeypatch.setattr(sdf_field, "cpu_has_fast_bf16", lambda: fast_cpu)
    vae = PrecisionRecordingVAE()
    mesh = latent_to_mesh(vae, torch.zeros(8, 4), octree_resolution=32, query_precision=precision)
    assert mesh is not None and vae.bf16_calls and set(vae.bf16_calls) == {expect_bf16}
    assert not torch.is_autocast_enabled("cpu")  # the context does not leak


def test_auto_precision_keeps_half_precision_models_and_rejects_unknown_names(monkeypatch):
    monkeypatch.setattr(sdf_field, "cpu_has_fast_bf16", lambda: True)
    assert isinstance(query_autocast(torch.device("cpu"), torch.float32), torch.autocast)
    assert not isinstance(query_autocast(torch.device("cpu"), torch.float16), torch.autocast)
    assert not isinstance(query_autocast(torch.device("cuda"), torch.float32), torch.autocast)
    with pytest.raises(ValueError, match="unknown query precision 'fp8'"):
        query_autocast(torch.device("cpu"), torch.float32, "fp8")


def test_bf16_queries_move_a_real_decoder_field_only_slightly():
    """The tiny VAE with a non-zero output layer: bf16 and full-precision fields agree to ~1% of their range."""
    vae = tiny_vae()
    torch.nn.init.normal_(vae.decoder.proj_out.weight, std=0.5)
    latents = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(0))
    tokens = vae.decode_tokens(latents)
    points = torch.rand(1, 2000, 3) * 2 - 1
    with torch.no_grad():
        full = vae.query(tokens, points)[0, :, 0]
        with query_autocast(torch.device("cpu"), torch.float32, "bf16"):
            half = vae.query(tokens, points)[0, :, 0].float()
    assert full.abs().max() > 0 and not torch.equal(half, full)  # a real field, really computed in bf16
    assert (half - full).abs().max() < 0.02 * (full.max() - full.min())
