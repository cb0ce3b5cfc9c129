"""Flow-training building blocks: objectives (RF / DDPM / EDM), conditioning, latents and their cache."""

import copy

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor

import triposg.io
from training.conditioning import ConditionEncoder, drop_conditions
from training.flow_objectives import (
    RectifiedFlowObjective,
    expert_load_summary,
    flow_loss,
    make_objective,
    match_tokens_to_noise,
)
from training.latents import LatentStore, build_latent_store, encode_latents, vae_fingerprint
from triposg.models import TripoSGDiTModel, TripoSGVAEModel
from triposg.pipelines.random_init import make_random_pipeline
from triposg.schedulers import RectifiedFlowScheduler

OBJECTIVE_NAMES = ["rectified_flow", "ddpm", "edm"]


def tiny_dit(**kwargs) -> TripoSGDiTModel:
    torch.manual_seed(0)
    config = {"num_attention_heads": 2, "width": 32, "in_channels": 4, "num_layers": 3, "cross_attention_dim": 8}
    config.update(kwargs)
    return TripoSGDiTModel(**config)


def tiny_vae(seed: int = 0) -> TripoSGVAEModel:
    torch.manual_seed(seed)
    return TripoSGVAEModel(
        latent_channels=4,
        num_attention_heads=2,
        width_encoder=16,
        width_decoder=16,
        num_layers_encoder=1,
        num_layers_decoder=1,
    ).eval()


def random_images(count: int) -> list[PIL.Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(64, 64), (80, 60), (50, 70)]
    return [PIL.Image.fromarray(rng.integers(0, 256, (*sizes[i % 3][::-1], 3), dtype=np.uint8)) for i in range(count)]


# ---- objectives ----


