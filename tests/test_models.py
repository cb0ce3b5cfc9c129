"""The DiT and VAE: released layout key-for-key, forward semantics against straightforward re-computations,
MoE upcycling, FPS, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from release_layout import release_transformer_layout, release_vae_layout
from triposg.models import MoEFeedForward, TripoSGDiTModel, TripoSGVAEModel, upcycle_feed_forward
from triposg.models.attention import Attention, FeedForward
from triposg.models.embeddings import FrequencyPointEmbedding, timestep_sinusoids
from triposg.models.fps import farthest_point_sampling

TINY_DIT = dict(num_attention_heads=2, width=32, in_channels=8, num_layers=5, cross_attention_dim=16)
TINY_VAE = dict(latent_channels=8, num_attention_heads=2, width_encoder=32, width_decoder=32,
                num_layers_encoder=2, num_layers_decoder=2)


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter with noise so zero-initialised layers do not hide semantics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            is_norm_scale = "norm" in name and name.endswith("weight")
            p.copy_(1.0 + 0.1 * noise if is_norm_scale else 0.2 * noise)
    return model


# ---------------------------------------------------------------- layout


def test_transformer_matches_release_layout_key_for_key():
    with torch.device("meta"):
        model = TripoSGDiTModel()
    assert shapes(model) == release_transformer_layout()


def test_transformer_with_clip_branch_adds_only_second_cross_attention():
    with torch.device("meta"):
        model = TripoSGDiTModel(use_cross_attention_2=True, cross_attention_2_dim=768)
    assert shapes(model) == release_transformer_layout(cross_attention_2_dim=768)


def test_vae_matches_release_layout_key_for_key():
    with torch.device("meta"):
        model = TripoSGVAEModel()
    assert shapes(model) == release_vae_layout()
    assert "embedder.frequencies" not in model.state_dict()


def test_parameter_counts_release_and_moe():
    with torch.device("meta"):
        dense = TripoSGDiTModel()
        moe = TripoSGDiTModel(use_moe=True)
    n_dense = sum(p.numel() for p in dense.parameters())
    assert abs(n_dense - 1.44e9) / 1.44e9 < 0.005
    ffn = 2 * 2048 * 8192 + 8192 + 2048
    gate = 8 * 2048
    # 6 blocks each gain 8 experts + 1 shared expert + gate in place of 1 dense FFN.
    assert sum(p.numel() for p in moe.parameters()) == n_dense + 6 * (8 * ffn + gate)
    assert moe.moe_layer_indices == [15, 16, 17, 18, 19, 20]
    summary = moe.moe_parameters_summary()
    assert summary["total"] - summary["active"] == 6 * 6 * ffn


# ---------------------------------------------------------------- attention semantics


def reference_attention(x, ctx, attn: Attention):
    """Per-head loop over explicit slices of the concatenated projections (the release layout)."""
    h, d = attn.heads, attn.head_dim
    outs = []
    for head in range(h):
        if ctx is None:
            qkv = torch.cat([attn.to_q(x), attn.to_k(x), attn.to_v(x)], -1)
            chunk = qkv[..., head * 3 * d:(head + 1) * 3 * d]
            q, k, v = chunk[..., :d], chunk[..., d:2 * d], chunk[..., 2 * d:]
        else:
            q = attn.to_q(x)[..., head * d:(head + 1) * d]
            kv = torch.cat([attn.to_k(ctx), attn.to_v(ctx)], -1)[..., head * 2 * d:(head + 1) * 2 * d]
            k, v = kv[..., :d], kv[..., d:]
        if attn.norm_q is not None:
            rms = lambda t, w: t / torch.sqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6) * w
            q, k = rms(q, attn.norm_q.weight), rms(k, attn.norm_k.weight)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        outs.append(weights @ v)
    return attn.to_out[0](torch.cat(outs, -1))


def random_attention_inputs(cross: bool):
    """A randomised 3-head attention (qk-norm on) with queries (2, 7, 24) and a context (2, 5, 10) or None."""
    torch.manual_seed(0)
    attn = randomize(Attention(24, heads=3, cross_attention_dim=10 if cross else None, qk_norm=True))
    return attn, torch.randn(2, 7, 24), torch.randn(2, 5, 10) if cross else None


@pytest.mark.parametrize("cross", [False, True])
def test_head_split_matches_straightforward_computation(cross):
    attn, x, ctx = random_attention_inputs(cross)
    torch.testing.assert_close(attn(x, ctx), reference_attention(x, ctx, attn), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cross", [False, True])
def test_attention_logits_are_the_scores_forward_applies(cross):
    attn, x, ctx = random_attention_inputs(cross)
    logits = attn.attention_logits(x, ctx)
    assert logits.shape == (2, 3, 7, 5 if cross else 7)
    _, _, v = attn.project(x, ctx)  # (B, S, H, Dh)
    mixed = torch.einsum("bhls,bshd->blhd", logits.softmax(-1), v).flatten(2)
    torch.testing.assert_close(attn.to_out[0](mixed), attn(x, ctx), atol=1e-5, rtol=1e-4)


def test_naive_head_split_would_differ():
    """Guard that the test above can fail: slicing to_q/to_k/to_v separately gives other numbers."""
    torch.manual_seed(0)
    attn = randomize(Attention(24, heads=3, qk_norm=False))
    x = torch.randn(1, 6, 24)
    q, k, v = (proj(x).view(1, 6, 3, 8).transpose(1, 2) for proj in (attn.to_q, attn.to_k, attn.to_v))
    naive = attn.to_out[0](F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, 6, 24))
    assert not torch.allclose(naive, attn(x), atol=1e-3)


def test_timestep_sinusoids_sin_first_no_shift():
    emb = timestep_sinusoids(torch.tensor([0.0, 500.0]), 8)
    freqs = torch.exp(-math.log(1e4) * torch.arange(4) / 4)
    torch.testing.assert_close(emb[1, :4], torch.sin(500.0 * freqs))
    torch.testing.assert_close(emb[1, 4:], torch.cos(500.0 * freqs))
    torch.testing.assert_close(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))


def test_frequency_embedding_is_coordinate_major():
    emb = FrequencyPointEmbedding(3, num_freqs=8, include_pi=False)
    xyz = torch.tensor([[0.1, -0.2, 0.3]])
    out = emb(xyz)
    assert out.shape == (1, 51)
    torch.testing.assert_close(out[0, :3], xyz[0])
    angles = [c * 2.0**f for c in (0.1, -0.2, 0.3) for f in range(8)]
    torch.testing.assert_close(out[0, 3:27], torch.tensor([math.sin(a) for a in angles]))
    torch.testing.assert_close(out[0, 27:], torch.tensor([math.cos(a) for a in angles]))


# ---------------------------------------------------------------- DiT forward semantics


def reference_dit_forward(model: TripoSGDiTModel, x, t, ctx):
    """Plain re-statement of the release's forward: time token, long skips, block order, head output."""
    width = model.config.width
    ln = lambda m, v: F.layer_norm(v, (width,), m.weight, m.bias, 1e-5)
    temb = model.time_proj.linear_2(F.gelu(model.time_proj.linear_1(timestep_sinusoids(t, width))))
    h = torch.cat([temb[:, None], model.proj_in(x)], 1)
    n = model.config.num_layers // 2
    stack = []
    for i, blk in enumerate(model.blocks):
        if i > n:
            h = ln(blk.skip_norm, blk.skip_linear(torch.cat([stack.pop(), h], -1)))
        h = h + reference_attention(ln(blk.norm1, h), None, blk.attn1)
        h = h + reference_attention(ln(blk.norm2, h), ctx, blk.attn2)
        h = h + blk.ff.net[2](F.gelu(blk.ff.net[0].proj(ln(blk.norm3, h))))
        if i < n:
            stack.append(h)
    return model.proj_out(ln(model.norm_out, h))[:, 1:]


