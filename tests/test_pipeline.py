"""TripoSGPipeline on tiny random models: generation, CFG, callbacks, previews, samplers, loading."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from release_layout import rewrite_as_release_folder
from triposg import TripoSGDiTModel, TripoSGPipeline, TripoSGVAEModel
from triposg.models import TripoSGDiTModelOutput
from triposg.pipelines import PreviewEvent, make_random_pipeline
from triposg.pipelines.generation_config import GenerationDefaults
from triposg.schedulers import RectifiedFlowScheduler, TripoSGDDPMScheduler, TripoSGEDMScheduler

FAST = dict(num_inference_steps=3, num_tokens=16, octree_resolution=32, guidance_scale=3.0)


def disc_image(size: int = 96, color=(200, 40, 40)) -> Image.Image:
    """A coloured disc on a transparent background (RGBA)."""
    yy, xx = np.mgrid[:size, :size]
    inside = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[inside] = (*color, 255)
    return Image.fromarray(rgba, "RGBA")


@pytest.fixture(scope="module")
def pipe():
    pipe = make_random_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def record_transformer_inputs(pipe, name: str) -> list:
    """Wrap the DiT's forward to record one of its inputs per call (`timestep`, `encoder_hidden_states`, ...)."""
    seen, forward = [], pipe.transformer.forward

    def recording_forward(hidden_states, timestep, **kwargs):
        seen.append({"timestep": timestep, **kwargs}.get(name))
        return forward(hidden_states, timestep, **kwargs)

    pipe.transformer.forward = recording_forward
    return seen


def test_generates_a_mesh_from_an_image(pipe):
    out = pipe(disc_image(), seed=1, **FAST)
    vertices, faces = out.samples[0]
    assert vertices.dtype == np.float32 and vertices.shape[1] == 3
    assert faces.dtype == np.int32 and faces.shape[1] == 3  # int32 as the release
    assert isinstance(out.meshes[0], trimesh.Trimesh) and np.array_equal(out.meshes[0].faces, faces)
    # A closed surface that uses every vertex: no holes, no dangling vertices from extraction or clean-up.
    assert out.meshes[0].is_watertight and len(np.unique(faces)) == len(vertices)
    assert np.abs(vertices).max() <= 1.005 + 1e-5
    assert out.latents.shape == (1, 16, 8)
    assert out.preprocessed[0].method == "alpha"
    assert set(out.timings) == {"preprocess", "encode", "sample", "extract"}


def test_prepared_images_skip_preprocessing(tmp_path):
    pipe = make_random_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    image_tokens = record_transformer_inputs(pipe, "encoder_hidden_states")
    corner = Image.new("RGBA", (96, 96))
    corner.paste(disc_image(48), (0, 0))  # preprocessing would crop to the disc and centre it
    corner.save(tmp_path / "corner.png")
    prepared = pipe(str(tmp_path / "corner.png"), preprocess=False, seed=1, **FAST)
    framed = pipe(str(tmp_path / "corner.png"), seed=1, **FAST)
    assert prepared.preprocessed is None and framed.preprocessed[0].method == "alpha"
    # The model is conditioned on the image as it is, not on the centred cut-out.
    steps = FAST["num_inference_steps"]
    assert len(image_tokens) == 2 * steps and not torch.allclose(image_tokens[0], image_tokens[steps])


def test_seed_determines_the_result(pipe):
    a = pipe(disc_image(), seed=3, **FAST).latents
    b = pipe(disc_image(), seed=3, **FAST).latents
    c = pipe(disc_image(), seed=4, **FAST).latents
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    with pytest.raises(ValueError, match="seed or generator"):
        pipe(disc_image(), seed=1, generator=torch.Generator(), **FAST)


def record_transformer_calls(pipe) -> list:
    """Replace the DiT's forward: record its inputs, return a velocity of +1 (uncond) / +3 (cond)."""
    calls = []

    def forward(hidden_states, timestep, encoder_hidden_states=None, encoder_hidden_states_2=None,
                attention_kwargs=None, return_dict=True, context_cache=None):
        calls.append((hidden_states.clone(), timestep.clone(), encoder_hidden_states.clone()))
        values = torch.tensor([1.0, 3.0]) if hidden_states.shape[0] == 2 else torch.tensor([3.0])
        return TripoSGDiTModelOutput(sample=values[:, None, None].expand_as(hidden_states).clone())

    pipe.transformer.forward = forward
    return calls


def guided_run(**settings) -> tuple[TripoSGPipeline, list, torch.Tensor, torch.Tensor]:
    """A random pipeline whose DiT returns +1 (uncond) / +3 (cond), run at guidance 4 from fixed noise:
    (pipe, recorded calls, start noise, result latents)."""
    pipe = make_random_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    calls = record_transformer_calls(pipe)
    noise = torch.randn(1, 16, 8)
    out = pipe(disc_image(), guidance_scale=4.0, num_tokens=16, octree_resolution=32, latents=noise.clone(),
               **settings)
    return pipe, calls, noise, out.latents


