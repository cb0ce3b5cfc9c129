"""The measured ablations that ship in results/ablations and the variant models in assets/ablation-variants:
complete, current (the report regenerates to the committed text) and loadable."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evaluation.ablation_report import REPORT_NAME, ablation_report
from evaluation.results import DEFAULT_RESULTS_DIR, describe_results_folder
from evaluation.variants import shipped_variant_groups, shipped_variant_specs
from experiments.ablations import DEFAULT_CORPUS, DEFAULT_OUT, group_command, group_info, list_groups, variant_config
from triposg.loading import load_pipeline
from triposg.schedulers import RectifiedFlowScheduler, TripoSGDDPMScheduler, TripoSGEDMScheduler

REPO = Path(__file__).resolve().parent.parent


def test_every_group_has_results_with_every_variant_finished():
    for group in list_groups():
        table = pd.read_csv(DEFAULT_RESULTS_DIR / f"{group.name}.csv", dtype={"seed": str})
        runs = table[table["seed"] != "mean"]
        assert set(runs["variant"]) == set(group.variants), group.name
        assert (runs["status"] == "ok").all(), runs[["variant", "seed", "error"]]
        per_object = pd.read_csv(DEFAULT_RESULTS_DIR / "per_object" / f"{group.name}.csv")
        assert set(per_object["variant"]) == set(group.variants), group.name
    status, names = describe_results_folder(DEFAULT_RESULTS_DIR)  # what the app's Ablations tab lists
    assert {group.name for group in list_groups()} <= set(names), status


def test_the_committed_report_is_current(monkeypatch):
    monkeypatch.chdir(REPO)
    expected = [group_info(group, group_command(group, DEFAULT_OUT, DEFAULT_CORPUS)) for group in list_groups()]
    text = ablation_report(DEFAULT_OUT, expected_groups=expected)
    assert text == (DEFAULT_RESULTS_DIR / REPORT_NAME).read_text(), (
        "results/ablations/REPORT.md is stale: python -m experiments.ablations report")
    assert "No results" not in text


SCHEDULERS = {"ddpm": TripoSGDDPMScheduler, "edm": TripoSGEDMScheduler, "rectified-flow": RectifiedFlowScheduler}


def test_shipped_variants_load_with_the_settings_they_were_evaluated_with():
    """Each shipped folder's generation settings are what its group file exported and evaluated (the group's
    `evaluate:` section overrides steps and guidance where it sets them), not merely what the folder says."""
    groups = shipped_variant_groups()
    assert groups, "no ablation variants in assets/ablation-variants"
    group_files = {group.name: group for group in list_groups()}
    for group, paths in groups.items():
        results = pd.read_csv(DEFAULT_RESULTS_DIR / f"{group}.csv", dtype={"seed": str})
        for path, spec in zip(paths, shipped_variant_specs(paths), strict=True):
            assert path.name in set(results["variant"]), f"{group}/{path.name} has no measured result"
            definition = group_files[group]
            exported = variant_config(definition, path.name, definition.seeds[0], DEFAULT_CORPUS, DEFAULT_OUT).export
            evaluated = definition.evaluate
            assert spec.num_tokens == exported.num_tokens, path
            assert spec.num_inference_steps == (evaluated.num_inference_steps or exported.num_inference_steps), path
            assert spec.guidance_scale == (evaluated.guidance_scale or exported.guidance_scale), path
            pipe, defaults = load_pipeline(str(path), "cpu")
            if path.name in SCHEDULERS:
                assert type(pipe.scheduler) is SCHEDULERS[path.name], path
            if path.name.startswith("tokens-"):
                assert defaults.num_tokens == int(path.name.split("-")[1]), path
            if path.name.endswith("-moe"):
                assert pipe.transformer.config.use_moe and pipe.transformer.config.num_experts == 8, path


def test_the_variants_readme_lists_every_shipped_variant():
    text = (REPO / "assets" / "ablation-variants" / "README.md").read_text()
    for group, paths in shipped_variant_groups().items():
        for path in paths:
            assert f"| `{group}` | `{path.name}` |" in text
