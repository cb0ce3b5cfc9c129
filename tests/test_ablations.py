"""Ablation runner: a VAE group and a flow group end to end on a 3-object corpus (a few steps each), the CSV
the app reads, skipping finished runs, failures recorded per variant, and clear errors for bad group files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from evaluation.results import bar_columns, read_results_folder
from experiments.ablations import (
    GROUPS_DIR,
    AblationGroupError,
    EvaluateConfig,
    group_command,
    list_groups,
    load_group,
    run_fingerprint,
    run_group,
    variant_config,
)
from experiments.ablations import run as ablation_runs
from experiments.ablations.__main__ import main

ENGINE = ["train.max_steps=3", "train.batch_size=2", "train.log_every=1", "train.checkpoint_every=3",
          "train.sample_every=0", "train.progress_bar=false", "train.tensorboard=false", "train.warmup_steps=0"]
TINY_VAE = [("model.args={latent_channels: 8, num_attention_heads: 2, width_encoder: 32, width_decoder: 32, "
             "num_layers_encoder: 1, num_layers_decoder: 1}"), "data.num_surface=128", "data.num_near=64",
            "data.num_volume=64", "data.num_on_surface=64", "data.token_counts=[16]"]
TINY_FLOW = ["model.args.width=32", "model.args.num_layers=3", "model.args.num_attention_heads=2",
             ("model.condition.dinov2_args={hidden_size: 32, num_hidden_layers: 1, intermediate_size: 64, "
              "num_attention_heads: 2, image_size: 56, patch_size: 14}"), "data.image_size=56",
             "data.num_surface=128", "data.token_counts=[16]", "export.num_inference_steps=2",
             "export.octree_resolution=32", "export.num_tokens=16", "sample.num_tokens=16",
             # the groups' preset reuses the default model's encoder and a latent cache in the repository
             "model.condition.from_pipeline=null", "model.condition.trainable=null", "data.latent_cache=null",
             "train.mixed_precision=no"]
# Evaluate on the training split: 3 objects cannot give both a training set and a 2-object test split.
VAE_EVAL = ["split=train", "limit=1", "num_tokens=16", "num_surface=128", "resolution=32", "num_points=2000"]
FLOW_EVAL = ["split=train", "limit=2", "num_inference_steps=2", "octree_resolution=32", "sample_tokens=16",
             "fid=off", "recon_num_points=2000"]


def test_every_shipped_group_parses_and_resolves_its_configs():
    groups = {group.name: group for group in list_groups()}
    assert set(groups) == {"table1-condition", "table1-skip", "table1-objective", "table2-tokens", "table3-vae",
                           "table4-data"}
    for group in groups.values():
        for variant in group.variants:
            config = variant_config(group, variant, 0, "data/tiny", "out")
            assert config.train.output_dir == str(Path("out") / "runs" / group.name / f"{variant}-s0")
    moe = variant_config(groups["table2-tokens"], "tokens-256-moe", 1, "data/tiny", "out")
    assert moe.model.upcycle_from == str(Path("out") / "runs" / "table2-tokens" / "tokens-256-s1" / "pipeline")
    scratch = variant_config(groups["table1-condition"], "clip-dinov2", 0, "data/tiny", "out")
    assert scratch.model.condition.from_pipeline is None and scratch.model.condition.clip_args["hidden_size"] == 128
    small = variant_config(groups["table4-data"], "curated-small", 0, "data/tiny", "out")
    assert small.data.objects_per_family == 38 and not small.data.include_flagged


def test_a_var_without_value_fails_only_its_variant_and_names_the_flag(tmp_path):
    path = tmp_path / "data.yaml"
    path.write_text("kind: flow\nbase: training/configs/flow-tiny.yaml\nvars: {corpus_large: null}\n"
                    "variants:\n  small: {}\n  large: {data.corpus: '${corpus_large}'}\n")
    group = load_group(path)
    assert variant_config(group, "small", 0, "data/tiny", "out").data.corpus == "data/tiny"
    with pytest.raises(ValueError, match="--var corpus_large="):
        variant_config(group, "large", 0, "data/tiny", "out")
    large = variant_config(group, "large", 0, "data/tiny", "out", variables={"corpus_large": "data/big"})
    assert large.data.corpus == "data/big"
    assert group_command(group, "out", "data/tiny").endswith("--var corpus_large=CORPUS_LARGE")


@pytest.mark.filterwarnings("ignore:step 3. the decoded field has no surface yet")
def test_vae_group_end_to_end_then_skips_finished_runs(training_corpus, tmp_path, capsys, monkeypatch):
    out = tmp_path / "results"
    table = run_group(GROUPS_DIR / "table3-vae.yaml", training_corpus, out,
                      sets=ENGINE + TINY_VAE, evaluate_sets=VAE_EVAL)
    assert list(table["variant"]) == ["occupancy", "sdf", "sdf-normal", "sdf-normal-eikonal"]
    assert (table["status"] == "ok").all(), table[["variant", "error"]]
    assert (table["seed"] == "0").all() and (table["max_steps"] == 3).all()
    assert {"f_score", "normal_consistency"} <= set(table.columns)
    assert table["f_score"].between(0, 1).all()
    for variant in table["variant"]:
        assert (out / "runs" / "table3-vae" / f"{variant}-s0" / "vae" / "config.json").is_file()

    per_object = pd.read_csv(out / "per_object" / "table3-vae.csv")
    assert sorted(per_object["variant"].unique()) == sorted(table["variant"])
    assert {"object_id", "chamfer", "f_score", "normal_consistency"} <= set(per_object.columns)
    measured = {t.name: t for t in read_results_folder(out)}
    assert measured["table3-vae"].error is None
    assert bar_columns(measured["table3-vae"].frame)[0] == "label"

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(ablation_runs, "_train", no_training)
    capsys.readouterr()
    again = run_group(GROUPS_DIR / "table3-vae.yaml", training_corpus, out,
                      sets=ENGINE + TINY_VAE, evaluate_sets=VAE_EVAL)
    assert capsys.readouterr().out.count("done before, skipped") == 4
    pd.testing.assert_frame_equal(again, table)

    # An interrupted run (checkpoints, no export, no result) continues from its latest checkpoint.
    monkeypatch.undo()
    interrupted = out / "runs" / "table3-vae" / "sdf-s0"
    shutil.rmtree(interrupted / "vae")
    (interrupted / "result.json").unlink()
    resumed = run_group(GROUPS_DIR / "table3-vae.yaml", training_corpus, out,
                        sets=[*ENGINE, *TINY_VAE, "train.max_steps=4"],
                        evaluate_sets=VAE_EVAL)
    steps = pd.read_csv(interrupted / "logs" / "metrics.csv")["step"].tolist()
    assert steps == [1, 2, 3, 4]
    assert resumed.set_index("variant").loc["sdf", "max_steps"] == 4
    assert (resumed.set_index("variant").drop(index="sdf")["max_steps"] == 3).all()


def test_flow_group_end_to_end_with_two_seeds_reports_mean_and_std(training_corpus, vae_folder, tmp_path):
    out = tmp_path / "results"
    code = main(["run", "table1-skip", "--corpus", str(training_corpus), "--out", str(out), "--seeds", "0", "1",
                 *[arg for s in [*ENGINE, *TINY_FLOW, f"model.vae={vae_folder}"] for arg in ("--set", s)],
                 *[arg for s in FLOW_EVAL for arg in ("--eval", s)]])
    assert code == 0
    table = pd.read_csv(out / "table1-skip.csv", dtype={"seed": str})
    assert list(zip(table["variant"], table["seed"])) == [("no-skip", "0"), ("no-skip", "1"), ("no-skip", "mean"),
                                                          ("skip", "0"), ("skip", "1"), ("skip", "mean")]
    per_seed = table[table["seed"] != "mean"]
    assert (per_seed["status"] == "ok").all(), per_seed[["variant", "error"]]
    for metric in ("fd_pixels16", "fd_dinov2"):
        assert per_seed[metric].notna().all() and (per_seed[metric] >= 0).all(), metric
    assert per_seed["f_score"].between(0, 1).all()
    means = table[table["seed"] == "mean"].set_index("variant")
    for variant in ("no-skip", "skip"):
        values = per_seed.loc[per_seed["variant"] == variant, "fd_dinov2"]
        assert means.loc[variant, "fd_dinov2"] == pytest.approx(values.mean())
        assert means.loc[variant, "fd_dinov2_std"] == pytest.approx(values.std(ddof=1))
    assert "normal_fid" not in table  # fid=off: no empty column for the app to chart as zeros
    assert bar_columns(table.drop(columns="label"))[1] == "fd_dinov2"

    # Another group whose variant resolves to table1-skip's "skip" run reuses its result without training.
    twin = tmp_path / "twin.yaml"
    twin.write_text("kind: flow\nbase: training/configs/flow-ablation.yaml\nbudget: {max_steps: 600}\n"
                    "overrides: {model.args.use_skip_connections: true}\n"
                    "variants:\n  rectified-flow: {flow.objective: rectified_flow}\n"
                    "evaluate: {split: test, per_family: 2, octree_resolution: 64}\n")
    sets = [*ENGINE, *TINY_FLOW, f"model.vae={vae_folder}"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ablation_runs, "_train", lambda *a, **k: pytest.fail("an identical run was trained again"))
        patch.setattr(ablation_runs, "evaluate_flow", lambda *a, **k: pytest.fail("an identical run was re-evaluated"))
        reused = run_group(twin, training_corpus, out, seeds=[0], sets=sets, evaluate_sets=FLOW_EVAL)
    row = reused.iloc[0]
    assert row["status"] == "ok" and row["reused_from"].endswith("skip-s0")
    source = per_seed[(per_seed["variant"] == "skip") & (per_seed["seed"] == "0")].iloc[0]
    assert row["fd_dinov2"] == pytest.approx(source["fd_dinov2"])
    # A different evaluation is a different run.
    group = load_group(twin)
    config = variant_config(group, "rectified-flow", 0, training_corpus, out, sets)
    evaluate, changed = EvaluateConfig(split="train", limit=2), EvaluateConfig(split="train", limit=1)
    assert (run_fingerprint("flow", config, training_corpus, evaluate)
            != run_fingerprint("flow", config, training_corpus, changed))


def test_a_failing_variant_is_recorded_not_fatal(training_corpus, tmp_path):
    group = tmp_path / "broken.yaml"
    group.write_text("kind: vae\nbase: training/configs/vae-tiny.yaml\nvariants:\n"
                     "  missing-weights: {model.pretrained: /nonexistent/vae}\n")
    out = tmp_path / "results"
    assert main(["run", str(group), "--corpus", str(training_corpus), "--out", str(out)]) == 1
    table = pd.read_csv(out / "broken.csv")
    assert table.loc[0, "status"] == "failed"
    assert "/nonexistent/vae" in table.loc[0, "error"]


@pytest.mark.parametrize("text, message", [
    ("kind: gan\nbase: training/configs/vae-tiny.yaml\nvariants: {a: {}}\n", "`kind` must be one of"),
    ("kind: vae\nbase: training/configs/nope.yaml\nvariants: {a: {}}\n", "base preset"),
    ("kind: vae\nbase: training/configs/vae-tiny.yaml\nvariants: {}\n", "`variants` is empty"),
    ("kind: vae\nbase: training/configs/vae-tiny.yaml\nvariant: {a: {}}\n", "unknown key"),
    (("kind: flow\nbase: training/configs/flow-tiny.yaml\nvariants:\n  moe: {model.upcycle_from: '${run:dense}'}\n"
      "  dense: {}\n"), "not a variant listed before"),
    ("kind: vae\nbase: training/configs/vae-tiny.yaml\nvariants: {a: {}}\nevaluate: {splitt: test}\n",
     "valid keys"),
])
def test_bad_group_file_gives_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(AblationGroupError, match=message):
        load_group(path)


def test_a_typo_in_an_override_fails_before_any_training(training_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(ablation_runs, "_train", lambda *a, **k: pytest.fail("trained despite a bad override"))
    path = tmp_path / "typo.yaml"
    path.write_text("kind: vae\nbase: training/configs/vae-tiny.yaml\nvariants: {a: {loss.feild: sdf}}\n")
    with pytest.raises(AblationGroupError, match="valid keys"):
        run_group(path, training_corpus, tmp_path / "results")


@pytest.mark.parametrize("values, named", [({"guidance_scale": -1.0}, "evaluate.guidance_scale"),
                                           ({"num_inference_steps": 0}, "evaluate.num_inference_steps"),
                                           ({"octree_resolution": 65}, "evaluate.octree_resolution"),
                                           ({"sample_tokens": 0}, "evaluate.sample_tokens")])
def test_evaluation_sampling_overrides_get_the_pipelines_limits(values, named):
    assert EvaluateConfig(octree_resolution=64, guidance_scale=3.0).octree_resolution == 64  # valid ones pass
    with pytest.raises(ValueError, match=named):
        EvaluateConfig(**values)