def test_classifier_free_guidance_batch_order_and_formula():
    pipe, calls, noise, latents = guided_run(num_inference_steps=1)
    (x, t, ctx), = calls
    assert x.shape[0] == 2 and torch.equal(x[0], x[1])
    assert torch.count_nonzero(ctx[0]) == 0 and torch.count_nonzero(ctx[1]) > 0  # [uncond = zeros, cond]
    assert t.tolist() == [1000.0, 1000.0]
    # One rectified-flow step from σ=1 to 0 adds the guided velocity 1 + 4·(3 − 1) = 9.
    torch.testing.assert_close(latents, noise + 9.0)

    calls.clear()
    pipe(disc_image(), num_inference_steps=2, guidance_scale=1.0, num_tokens=16, octree_resolution=32)
    assert calls and all(call[0].shape[0] == 1 for call in calls)  # no CFG batch when guidance ≤ 1


def test_guidance_interval_guides_only_its_share_of_the_steps():
    pipe, calls, noise, latents = guided_run(num_inference_steps=4, guidance_interval=(0.0, 0.5))
    # Steps 0 and 1 of 4 run [uncond, cond]; steps 2 and 3 the conditional row alone, with its own tokens.
    assert [x.shape[0] for x, _, _ in calls] == [2, 2, 1, 1]
    assert torch.count_nonzero(calls[2][2]) > 0 and torch.equal(calls[2][2][0], calls[0][2][1])
    # Guided steps move by the guided velocity 9, unguided ones by the conditional velocity 3.
    drops = -torch.diff(pipe.scheduler.sigmas)
    torch.testing.assert_close(latents, noise + float(9.0 * drops[:2].sum() + 3.0 * drops[2:].sum()))

    calls.clear()
    pipe(disc_image(), num_inference_steps=5, guidance_scale=4.0, num_tokens=16, octree_resolution=32,
         guidance_interval=(0.2, 0.6))  # [int(0.2·5), int(0.6·5)) = steps 1 and 2
    assert [x.shape[0] for x, _, _ in calls] == [1, 2, 2, 1, 1]
    with pytest.raises(ValueError, match="guidance_interval"):
        pipe(disc_image(), guidance_interval=(0.5, 0.2), **FAST)


def test_guidance_interval_with_the_real_transformer_matches_plain_conditional_steps():
    """An unguided step with the cached conditional keys/values gives what a guidance-free call gives."""
    pipe = make_random_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    torch.nn.init.normal_(pipe.transformer.proj_out.weight, std=0.5, generator=torch.Generator().manual_seed(0))
    settings = dict(num_inference_steps=3, num_tokens=16, octree_resolution=32, output_type="latent", seed=5)
    unguided = pipe(disc_image(), guidance_scale=3.0, guidance_interval=(0.0, 0.0), **settings).latents
    plain = pipe(disc_image(), guidance_scale=1.0, **settings).latents
    guided = pipe(disc_image(), guidance_scale=3.0, **settings).latents
    torch.testing.assert_close(unguided, plain)
    assert not torch.allclose(guided, plain)


def test_callback_on_step_end_sees_and_replaces_latents(pipe):
    seen = []

    def callback(p, step, timestep, kwargs):
        seen.append((step, float(timestep), kwargs["latents"].shape))
        return {"latents": torch.zeros_like(kwargs["latents"])} if step == 2 else {}

    out = pipe(disc_image(), seed=0, callback_on_step_end=callback, **FAST)
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][1] == 1000.0
    assert torch.count_nonzero(out.latents) == 0


def test_preview_hook_streams_coarse_meshes(pipe):
    def previews(resolution: int) -> list[PreviewEvent]:
        events: list[PreviewEvent] = []
        pipe(disc_image(), seed=0, preview_every=2, preview_callback=events.append, preview_resolution=resolution,
             **{**FAST, "num_inference_steps": 5})
        return events

    coarse, fine = previews(16), previews(32)
    assert [e.step for e in coarse] == [2, 4] and all(e.num_steps == 5 for e in coarse)
    assert all(isinstance(e.mesh, trimesh.Trimesh) for e in coarse + fine)
    # Extracted at preview_resolution: half the cells per side leaves about a quarter of the faces.
    assert all(len(c.mesh.faces) < len(f.mesh.faces) / 2 for c, f in zip(coarse, fine))
    assert coarse[1].elapsed >= coarse[0].elapsed