def test_dit_forward_matches_reference_semantics():
    model = randomize(TripoSGDiTModel(**TINY_DIT)).eval()
    x, ctx = torch.randn(2, 6, 8), torch.randn(2, 4, 16)
    t = torch.tensor([1000.0, 20.0])
    with torch.no_grad():
        out = model(x, t, encoder_hidden_states=ctx)
        assert out.sample.shape == (2, 6, 8)
        torch.testing.assert_close(out.sample, reference_dit_forward(model, x, t, ctx), atol=1e-4, rtol=1e-4)
        tup = model(x, t, encoder_hidden_states=ctx, return_dict=False)
    assert isinstance(tup, tuple) and len(tup) == 1
    torch.testing.assert_close(tup[0], out.sample)


def test_dit_uses_time_and_context():
    model = randomize(TripoSGDiTModel(**TINY_DIT)).eval()
    x, ctx = torch.randn(1, 6, 8), torch.randn(1, 4, 16)
    with torch.no_grad():
        base = model(x, torch.tensor([500.0]), ctx).sample
        assert not torch.allclose(base, model(x, torch.tensor([400.0]), ctx).sample)
        assert not torch.allclose(base, model(x, torch.tensor([500.0]), torch.zeros_like(ctx)).sample)
        # With the cross-attention scaled to zero the context no longer matters.
        off = {"cross_attention_scale": 0.0}
        torch.testing.assert_close(model(x, 500.0, ctx, attention_kwargs=off).sample,
                                   model(x, 500.0, torch.randn(1, 4, 16), attention_kwargs=off).sample)


