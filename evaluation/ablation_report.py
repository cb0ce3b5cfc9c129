"""A Markdown report that sets our miniature ablations beside the paper's Tables 1–4 and says where they agree.

    write_ablation_report("results/ablations")      # → results/ablations/REPORT.md

It reads only files of the results folder (written by `python -m experiments.ablations run`):
- `<group>.csv`: one row per variant × seed (`variant`, `seed`, `status`, metric columns, `max_steps`,
  `error`) and `mean` rows, which are skipped here: means and spreads are recomputed from the seed rows;
- `<group>.json`: the sidecar saying which paper table the group reproduces, the paper row each variant stands
  for (`paper_rows`), how the rows differ (`paper_note`), each metric's direction and the command that
  produced the results.
- `per_object/<group>.csv` (optional): every finished run's per-object Chamfer / F-score / normal
  consistency; each pair of variants is then compared over the same objects, with a bootstrap interval;
- `<group>.discussion.md` (optional): a hand-written reading of the numbers (why the miniature may agree or
  disagree), set under the group's verdicts; numbers cannot say why, so a person writes it after a run.
Groups that should exist but have no files yet come as `expected_groups` (dicts of the sidecar's shape), so
their section can give the command that produces them.

For each group the comparison takes every pair of our variants that stand for paper rows and asks, on a metric
each side has (the same one when we measured it, else our first available: Normal-FID falls back to
FD-pixels16, then FD-DINOv2, without local Inception weights), whether the paper and we find the same one better. A difference
no larger than the two variants' seed spreads together (mean ± std overlap) is called seed noise, not
agreement; with a single seed the spread is unknown and the verdict says so.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from triposg.io import write_bytes_atomic

from .paper_tables import PaperTable, paper_ablation_tables
from .results import markdown_rows

__all__ = ["REPORT_NAME", "GroupInfo", "ablation_report", "paired_differences", "read_group_infos",
           "write_ablation_report"]

REPORT_NAME = "REPORT.md"
PER_OBJECT_DIR = "per_object"  # `<folder>/per_object/<group>.csv` (experiments.ablations writes it)
PAIRED_RESAMPLES = 2000  # bootstrap resamples of the per-object differences
DISCUSSION_SUFFIX = ".discussion.md"  # `<group>.discussion.md`: a hand-written reading of the group's numbers
METRIC_NAMES = {"normal_fid": "Normal-FID", "normal_kid": "Normal-KID", "fd_pixels16": "FD-pixels16",
                "kd_pixels16": "KD-pixels16", "fd_dinov2": "FD-DINOv2",
                "kd_dinov2": "KD-DINOv2", "chamfer": "Chamfer", "f_score": "F-score",
                "normal_consistency": "normal consistency"}
CAVEATS = (
    "**Caveats.** These are miniatures, not reproductions: the corpus is procedural (a few shape families, not "
    "Objaverse or the paper's 2M objects), the models are tiny and train for a few hundred steps on a CPU-sized "
    "budget, and most groups ran one or a few seeds. The paper's Tables 1, 2 and 4 use Normal-FID; ours is "
    "Normal-FID only when local Inception weights exist, otherwise FD-pixels16 (Fréchet distance over the "
    "normal maps downsampled to 16×16) and FD-DINOv2 (over one fixed DINOv2 encoder), which have other "
    "scales. So only orderings are compared, never values. Our Chamfer is "
    "measured in the [-1, 1] frame; the paper does not state its scale. The paper gives no spread over seeds, so "
    "its small gaps (e.g. 4.56 vs 4.57 Chamfer) are taken at face value. An agreeing order at this scale is weak "
    "evidence; a disagreeing one says the effect did not show in miniature, not that the paper is wrong."
)
# Verdicts of one pairwise comparison, in the order the summary counts them.
AGREES, DISAGREES, NOISE, TIE = "agrees", "disagrees", "within seed noise", "not comparable"
COUNT_LABELS = {AGREES: "agree", DISAGREES: "disagree", NOISE: "within seed noise", TIE: "not comparable (a tie)"}


@dataclass(frozen=True)
class GroupInfo:
    """One ablation group as the report sees it (the `<group>.json` sidecar beside `<group>.csv`)."""

    group: str
    paper_table: int | None = None
    paper_rows: dict[str, str] = field(default_factory=dict)  # our variant → the paper row label it stands for
    paper_note: str = ""  # how our variants differ from the paper's rows
    variants: list[str] = field(default_factory=list)  # every variant of the group, in file order
    metric_direction: dict[str, str] = field(default_factory=dict)  # metric → "lower" / "higher" is better
    command: str = ""  # the command that produces (or produced) the results
    description: str = ""
    seeds: list[int] = field(default_factory=list)
    budget: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GroupInfo:
        """A sidecar's dict; unknown keys are ignored so that older or newer sidecars still read."""
        known = {key: values[key] for key in cls.__dataclass_fields__ if values.get(key) is not None}
        return cls(**known)


