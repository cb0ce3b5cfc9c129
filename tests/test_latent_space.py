"""training.latent_space: standardising the latent space leaves the autoencoder's function unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from training.latent_space import fold_latent_standardization, latent_statistics, main
from triposg.models import TripoSGVAEModel

TINY_VAE = dict(latent_channels=8, num_attention_heads=2, width_encoder=32, width_decoder=32,
                num_layers_encoder=1, num_layers_decoder=1)


def shapes(count: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.cat([torch.rand(300, 3, generator=generator) * 2 - 1,
                       F.normalize(torch.randn(300, 3, generator=generator), dim=-1)], -1) for _ in range(count)]


def skewed_vae() -> TripoSGVAEModel:
    """A random VAE whose latents are far from standard: channel offsets and scales of several units."""
    torch.manual_seed(0)
    vae = TripoSGVAEModel(**TINY_VAE).eval()
    with torch.no_grad():
        vae.decoder.proj_out.weight.normal_()  # a non-zero field, so decodes can be compared
        vae.quant.weight[:8] *= torch.linspace(0.5, 4.0, 8)[:, None]
        vae.quant.bias[:8] = torch.linspace(-3.0, 3.0, 8)
    return vae


def test_folding_standardises_latents_and_keeps_the_decoded_field():
    vae, surfaces = skewed_vae(), shapes(6)
    xyz = torch.rand(1, 50, 3) * 2 - 1
    generator = torch.Generator().manual_seed(1)
    before = [vae.encode(s[None], 16, generator=generator) for s in surfaces]
    fields = [vae.decode(e.latent_dist.mode(), xyz).sample for e in before]
    mean, std = latent_statistics(vae, surfaces, 16)
    assert mean.abs().mean() > 0.5 or (std - 1).abs().mean() > 0.5  # really skewed to start with
    fold_latent_standardization(vae, mean, std)
    generator = torch.Generator().manual_seed(0)  # the query selection latent_statistics made
    latents = torch.cat([vae.encode(s[None], 16, generator=generator).latent_dist.mean[0] for s in surfaces])
    torch.testing.assert_close(latents.mean(0), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(latents.std(0), torch.ones(8), atol=1e-4, rtol=0)
    after = [vae.encode(s[None], query_indices=e.query_indices) for s, e in zip(surfaces, before)]
    for e, e_old, field in zip(after, before, fields):
        torch.testing.assert_close(vae.decode(e.latent_dist.mode(), xyz).sample, field, atol=1e-4, rtol=1e-4)
        # The posterior std scales with the means: the same relative noise as before.
        torch.testing.assert_close(e.latent_dist.std, e_old.latent_dist.std / std, atol=1e-6, rtol=1e-4)


def test_folding_rejects_bad_statistics():
    vae = skewed_vae()
    with pytest.raises(ValueError, match=r"\(8,\)"):
        fold_latent_standardization(vae, torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match="positive"):
        fold_latent_standardization(vae, torch.zeros(8), torch.zeros(8))


def test_cli_writes_a_standardised_copy(training_corpus, tmp_path):
    skewed_vae().save_pretrained(tmp_path / "vae")
    assert main([str(tmp_path / "vae"), "--corpus", str(training_corpus), "--num-tokens", "16",
                 "--num-surface", "128"]) == 0
    folded = TripoSGVAEModel.from_pretrained(tmp_path / "vae-standardized")
    assert not torch.allclose(folded.quant.bias, TripoSGVAEModel.from_pretrained(tmp_path / "vae").quant.bias)