def test_dit_is_permutation_equivariant_without_positional_encoding():
    model = randomize(TripoSGDiTModel(**TINY_DIT)).eval()
    x, ctx = torch.randn(1, 6, 8), torch.randn(1, 4, 16)
    perm = torch.randperm(6)
    with torch.no_grad():
        torch.testing.assert_close(model(x[:, perm], 300.0, ctx).sample, model(x, 300.0, ctx).sample[:, perm],
                                   atol=1e-5, rtol=1e-4)


def test_second_cross_attention_branch_is_summed():
    model = randomize(TripoSGDiTModel(**TINY_DIT, use_cross_attention_2=True, cross_attention_2_dim=12)).eval()
    x, ctx, clip = torch.randn(1, 6, 8), torch.randn(1, 4, 16), torch.randn(1, 1, 12)
    with torch.no_grad():
        with_clip = model(x, 100.0, ctx, clip).sample
        without = model(x, 100.0, ctx, clip, attention_kwargs={"cross_attention_2_scale": 0.0}).sample
    assert not torch.allclose(with_clip, without)
    with pytest.raises(ValueError, match="encoder_hidden_states_2"):
        model(x, 100.0, ctx)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cached_context_gives_the_same_velocity_bit_for_bit(dtype):
    """Keys/values projected once per call (`cache_context`), a blank (all-zero) unconditional row filled instead of
    attended: the same numbers as projecting the tokens at every call, for both branches."""
    model = randomize(TripoSGDiTModel(**TINY_DIT, use_cross_attention_2=True, cross_attention_2_dim=12)).to(dtype).eval()
    x = torch.randn(3, 6, 8, dtype=dtype)
    ctx, clip = torch.randn(3, 4, 16, dtype=dtype), torch.randn(3, 1, 12, dtype=dtype)
    ctx[0], clip[0] = 0, 0  # guidance's unconditional row
    kwargs = {"cross_attention_scale": 0.7}
    with torch.no_grad():
        cache = model.cache_context(ctx, clip, kwargs)
        cached = model(x, 300.0, ctx, clip, attention_kwargs=kwargs, context_cache=cache).sample
        plain = model(x, 300.0, ctx, clip, attention_kwargs=kwargs).sample
    assert cache.image[0].blank.tolist() == [True, False, False]
    assert torch.equal(cached, plain)


def test_a_cache_of_another_batch_is_refused():
    model = randomize(TripoSGDiTModel(**TINY_DIT)).eval()
    with torch.no_grad():
        cache = model.cache_context(torch.randn(2, 4, 16))
        with pytest.raises(ValueError, match="holds 2 condition rows but hidden_states has 3"):
            model(torch.randn(3, 6, 8), 300.0, context_cache=cache)
        with pytest.raises(ValueError, match="encoder_hidden_states has 1 rows"):
            model(torch.randn(2, 6, 8), 300.0, torch.randn(1, 4, 16), context_cache=cache)
        assert model(torch.randn(2, 6, 8), 300.0, context_cache=cache).sample.shape == (2, 6, 8)


