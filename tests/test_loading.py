"""The embedded default model loads offline and generates; device and folder errors are clear."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from triposg.loading import DEFAULT_MODEL_PATH, GenerationDefaults, load_pipeline, resolve_device


def test_embedded_default_model_loads_offline_and_makes_a_mesh():
    pipe, defaults = load_pipeline(device="cpu")
    assert (DEFAULT_MODEL_PATH / "model_index.json").is_file()
    assert defaults == GenerationDefaults.from_folder(DEFAULT_MODEL_PATH)
    pipe.set_progress_bar_config(disable=True)
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((90, 160, 40, 255), (16, 10, 48, 54))
    out = pipe(image, seed=defaults.seed, num_inference_steps=2, guidance_scale=defaults.guidance_scale,
               num_tokens=defaults.num_tokens, octree_resolution=64)
    assert len(out.meshes[0].faces) > 0


def test_generation_defaults_round_trip(tmp_path):
    GenerationDefaults(num_inference_steps=7, num_tokens=64, guidance_interval=(0.0, 0.5)).save(tmp_path)
    assert GenerationDefaults.from_folder(tmp_path) == GenerationDefaults(num_inference_steps=7, num_tokens=64,
                                                                          guidance_interval=(0.0, 0.5))
    # A folder without the file is the release's layout: the release's settings, 512 cells per side included.
    assert GenerationDefaults.from_folder(tmp_path / "elsewhere") == GenerationDefaults.release()
    assert GenerationDefaults.release().octree_resolution == 512 and GenerationDefaults().octree_resolution == 256


def test_missing_default_model_and_non_pipeline_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIPOSG_DEFAULT_MODEL", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match="default model is missing"):
        load_pipeline(device="cpu")
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_pipeline(tmp_path, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on machines without CUDA")
def test_cuda_request_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="--device cpu"):
        resolve_device("cuda")
    assert resolve_device(None).type == "cpu"


def test_a_plain_call_samples_with_the_folders_generation_config(tmp_path):
    """`pipe(image)` on a folder with `generation_config.json` uses its settings; explicit arguments win; a folder
    without the file (the release layout) keeps the release script's defaults; saving writes the file back."""
    from triposg.pipelines import TripoSGPipeline, make_random_pipeline

    bare = tmp_path / "bare"
    make_random_pipeline(seed=0).save_pretrained(bare)
    assert not (bare / "generation_config.json").exists()
    assert TripoSGPipeline.from_pretrained(bare).generation_defaults == GenerationDefaults.release()
    tuned = GenerationDefaults(num_inference_steps=3, guidance_scale=1.0, num_tokens=16, octree_resolution=32)
    tuned.save(bare)
    pipe = TripoSGPipeline.from_pretrained(bare)
    assert pipe.generation_defaults == tuned
    pipe.set_progress_bar_config(disable=True)
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((90, 160, 40, 255), (16, 10, 48, 54))
    steps: list[int] = []

    def count(_pipe, step, _t, tensors):
        steps.append(step)
        return tensors

    out = pipe(image, seed=0, callback_on_step_end=count)
    assert len(steps) == 3 and out.latents.shape[1] == 16
    steps.clear()
    assert pipe(image, seed=0, num_inference_steps=2, callback_on_step_end=count).latents.shape[1] == 16
    assert len(steps) == 2
    pipe.save_pretrained(tmp_path / "again")
    assert GenerationDefaults.from_folder(tmp_path / "again") == tuned
    with pytest.raises(TypeError, match="GenerationDefaults"):
        pipe.generation_defaults = {"num_inference_steps": 3}


def test_generation_settings_have_one_set_of_limits(tmp_path):
    assert GenerationDefaults().validate() == GenerationDefaults()
    assert GenerationDefaults(octree_resolution=96).validate()  # any even resolution for tracking
    assert GenerationDefaults(octree_resolution=97).validate(extraction="dense")
    for bad, message in [(dict(num_inference_steps=0), "num_inference_steps must be between 1 and 200"),
                         (dict(num_tokens=5000), "num_tokens"), (dict(guidance_scale=-1.0), "guidance_scale"),
                         (dict(octree_resolution=97), "even resolution"), (dict(query_precision="fp8"), "query_precision"),
                         (dict(num_inference_steps=2.5), "whole number"),
                         (dict(guidance_interval=(0.5, 1.5)), "0 <= start <= stop <= 1"),
                         (dict(guidance_interval=(0.6, 0.4)), "0 <= start <= stop <= 1"),
                         (dict(guidance_interval=0.5), "two numbers")]:
        with pytest.raises(ValueError, match=message):
            GenerationDefaults(**bad).validate()
    (tmp_path / "generation_config.json").write_text('{"num_inference_steps": 0}')
    with pytest.raises(ValueError, match="generation_config.json is invalid: num_inference_steps"):
        GenerationDefaults.from_folder(tmp_path)
