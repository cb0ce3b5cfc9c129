"""The shared VAE decode path: surface points → latents → mesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from triposg.models import TripoSGVAEModel
from triposg.pipelines.vae_mesh import encode_surface, latent_to_mesh


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
