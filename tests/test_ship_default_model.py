"""scripts/ship_default_model.py: a trained pipeline becomes the embedded default model, in fp16."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from script_loader import load_script as load_named_script

from triposg.loading import GenerationDefaults, load_pipeline
from triposg.pipelines import make_random_pipeline


def load_script():
    return load_named_script("ship_default_model")


@pytest.fixture
def trained(tmp_path):
    """A float32 pipeline folder as training exports it, with its generation settings."""
    folder = tmp_path / "run" / "pipeline"
    pipe = make_random_pipeline(seed=3)
    pipe.save_pretrained(folder)
    GenerationDefaults(num_inference_steps=7, guidance_scale=2.5, num_tokens=64, octree_resolution=96).save(folder)
    return folder, pipe


def test_ship_writes_fp16_weights_keeps_the_card_and_replaces_the_rest(tmp_path, trained):
    source, original = trained
    out = tmp_path / "assets" / "default-model"
    out.mkdir(parents=True)
    (out / "README.md").write_text("# model card\n")
    (out / "stale.bin").write_bytes(b"old weights")
    samples = tmp_path / "grid.png"
    samples.write_bytes(b"\x89PNG fake")

    load_script().ship(source, out, samples)

    assert (out / "README.md").read_text() == "# model card\n"
    assert (out / "samples.png").read_bytes() == b"\x89PNG fake"
    assert not (out / "stale.bin").exists()
    assert [p.name for p in out.parent.iterdir()] == ["default-model"]  # no staging or retired folder left
    assert json.loads((out / "generation_config.json").read_text())["num_inference_steps"] == 7
    weights = sorted(out.rglob("*.safetensors"))
    assert {w.parent.name for w in weights} >= {"vae", "transformer", "image_encoder_dinov2"}
    for path in weights:
        with safe_open(str(path), "pt") as handle:
            assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}, path

    pipe, defaults = load_pipeline(out, "cpu")
    assert pipe.transformer.dtype == torch.float32 and defaults.octree_resolution == 96
    for name in ("transformer", "vae"):
        shipped, trained_state = getattr(pipe, name).state_dict(), getattr(original, name).state_dict()
        assert shipped.keys() == trained_state.keys()
        for key, value in trained_state.items():
            torch.testing.assert_close(shipped[key], value, rtol=1e-3, atol=1e-4)  # fp16 rounding only


def test_ship_refuses_a_folder_that_is_not_a_pipeline(tmp_path):
    out = tmp_path / "default-model"
    out.mkdir()
    (out / "README.md").write_text("keep me")
    with pytest.raises(FileNotFoundError, match="not a pipeline folder"):
        load_script().ship(tmp_path / "runs" / "missing", out)
    assert (out / "README.md").read_text() == "keep me"  # the shipped model is untouched


def test_a_failed_swap_puts_the_old_model_back(tmp_path, trained, monkeypatch):
    source, _ = trained
    out = tmp_path / "default-model"
    out.mkdir()
    (out / "README.md").write_text("old card")
    (out / "model_index.json").write_text("{}")
    script = load_script()
    real_rename = Path.rename

    def failing_rename(self, target):
        if Path(target) == out and self.name.startswith(".default-model-") and not self.name.endswith("-old"):
            raise OSError("disk full")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="disk full"):
        script.ship(source, out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "model_index.json"]  # the old model, restored
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging or retired copy
