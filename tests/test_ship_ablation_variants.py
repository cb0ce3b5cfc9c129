"""scripts/ship_ablation_variants.py: finished ablation runs become fp16 pipelines the app lists."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from script_loader import load_script

from evaluation.variants import shipped_variant_groups, shipped_variant_specs
from triposg.loading import GenerationDefaults, load_pipeline
from triposg.pipelines import make_random_pipeline


def finished_run(results: Path, group: str, variant: str, seed: int = 0, reused_from: Path | None = None,
                 status: str = "ok") -> Path:
    run = results / "runs" / group / f"{variant}-s{seed}"
    run.mkdir(parents=True)
    if reused_from is None and status == "ok":
        make_random_pipeline(seed=len(variant)).save_pretrained(run / "pipeline")
        GenerationDefaults(num_inference_steps=5, num_tokens=32, octree_resolution=64).save(run / "pipeline")
    (run / "result.json").write_text(json.dumps({"variant": variant, "seed": seed, "status": status,
                                                 "reused_from": str(reused_from) if reused_from else None}))
    return run


@pytest.fixture
def results(tmp_path):
    results = tmp_path / "results"
    skip = finished_run(results, "table1-skip", "skip")
    finished_run(results, "table1-objective", "ddpm")
    finished_run(results, "table1-objective", "rectified-flow", reused_from=skip)
    finished_run(results, "table1-objective", "edm", status="failed")
    pd.DataFrame([{"label": "ddpm · s0", "variant": "ddpm", "seed": "0", "status": "ok", "fd_dinov2": 12.5,
                   "chamfer": 0.1234},
                  {"label": "edm · s0", "variant": "edm", "seed": "0", "status": "failed"},
                  {"label": "rectified-flow · s0", "variant": "rectified-flow", "seed": "0", "status": "ok",
                   "fd_dinov2": 9.75, "chamfer": 0.111}]).to_csv(results / "table1-objective.csv", index=False)
    return results


def test_finished_variants_ship_as_fp16_pipelines_the_app_lists(results, tmp_path, capsys):
    out = tmp_path / "assets" / "ablation-variants"
    script = load_script("ship_ablation_variants")
    assert script.main(["table1-objective", "--results", str(results), "--out", str(out)]) == 0
    groups = shipped_variant_groups(out)
    assert [p.name for p in groups["table1-objective"]] == ["ddpm", "rectified-flow"]  # edm failed: not shipped
    assert "from " + str(results / "runs" / "table1-skip" / "skip-s0" / "pipeline") in capsys.readouterr().out
    pipe, defaults = load_pipeline(str(out / "table1-objective" / "ddpm"), "cpu")
    assert defaults.num_inference_steps == 5 and defaults.num_tokens == 32
    from safetensors import safe_open

    weights = next((out / "table1-objective" / "ddpm" / "transformer").glob("*.safetensors"))
    with safe_open(weights, "pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}
    readme = (out / "README.md").read_text()
    assert "| `table1-objective` | `ddpm` | 12.5 | — | 0.123 |" in readme
    assert "| `table1-objective` | `rectified-flow` | 9.75 |" in readme
    specs = shipped_variant_specs(groups["table1-objective"])
    assert [s.num_tokens for s in specs] == [32, 32]


def test_unfinished_or_vae_runs_are_clear_errors(results, tmp_path):
    script = load_script("ship_ablation_variants")
    with pytest.raises(ValueError, match="did not finish"):
        script.variant_pipeline(results, "table1-objective", "edm")
    with pytest.raises(FileNotFoundError, match="run the group first"):
        script.variant_pipeline(results, "table1-objective", "nope")
    vae_run = results / "runs" / "table3-vae" / "sdf-s0"
    vae_run.mkdir(parents=True)
    (vae_run / "result.json").write_text(json.dumps({"status": "ok"}))
    with pytest.raises(FileNotFoundError, match="VAE groups cannot be shipped"):
        script.variant_pipeline(results, "table3-vae", "sdf")
