"""Normal-FID generation shared between processes (as under `accelerate launch` on several GPUs): the CLI under
torchrun with two CPU processes evaluates each test object once, in one process, and writes the same per-object
results as a single process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from torchrun_launch import run_torchrun

from evaluation.__main__ import main as evaluation_cli
from evaluation.fid import INCEPTION_WEIGHTS_ENV
from triposg.loading import GenerationDefaults
from triposg.pipelines import make_random_pipeline

TIMEOUT_S = 120  # torchrun and two interpreters on a loaded 2-core machine; the test usually takes ~30 s
WORKER = """
import dataclasses, json, sys
from accelerate import PartialState
import evaluation.normal_fid as normal_fid
from evaluation.__main__ import main

generated, devices = [], []
load = normal_fid.load_model_variant
def counting_load(*args, **kwargs):
    variant, pipe = load(*args, **kwargs)
    devices.append(str(pipe.device))
    def generate(image, test_object):
        generated.append(test_object.object_id)
        return variant.generate(image, test_object)
    return dataclasses.replace(variant, generate=generate), pipe
normal_fid.load_model_variant = counting_load
code = main(sys.argv[2:])
rank = PartialState().process_index
with open(f"{sys.argv[1]}-rank{rank}.json", "w") as file:  # one file per process: their stdout interleaves
    json.dump({"rank": rank, "code": code, "generated": generated, "devices": devices}, file)
"""
PER_OBJECT_COLUMNS = ["object_id", "status", "chamfer", "f_score", "precision", "recall", "normal_consistency",
                      "largest_piece"]


def test_two_processes_share_the_objects_and_match_one_process(training_corpus, tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    model = tmp_path / "model"
    make_random_pipeline(seed=0).save_pretrained(model)
    GenerationDefaults(num_inference_steps=1, num_tokens=16, octree_resolution=32, seed=0).save(model)
    script = tmp_path / "normal_fid.py"
    script.write_text(WORKER)

    def arguments(out: Path) -> list[str]:
        return ["normal-fid", "--model", str(model), "--test-set", str(training_corpus), "--split", "train",
                "--out", str(out), "--no-cache", "--recon-points", "2000", "--device", "cpu"]

    stderr = run_torchrun(script, [str(tmp_path / "worker"), *arguments(tmp_path / "two")], timeout=TIMEOUT_S)

    workers = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("worker-rank*.json"))]
    assert [w["rank"] for w in workers] == [0, 1] and all(w["code"] == 0 for w in workers), stderr[-3000:]
    first, second = (w["generated"] for w in workers)
    assert first and second and not set(first) & set(second)  # each process generated a share, none twice
    object_ids = pd.read_csv(training_corpus / "manifest.csv")["object_id"]
    assert sorted(first + second) == sorted(object_ids)

    assert evaluation_cli(arguments(tmp_path / "one")) == 0
    two, one = (pd.read_csv(tmp_path / out / "per_object.csv") for out in ("two", "one"))
    pd.testing.assert_frame_equal(two[PER_OBJECT_COLUMNS], one[PER_OBJECT_COLUMNS], rtol=1e-4)
    summaries = [json.loads((tmp_path / out / "summary.json").read_text()) for out in ("two", "one")]
    assert summaries[0]["counts"] == summaries[1]["counts"] == {"generated": 3, "cached": 0, "failed": 0, "total": 3}
    two_metrics, one_metrics = ({k: v for k, v in s["metrics"].items() if v is not None} for s in summaries)
    assert "fd_dinov2" in two_metrics and two_metrics == pytest.approx(one_metrics, rel=1e-4, nan_ok=True)
    assert len(list((tmp_path / "two" / "normals" / "generated").glob("*.png"))) == 3
