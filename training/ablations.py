"""Run the paper's ablations in miniature (§7, Tables 1–4): train matched variants, evaluate, write a CSV.

    python -m training.ablations list
    python -m training.ablations run training/configs/ablations/table3-vae.yaml --corpus data/tiny \
        [--out results/ablations] [--seeds 0 1] [--set train.max_steps=100] [--eval limit=8] \
        [--var NAME=VALUE]
    python -m training.ablations report [--out results/ablations]   # REPORT.md: our tables beside the paper's

A group file (`training/configs/ablations/*.yaml`) describes variants that differ in one factor:

    kind: vae | flow               # which trainer and which evaluation
    base: training/configs/vae-tiny.yaml
    budget: {max_steps: 300}       # `train.*` settings every variant shares
    seeds: [0]                     # `train.seed` of each run (--seeds replaces the list)
    overrides: {key.sub: value}    # shared by every variant (optional)
    variants: {name: {key.sub: value, ...}}
    evaluate: {split: test, ...}   # `EvaluateConfig` fields
    vars: {name: default}          # `${name}` placeholders, set with --var name=value (optional)
    paper_table: 3                 # the paper's table the group reproduces (optional)
    paper_rows: {name: "Objaverse · OCC"}  # variant → the paper table's row label it stands for (optional)
    paper_note: "..."              # how the variants differ from the paper's rows (optional)

A variant's config is, in order: the base preset, `data.corpus = --corpus`, the budget, the shared
overrides, the variant's overrides, then `--set`; the runner finally sets `train.output_dir` and
`train.seed`. Strings may hold `${corpus}`, `${run:VARIANT}` (that variant's run folder for the same seed;
it must be listed earlier) and `${name}` for a `vars` entry.

For each variant × seed: train into `<out>/runs/<group>/<variant>-s<seed>` (continuing from its latest
checkpoint when interrupted), evaluate on the `--corpus` test split, and store `result.json` there. A run
whose `result.json` says "ok" is skipped on the next invocation (delete its folder, or just `result.json`
to re-evaluate, after changing its settings); a failed one is recorded (status and error in the CSV) and
retried next time. A run whose resolved config, corpus and evaluation settings equal those of a run
finished in any group under `<out>` (groups share variants: Table 1's "skip" run is also the objective
group's rectified-flow run) is not trained again: its result is copied, naming the source in `reused_from`.
After every run `<out>/<group>.csv` is rewritten from all
results: one row per variant × seed and, for variants with several finished seeds, a `mean` row with
`<metric>_std` columns (the layout `evaluation.results.read_results_folder` and the app's Ablations tab read).
Beside it, `<out>/<group>.json` holds what `evaluation.ablation_report` needs to set the table next to the
paper's without importing this module: the paper table and rows, each metric's direction, the command.

Evaluation: VAE groups reconstruct the test objects (`evaluation.vae_recon`: Chamfer, F-score@0.02 and
normal consistency in the [-1, 1] frame); flow groups run the Normal-FID protocol (`evaluation.normal_fid`:
`normal_fid` when local Inception weights exist, `fd_pixels16` over the normal maps downsampled to 16×16
(no weights), `fd_dinov2` over one fixed DINOv2 encoder for every
variant — by default the embedded default model's, so that distances are comparable across variants —
plus Chamfer / F-score / normal consistency against the ground-truth surface).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import re
import shlex
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from triposg.io import write_bytes_atomic

from .data.manifest import MANIFEST_NAME
from .engine.config import apply_override, from_dict

GROUPS_DIR = Path(__file__).resolve().parent / "configs" / "ablations"
DEFAULT_OUT = Path("results") / "ablations"
KINDS = ("vae", "flow")
GROUP_KEYS = ("description", "paper_table", "paper_rows", "paper_note", "kind", "base", "budget", "seeds",
              "overrides", "variants", "evaluate", "vars")
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
RESULT_FILE = "result.json"
# Every metric an evaluation can give and whether lower or higher is better; the CSV lists them in this order
# (only those some row has are written) and the sidecar JSON carries the directions to the report.
METRIC_DIRECTION = {"normal_fid": "lower", "normal_kid": "lower", "fd_pixels16": "lower", "kd_pixels16": "lower",
                    "fd_dinov2": "lower", "kd_dinov2": "lower", "chamfer": "lower", "f_score": "higher",
                    "normal_consistency": "higher"}
METRIC_ORDER = tuple(METRIC_DIRECTION)
PER_OBJECT_DIR = "per_object"  # `<out>/per_object/<group>.csv`: per-object metrics of every finished run
PER_OBJECT_METRICS = ("chamfer", "f_score", "normal_consistency")
# The corpus a printed command names when none is given (the README builds it).
DEFAULT_CORPUS = Path("data") / "procedural"

__all__ = ["AblationGroup", "AblationGroupError", "EvaluateConfig", "group_command", "group_info", "list_groups",
           "load_group", "run_group", "variant_config", "write_group_table", "write_report"]


class AblationGroupError(ValueError):
    """A group file that cannot be run; the message names the file and what to fix."""


class MissingValueError(AblationGroupError):
    """A `${name}` placeholder with no value: only the variants using it fail."""


@dataclass
class EvaluateConfig:
    """The `evaluate:` section of a group file (None = the evaluator's default)."""

    split: str = "test"  # the held-out split every variant is measured on
    limit: int | None = None  # first N test objects (None = all); for quick checks
    per_family: int | None = None  # first N test objects of each family, before `limit` (None = all)
    seed: int = 0
    device: str | None = None  # None = CUDA when available
    # VAE groups (evaluation.vae_recon)
    num_tokens: int = 64  # latent tokens M to encode each test object with
    num_surface: int | None = 512  # encoder input points (as in training)
    resolution: int = 64  # marching-cubes grid cells per side
    num_points: int = 50_000  # surface samples for Chamfer / F-score
    # Flow groups (evaluation.normal_fid); sampling settings default to the exported pipeline's
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    octree_resolution: int | None = None
    sample_tokens: int | None = None  # None: the pipeline's (its largest training M)
    fid: str = "auto"  # Inception FID over normal maps: "auto" (when local weights exist), "required", "off"
    fd_encoder: str | None = None  # pipeline whose DINOv2 gives FD-DINOv2 for every variant; None = embedded default
    recon_threshold: float = 0.05  # F-score threshold in the 1.8 frame (evaluation.normal_fid)
    recon_num_points: int = 20_000

    def __post_init__(self) -> None:
        if self.fid is False:  # YAML 1.1 reads a bare `off` as false
            self.fid = "off"
        if self.fid not in ("auto", "required", "off"):
            raise ValueError(f"evaluate.fid must be 'auto', 'required' or 'off', got {self.fid!r}")


@dataclass
class AblationGroup:
    """A parsed group file. `variants` maps each name to its dotted-key overrides, in file order."""

    name: str
    path: Path
    kind: str
    base: Path
    variants: dict[str, dict[str, Any]]
    budget: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: dict[str, Any] = field(default_factory=dict)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    vars: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    paper_table: int | None = None  # the paper's Table 1–4 this group reproduces in miniature
    paper_rows: dict[str, str] = field(default_factory=dict)  # variant → label of the paper row it stands for
    paper_note: str = ""  # how the variants differ from the paper's rows (shown in the report)


def _fail(path: Path, message: str) -> AblationGroupError:
    return AblationGroupError(f"ablation group {path}: {message}")


def _mapping(path: Path, values: dict[str, Any], key: str) -> dict[str, Any]:
    value = values.get(key) or {}
    if not isinstance(value, dict):
        raise _fail(path, f"`{key}` must be a mapping, got {value!r}")
    return value


def load_group(path: str | Path) -> AblationGroup:
    """Read and check a group file: its keys, kind, base preset, variant names and `${...}` references.
    Raises `AblationGroupError` (a ValueError) or FileNotFoundError with a message naming the fix."""
    path = Path(path)
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(GROUPS_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"ablation group {path} not found; groups in {GROUPS_DIR}: {known}")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise _fail(path, f"not valid YAML: {error}") from error
    if not isinstance(values, dict):
        raise _fail(path, "must be a mapping with kind, base, variants, ...")
    unknown = set(values) - set(GROUP_KEYS)
    if unknown:
        raise _fail(path, f"unknown key(s) {sorted(unknown)}; valid keys: {sorted(GROUP_KEYS)}")
    kind = values.get("kind")
    if kind not in KINDS:
        raise _fail(path, f"`kind` must be one of {KINDS}, got {kind!r}")
    if not values.get("base"):
        raise _fail(path, "`base` (a preset such as training/configs/vae-tiny.yaml) is missing")
    base = Path(values["base"])
    if not base.is_absolute() and not base.is_file():
        base = GROUPS_DIR.parents[2] / base  # relative to the repository root
    if not base.is_file():
        raise _fail(path, f"base preset {values['base']} not found")
    variants = _mapping(path, values, "variants")
    if not variants:
        raise _fail(path, "`variants` is empty; give at least one `name: {key.sub: value}`")
    for name, overrides in variants.items():
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
            raise _fail(path, f"variant name {name!r} must be letters, digits, '.', '_' or '-'")
        if overrides is not None and not isinstance(overrides, dict):
            raise _fail(path, f"variant {name!r} must map dotted config keys to values, got {overrides!r}")
    seeds = values.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise _fail(path, f"`seeds` must be a non-empty list of integers, got {seeds!r}")
    try:
        evaluate = from_dict(EvaluateConfig, _mapping(path, values, "evaluate"), "evaluate")
    except ValueError as error:
        raise _fail(path, str(error)) from error
    paper_table = values.get("paper_table")
    if paper_table is not None and (isinstance(paper_table, bool) or not isinstance(paper_table, int)):
        raise _fail(path, f"`paper_table` must be the number of a paper table (1–4), got {paper_table!r}")
    paper_rows = _mapping(path, values, "paper_rows")
    unknown_rows = [name for name in paper_rows if name not in variants]
    if unknown_rows:
        raise _fail(path, f"`paper_rows` names unknown variant(s) {unknown_rows}; variants: {list(variants)}")
    if not all(isinstance(label, str) and label for label in paper_rows.values()):
        raise _fail(path, f"`paper_rows` must map variant names to paper row labels (text), got {paper_rows!r}")
    if paper_rows and paper_table is None:
        raise _fail(path, "`paper_rows` needs `paper_table` (the number of the table its labels are rows of)")
    group = AblationGroup(
        name=path.stem, path=path, kind=kind, base=base,
        variants={name: dict(overrides or {}) for name, overrides in variants.items()},
        budget=_mapping(path, values, "budget"), seeds=list(seeds), overrides=_mapping(path, values, "overrides"),
        evaluate=evaluate, vars=_mapping(path, values, "vars"), description=str(values.get("description", "")),
        paper_table=paper_table, paper_rows=dict(paper_rows), paper_note=str(values.get("paper_note") or ""),
    )
    _check_references(group)
    return group


def _check_references(group: AblationGroup) -> None:
    """Every `${run:NAME}` names a variant listed before; every other `${name}` is a var or `corpus`."""
    seen: list[str] = []
    for name, overrides in group.variants.items():
        for value in _strings({**group.overrides, **overrides}):
            for reference in PLACEHOLDER.findall(value):
                if reference.startswith("run:"):
                    target = reference.removeprefix("run:")
                    if target not in seen:
                        raise _fail(group.path, f"variant {name!r} refers to ${{run:{target}}}, which is not a "
                                                "variant listed before it")
                elif reference != "corpus" and reference not in group.vars:
                    raise _fail(group.path, f"variant {name!r} uses ${{{reference}}}; declare it under `vars:`")
        seen.append(name)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _substitute(value: Any, lookup: dict[str, Any], where: str) -> Any:
    """`value` (nested dicts/lists of strings) with every `${key}` in its strings replaced from `lookup`."""
    if isinstance(value, dict):
        return {k: _substitute(v, lookup, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, lookup, where) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        key = match.group(1)
        if lookup.get(key) is None:
            hint = f" (pass --var {key}=VALUE)" if not key.startswith("run:") else ""
            raise MissingValueError(f"{where}: ${{{key}}} has no value{hint}")
        return str(lookup[key])

    return PLACEHOLDER.sub(replace, value)


def run_dir(out: Path, group: AblationGroup, variant: str, seed: int) -> Path:
    """Where a variant × seed trains, exports and stores `result.json`."""
    return Path(out) / "runs" / group.name / f"{variant}-s{seed}"


def config_class(kind: str) -> type:
    if kind == "vae":
        from .train_vae import VAETrainingConfig

        return VAETrainingConfig
    from .train_flow import FlowTrainingConfig

    return FlowTrainingConfig


def variant_config(
    group: AblationGroup, variant: str, seed: int, corpus: str | Path, out: str | Path,
    sets: Sequence[str] = (), variables: dict[str, Any] | None = None,
):
    """The training config of one variant × seed (see the module docstring for the order of layers)."""
    values = yaml.safe_load(group.base.read_text()) or {}
    values.setdefault("data", {})["corpus"] = str(corpus)
    lookup = {"corpus": str(corpus), **group.vars, **(variables or {})}
    lookup.update({f"run:{name}": run_dir(Path(out), group, name, seed) for name in group.variants})
    where = f"{group.path} variant {variant!r}"
    layers = [{f"train.{key}": value for key, value in group.budget.items()}, group.overrides,
              group.variants[variant]]
    for layer in layers:
        for key, value in _substitute(layer, lookup, where).items():
            _set_dotted(values, key, copy.deepcopy(value))
    for override in sets:
        apply_override(values, override)
    values.setdefault("train", {}).update(output_dir=str(run_dir(Path(out), group, variant, seed)), seed=int(seed))
    try:
        return from_dict(config_class(group.kind), values)
    except (ValueError, TypeError) as error:
        raise AblationGroupError(f"{where}: {error}") from error


def _set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    node = values
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise AblationGroupError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


# ------------------------------------------------------------------------------------------------
# Training and evaluation of one run
# ------------------------------------------------------------------------------------------------


def _train(kind: str, config) -> None:
    if kind == "vae":
        from .train_vae import train_vae

        train_vae(config, resume="latest")
    else:
        from .train_flow import train_flow

        train_flow(config, resume="latest")


def _exported(kind: str, run: Path) -> Path:
    return run / ("vae" if kind == "vae" else "pipeline")


def evaluate_vae(run: Path, corpus: str | Path, config: EvaluateConfig) -> dict[str, float]:
    """Reconstruction metrics of the run's exported VAE on the test split (means over objects)."""
    from evaluation.vae_recon import run_vae_reconstruction, summarize_reconstruction
    from triposg.loading import resolve_device
    from triposg.models import TripoSGVAEModel

    vae = TripoSGVAEModel.from_pretrained(_exported("vae", run)).to(resolve_device(config.device))
    table = run_vae_reconstruction(vae, corpus, split=config.split, num_tokens=config.num_tokens,
                                   num_surface=config.num_surface, resolution=config.resolution,
                                   num_points=config.num_points, limit=config.limit, seed=config.seed,
                                   progress=False, per_family=config.per_family)
    (run / "eval").mkdir(exist_ok=True)
    table.to_csv(run / "eval" / "per_object.csv", index=False)
    summary = summarize_reconstruction(table)
    return {key: summary[key] for key in ("chamfer", "f_score", "normal_consistency")}


def evaluate_flow(run: Path, corpus: str | Path, config: EvaluateConfig, extractors) -> dict[str, float]:
    """Normal-FID protocol of the run's exported pipeline on the test split; its flat metrics."""
    from evaluation.normal_fid import NormalFidConfig, corpus_test_set, load_model_variant, run_normal_fid

    test_set = corpus_test_set(corpus, split=config.split, limit=config.limit, per_family=config.per_family)
    variant, _ = load_model_variant(
        _exported("flow", run), config.device, num_inference_steps=config.num_inference_steps,
        guidance_scale=config.guidance_scale, num_tokens=config.sample_tokens,
        octree_resolution=config.octree_resolution, seed=config.seed,
    )
    fid_config = NormalFidConfig(fid=config.fid, recon_threshold=config.recon_threshold,
                                 recon_num_points=config.recon_num_points, seed=config.seed, device=config.device)
    result = run_normal_fid(test_set, variant, run / "eval", fid_config, extractors=extractors, progress=False)
    renamed = {"fid": "normal_fid", "kid": "normal_kid"}  # FID over normal maps is the paper's Normal-FID
    # KID's spread over its subsets (`*_std`) is left out: `<metric>_std` in the table is the spread over seeds.
    return {renamed.get(key, key): value for key, value in result.summary["metrics"].items()
            if value is not None and not key.endswith("_std")}


def fd_extractors(config: EvaluateConfig) -> list:
    """The same Fréchet-distance encoders for every variant of a group (each variant's own encoder differs):
    FD-pixels16 (the normal maps themselves, no weights) and FD-DINOv2 over `fd_encoder`'s DINOv2."""
    from evaluation.normal_fid import dinov2_named_extractor, pixel_named_extractor
    from triposg.loading import load_pipeline

    pipe, _ = load_pipeline(config.fd_encoder, config.device)
    return [pixel_named_extractor(16), dinov2_named_extractor(pipe, config.fd_encoder or "the embedded default model")]


def read_result(run: Path) -> dict[str, Any] | None:
    path = run / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def run_one(group: AblationGroup, variant: str, seed: int, corpus: Path, out: Path, sets: Sequence[str],
            variables: dict[str, Any], evaluate: EvaluateConfig, extractor_holder: dict) -> dict[str, Any]:
    """Train (or continue), export and evaluate one variant × seed; returns and stores its result."""
    run = run_dir(out, group, variant, seed)
    result: dict[str, Any] = {"variant": variant, "seed": seed, "status": "ok", "error": None, "metrics": {},
                              "run_dir": str(run), "train_seconds": None, "eval_seconds": None}
    try:
        config = variant_config(group, variant, seed, corpus, out, sets, variables)
        result["max_steps"] = config.train.max_steps
        result["fingerprint"] = run_fingerprint(group.kind, config, corpus, evaluate)
        twin = find_finished_twin(out, result["fingerprint"], run)
        if twin is not None:  # the same training and evaluation finished in another group: reuse it
            print(f"{group.name}/{variant} seed {seed}: same config and evaluation as {twin['run_dir']}; "
                  "reusing its result", flush=True)
            result.update(metrics=twin["metrics"], reused_from=twin["run_dir"], train_seconds=0.0, eval_seconds=0.0)
            run.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(run / RESULT_FILE, json.dumps(result, indent=1, default=_json_default).encode())
            return result
        if not _exported(group.kind, run).is_dir():
            start = time.perf_counter()
            _train(group.kind, config)
            result["train_seconds"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        if group.kind == "vae":
            result["metrics"] = evaluate_vae(run, corpus, evaluate)
        else:
            if "extractors" not in extractor_holder:
                extractor_holder["extractors"] = fd_extractors(evaluate)
            result["metrics"] = evaluate_flow(run, corpus, evaluate, extractor_holder["extractors"])
        result["eval_seconds"] = round(time.perf_counter() - start, 1)
    except Exception as error:  # noqa: BLE001 (one variant's failure is a result, not the end of the group)
        traceback.print_exc()
        result.update(status="failed", error=f"{type(error).__name__}: {error}".splitlines()[0])
    run.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(run / RESULT_FILE, json.dumps(result, indent=1, default=_json_default).encode())
    return result


def run_fingerprint(kind: str, config, corpus: str | Path, evaluate: EvaluateConfig) -> str:
    """A hash of everything that decides a run's result: the kind, the resolved training config (less its
    output folder), the corpus and the evaluation settings. Groups share variants (Table 1's "skip" run is
    also its objective group's rectified-flow run); equal fingerprints are trained once."""
    values = asdict(config)
    values["train"].pop("output_dir", None)
    text = json.dumps({"kind": kind, "config": values, "corpus": str(Path(corpus).resolve()),
                       "evaluate": asdict(evaluate)}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def find_finished_twin(out: str | Path, fingerprint: str, exclude: Path) -> dict[str, Any] | None:
    """A finished (status ok, not itself reused) result under `<out>/runs` with this fingerprint, or None."""
    for path in sorted(Path(out).glob(f"runs/*/*/{RESULT_FILE}")):
        if path.parent.resolve() == Path(exclude).resolve():
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (result.get("fingerprint") == fingerprint and result.get("status") == "ok"
                and not result.get("reused_from")):
            return result
    return None


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# ------------------------------------------------------------------------------------------------
# The group table
# ------------------------------------------------------------------------------------------------


def group_command(
    group: AblationGroup, out: str | Path = DEFAULT_OUT, corpus: str | Path = DEFAULT_CORPUS,
    variables: dict[str, Any] | None = None, seeds: Sequence[int] | None = None, sets: Sequence[str] = (),
    evaluate_sets: Sequence[str] = (),
) -> str:
    """The shell command that trains and evaluates `group` into `out`. A `vars` entry with no value is
    written as its upper-case name (e.g. `--var corpus_large=CORPUS_LARGE` for `vars: {corpus_large: null}`) for the user to fill in."""
    path = group.path.resolve()
    root = GROUPS_DIR.parents[2]
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    words = ["python", "-m", "training.ablations", "run", str(shown), "--corpus", str(corpus), "--out", str(out)]
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


def run_group(
    group: AblationGroup | str | Path, corpus: str | Path, out: str | Path = DEFAULT_OUT,
    seeds: Sequence[int] | None = None, sets: Sequence[str] = (), evaluate_sets: Sequence[str] = (),
    variables: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Train and evaluate every variant × seed of `group` not finished yet; returns the group table."""
    if not isinstance(group, AblationGroup):
        group = load_group(group)
    corpus, out = Path(corpus), Path(out)
    if not (corpus / MANIFEST_NAME).is_file():
        raise FileNotFoundError(f"--corpus {corpus} has no {MANIFEST_NAME}; build one with "
                                "python -m training.data --num 16 --out data/tiny")
    evaluate_values = asdict(group.evaluate)
    for override in evaluate_sets:
        apply_override(evaluate_values, override)
    evaluate = from_dict(EvaluateConfig, evaluate_values, "evaluate")
    variables = dict(variables or {})
    seeds = list(seeds) if seeds else group.seeds
    for variant in group.variants:  # typos in overrides fail now, before hours of training
        for seed in seeds:
            try:
                variant_config(group, variant, seed, corpus, out, sets, variables)
            except MissingValueError:  # fails only its own variant, recorded in the table
                pass
    jobs = [(variant, seed) for variant in group.variants for seed in seeds]
    command = group_command(group, out, corpus, variables, seeds if seeds != group.seeds else None, sets,
                            evaluate_sets)
    print(f"ablation {group.name} ({group.kind}): {len(group.variants)} variants × seeds {seeds} = {len(jobs)} runs; "
          f"budget {group.budget}; results in {out / (group.name + '.csv')}", flush=True)
    extractor_holder: dict[str, Any] = {}
    for index, (variant, seed) in enumerate(jobs, 1):
        prefix = f"[{index}/{len(jobs)}] {variant} seed {seed}"
        previous = read_result(run_dir(out, group, variant, seed))
        if previous is not None and previous.get("status") == "ok":
            print(f"{prefix}: done before, skipped", flush=True)
            continue
        print(f"{prefix}: training and evaluating in {run_dir(out, group, variant, seed)}", flush=True)
        result = run_one(group, variant, seed, corpus, out, sets, variables, evaluate, extractor_holder)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items() if isinstance(v, (int, float))
                          and not math.isnan(v))
        print(f"{prefix}: {result['status']}" + (f" ({result['error']})" if result["error"] else f": {shown}"),
              flush=True)
        write_group_table(group, out, command)
    return write_group_table(group, out, command)


def list_groups(folder: Path = GROUPS_DIR) -> list[AblationGroup]:
    """Every group file in `folder`, parsed."""
    return [load_group(path) for path in sorted(folder.glob("*.yaml"))]


def write_report(out: str | Path = DEFAULT_OUT, corpus: str | Path = DEFAULT_CORPUS,
                 folder: Path = GROUPS_DIR) -> Path:
    """Write `<out>/REPORT.md`: every group's measured table beside the paper's (`evaluation.ablation_report`).
    Groups of `folder` with no results yet are listed with the command (on `corpus`) that produces them."""
    from evaluation.ablation_report import write_ablation_report

    expected = [group_info(group, group_command(group, out, corpus)) for group in list_groups(folder)]
    return write_ablation_report(out, expected_groups=expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ablations", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help=f"show the groups in {GROUPS_DIR}")
    run = commands.add_parser("run", help="train, evaluate and tabulate one group (resumable)")
    run.add_argument("group", help="group file, e.g. training/configs/ablations/table3-vae.yaml (or its name)")
    run.add_argument("--corpus", required=True, help="corpus folder built by python -m training.data")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (the app reads its CSVs)")
    run.add_argument("--seeds", type=int, nargs="+", default=None, help="replace the group's seed list")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="training config override for every variant, applied last (repeatable)")
    run.add_argument("--eval", dest="evaluate_sets", action="append", default=[], metavar="KEY=VALUE",
                     help="evaluate-section override, e.g. --eval limit=8 (repeatable)")
    run.add_argument("--var", dest="variables", action="append", default=[], metavar="NAME=VALUE",
                     help="value of a ${NAME} placeholder of the group file (repeatable)")
    report = commands.add_parser("report", help="write REPORT.md: our tables beside the paper's Tables 1–4")
    report.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder written by `run`")
    report.add_argument("--corpus", default=str(DEFAULT_CORPUS),
                        help="corpus named in the commands printed for groups with no results")
    args = parser.parse_args(argv)
    if args.command == "report":
        print(write_report(args.out, args.corpus))
        return 0
    if args.command == "list":
        for group in list_groups():
            table = f"Table {group.paper_table}" if group.paper_table else "—"
            print(f"{group.name:<18} {group.kind:<4} {table:<8} {len(group.variants)} variants "
                  f"({', '.join(group.variants)}); budget {group.budget}; seeds {group.seeds}\n"
                  f"{'':<18} {group.description}")
        return 0
    path = Path(args.group)
    if not path.suffix and not path.exists():
        path = GROUPS_DIR / f"{args.group}.yaml"
    variables = {}
    for item in args.variables:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--var {item!r} must look like NAME=VALUE")
        variables[name] = yaml.safe_load(value)
    try:
        table = run_group(path, args.corpus, args.out, args.seeds, args.sets, args.evaluate_sets, variables)
    except (FileNotFoundError, AblationGroupError) as error:  # a bad group file or corpus: a message, no traceback
        parser.exit(2, f"error: {error}\n")
    failed = int((table["status"] == "failed").sum()) if len(table) else 0
    print(f"wrote {args.out / (path.stem + '.csv')}: {len(table)} rows, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