def test_skip_connections_can_be_switched_off():
    model = TripoSGDiTModel(**TINY_DIT, use_skip_connections=False)
    assert not any("skip" in k for k in model.state_dict())
    assert model(torch.randn(1, 3, 8), 10.0, torch.randn(1, 2, 16)).sample.shape == (1, 3, 8)


def test_fp32_layer_norm_keeps_low_precision_dtype():
    model = randomize(TripoSGDiTModel(**TINY_DIT)).to(torch.bfloat16)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 8, dtype=torch.bfloat16), 10.0, torch.randn(1, 2, 16, dtype=torch.bfloat16))
    assert out.sample.dtype == torch.bfloat16 and torch.isfinite(out.sample.float()).all()


def test_gradient_checkpointing_gives_same_gradients():
    model = randomize(TripoSGDiTModel(**TINY_DIT))
    x, ctx = torch.randn(2, 5, 8), torch.randn(2, 3, 16)

    def grads():
        model.zero_grad()
        model(x, torch.tensor([3.0, 700.0]), ctx).sample.square().sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.enable_gradient_checkpointing()
    for a, b in zip(plain, grads()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- MoE


def test_moe_routing_renormalises_top_k_and_reports_load():
    torch.manual_seed(0)
    moe = MoEFeedForward(16, 32, num_experts=4, top_k=2)
    probs, weights, indices = moe.route(torch.randn(50, 16))
    torch.testing.assert_close(weights.sum(-1), torch.ones(50))
    assert (indices[:, 0] != indices[:, 1]).all()
    torch.testing.assert_close(probs.gather(1, indices).argmax(-1), torch.zeros(50, dtype=torch.long))
    _, stats = moe(torch.randn(2, 25, 16))
    assert stats.expert_load.shape == (4,)
    torch.testing.assert_close(stats.expert_load.sum(), torch.tensor(1.0))
    assert stats.aux_loss.requires_grad


def test_moe_aux_loss_is_one_when_balanced_and_large_when_collapsed():
    moe = MoEFeedForward(4, 8, num_experts=4, top_k=1, shared_expert=False)
    with torch.no_grad():
        moe.gate.weight.copy_(torch.eye(4) * 20)
    balanced = torch.eye(4).repeat(5, 1)[None]  # every expert gets a quarter of the tokens
    _, stats = moe(balanced)
    assert stats.aux_loss.item() == pytest.approx(1.0, abs=1e-3)
    _, collapsed = moe(torch.tensor([[1.0, 0, 0, 0]]).repeat(20, 1)[None])
    assert collapsed.aux_loss.item() == pytest.approx(4.0, abs=1e-2)
    torch.testing.assert_close(collapsed.expert_load, torch.tensor([1.0, 0, 0, 0]))


@pytest.mark.parametrize("shared", [True, False])
def test_upcycled_ffn_equals_dense(shared):
    torch.manual_seed(0)
    dense = randomize(FeedForward(16, 48))
    moe = upcycle_feed_forward(dense, num_experts=4, top_k=2, shared_expert=shared)
    x = torch.randn(3, 7, 16)
    out, _ = moe(x)
    torch.testing.assert_close(out, dense(x), atol=1e-5, rtol=1e-5)


def test_upcycled_dit_computes_the_same_function():
    dense = randomize(TripoSGDiTModel(**{**TINY_DIT, "num_layers": 9})).eval()
    moe = TripoSGDiTModel.upcycle(dense, num_experts=4, moe_top_k=2)
    assert moe.config.use_moe and moe.moe_layer_indices == [5, 6, 7, 8]
    assert isinstance(moe.blocks[8].ff, MoEFeedForward) and not isinstance(moe.blocks[4].ff, MoEFeedForward)
    x, ctx = torch.randn(2, 6, 8), torch.randn(2, 4, 16)
    with torch.no_grad():
        d, m = dense(x, 250.0, ctx), moe(x, 250.0, ctx)
    torch.testing.assert_close(m.sample, d.sample, atol=1e-5, rtol=1e-4)
    assert d.aux_loss is None and m.aux_loss is not None and m.expert_load.shape == (4, 4)
    assert len(moe(x, 250.0, ctx, return_dict=False)) == 2


# ---------------------------------------------------------------- VAE


def test_vae_decode_is_negated_network_output():
    vae = randomize(TripoSGVAEModel(**TINY_VAE)).eval()
    latents, xyz = torch.randn(1, 10, 8), torch.rand(1, 30, 3) * 2 - 1
    with torch.no_grad():
        out = vae.decode(latents, sampled_points=xyz).sample
        tokens = vae.decoder.decode_tokens(vae.post_quant(latents))
        raw = vae.decoder.query(tokens, vae.embedder(xyz))
        chunked = vae.decode(latents, xyz, chunk_size=7).sample
        torch.testing.assert_close(vae.decode(latents, xyz, num_chunks=5, to_cpu=True).sample, out)
    assert out.shape == (1, 30, 1)
    torch.testing.assert_close(out, -raw)
    torch.testing.assert_close(chunked, out, atol=1e-5, rtol=1e-5)


def test_vae_release_switches_slicing_and_flash_decoder():
    vae = randomize(TripoSGVAEModel(**TINY_VAE)).eval()
    latents, xyz = torch.randn(3, 10, 8), torch.rand(3, 20, 3) * 2 - 1
    with torch.no_grad():
        whole = vae.decode(latents, xyz).sample
        vae.enable_slicing()
        sliced = vae.decode(latents, xyz).sample
        vae.disable_slicing()
        vae.set_flash_decoder()  # the release's switch: decoding stays exact here
        flash = vae.decode(latents, xyz, False)[0]  # the release's positional return_dict
    torch.testing.assert_close(sliced, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(flash, whole)
    with pytest.raises(ValueError, match="batch"):
        vae.decode(latents, xyz[:2])


def test_even_num_layers_wire_the_skips_as_the_release():
    """L = 4: blocks 0, 1 push (index < L//2), block 2 is the middle, block 3 pops block 1's output."""
    model = randomize(TripoSGDiTModel(**{**TINY_DIT, "num_layers": 4})).eval()
    assert [b.skip_linear is not None for b in model.blocks] == [False, False, False, True]
    x, ctx, t = torch.randn(2, 6, 8), torch.randn(2, 4, 16), torch.tensor([300.0, 40.0])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, ctx).sample, reference_dit_forward(model, x, t, ctx),
                                   atol=1e-4, rtol=1e-4)


