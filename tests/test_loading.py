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
    GenerationDefaults(num_inference_steps=7, num_tokens=64).save(tmp_path)
    assert GenerationDefaults.from_folder(tmp_path) == GenerationDefaults(num_inference_steps=7, num_tokens=64)
    assert GenerationDefaults.from_folder(tmp_path / "elsewhere") == GenerationDefaults()


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