@dataclass(frozen=True)
class Measured:
    """One metric of one variant over its finished seeds."""

    mean: float
    std: float  # sample std over seeds; NaN with one seed
    seeds: int


def read_group_infos(folder: str | os.PathLike) -> tuple[dict[str, GroupInfo], list[str]]:
    """({group: info} from every `*.json` sidecar in `folder` that has a matching CSV, problems found)."""
    infos: dict[str, GroupInfo] = {}
    problems: list[str] = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            values = json.loads(path.read_text())
            info = GroupInfo.from_dict(values)
        except (OSError, ValueError, TypeError) as error:
            problems.append(f"`{path.name}` cannot be read ({error}); its group is reported without a paper mapping")
            continue
        if (path.parent / f"{info.group}.csv").is_file():
            infos[info.group] = info
    return infos, problems


def write_ablation_report(
    folder: str | os.PathLike, paper_tables: list[PaperTable] | None = None,
    expected_groups: list[dict[str, Any]] | None = None,
) -> Path:
    """Write `<folder>/REPORT.md` (`ablation_report`) and return its path; creates the folder if needed."""
    folder = Path(folder)
    text = ablation_report(folder, paper_tables, expected_groups)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(folder / REPORT_NAME, text.encode())
    return folder / REPORT_NAME


def ablation_report(
    folder: str | os.PathLike, paper_tables: list[PaperTable] | None = None,
    expected_groups: list[dict[str, Any]] | None = None,
) -> str:
    """The Markdown report of a results folder: per paper table, the paper's rows, our measured table (mean ±
    std over seeds, seed counts, max_steps, failed or missing runs) and the pairwise order comparison.
    `expected_groups`: sidecar-shaped dicts of groups that may have no results yet (their section then names the
    command to run); a sidecar in the folder takes precedence over the expected entry of the same group."""
    folder = Path(folder)
    tables = paper_ablation_tables() if paper_tables is None else paper_tables
    infos = {values["group"]: GroupInfo.from_dict(values) for values in expected_groups or []}
    found, problems = read_group_infos(folder)
    infos.update(found)

    sections: list[str] = []
    glance: list[list[str]] = []
    for paper in tables:
        groups = [info for info in infos.values() if info.paper_table == paper.number]
        lines = [f"## Table {paper.number}: {paper.title}", "", "### The paper", "", _markdown(_paper_frame(paper))]
        if paper.note:
            lines += ["", f"_{paper.note}_"]
        if not groups:
            lines += ["", (f"No group of ours maps to Table {paper.number} (no `paper_table: {paper.number}` in a "
                          "group file or sidecar), so there is nothing to compare.")]
            glance.append([str(paper.number), "—", "—", "—", "no group"])
        for info in groups:
            body, row = _group_section(folder, info, paper)
            lines += ["", *body]
            glance.append([str(paper.number), f"`{info.group}`", *row])
        sections.append("\n".join(lines))

    mapped_numbers = {paper.number for paper in tables}
    others = sorted(p.stem for p in folder.glob("*.csv")
                    if p.stem not in infos or infos[p.stem].paper_table not in mapped_numbers)

    header = [
        "# Ablations: our miniature beside the paper's Tables 1–4", "",
        f"Results folder `{folder}`; regenerate with `python -m experiments.ablations report --out {folder}`.", "",
        CAVEATS, "",
        "## At a glance", "",
        "Pairwise verdicts per group: does the variant the paper finds better also measure better here?", "",
        markdown_rows(["Table", "Group", "Metric (paper / ours)", "Runs", "Verdicts"], glance),
    ]
    if problems:
        header += ["", *[f"- {problem}" for problem in problems]]
    footer = []
    if others:
        footer = ["## Other result files", "",
                  "Not mapped to a paper table (no sidecar with `paper_table`): "
                  + ", ".join(f"`{name}.csv`" for name in others) + "."]
    return "\n\n".join(["\n".join(header), *sections, *(["\n".join(footer)] if footer else [])]) + "\n"


# ------------------------------------------------------------------------------------------------
# One group
# ------------------------------------------------------------------------------------------------


