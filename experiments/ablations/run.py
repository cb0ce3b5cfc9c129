"""Train and evaluate the runs of a group: each variant × seed once, resumable, its result in `result.json`."""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from evaluation.normal_fid import (
    NormalFidConfig,
    corpus_test_set,
    dinov2_named_extractor,
    load_model_variant,
    pixel_named_extractor,
    run_normal_fid,
)
from evaluation.vae_recon import run_vae_reconstruction, summarize_reconstruction
from training.data.manifest import MANIFEST_NAME
from training.engine.config import apply_override, from_dict
from training.train_flow import train_flow
from training.train_vae import train_vae
from triposg.io import write_bytes_atomic
from triposg.loading import load_pipeline, resolve_device
from triposg.models import TripoSGVAEModel

from .group import (
    RESULT_FILE,
    AblationGroup,
    EvaluateConfig,
    MissingValueError,
    load_group,
    run_dir,
    variant_config,
)
from .table import DEFAULT_OUT, group_command, write_group_table


def _train(kind: str, config) -> None:
    if kind == "vae":
        train_vae(config, resume="latest")
    else:
        train_flow(config, resume="latest")


def _exported(kind: str, run: Path) -> Path:
    return run / ("vae" if kind == "vae" else "pipeline")


def evaluate_vae(run: Path, corpus: str | Path, config: EvaluateConfig) -> dict[str, float]:
    """Reconstruction metrics of the run's exported VAE on the test split (means over objects)."""
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
