"""A group file (`groups/*.yaml`): read and check it, and resolve each variant × seed to a training config.

Where a run lives (`run_dir`) is decided here too: a variant may point at another variant's run folder
(`${run:VARIANT}`), so the folder layout is part of resolving a config.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.engine.config import apply_override, from_dict
from triposg.pipelines.generation_config import check_resolution, checked_number

REPO_ROOT = Path(__file__).resolve().parents[2]  # a group's `base:` preset is relative to it
GROUPS_DIR = Path(__file__).resolve().parent / "groups"
RESULT_FILE = "result.json"  # in each run folder: the variant × seed's status, metrics and timings
KINDS = ("vae", "flow")
GROUP_KEYS = ("description", "paper_table", "paper_rows", "paper_note", "kind", "base", "budget", "seeds",
              "overrides", "variants", "evaluate", "vars")
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


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
        # Sampling overrides: None keeps the exported pipeline's; given, the pipeline's own limits apply.
        for name, key, kind in (("num_inference_steps", "num_inference_steps", int),
                                ("guidance_scale", "guidance_scale", float), ("sample_tokens", "num_tokens", int)):
            if getattr(self, name) is not None:
                checked_number(key, getattr(self, name), kind, f"evaluate.{name}")
        if self.octree_resolution is not None:
            check_resolution(self.octree_resolution, "tracking", "evaluate.octree_resolution")


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
        base = REPO_ROOT / base
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


def list_groups(folder: Path = GROUPS_DIR) -> list[AblationGroup]:
    """Every group file in `folder`, parsed."""
    return [load_group(path) for path in sorted(folder.glob("*.yaml"))]


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
        from training.train_vae import VAETrainingConfig

        return VAETrainingConfig
    from training.train_flow import FlowTrainingConfig

    return FlowTrainingConfig


def variant_config(
    group: AblationGroup, variant: str, seed: int, corpus: str | Path, out: str | Path,
    sets: Sequence[str] = (), variables: dict[str, Any] | None = None,
):
    """The training config of one variant × seed (the order of its layers: `experiments.ablations`' docstring)."""
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
