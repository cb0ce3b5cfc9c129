"""The ablation report: our group tables (synthetic CSVs and sidecars, no training) beside the paper's Tables 1–4,
with pairwise verdicts (agrees, disagrees, within seed noise), failed and missing runs, and the commands to run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.ablation_report import REPORT_NAME, ablation_report, paired_differences, write_ablation_report
from evaluation.paper_tables import paper_ablation_tables
from experiments.ablations import (
    GROUPS_DIR,
    AblationGroupError,
    group_command,
    group_info,
    list_groups,
    load_group,
    run_dir,
    write_group_table,
)
from experiments.ablations.__main__ import main
from experiments.ablations.group import RESULT_FILE

DIRECTION = {"normal_fid": "lower", "fd_dinov2": "lower", "chamfer": "lower", "f_score": "higher",
             "normal_consistency": "higher"}
SKIP_ROWS = {"no-skip": "CLIP-DINOv2 · R-Flow", "skip": "CLIP-DINOv2 + skip · R-Flow"}  # paper: 10.61, 9.47


def write_group(folder: Path, name: str, paper_table: int, paper_rows: dict[str, str],
                rows: list[dict], command: str = "") -> None:
    """A `<name>.csv` with `rows` (variant, seed, status, metrics...) and its sidecar, as the runner writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    sidecar = {"group": name, "paper_table": paper_table, "paper_rows": paper_rows, "variants": list(paper_rows),
               "metric_direction": DIRECTION, "command": command or f"python -m experiments.ablations run {name}.yaml",
               "csv": f"{name}.csv"}
    (folder / f"{name}.json").write_text(json.dumps(sidecar))


def seed_rows(variant: str, metric: str, values: list[float], max_steps: int = 300) -> list[dict]:
    return [{"variant": variant, "seed": str(seed), "status": "ok", metric: value, "max_steps": max_steps}
            for seed, value in enumerate(values)]


def pair_line(report: str, first: str, second: str) -> str:
    lines = [line for line in report.splitlines() if line.startswith(f"- `{first}` vs `{second}`")]
    assert len(lines) == 1, report
    return lines[0]


def section(report: str, number: int) -> str:
    start = report.index(f"## Table {number}:")
    end = report.find("\n## ", start + 1)
    return report[start:] if end < 0 else report[start:end]


def test_agreement_on_the_same_metric_names_both_orders(tmp_path):
    rows = seed_rows("no-skip", "normal_fid", [30.0, 31.0, 32.0]) + seed_rows("skip", "normal_fid", [20.0, 21.0, 22.0])
    write_group(tmp_path, "table1-skip", 1, SKIP_ROWS, rows)
    report = ablation_report(tmp_path)
    line = pair_line(report, "no-skip", "skip")
    assert "paper: `skip` better (10.61 vs 9.47 Normal-FID)" in line
    assert "ours: `skip` better (31 ± 1 vs 21 ± 1 Normal-FID)" in line
    assert line.endswith("— **agrees**.")
    assert "- Paper order, best first: `skip` 9.47, `no-skip` 10.61" in report
    assert "- Our order, best first: `skip` 21 ± 1, `no-skip` 31 ± 1" in report
    assert "The orders are the same" in report
    assert "the same metric" in report and "Training budget: max_steps 300; runs finished: 6, failed: 0" in report
    assert "| `skip` | CLIP-DINOv2 + skip · R-Flow | 3 | ok | 21 ± 1 |" in report


def test_disagreement_on_a_stand_in_metric_says_which_metric_each_side_uses(tmp_path):
    rows = seed_rows("no-skip", "fd_dinov2", [0.38]) + seed_rows("skip", "fd_dinov2", [0.41])
    write_group(tmp_path, "table1-skip", 1, SKIP_ROWS, rows)
    report = ablation_report(tmp_path)
    line = pair_line(report, "no-skip", "skip")
    assert "paper: `skip` better (10.61 vs 9.47 Normal-FID)" in line
    assert "ours: `no-skip` better (0.38 vs 0.41 FD-DINOv2)" in line
    assert "**disagrees** (one seed: seed noise not measured)" in line
    assert "**Paper: Normal-FID (lower is better); ours: FD-DINOv2 (lower is better)**, different metrics" in report
    assert "The orders are different" in report
    assert "| 1 | `table1-skip` | Normal-FID / FD-DINOv2 | 2 ok, 0 failed | 1 disagree |" in report