def test_half_precision_norms_round_like_the_release():
    """qk RMSNorm: fp32 statistics, cast back to the fp16 weight's dtype, then the weight (diffusers' order);
    the DiT's and VAE's output norms and the VAE's context norm are plain LayerNorms in the weights' dtype."""
    from triposg.models.attention import RMSNorm

    torch.manual_seed(0)
    norm = RMSNorm(128).half()
    with torch.no_grad():
        norm.weight.copy_(torch.rand(128) * 2)
    x = torch.randn(64, 128).half()
    with torch.no_grad():
        out = norm(x)
    statistics = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)
    release = statistics.half() * norm.weight
    weight_in_fp32 = (statistics * norm.weight.float()).half()
    assert not torch.equal(release, weight_in_fp32)  # the two orders round differently: the check can fail
    assert torch.equal(out, release)
    dit, vae = TripoSGDiTModel(**TINY_DIT), TripoSGVAEModel(**TINY_VAE)
    plain = [dit.norm_out, vae.encoder.norm_out, vae.decoder.norm_out, vae.decoder.blocks[-1].attn2.norm_cross]
    assert all(type(n) is torch.nn.LayerNorm for n in plain)
    assert all(type(dit.blocks[0].__getattr__(n)).__name__ == "FP32LayerNorm" for n in ("norm1", "norm2", "norm3"))


