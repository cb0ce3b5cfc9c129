"""The results folder of the groups: each group's table (`<group>.csv`), its per-object metrics, the sidecar
`<group>.json` that `evaluation.ablation_report` reads, and REPORT.md, the tables beside the paper's."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evaluation.ablation_report import write_ablation_report
from triposg.io import write_bytes_atomic

from .group import GROUPS_DIR, REPO_ROOT, RESULT_FILE, AblationGroup, list_groups, run_dir

DEFAULT_OUT = Path("results") / "ablations"
# The corpus a printed command names when none is given (the README builds it).
DEFAULT_CORPUS = Path("data") / "procedural"
# Every metric an evaluation can give and whether lower or higher is better; the CSV lists them in this order
# (only those some row has are written) and the sidecar JSON carries the directions to the report.
METRIC_DIRECTION = {"normal_fid": "lower", "normal_kid": "lower", "fd_pixels16": "lower", "kd_pixels16": "lower",
                    "fd_dinov2": "lower", "kd_dinov2": "lower", "chamfer": "lower", "f_score": "higher",
                    "normal_consistency": "higher"}
METRIC_ORDER = tuple(METRIC_DIRECTION)
PER_OBJECT_DIR = "per_object"  # `<out>/per_object/<group>.csv`: per-object metrics of every finished run
PER_OBJECT_METRICS = ("chamfer", "f_score", "normal_consistency")


def group_command(
    group: AblationGroup, out: str | Path = DEFAULT_OUT, corpus: str | Path = DEFAULT_CORPUS,
    variables: dict[str, Any] | None = None, seeds: Sequence[int] | None = None, sets: Sequence[str] = (),
    evaluate_sets: Sequence[str] = (),
) -> str:
    """The shell command that trains and evaluates `group` into `out`. A `vars` entry with no value is written
    as its upper-case name for the user to fill in (`--var corpus_large=CORPUS_LARGE` for
    `vars: {corpus_large: null}`)."""
    path = group.path.resolve()
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    words = ["python", "-m", "experiments.ablations", "run", str(shown), "--corpus", str(corpus), "--out", str(out)]
    if seeds:
        words += ["--seeds", *map(str, seeds)]
    words += [word for item in sets for word in ("--set", item)]
    words += [word for item in evaluate_sets for word in ("--eval", item)]
    for name, default in group.vars.items():
        value = (variables or {}).get(name, default)
        if value is None:
            words += ["--var", f"{name}={name.upper()}"]
        elif name in (variables or {}):
            words += ["--var", f"{name}={value}"]
    return " ".join(shlex.quote(word) for word in words)


def group_info(group: AblationGroup, command: str | None = None) -> dict[str, Any]:
    """What `evaluation.ablation_report` needs of a group, as plain data (the `<group>.json` sidecar):
    group, description, kind, paper_table, paper_rows, paper_note, variants, seeds, budget,
    metric_direction (metric → "lower"/"higher" is better), command, csv."""
    return {"group": group.name, "description": group.description, "kind": group.kind,
            "paper_table": group.paper_table, "paper_rows": dict(group.paper_rows), "paper_note": group.paper_note,
            "variants": list(group.variants), "seeds": list(group.seeds), "budget": dict(group.budget),
            "metric_direction": dict(METRIC_DIRECTION), "command": command or group_command(group),
            "csv": f"{group.name}.csv"}


def write_group_table(group: AblationGroup, out: str | Path, command: str | None = None) -> pd.DataFrame:
    """Rewrite `<out>/<group>.csv` from every stored result of the group's variants (file order, then seed):
    columns label, variant, seed, status, the metrics, `<metric>_std` (on `mean` rows), max_steps, seconds,
    error. Also writes `<out>/<group>.json` (`group_info`, with `command`: the one that produced the results).
    Returns the table."""
    out = Path(out)
    rows: list[dict[str, Any]] = []
    metric_names: list[str] = []
    stored: dict[str, list[dict[str, Any]]] = {}
    for variant in group.variants:
        results = [json.loads(p.read_text()) for p in out.glob(f"runs/{group.name}/{variant}-s*/{RESULT_FILE}")]
        results = stored[variant] = sorted((r for r in results if r.get("variant") == variant), key=lambda r: r["seed"])
        for result in results:
            metric_names += [m for m in result["metrics"] if m not in metric_names]
            rows.append({"label": f"{variant} · s{result['seed']}", "variant": variant, "seed": str(result["seed"]),
                         "status": result["status"], **result["metrics"], "max_steps": result.get("max_steps"),
                         "train_seconds": result.get("train_seconds"), "eval_seconds": result.get("eval_seconds"),
                         "reused_from": result.get("reused_from"), "error": result.get("error")})
        finished = [r for r in results if r["status"] == "ok"]
        if len(finished) > 1:
            frame = pd.DataFrame([r["metrics"] for r in finished])
            aggregate = {"label": f"{variant} · mean", "variant": variant, "seed": "mean",
                         "status": f"{len(finished)} seeds"}
            for column in frame.columns:
                aggregate[column] = float(frame[column].mean())
                aggregate[f"{column}_std"] = float(frame[column].std(ddof=1))
            rows.append(aggregate)
    ordered = sorted(metric_names, key=lambda m: (METRIC_ORDER.index(m) if m in METRIC_ORDER else len(METRIC_ORDER), m))
    columns = ["label", "variant", "seed", "status", *ordered, *[f"{m}_std" for m in ordered],
               "max_steps", "train_seconds", "eval_seconds", "reused_from", "error"]
    table = pd.DataFrame(rows, columns=columns)
    optional = [*ordered, *[f"{m}_std" for m in ordered], "max_steps", "train_seconds", "eval_seconds", "reused_from"]
    table = table.drop(columns=[c for c in optional if table[c].isna().all()])
    write_bytes_atomic(out / f"{group.name}.csv", table.to_csv(index=False).encode())  # the app may be reading it
    per_object = _per_object_table(group, out, stored)
    if per_object is not None:
        (out / PER_OBJECT_DIR).mkdir(exist_ok=True)
        write_bytes_atomic(out / PER_OBJECT_DIR / f"{group.name}.csv", per_object.to_csv(index=False).encode())
    info = group_info(group, command or group_command(group, out))
    write_bytes_atomic(out / f"{group.name}.json", json.dumps(info, indent=1, default=str).encode())
    return table


def _per_object_table(group: AblationGroup, out: Path, stored: dict[str, list[dict[str, Any]]]
                      ) -> pd.DataFrame | None:
    """Every finished run's per-object metrics (its `eval/per_object.csv`, or that of the run it reused), from
    the stored results by variant: variant, seed, object_id and the metrics, for the report's paired
    comparison over test objects."""
    frames = []
    for variant, results in stored.items():
        for result in results:
            if result.get("status") != "ok":
                continue
            run = result.get("reused_from") or run_dir(out, group, variant, result["seed"])
            source = Path(run) / "eval" / "per_object.csv"
            if not source.is_file():
                continue
            frame = pd.read_csv(source)
            columns = [c for c in PER_OBJECT_METRICS if c in frame]
            # An object with no surface (or a failed generation) scores 0 F-score and normal consistency (as
            # evaluation.vae_recon's means count it); its Chamfer stays missing, so the pair skips it there.
            failed = frame["status"] != "ok" if "status" in frame else pd.Series(False, index=frame.index)
            for column in ("f_score", "normal_consistency"):
                if column in frame:
                    frame.loc[failed, column] = frame.loc[failed, column].fillna(0.0)
            frames.append(frame[["object_id", *columns]].assign(variant=variant, seed=result["seed"]))
    if not frames:
        return None
    table = pd.concat(frames, ignore_index=True)
    return table[["variant", "seed", "object_id", *[c for c in PER_OBJECT_METRICS if c in table]]]


def write_report(out: str | Path = DEFAULT_OUT, corpus: str | Path = DEFAULT_CORPUS,
                 folder: Path = GROUPS_DIR) -> Path:
    """Write `<out>/REPORT.md`: every group's measured table beside the paper's (`evaluation.ablation_report`).
    Groups of `folder` with no results yet are listed with the command (on `corpus`) that produces them."""
    expected = [group_info(group, group_command(group, out, corpus)) for group in list_groups(folder)]
    return write_ablation_report(out, expected_groups=expected)