def _group_section(folder: Path, info: GroupInfo, paper: PaperTable) -> tuple[list[str], list[str]]:
    """(Markdown lines of one group's section, its at-a-glance cells: metric, runs, verdicts)."""
    title = f"### Ours: `{info.group}`" + (f" ({info.description})" if info.description else "")
    lines = [title, ""]
    if info.paper_note:
        lines += [f"How our rows differ from the paper's: {info.paper_note}", ""]
    csv = folder / f"{info.group}.csv"
    frame = _read_csv(csv)
    if frame is None or not len(frame):
        state = "no results yet" if frame is None else f"`{csv.name}` holds no readable rows"
        lines += [f"**No results:** {state}. Produce them with:", "", "```bash", info.command or
                  f"python -m experiments.ablations run experiments/ablations/groups/{info.group}.yaml --corpus CORPUS",
                  "```"]
        return lines, ["—", "no results", "—"]

    seed_rows = frame[frame["seed"].astype(str) != "mean"] if "seed" in frame else frame
    variants = list(dict.fromkeys([*info.variants, *seed_rows.get("variant", pd.Series(dtype=str)).astype(str)]))
    direction = {**info.metric_direction}
    metrics = [m for m in direction if m in frame.columns]
    measured = {variant: _measure(seed_rows, variant, metrics) for variant in variants}

    steps = pd.to_numeric(seed_rows["max_steps"], errors="coerce") if "max_steps" in seed_rows else pd.Series()
    budget = sorted({int(value) for value in steps.dropna()})
    budget_text = ", ".join(map(str, budget)) if budget else "not recorded"
    if len(budget) > 1:
        budget_text += " (runs differ in budget: compare with care)"
    statuses = seed_rows.get("status", pd.Series(dtype=str)).astype(str)
    ok, failed = int((statuses == "ok").sum()), int((statuses == "failed").sum())
    lines += [f"Training budget: max_steps {budget_text}; runs finished: {ok}, failed: {failed}.", ""]

    table_rows = []
    for variant in variants:
        own = seed_rows[seed_rows["variant"].astype(str) == variant]
        own_status = own.get("status", pd.Series(dtype=str)).astype(str)
        status = "no run" if not len(own) else ("ok" if (own_status == "ok").all()
                                                else f"{int((own_status != 'ok').sum())} of {len(own)} failed")
        finished = int((own_status == "ok").sum())
        cells = [_format_measured(measured[variant].get(metric)) for metric in metrics]
        table_rows.append([f"`{variant}`", info.paper_rows.get(variant, "—"), str(finished), status, *cells])
    lines += ["Measured (mean ± std over finished seeds):", "",
              markdown_rows(["Variant", "Paper row", "Seeds", "Status",
                              *[f"{METRIC_NAMES.get(m, m)} ({direction[m]} is better)" for m in metrics]],
                             table_rows)]

    problems = []
    for row in seed_rows.itertuples(index=False):
        values = row._asdict()
        if str(values.get("status")) != "ok":
            error = values.get("error")
            reason = f": {error}" if isinstance(error, str) and error else ""
            problems.append(f"- `{values.get('variant')}` seed {values.get('seed')} {values.get('status')}{reason}")
    problems += [f"- `{variant}`: no run recorded yet" for variant in variants
                 if not (seed_rows["variant"].astype(str) == variant).any()]
    if problems:
        lines += ["", "Failed or missing runs (the same command retries failed runs and adds missing ones):", "",
                  *problems, "", "```bash", info.command, "```"]

    comparison, metric_cell, verdict_cell = _compare(info, paper, measured, metrics, direction)
    lines += ["", *comparison]
    lines += _paired_section(folder / PER_OBJECT_DIR / f"{info.group}.csv", variants, direction)
    discussion = folder / f"{info.group}{DISCUSSION_SUFFIX}"
    text = discussion.read_text().strip() if discussion.is_file() else ""
    if text:
        lines += ["", f"**Discussion** (by hand, from `{discussion.name}`: why the miniature may agree or not):", "",
                  text]
    return lines, [metric_cell, f"{ok} ok, {failed} failed", verdict_cell]