def test_paired_differences_resolve_a_consistent_gap_and_not_a_random_one(tmp_path):
    rng = np.random.default_rng(0)
    objects = [f"obj-{i}" for i in range(40)]
    base = rng.uniform(0.1, 0.3, len(objects))
    per_object = pd.concat([
        pd.DataFrame({"variant": "no-skip", "seed": 0, "object_id": objects, "chamfer": base + 0.02,
                      "f_score": base}),
        pd.DataFrame({"variant": "skip", "seed": 0, "object_id": objects,
                      "chamfer": base + rng.normal(0, 0.002, len(objects)),
                      "f_score": base + rng.normal(0, 0.05, len(objects))}),
        pd.DataFrame({"variant": "skip", "seed": 1, "object_id": objects[:3], "chamfer": 0.0, "f_score": 0.0}),
    ])
    mean, low, high, count = paired_differences(per_object, "no-skip", "skip", "chamfer")
    assert count == 40  # seed 1 of `skip` has no `no-skip` partner
    assert mean == pytest.approx(0.02, abs=0.002) and 0 < low < mean < high
    mean, low, high, _ = paired_differences(per_object, "no-skip", "skip", "f_score")
    assert low < 0 < high  # zero-mean noise: not resolved
    assert paired_differences(per_object, "no-skip", "missing", "chamfer") is None

    write_group(tmp_path, "table1-skip", 1, SKIP_ROWS,
                seed_rows("no-skip", "chamfer", [0.22]) + seed_rows("skip", "chamfer", [0.20]))
    (tmp_path / "per_object").mkdir()
    per_object.to_csv(tmp_path / "per_object" / "table1-skip.csv", index=False)
    report = section(ablation_report(tmp_path), 1)
    row = next(line for line in report.splitlines() if line.startswith("| `no-skip` − `skip` |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "40"
    assert re.fullmatch(r"\*\*\+0\.0\d+ \[\+0\.0\d+, \+0\.0\d+\]\*\* `skip`", cells[2])  # lower Chamfer: skip
    assert not cells[3].startswith("**")


def test_a_hand_written_discussion_is_set_under_its_group(tmp_path):
    rows = seed_rows("no-skip", "fd_dinov2", [0.38]) + seed_rows("skip", "fd_dinov2", [0.41])
    write_group(tmp_path, "table1-skip", 1, SKIP_ROWS, rows)
    assert "**Discussion**" not in ablation_report(tmp_path)
    (tmp_path / "table1-skip.discussion.md").write_text("Two skips in a 5-block DiT carry little.\n")
    report = section(ablation_report(tmp_path), 1)
    assert "**Discussion** (by hand, from `table1-skip.discussion.md`" in report
    assert report.index("disagrees") < report.index("Two skips in a 5-block DiT carry little.")


def test_a_difference_inside_the_seed_spread_is_called_noise_not_agreement(tmp_path):
    # Ours points the paper's way (skip lower) but by 0.01 with stds of 0.05 each.
    rows = seed_rows("no-skip", "fd_dinov2", [0.40, 0.45, 0.50]) + seed_rows("skip", "fd_dinov2", [0.39, 0.44, 0.49])
    write_group(tmp_path, "table1-skip", 1, SKIP_ROWS, rows)
    line = pair_line(ablation_report(tmp_path), "no-skip", "skip")
    assert "**within seed noise**" in line and "agrees**" not in line
    assert "the difference 0.01 is no larger than the seed spread 0.1" in line


def test_vae_table_compares_every_shared_metric_and_paper_ties_are_not_comparable(tmp_path):
    rows = [{"variant": "occupancy", "seed": "0", "status": "ok", "chamfer": 0.05, "f_score": 0.70,
             "normal_consistency": 0.80},
            {"variant": "sdf", "seed": "0", "status": "ok", "chamfer": 0.04, "f_score": 0.80,
             "normal_consistency": 0.90}]
    write_group(tmp_path, "table3-vae", 3, {"occupancy": "Objaverse · OCC", "sdf": "Objaverse · SDF"}, rows)
    report = section(ablation_report(tmp_path), 3)
    lines = [line for line in report.splitlines() if line.startswith("- `occupancy` vs `sdf`")]
    assert len(lines) == 3  # Chamfer, F-score, normal consistency
    chamfer, f_score, consistency = lines
    assert "paper: `occupancy` better (4.59 vs 4.6 Chamfer)" in chamfer
    assert chamfer.endswith("**disagrees** (one seed: seed noise not measured).")
    assert "paper: a tie (0.999 vs 0.999 F-score)" in f_score and "**not comparable**" in f_score
    assert "paper: `sdf` better (0.952 vs 0.955 normal consistency)" in consistency and "**agrees**" in consistency
    assert "Verdict over all pairs: 1 agree, 1 disagree, 1 not comparable (a tie)." in report


def test_failed_runs_and_missing_variants_are_listed_with_the_command(tmp_path):
    rows = [*seed_rows("no-skip", "fd_dinov2", [0.4]),
            {"variant": "skip", "seed": "0", "status": "failed", "error": "RuntimeError: out of memory"}]
    command = "python -m experiments.ablations run table1-skip.yaml --corpus data/tiny --out results"
    write_group(tmp_path, "table1-skip", 1, {**SKIP_ROWS, "extra": "DINOv2 · R-Flow"}, rows, command)
    report = section(ablation_report(tmp_path), 1)
    assert "- `skip` seed 0 failed: RuntimeError: out of memory" in report
    assert "- `extra`: no run recorded yet" in report
    assert f"```bash\n{command}\n```" in report
    assert "| `skip` | CLIP-DINOv2 + skip · R-Flow | 0 | 1 of 1 failed | — |" in report
    assert "runs finished: 1, failed: 1" in report
    assert "No finished FD-DINOv2 for `skip`, `extra`: left out." in report
    assert " vs `" not in report  # one finished variant: no pair to judge


def test_missing_groups_name_the_command_that_produces_them(tmp_path):
    expected = [group_info(group, group_command(group, tmp_path, "data/tiny")) for group in list_groups()]
    report = ablation_report(tmp_path / "empty", expected_groups=expected)
    table4 = section(report, 4)
    assert "**No results:** no results yet" in table4
    assert ("python -m experiments.ablations run experiments/ablations/groups/table4-data.yaml --corpus data/tiny "
            f"--out {tmp_path}\n") in table4
    assert "Approximate rows" in table4  # Table 4's rows only approximate the paper's
    for number, group in [(1, "table1-skip"), (2, "table2-tokens"), (3, "table3-vae")]:
        assert f"experiments/ablations/groups/{group}.yaml --corpus data/tiny" in section(report, number)
    assert "Normal-FID" in report and "procedural" in report  # the caveats paragraph


def test_a_table_with_no_group_says_so(tmp_path):
    report = ablation_report(tmp_path)
    for number in (1, 2, 3, 4):
        assert f"No group of ours maps to Table {number}" in section(report, number)
    assert "| Objaverse · 800K raw | Objaverse | 800K | no | 11.61 |" in report  # the paper's table is shown


def test_shipped_groups_map_to_rows_of_the_paper_tables():
    labels = {table.number: set(table.frame["label"]) for table in paper_ablation_tables()}
    for group in list_groups():
        assert group.paper_rows, group.name
        assert set(group.paper_rows) <= set(group.variants)
        assert set(group.paper_rows.values()) <= labels[group.paper_table], group.name


def test_paper_rows_naming_an_unknown_variant_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: vae\nbase: training/configs/vae-tiny.yaml\npaper_table: 3\nvariants: {sdf: {}}\n"
                    "paper_rows: {sdff: 'Objaverse · SDF'}\n")
    with pytest.raises(AblationGroupError, match=r"`paper_rows` names unknown variant\(s\) \['sdff'\]"):
        load_group(path)
    path.write_text("kind: vae\nbase: training/configs/vae-tiny.yaml\nvariants: {sdf: {}}\n"
                    "paper_rows: {sdf: 'Objaverse · SDF'}\n")
    with pytest.raises(AblationGroupError, match="needs `paper_table`"):
        load_group(path)


def test_runner_sidecar_feeds_the_report_and_the_cli_prints_its_path(tmp_path, capsys):
    out = tmp_path / "results"
    group = load_group(GROUPS_DIR / "table1-skip.yaml")
    for variant, value in [("no-skip", 0.5), ("skip", 0.3)]:
        run = run_dir(out, group, variant, 0)
        run.mkdir(parents=True)
        (run / RESULT_FILE).write_text(json.dumps(
            {"variant": variant, "seed": 0, "status": "ok", "error": None, "metrics": {"fd_dinov2": value},
             "max_steps": 300}))
    write_group_table(group, out, command="python -m experiments.ablations run table1-skip --corpus data/tiny")
    sidecar = json.loads((out / "table1-skip.json").read_text())
    assert sidecar["paper_table"] == 1 and sidecar["paper_rows"] == SKIP_ROWS
    assert sidecar["metric_direction"]["fd_dinov2"] == "lower" and sidecar["metric_direction"]["f_score"] == "higher"

    assert main(["report", "--out", str(out)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == out / REPORT_NAME
    report = path.read_text()
    assert pair_line(report, "no-skip", "skip").endswith("— **agrees** (one seed: seed noise not measured).")
    assert "| 3 | `table3-vae` | — | no results | — |" in report
    assert write_ablation_report(out) == path  # without expected groups: only what the folder holds
    assert "table3-vae" not in path.read_text()