def test_vae_encode_posterior_and_any_token_count():
    vae = randomize(TripoSGVAEModel(**TINY_VAE)).eval()
    points = torch.cat([torch.rand(2, 200, 3), F.normalize(torch.randn(2, 200, 3), dim=-1)], -1)
    for m in (8, 16, 32):
        enc = vae.encode(points, num_tokens=m, generator=torch.Generator().manual_seed(0))
        dist = enc.latent_dist
        assert dist.mode().shape == (2, m, 8) and dist.sample().shape == (2, m, 8)
        assert enc.query_indices.shape == (2, m) and dist.kl().shape == (2,)
        assert (dist.logvar >= -30).all() and (dist.logvar <= 20).all()
    again = vae.encode(points, num_tokens=16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.latent_dist.mode(),
                               vae.encode(points, query_indices=again.query_indices).latent_dist.mode())
    with pytest.raises(ValueError, match="xyz \\+ normals"):
        vae.encode(points[..., :3])
    with pytest.raises(ValueError, match="exceeds"):
        vae.encode(points, num_tokens=500)


def test_vae_second_derivatives_with_math_attention():
    """Eikonal/normal losses need gradients of the field w.r.t. xyz and their backward."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    vae = randomize(TripoSGVAEModel(**TINY_VAE))
    xyz = (torch.rand(1, 12, 3) * 2 - 1).requires_grad_(True)
    with sdpa_kernel(SDPBackend.MATH):
        value = vae.decode(torch.randn(1, 6, 8), xyz).sample
        (grad,) = torch.autograd.grad(value.sum(), xyz, create_graph=True)
        (grad.norm(dim=-1) - 1).square().mean().backward()
    assert vae.decoder.proj_query.weight.grad is not None


# ---------------------------------------------------------------- FPS and round trips


def brute_force_fps(points: np.ndarray, m: int, start: int) -> list[int]:
    chosen = [start]
    dist = np.full(len(points), np.inf)
    for _ in range(m - 1):
        dist = np.minimum(dist, ((points - points[chosen[-1]]) ** 2).sum(-1))
        chosen.append(int(dist.argmax()))
    return chosen


def test_farthest_point_sampling_matches_brute_force_and_spreads():
    g = torch.Generator().manual_seed(1)
    pts = torch.rand(2, 300, 3, generator=g)
    idx = farthest_point_sampling(pts, 20, random_start=False)
    for b in range(2):
        assert idx[b].tolist() == brute_force_fps(pts[b].numpy(), 20, 0)
    # Four tight clusters: the first four samples hit four different clusters.
    centers = torch.tensor([[0, 0, 0], [5, 0, 0], [0, 5, 0], [0, 0, 5.0]])
    clustered = (centers[:, None] + 0.01 * torch.randn(4, 50, 3, generator=g)).reshape(1, 200, 3)
    picks = farthest_point_sampling(clustered, 4, generator=g)[0]
    assert len(set((picks // 50).tolist())) == 4


def test_save_and_load_round_trip(tmp_path):
    dit = randomize(TripoSGDiTModel(**TINY_DIT, use_moe=True, num_experts=3, moe_top_k=1)).eval()
    vae = randomize(TripoSGVAEModel(**TINY_VAE)).eval()
    dit.save_pretrained(tmp_path / "dit")
    vae.save_pretrained(tmp_path / "vae")
    assert (tmp_path / "dit" / "diffusion_pytorch_model.safetensors").exists()
    dit2 = TripoSGDiTModel.from_pretrained(tmp_path / "dit").eval()
    vae2 = TripoSGVAEModel.from_pretrained(tmp_path / "vae").eval()
    x, ctx, xyz = torch.randn(1, 4, 8), torch.randn(1, 3, 16), torch.rand(1, 9, 3)
    with torch.no_grad():
        torch.testing.assert_close(dit2(x, 5.0, ctx).sample, dit(x, 5.0, ctx).sample)
        torch.testing.assert_close(vae2.decode(torch.randn(1, 4, 8).fill_(0.3), xyz).sample,
                                   vae.decode(torch.randn(1, 4, 8).fill_(0.3), xyz).sample)