@pytest.mark.parametrize("scheduler", [TripoSGDDPMScheduler(), TripoSGEDMScheduler()])
def test_alternative_samplers_run_behind_the_same_pipeline(scheduler):
    pipe = make_random_pipeline(seed=0, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    timesteps = record_transformer_inputs(pipe, "timestep")
    out = pipe(disc_image(), seed=0, **FAST)
    # The sampler's own schedule drives the loop: one model call per entry (EDM's Heun would make 2N − 1).
    assert [float(t[0]) for t in timesteps] == pytest.approx(scheduler.timesteps.tolist(), abs=1e-3)
    assert torch.isfinite(out.latents).all()


def test_clip_branch_pipeline_and_missing_clip_error():
    pipe = make_random_pipeline(seed=0, use_clip=True)
    pipe.set_progress_bar_config(disable=True)
    clip_tokens = record_transformer_inputs(pipe, "encoder_hidden_states_2")
    pipe(disc_image(), seed=0, **FAST)
    # Every model call gets the CLIP token (B, 1, D_clip): zeros for the unconditional half, the image's for the other.
    assert len(clip_tokens) == FAST["num_inference_steps"] and all(c.shape == (2, 1, 24) for c in clip_tokens)
    assert all(torch.count_nonzero(c[0]) == 0 and torch.count_nonzero(c[1]) > 0 for c in clip_tokens)
    pipe.image_encoder_clip = None
    with pytest.raises(ValueError, match="image_encoder_clip"):
        pipe(disc_image(), seed=0, **FAST)


def test_save_pretrained_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    module, name = index["transformer"]
    assert getattr(importlib.import_module(module), name) is TripoSGDiTModel
    loaded = TripoSGPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    a, b = pipe(disc_image(), seed=5, **FAST), loaded(disc_image(), seed=5, **FAST)
    torch.testing.assert_close(a.latents, b.latents)
    np.testing.assert_allclose(a.samples[0][0], b.samples[0][0], atol=1e-5)


def test_loads_a_folder_laid_out_like_the_release(pipe, tmp_path):
    """model_index.json with the release's module names and a VAE config named Tripo2VAEModel."""
    folder = tmp_path / "release"
    pipe.save_pretrained(folder)
    rewrite_as_release_folder(folder)

    loaded = TripoSGPipeline.from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.transformer, TripoSGDiTModel) and isinstance(loaded.vae, TripoSGVAEModel)
    assert isinstance(loaded.scheduler, RectifiedFlowScheduler) and loaded.scheduler.config.shift == 1.0
    torch.testing.assert_close(loaded(disc_image(), seed=2, **FAST).latents, pipe(disc_image(), seed=2, **FAST).latents)


def test_sphere_prior_gives_a_field_positive_inside():
    pipe = make_random_pipeline(seed=0)
    points = torch.tensor([[[0.0, 0.0, 0.0], [0.9, 0.9, 0.9], [0.3, 0.0, 0.0], [0.0, 0.95, 0.0]]])
    with torch.no_grad():
        values = pipe.vae.decode(torch.randn(1, 16, 8), points).sample[0, :, 0]
    assert values[0] > 0 and values[2] > 0 and values[1] < 0 and values[3] < 0


def test_stages_latent_output_interrupt_and_a_decoder_of_ones_own(pipe):
    from triposg.geometry import SurfaceTrackingDecoder

    latent_only = pipe(disc_image(), seed=3, output_type="latent", **FAST)
    assert latent_only.samples == [] and latent_only.meshes == [] and latent_only.latents.shape[0] == 1
    full = pipe(disc_image(), seed=3, **FAST)
    torch.testing.assert_close(latent_only.latents, full.latents)  # the same loop; extraction skipped

    steps_run = []

    def stop_after_two(p, i, t, tensors):
        steps_run.append(i)
        if i == 1:
            p.interrupt = True
        return tensors

    pipe(disc_image(), seed=3, output_type="latent", callback_on_step_end=stop_after_two,
         **{**FAST, "num_inference_steps": 5})
    assert steps_run == [0, 1]  # the loop ended after the step that set the flag
    counted = []
    pipe(disc_image(), seed=3, output_type="latent", **FAST,
         callback_on_step_end=lambda p, i, t, tensors: counted.append(i) or tensors)
    assert counted == list(range(FAST["num_inference_steps"]))  # the flag is reset by the next call

    resolution = FAST.get("octree_resolution", 32)
    own = SurfaceTrackingDecoder(probe_resolution=resolution // 2)
    custom = pipe(disc_image(), seed=3, extraction=own, **FAST)
    np.testing.assert_allclose(custom.samples[0][0], full.samples[0][0], atol=1e-6)


@pytest.mark.parametrize("arguments, message", [
    ({"num_inference_steps": 0}, "num_inference_steps"),
    ({"num_tokens": -4}, "num_tokens"),
    ({"guidance_scale": -1.0}, "guidance_scale"),
    ({"output_type": "pt"}, "output_type"),
    ({"callback_on_step_end_tensor_inputs": ["noise"]}, "not available"),
    ({"seed": 1, "generator": torch.Generator()}, "not both"),
])
def test_check_inputs_refuses_bad_arguments_before_any_work(pipe, arguments, message):
    with pytest.raises(ValueError, match=message):
        pipe(disc_image(), **{**FAST, **arguments})


def test_a_pipeline_for_one_run_keeps_the_loaded_folders_settings():
    pipe = make_random_pipeline(seed=0)
    pipe.generation_defaults = GenerationDefaults(num_inference_steps=4, guidance_interval=(0.0, 0.5),
                                                  query_precision="bf16")
    run = pipe.with_scheduler()
    assert run.scheduler is not pipe.scheduler and run.transformer is pipe.transformer
    assert run.generation_defaults == pipe.generation_defaults  # what the app's runs sample with
