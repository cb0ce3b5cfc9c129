"""scripts/save_model_parts.py: trained parts copied as fp16, read back by the flow trainer as float32."""

from __future__ import annotations

import json

import pytest
import torch
from script_loader import load_script

from training.conditioning import ConditionEncoder
from training.train_flow import ConditionConfig, FlowModelConfig, build_condition_encoder, build_transformer, build_vae
from triposg.pipelines import make_random_pipeline


def test_parts_are_written_in_fp16_and_train_as_float32(tmp_path):
    pipe = make_random_pipeline(latent_channels=8)
    pipe.vae.save_pretrained(tmp_path / "vae-run")
    pipe.transformer.save_pretrained(tmp_path / "dit-run")
    ConditionEncoder(pipe.image_encoder_dinov2, pipe.feature_extractor_dinov2).save_pretrained(tmp_path / "enc-run")
    (tmp_path / "enc-run" / "metrics.json").write_text(json.dumps({"family_accuracy": 0.5}))
    out = tmp_path / "parts"
    (out / "vae").mkdir(parents=True)
    (out / "vae" / "stale.txt").write_text("from an older copy")

    load_script("save_model_parts").main(["--vae", str(tmp_path / "vae-run"), "--encoder", str(tmp_path / "enc-run"),
                                          "--transformer", str(tmp_path / "dit-run"), "--out", str(out)])

    assert not (out / "vae" / "stale.txt").exists() and not list(out.glob("*.staging"))
    assert json.loads((out / "encoder" / "metrics.json").read_text()) == {"family_accuracy": 0.5}
    saved_size = sum(f.stat().st_size for f in (out / "vae").rglob("*.safetensors"))
    full_size = sum(f.stat().st_size for f in (tmp_path / "vae-run").rglob("*.safetensors"))
    assert saved_size < 0.6 * full_size  # half-precision weights
    vae = build_vae(FlowModelConfig(vae=str(out / "vae")))
    encoder = build_condition_encoder(ConditionConfig(from_pipeline=str(out / "encoder")))
    assert {p.dtype for p in vae.parameters()} == {p.dtype for p in encoder.parameters()} == {torch.float32}
    torch.testing.assert_close(vae.quant.weight, pipe.vae.quant.weight.half().float(), rtol=0, atol=0)
    transformer = build_transformer(FlowModelConfig(pretrained=str(out / "transformer")), 8, encoder)
    assert {p.dtype for p in transformer.parameters()} == {torch.float32}
    first = next(iter(pipe.transformer.state_dict().items()))
    torch.testing.assert_close(transformer.state_dict()[first[0]], first[1].half().float(), rtol=0, atol=0)
    patch = encoder.dinov2.embeddings.patch_embeddings.projection.weight
    torch.testing.assert_close(patch, pipe.image_encoder_dinov2.embeddings.patch_embeddings.projection.weight.half()
                               .float(), rtol=0, atol=0)


def test_missing_source_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_script("save_model_parts").main(["--vae", str(tmp_path / "nope"), "--out", str(tmp_path / "parts")])
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_script("save_model_parts").main(["--out", str(tmp_path / "parts")])