@pytest.mark.parametrize("name", OBJECTIVE_NAMES)
def test_perfect_prediction_steps_onto_the_training_interpolation(name):
    """The objective's target, used as the model output, makes one sampler step land exactly on the
    training interpolation at the next grid timestep (and on x0 after the last step)."""
    objective = make_objective(name)
    scheduler = objective.scheduler
    if name == "ddpm":
        assert scheduler.config.eta == 0.0  # deterministic DDIM: the step is a function of the prediction
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 16, 4, generator=generator)
    noise = torch.randn(2, 16, 4, generator=generator)
    scheduler.set_timesteps(6, num_tokens=2048)
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        t_batch = t.expand(2)
        model_input, timestep, target, weight = objective.training_pair(x0, noise, t_batch)
        noisy = scheduler.add_noise(x0, noise, t_batch)
        torch.testing.assert_close(model_input, scheduler.scale_model_input(noisy, t_batch))
        assert torch.equal(timestep, t_batch) and weight.shape == (2,)
        landed = scheduler.step(target, t, noisy).prev_sample
        expected = scheduler.add_noise(x0, noise, timesteps[i + 1].expand(2)) if i + 1 < len(timesteps) else x0
        torch.testing.assert_close(landed, expected, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("name", OBJECTIVE_NAMES)
def test_sample_is_the_training_pair_of_its_own_draws(name):
    objective = make_objective(name)
    x0 = torch.randn(5, 8, 4)
    batch = objective.sample(x0, torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    timestep = objective.sample_timesteps(5, generator, num_tokens=8)
    noise = randn_tensor(x0.shape, generator=generator)
    for got, want in zip(batch, objective.training_pair(x0, noise, timestep)):
        torch.testing.assert_close(got, want)
    assert batch.timestep.dtype == torch.float32 and batch.timestep.shape == (5,)


def test_rectified_flow_convention():
    """x_σ + σ·v recovers x0 at any sampled σ; timestep = 1000·σ in (0, 1000); weights uniform."""
    objective = RectifiedFlowObjective()
    x0 = torch.randn(64, 8, 4)
    model_input, timestep, target, weight = objective.sample(x0, torch.Generator().manual_seed(0))
    sigma = (timestep / 1000)[:, None, None]
    torch.testing.assert_close(model_input + sigma * target, x0, atol=1e-5, rtol=1e-5)
    assert 0 < timestep.min() and timestep.max() < 1000 and torch.all(weight == 1)


def test_resolution_shift_moves_training_timesteps_toward_noise_like_the_sampler():
    objective = RectifiedFlowObjective()  # dynamic shift from 512 tokens (eq. 11)
    draws = {
        m: objective.sample_timesteps(20000, torch.Generator().manual_seed(0), num_tokens=m) / 1000 for m in (512, 2048)
    }
    assert draws[2048].mean() > draws[512].mean() + 0.1
    # The logit-normal median σ = 0.5 maps to the same σ as the unshifted grid midpoint of the sampler:
    # 0.5 at 512 tokens, 2/3 (shift sqrt(2048/512) = 2) at 2048 tokens.
    for m in (512, 2048):
        objective.scheduler.set_timesteps(10, num_tokens=m)
        assert abs(float(draws[m].median()) - float(objective.scheduler.sigmas[5])) < 0.01
    assert abs(float(draws[2048].median()) - 2 / 3) < 0.01
    # sample() takes the token count from the latents.
    x0 = torch.zeros(16, 2048, 1)
    t_sample = objective.sample(x0, torch.Generator().manual_seed(1)).timestep
    t_direct = objective.sample_timesteps(16, torch.Generator().manual_seed(1), num_tokens=2048)
    torch.testing.assert_close(t_sample, t_direct)
    # Without dynamic shifting (the release scheduler) the token count changes nothing.
    static = RectifiedFlowObjective(RectifiedFlowScheduler())
    t512 = static.sample_timesteps(100, torch.Generator().manual_seed(0), num_tokens=512)
    t2048 = static.sample_timesteps(100, torch.Generator().manual_seed(0), num_tokens=2048)
    torch.testing.assert_close(t512, t2048)


def test_unknown_objective_is_a_clear_error():
    with pytest.raises(ValueError, match="rectified_flow"):
        make_objective("flow_matching")


def test_token_matching_reorders_each_set_to_the_cheapest_pairing():
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 16, 4, generator=generator), torch.randn(3, 16, 4, generator=generator)
    matched = match_tokens_to_noise(x0, noise)
    for b in range(3):  # the same set of tokens, only reordered
        assert torch.equal(torch.sort(matched[b].flatten())[0], torch.sort(x0[b].flatten())[0])
    cost = lambda a: (a - noise).pow(2).sum().item()  # noqa: E731
    assert cost(matched) < 0.8 * cost(x0)
    for _ in range(20):  # no other order of a set is cheaper: try random swaps of two tokens
        swapped = matched.clone()
        i, j = torch.randperm(16, generator=generator)[:2].tolist()
        swapped[:, [i, j]] = swapped[:, [j, i]]
        assert cost(swapped) >= cost(matched) - 1e-5
    # A set already ordered like its noise stays as it is.
    assert torch.equal(match_tokens_to_noise(noise + 0.01, noise), noise + 0.01)


def test_matched_objective_pairs_tokens_in_its_draws():
    objective = make_objective("rectified_flow")
    x0 = torch.randn(2, 32, 4, generator=torch.Generator().manual_seed(1))
    plain = objective.sample(x0, generator=torch.Generator().manual_seed(2))
    objective.match_tokens = True
    matched = objective.sample(x0, generator=torch.Generator().manual_seed(2))
    # Same noise and timesteps; the matched target (x0 - noise for rectified flow) is shorter.
    assert torch.equal(plain.timestep, matched.timestep)
    assert matched.target.pow(2).sum() < 0.8 * plain.target.pow(2).sum()


def _train(model, objective, x0, cond, steps, fixed_draw, lr=3e-3, repeat=1):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        if fixed_draw:
            generator = torch.Generator().manual_seed(1)
        terms = flow_loss(model, x0.repeat(repeat, 1, 1), cond.repeat(repeat, 1, 1), None, objective, generator)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(float(terms["loss"].detach()))
    return losses


@pytest.mark.parametrize(
    "name,steps,factor", [("rectified_flow", 200, 1000.0), ("ddpm", 100, 50.0), ("edm", 100, 50.0)]
)
def test_tiny_dit_overfits_a_fixed_batch(name, steps, factor):
    """Fixed latents, condition, noise and timesteps: the loss falls by ≥ `factor` (RF ≥ 1000× in 200 steps,
    DDPM/EDM ≥ 50× in 100 steps; observed ≈ 4e8×, 1e4×, 4e4×)."""
    model = tiny_dit()
    x0, cond = torch.randn(4, 8, 4), torch.randn(4, 2, 8)
    losses = _train(model, make_objective(name), x0, cond, steps, fixed_draw=True)
    assert all(np.isfinite(losses))
    assert min(losses[-5:]) < losses[0] / factor, (losses[0], losses[-5:])


def test_tiny_dit_learns_rectified_flow_with_fresh_noise():
    """Fresh noise and timesteps every step (the real objective): the loss on a fixed evaluation draw falls
    ≥ 2× in 300 steps (observed ≈ 2.9×; it cannot reach 0, the velocity is uncertain at high noise)."""
    model = tiny_dit()
    objective = make_objective("rectified_flow")
    x0, cond = torch.randn(2, 4, 4), torch.randn(2, 2, 8)

    def evaluate():
        generator = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return float(
                flow_loss(model, x0.repeat(32, 1, 1), cond.repeat(32, 1, 1), None, objective, generator)["flow"]
            )

    before = evaluate()
    _train(model, objective, x0, cond, 300, fixed_draw=False, repeat=4)
    after = evaluate()
    assert after < before / 2, (before, after)


def test_moe_flow_loss_has_the_aux_term_minimal_for_uniform_routing():
    dense = tiny_dit()
    x0, cond = torch.randn(2, 8, 4), torch.randn(2, 2, 8)
    terms = flow_loss(dense, x0, cond, None, make_objective("rectified_flow"))
    assert set(terms) == {"flow", "loss"}

    moe = TripoSGDiTModel.upcycle(dense, num_experts=4, moe_top_k=2, moe_layers=[2])
    with torch.no_grad():
        moe.blocks[2].ff.gate.weight.zero_()  # uniform router probabilities
    for weight in (0.01, 0.5):
        terms = flow_loss(
            moe,
            x0,
            cond,
            None,
            make_objective("rectified_flow"),
            torch.Generator().manual_seed(0),
            aux_loss_weight=weight,
        )
        assert {"flow", "moe_aux", "loss", "expert_load"} <= set(terms)
        assert float(terms["moe_aux"].detach()) == pytest.approx(1.0 * weight, rel=1e-6)
        torch.testing.assert_close(terms["loss"], terms["flow"] + terms["moe_aux"])
    assert terms["expert_load"].shape == (1, 4)
    assert float(terms["expert_load"].sum()) == pytest.approx(1.0)
    summary = expert_load_summary(terms["expert_load"])
    assert summary["expert_load_max"] >= 0.25 >= summary["expert_load_min"]
    # The aux term is differentiable w.r.t. the router: a skewed router gets a gradient from it.
    with torch.no_grad():
        moe.blocks[2].ff.gate.weight.normal_()
    terms = flow_loss(moe, x0, cond, None, make_objective("rectified_flow"), torch.Generator().manual_seed(0))
    moe.zero_grad()
    terms["moe_aux"].backward()
    assert moe.blocks[2].ff.gate.weight.grad.abs().sum() > 0


def test_guidance_distillation_regresses_the_teachers_guided_prediction():
    teacher = tiny_dit()
    torch.nn.init.normal_(teacher.proj_out.weight, std=0.5, generator=torch.Generator().manual_seed(1))
    student = copy.deepcopy(teacher)
    objective = make_objective("rectified_flow")
    x0, cond = torch.randn(3, 8, 4), torch.randn(3, 2, 8)
    draw = lambda: torch.Generator().manual_seed(7)  # noqa: E731 - the same timesteps and noise for every call
    # Scale 1: the target is the teacher's conditional prediction, which the identical student matches exactly.
    at_one = flow_loss(student, x0, cond, None, objective, draw(), teacher=teacher, guidance_scale=1.0)
    assert float(at_one["flow"].detach()) < 1e-12
    # Scale 3: the target is u + 3(c - u), formed from the teacher's outputs with and without the image.
    batch = objective.sample(x0, generator=draw())
    with torch.no_grad():
        conditional = teacher(batch.model_input, batch.timestep, encoder_hidden_states=cond).sample
        unconditional = teacher(batch.model_input, batch.timestep, encoder_hidden_states=torch.zeros_like(cond)).sample
    guided = unconditional + 3.0 * (conditional - unconditional)
    at_three = flow_loss(student, x0, cond, None, objective, draw(), teacher=teacher, guidance_scale=3.0)
    torch.testing.assert_close(at_three["flow"], objective.loss(conditional, guided, batch.weight))
    assert float(at_three["flow"].detach()) > 1e-6
    at_three["loss"].backward()  # the student learns, the teacher is frozen out of the graph
    assert student.proj_out.weight.grad.abs().sum() > 0 and teacher.proj_out.weight.grad is None


# ---- conditioning ----


def test_condition_dropout():
    local, global_tokens = torch.randn(4000, 3, 8) + 5, torch.randn(4000, 1, 6) + 5
    kept_local, kept_global, dropped = drop_conditions(local, global_tokens, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(kept_local, local) and torch.equal(kept_global, global_tokens) and not dropped.any()

    zero_local, zero_global, dropped = drop_conditions(local, global_tokens, 1.0, torch.Generator().manual_seed(0))
    assert dropped.all()
    # the pipeline's unconditional context for classifier-free guidance is torch.zeros_like(cond)
    assert torch.equal(zero_local, torch.zeros_like(local)) and torch.equal(
        zero_global, torch.zeros_like(global_tokens)
    )

    half_local, half_global, dropped = drop_conditions(local, global_tokens, 0.5, torch.Generator().manual_seed(0))
    assert 0.45 < dropped.float().mean() < 0.55
    # whole samples: a dropped sample loses both contexts entirely, a kept one keeps both untouched
    assert torch.equal(half_local[dropped], torch.zeros_like(local[dropped]))
    assert torch.equal(half_global[dropped], torch.zeros_like(global_tokens[dropped]))
    assert torch.equal(half_local[~dropped], local[~dropped])
    assert torch.equal(half_global[~dropped], global_tokens[~dropped])
    # independent per sample: neighbours are dropped together about a quarter of the time
    both = (dropped[:-1] & dropped[1:]).float().mean()
    assert 0.2 < both < 0.3
    again = drop_conditions(local, None, 0.5, torch.Generator().manual_seed(0))
    assert again[1] is None and torch.equal(again[2], dropped)  # seeded: reproducible
    with pytest.raises(ValueError):
        drop_conditions(local, None, 1.5)


@pytest.fixture(scope="module")
def clip_pipeline():
    return make_random_pipeline(use_clip=True)


def _assert_encodes_like_pipeline(encoder, pipeline, images):
    local, global_tokens = encoder.encode(images)
    with torch.no_grad():
        want_local, want_global = pipeline.encode_image(images, torch.device("cpu"))
    assert torch.equal(local, want_local) and torch.equal(global_tokens, want_global)
    assert global_tokens.shape == (len(images), 1, pipeline.transformer.config.cross_attention_2_dim)


def test_condition_encoder_matches_the_pipeline(clip_pipeline, tmp_path):
    pipe = clip_pipeline
    images = random_images(3)
    encoder = ConditionEncoder(
        pipe.image_encoder_dinov2, pipe.feature_extractor_dinov2, pipe.image_encoder_clip, pipe.feature_extractor_clip
    )
    _assert_encodes_like_pipeline(encoder, pipe, images)
    assert encoder.local_dim == pipe.transformer.config.cross_attention_dim

    # pretrained folders (model + processor in one folder, as on the hub) → frozen
    pipe.image_encoder_dinov2.save_pretrained(tmp_path / "dinov2")
    pipe.feature_extractor_dinov2.save_pretrained(tmp_path / "dinov2")
    pipe.image_encoder_clip.save_pretrained(tmp_path / "clip")
    pipe.feature_extractor_clip.save_pretrained(tmp_path / "clip")
    frozen = ConditionEncoder.from_pretrained(tmp_path / "dinov2", tmp_path / "clip")
    assert not any(p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.training and not frozen.dinov2.training and not frozen.clip.training
    _assert_encodes_like_pipeline(frozen, pipe, images)
    assert not frozen.encode(images)[0].requires_grad

    # a pipeline folder's subfolders
    frozen.save_pretrained(tmp_path / "pipeline")
    from_pipeline_folder = ConditionEncoder.from_pretrained(tmp_path / "pipeline", subfolders=True)
    _assert_encodes_like_pipeline(from_pipeline_folder, pipe, images)

    # a bare DINOv2 folder (no preprocessor config) falls back to the release preprocessing
    pipe.image_encoder_dinov2.save_pretrained(tmp_path / "bare")
    bare = ConditionEncoder.from_pretrained(tmp_path / "bare")
    assert bare.clip is None and bare.encode(images)[1] is None
    assert torch.equal(bare.encode(images)[0], encoder.encode(images)[0])


def test_condition_encoder_from_config_is_trainable():
    vision = {
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "image_size": 28,
        "patch_size": 14,
    }
    encoder = ConditionEncoder.from_config(vision, {**vision, "projection_dim": 12})
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    assert trainable and len(trainable) == len(list(encoder.parameters()))
    encoder.train()
    assert encoder.dinov2.training
    local, global_tokens = encoder.encode(random_images(2))
    assert local.shape == (2, 1 + 4, 16) and global_tokens.shape == (2, 1, 12)
    assert encoder.global_dim == 12
    (local.square().mean() + global_tokens.square().mean()).backward()
    assert encoder.dinov2.embeddings.patch_embeddings.projection.weight.grad is not None
    assert encoder.clip.visual_projection.weight.grad is not None


# ---- latents ----


def _shapes(count: int, num_points: int = 64) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    items = []
    for i in range(count):
        xyz = torch.rand(num_points, 3, generator=generator) * 2 - 1
        items.append(
            {"object_id": f"obj_{i:03d}", "surface": torch.cat([xyz, torch.nn.functional.normalize(xyz, dim=-1)], -1)}
        )
    return items


def test_encode_latents():
    vae = tiny_vae()
    surface = torch.stack([item["surface"] for item in _shapes(2)])
    mean_a = encode_latents(vae, surface, 8, torch.Generator().manual_seed(0), sample_posterior=False)
    mean_b = encode_latents(vae, surface, 8, torch.Generator().manual_seed(0), sample_posterior=False)
    sampled = encode_latents(vae, surface, 8, torch.Generator().manual_seed(0))
    assert mean_a.shape == (2, 8, 4) and not sampled.requires_grad
    assert torch.equal(mean_a, mean_b) and not torch.equal(mean_a, sampled)


def test_latent_store_round_trip_and_keys(tmp_path, monkeypatch):
    vae = tiny_vae()
    shapes = _shapes(3)
    store = build_latent_store(vae, shapes, 8, tmp_path, generator=torch.Generator().manual_seed(0), progress=False)
    assert sorted(store.object_ids()) == [s["object_id"] for s in shapes]
    # round trip: the cached posterior is what the VAE gives with the same query selection
    generator = torch.Generator().manual_seed(0)
    for item in shapes:
        dist = vae.encode(item["surface"][None], num_tokens=8, generator=generator).latent_dist
        mean, std = store.load(item["object_id"])
        torch.testing.assert_close(mean, dist.mean[0].detach())
        torch.testing.assert_close(std, dist.std[0].detach())
    ids = [s["object_id"] for s in shapes]
    means = torch.stack([store.load(i)[0] for i in ids])
    assert torch.equal(store.load_latents(ids, sample_posterior=False), means)
    assert store.load_latents(ids, torch.Generator().manual_seed(0)).shape == (3, 8, 4)

    # only complete files, no temporaries; a crash mid-write keeps the previous version
    assert sorted(p.name for p in store.folder.iterdir()) == [f"{i}.safetensors" for i in ids]
    before = store.load(ids[0])

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(triposg.io.os, "replace", crash)
    with pytest.raises(OSError):
        store.save(ids[0], torch.zeros(8, 4), torch.zeros(8, 4))
    monkeypatch.undo()
    assert all(torch.equal(a, b) for a, b in zip(store.load(ids[0]), before))
    assert sorted(p.name for p in store.folder.iterdir()) == [f"{i}.safetensors" for i in ids]

    # cached objects are skipped (these items would fail to encode)
    build_latent_store(vae, [{"object_id": i, "surface": None} for i in ids], 8, tmp_path, progress=False)

    # same weights in a new instance hit; changed weights or another token count miss
    same = tiny_vae(seed=1)
    same.load_state_dict(vae.state_dict())
    assert ids[0] in LatentStore.for_vae(tmp_path, same, 8)
    with torch.no_grad():
        same.quant.bias.add_(1e-3)
    assert vae_fingerprint(same) != vae_fingerprint(vae)
    assert ids[0] not in LatentStore.for_vae(tmp_path, same, 8)
    assert ids[0] not in LatentStore.for_vae(tmp_path, vae, 16)
    with pytest.raises(KeyError, match="build_latent_store"):
        LatentStore.for_vae(tmp_path, vae, 16).load(ids[0])

    # ids that are not file names still round-trip
    store.save("shapenet/chair 1", torch.ones(8, 4), torch.ones(8, 4))
    assert "shapenet/chair 1" in store and torch.equal(store.load("shapenet/chair 1")[0], torch.ones(8, 4))
    assert store.path("shapenet/chair 1").parent == store.folder


def test_flow_training_reads_fp16_parts_as_float32(clip_pipeline, tmp_path):
    """Parts saved in fp16 (to keep them small in the repo) train in float32: the VAE and the reused encoders."""
    from training.train_flow import ConditionConfig, FlowModelConfig, build_condition_encoder, build_vae

    half = make_random_pipeline(latent_channels=8).to(dtype=torch.float16)
    half.vae.save_pretrained(tmp_path / "vae")
    ConditionEncoder(half.image_encoder_dinov2, half.feature_extractor_dinov2).save_pretrained(tmp_path / "encoder")
    vae = build_vae(FlowModelConfig(vae=str(tmp_path / "vae")))
    encoder = build_condition_encoder(ConditionConfig(from_pipeline=str(tmp_path / "encoder")))
    assert {p.dtype for p in vae.parameters()} == {torch.float32}
    assert {p.dtype for p in encoder.parameters()} == {torch.float32}
    assert torch.equal(vae.quant.weight, half.vae.quant.weight.float())


def test_the_export_section_is_the_one_set_of_generation_settings():
    from training.train_flow import FlowExportConfig
    from triposg.loading import GenerationDefaults

    export = FlowExportConfig(num_inference_steps=20, guidance_scale=3.0, octree_resolution=128)
    assert isinstance(export, GenerationDefaults)
    exported = export.for_model(largest_num_tokens=256)
    assert type(exported) is GenerationDefaults and exported.num_tokens == 256  # None = the largest training M
    assert FlowExportConfig(num_tokens=512).for_model(256).num_tokens == 512
    with pytest.raises(ValueError, match="num_inference_steps"):
        FlowExportConfig(num_inference_steps=0).for_model(256)  # the same limits as the app and the CLI


@pytest.mark.parametrize("override, named", [
    ("sample.guidance_scale=-1", "sample.guidance_scale"),
    ("sample.num_inference_steps=0", "sample.num_inference_steps"),
    ("sample.octree_resolution=33", "sample.octree_resolution"),
    ("sample.num_tokens=0", "sample.num_tokens"),
])
def test_progress_sample_settings_are_checked_against_the_pipelines_limits(override, named):
    """The `sample:` section is refused when the pipeline itself would refuse the setting, naming the key."""
    from training.engine.config import load_config
    from training.train_flow import FlowTrainingConfig

    assert load_config("training/configs/flow-tiny.yaml", config_class=FlowTrainingConfig).sample.octree_resolution
    with pytest.raises(ValueError, match=named):
        load_config("training/configs/flow-tiny.yaml", [override], config_class=FlowTrainingConfig)