def paired_differences(table: pd.DataFrame, first: str, second: str, metric: str, resamples: int = PAIRED_RESAMPLES,
                       seed: int = 0) -> tuple[float, float, float, int] | None:
    """Mean of `first − second` over the test objects (and seeds) both variants were measured on, with a
    percentile-bootstrap 95 % interval over those objects: (mean, low, high, count), or None without pairs."""
    own = table[table["variant"] == first].set_index(["seed", "object_id"])[metric]
    other = table[table["variant"] == second].set_index(["seed", "object_id"])[metric]
    differences = (own - other).dropna().to_numpy(dtype=float)
    if len(differences) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, len(differences), (resamples, len(differences)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(differences.mean()), float(low), float(high), len(differences)


def _paired_section(path: Path, variants: list[str], direction: dict[str, str]) -> list[str]:
    """Markdown lines: every pair's per-object differences with bootstrap intervals (test-set noise, which a
    single seed cannot show as a spread), when `<folder>/per_object/<group>.csv` exists."""
    table = _read_csv(path)
    if table is None or not {"variant", "seed", "object_id"} <= set(table.columns):
        return []
    table["variant"], table["seed"] = table["variant"].astype(str), table["seed"].astype(str)
    metrics = [m for m in direction if m in table.columns]
    present = [v for v in variants if (table["variant"] == v).any()]
    rows = []
    for first, second in combinations(present, 2):
        cells = []
        for metric in metrics:
            result = paired_differences(table, first, second, metric)
            if result is None:
                cells.append("—")
                continue
            mean, low, high, count = result
            resolved = low > 0 or high < 0
            better = (first if (mean < 0) == (direction[metric] == "lower") else second) if resolved else None
            text = f"{mean:+.3g} [{low:+.3g}, {high:+.3g}]"
            cells.append(f"**{text}** `{better}`" if better else text)
        rows.append([f"`{first}` − `{second}`", str(count), *cells])
    if not rows:
        return []
    return ["", ("Paired over the same test objects (mean difference, 95 % bootstrap interval over objects; bold "
                 "with the better variant named where the interval excludes 0). This is test-set noise, not seed "
                 "noise: a resolved difference can still be one seed's luck."), "",
            markdown_rows(["Pair", "Objects", *[f"Δ {METRIC_NAMES.get(m, m)}" for m in metrics]], rows)]


def _measure(rows: pd.DataFrame, variant: str, metrics: list[str]) -> dict[str, Measured]:
    """{metric: mean, std and count} over the variant's finished seed rows (metrics with no value left out)."""
    own = rows[rows["variant"].astype(str) == variant]
    if "status" in own:
        own = own[own["status"] == "ok"]
    result = {}
    for metric in metrics:
        values = pd.to_numeric(own[metric], errors="coerce").dropna()
        if len(values):
            std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            result[metric] = Measured(float(values.mean()), std, len(values))
    return result


def _compare(info: GroupInfo, paper: PaperTable, measured: dict[str, dict[str, Measured]], metrics: list[str],
             direction: dict[str, str]) -> tuple[list[str], str, str]:
    """(Markdown lines, at-a-glance metric cell, verdict cell) of the paper-vs-ours order comparison."""
    frame = paper.frame.set_index("label")
    unknown = [label for label in info.paper_rows.values() if label not in frame.index]
    lines = ["Comparison with the paper:", ""]
    if unknown:
        lines += [f"- Paper row(s) {unknown} are not rows of Table {paper.number}; those variants are left out."]
    if not info.paper_rows:
        lines.append("- The group maps no variant to a paper row (`paper_rows` in its group file).")
        return lines, "—", "no mapping"
    matched = [v for v in info.variants or list(info.paper_rows) if info.paper_rows.get(v) in frame.index]
    available = [m for m in metrics if any(m in measured.get(v, {}) for v in matched)]
    pairs = _metric_pairs(paper, available)
    if not pairs:
        return [*lines, "- No finished run has a metric to compare yet."], "—", "nothing finished"

    counts = dict.fromkeys((AGREES, DISAGREES, NOISE, TIE), 0)
    for paper_metric, our_metric in pairs:
        paper_lower = paper.lower_is_better if paper_metric == paper.metric else direction.get(paper_metric) != "higher"
        our_lower = direction.get(our_metric) != "higher"
        paper_name, our_name = METRIC_NAMES.get(paper_metric, paper_metric), METRIC_NAMES.get(our_metric, our_metric)
        same = "the same metric" if paper_metric == our_metric else "different metrics: orderings only"
        lines += [(f"**Paper: {paper_name} ({'lower' if paper_lower else 'higher'} is better); ours: {our_name} "
                  f"({'lower' if our_lower else 'higher'} is better)**, {same}."), ""]
        both = [v for v in matched if our_metric in measured.get(v, {})]
        paper_values = {v: float(frame.loc[info.paper_rows[v], paper_metric]) for v in both}
        ours = {v: measured[v][our_metric] for v in both}
        paper_order = sorted(both, key=lambda v: paper_values[v] if paper_lower else -paper_values[v])
        our_order = sorted(both, key=lambda v: ours[v].mean if our_lower else -ours[v].mean)
        lines += ["- Paper order, best first: " + ", ".join(f"`{v}` {_number(paper_values[v])}" for v in paper_order),
                  "- Our order, best first: " + ", ".join(f"`{v}` {_format_measured(ours[v])}" for v in our_order),
                  f"- The orders are {'the same' if paper_order == our_order else 'different'}"
                  + (" (see the pairs for seed noise)." if len(both) > 1 else " (one variant: nothing to order).")]
        missing = [v for v in matched if v not in both]
        if missing:
            lines.append(f"- No finished {our_name} for {', '.join(f'`{v}`' for v in missing)}: left out.")
        for first, second in combinations(both, 2):
            sentence, verdict = _pair(first, second, paper_values, ours, paper_lower, our_lower, paper_name, our_name)
            counts[verdict] += 1
            lines.append(f"- {sentence}")
        lines.append("")
    metric_cell = "; ".join(f"{METRIC_NAMES.get(p, p)} / {METRIC_NAMES.get(o, o)}" for p, o in pairs)
    verdict_cell = ", ".join(f"{n} {COUNT_LABELS[verdict]}" for verdict, n in counts.items() if n) or "no pairs"
    lines.append(f"Verdict over all pairs: {verdict_cell}.")
    return lines, metric_cell, verdict_cell


def _metric_pairs(paper: PaperTable, available: list[str]) -> list[tuple[str, str]]:
    """(paper metric, our metric) pairs: every metric both sides have, else the paper's headline metric
    against our first available one (e.g. Normal-FID against FD-pixels16)."""
    paper_metrics = [c for c in paper.frame.columns if c in METRIC_NAMES] or [paper.metric]
    shared = [(m, m) for m in paper_metrics if m in available]
    if shared:
        return shared
    return [(paper.metric, available[0])] if available else []


def _pair(first: str, second: str, paper_values: dict[str, float], ours: dict[str, Measured], paper_lower: bool,
          our_lower: bool, paper_name: str, our_name: str) -> tuple[str, str]:
    """(sentence, verdict) for one pair of variants: who is better in the paper and in ours."""
    def better(a: float, b: float, lower: bool) -> str | None:
        if a == b:
            return None
        return first if (a < b) == lower else second

    paper_better = better(paper_values[first], paper_values[second], paper_lower)
    a, b = ours[first], ours[second]
    our_better = better(a.mean, b.mean, our_lower)
    paper_text = (f"paper: `{paper_better}` better" if paper_better else "paper: a tie") + \
        f" ({_number(paper_values[first])} vs {_number(paper_values[second])} {paper_name})"
    our_text = (f"ours: `{our_better}` better" if our_better else "ours: a tie") + \
        f" ({_format_measured(a)} vs {_format_measured(b)} {our_name})"
    spreads = [s for s in (a.std, b.std) if not math.isnan(s)]
    difference = abs(a.mean - b.mean)
    if paper_better is None or our_better is None:
        verdict, tail = TIE, "**not comparable** (a tie)"
    elif spreads and difference <= sum(spreads):
        verdict = NOISE
        tail = (f"**within seed noise**: the difference {_number(difference)} is no larger than the seed spread "
                f"{_number(sum(spreads))}, so this neither agrees nor disagrees")
    else:
        verdict = AGREES if paper_better == our_better else DISAGREES
        tail = f"**{verdict}**"
        if min(a.seeds, b.seeds) < 2:
            tail += " (one seed: seed noise not measured)"
    return f"`{first}` vs `{second}` — {paper_text}; {our_text} — {tail}.", verdict


# ------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype={"seed": str})
    except (OSError, ValueError):  # an empty or broken file: reported as having no rows
        return pd.DataFrame()
    return frame if "variant" in frame else pd.DataFrame()


def _number(value: float) -> str:
    return f"{value:.4g}"


def _format_measured(value: Measured | None) -> str:
    if value is None:
        return "—"
    if math.isnan(value.std):
        return _number(value.mean)
    return f"{_number(value.mean)} ± {_number(value.std)}"


def _paper_frame(paper: PaperTable) -> pd.DataFrame:
    frame = paper.frame.copy()
    for column in frame.columns:
        if pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].map({True: "yes", False: "no"})
    return frame


def _markdown(frame: pd.DataFrame) -> str:
    rows = [[_number(v) if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    return markdown_rows([str(c) for c in frame.columns], rows)
