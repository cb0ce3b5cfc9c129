"""`SDFField`: one shape's decoded field with the per-shape work done once, in full precision or bf16."""

from __future__ import annotations

import pytest
import torch

from triposg.models import SDFField, TripoSGVAEModel, sdf_field


def tiny_vae() -> TripoSGVAEModel:
    torch.manual_seed(0)
    vae = TripoSGVAEModel(latent_channels=4, num_attention_heads=2, width_encoder=16, width_decoder=32,
                          num_layers_encoder=1, num_layers_decoder=2).eval()
    torch.nn.init.normal_(vae.decoder.proj_out.weight, std=0.5)  # a real field, not the zero-initialised head
    return vae


LATENT = torch.randn(1, 12, 4, generator=torch.Generator().manual_seed(1))
POINTS = torch.rand(3000, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1


def reference(vae):
    with torch.no_grad():
        return vae.query(vae.decode_tokens(LATENT), POINTS[None])[0, :, 0]


def test_full_precision_equals_the_vae_query_path_in_any_chunking():
    vae = tiny_vae()
    expected = reference(vae)
    assert expected.abs().max() > 0
    for chunk in (7, 1000, 10_000):
        values = SDFField(vae, LATENT, "full", chunk_size=chunk)(POINTS)
        assert values.dtype == torch.float32 and values.shape == (3000,)
        torch.testing.assert_close(values, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(SDFField(vae, LATENT[0], "full")(POINTS), expected, rtol=0, atol=1e-5)  # (M, C)


def test_bf16_moves_the_field_only_slightly():
    vae = tiny_vae()
    expected = reference(vae)
    field = SDFField(vae, LATENT, "bf16")
    values = field(POINTS)
    assert field.precision == "bf16" and field.context_kv.k.dtype == torch.bfloat16
    assert not torch.equal(values, expected)  # really computed in bf16
    assert (values - expected).abs().max() < 0.02 * (expected.max() - expected.min())
    assert next(vae.parameters()).dtype == torch.float32  # the model itself is untouched


def test_bf16_weight_copies_are_made_once_per_vae_and_remade_when_weights_change():
    """Every shape (and preview) of one VAE shares its bf16 query layers; an in-place weight update (an optimizer
    step, load_state_dict) makes new ones, so the field follows the weights."""
    vae = tiny_vae()
    first, second = SDFField(vae, LATENT, "bf16"), SDFField(vae, LATENT[0] * 0.5, "bf16")
    assert first.block is second.block and first.proj_query is second.proj_query
    assert SDFField(tiny_vae(), LATENT, "bf16").block is not first.block  # another VAE, its own copies
    before = first(POINTS)
    with torch.no_grad():
        vae.decoder.blocks[-1].ff.net[2].bias.add_(0.5)
    updated = SDFField(vae, LATENT, "bf16")
    assert updated.block is not first.block
    assert not torch.equal(updated(POINTS), before)
    torch.testing.assert_close(updated(POINTS), reference(vae), rtol=0, atol=0.02 * float(before.max() - before.min()))


@pytest.mark.parametrize("fast_cpu, dtype, expected", [
    (True, torch.float32, "bf16"), (False, torch.float32, "full"), (True, torch.float16, "full"),
])
def test_auto_precision_uses_bf16_only_where_the_cpu_has_it(monkeypatch, fast_cpu, dtype, expected):
    monkeypatch.setattr(sdf_field, "cpu_has_fast_bf16", lambda: fast_cpu)
    assert sdf_field.resolve_query_precision("auto", torch.device("cpu"), dtype) == expected
    assert sdf_field.resolve_query_precision("auto", torch.device("cuda"), torch.float32) == "full"
    with pytest.raises(ValueError, match="unknown query precision 'fp8'"):
        sdf_field.resolve_query_precision("fp8", torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("amx, avx512_bf16, speedup, expected", [
    (True, True, 0.5, True),  # AMX: bf16 is the fast path, nothing measured
    (False, False, 9.0, False),  # no bf16 instructions at all
    (False, True, 2.2, True),  # AVX512-BF16 measured faster (an AMD EPYC: 2.2x)
    (False, True, 0.9, False),  # AVX512-BF16 measured slower (a Xeon without AMX)
])
def test_fast_bf16_is_detected_from_the_cpu_and_a_measurement(monkeypatch, amx, avx512_bf16, speedup, expected):
    monkeypatch.delenv(sdf_field.BF16_ENV, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(sdf_field, "_bf16_matmul_speedup", lambda: speedup)
    sdf_field.cpu_has_fast_bf16.cache_clear()
    try:
        assert sdf_field.cpu_has_fast_bf16() is expected
        monkeypatch.setenv(sdf_field.BF16_ENV, "0" if expected else "1")  # the override wins (after a cache clear)
        sdf_field.cpu_has_fast_bf16.cache_clear()
        assert sdf_field.cpu_has_fast_bf16() is (not expected)
    finally:
        sdf_field.cpu_has_fast_bf16.cache_clear()


def test_the_bf16_measurement_is_a_positive_ratio():
    assert 0.05 < sdf_field._bf16_matmul_speedup(repeats=2) < 50.0


def test_bad_shapes_are_refused_with_the_expected_shape():
    vae = tiny_vae()
    with pytest.raises(ValueError, match="one shape"):
        SDFField(vae, torch.zeros(2, 12, 4))
    with pytest.raises(ValueError, match=r"\(Q, 3\)"):
        SDFField(vae, LATENT, "full")(POINTS[None])
    with pytest.raises(ValueError, match="chunk_size"):
        SDFField(vae, LATENT, chunk_size=0)
    assert SDFField(vae, LATENT, "full")(POINTS[:0]).shape == (0,)
