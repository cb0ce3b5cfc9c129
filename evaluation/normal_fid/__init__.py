"""Normal-FID (paper §5.2.2): generate a shape from each test object's image, compare normal maps.

The protocol, as `run_normal_fid` runs it:

1. For each test object take its ground-truth RGB image and normal map from the evaluation view
   (`triposg.rendering.EVALUATION_CAMERA`: front, 50 mm, 10° elevation).
2. Generate a shape from the RGB image with the model/variant under test (a pipeline and its sampling
   settings, or any injected generator), or take it from the generation cache.
3. Normalise the generated mesh into the ground truth's frame: bounding box centred at the origin,
   longest side 1.8 (`normalize_mesh(mesh, margin=0.1)`, the frame `training.data` builds objects in).
   Why: the conditioning image fixes neither absolute size nor position (preprocessing crops the
   foreground and pads it to a fixed ratio), so a generated shape is only determined up to scale and
   translation; the ground truth was put into its frame by exactly this bounding-box rule, so applying
   the same rule to the generated mesh removes the unobservable part and nothing else. Rotation is not
   normalised: the model must produce the front-facing, y-up orientation, and getting it wrong counts.
4. Render its normal map from the same camera at the ground truth's resolution, with the same renderer
   settings (`triposg.rendering.render` defaults) the ground truth was rendered with.
5. Over the two sets of normal maps compute FID and KID with clean-fid's Inception features
   (`evaluation.fid.compute_fid`, only with a local weights file) and Fréchet distances over other named
   encoders (e.g. "FD-DINOv2"), always labelled with the encoder, never called FID.
6. Per object, reconstruction metrics against the ground-truth surface when the test set has one
   (`evaluation.metrics.reconstruction_metrics`: Chamfer, F-score at `recon_threshold`, normal
   consistency), measured in the 1.8 frame: the default threshold 0.05 is 2.8 % of the longest side.
   With `NormalFidConfig.yaw_aligned`, the same metrics again after the mesh's best turn about the up axis
   (`evaluation.yaw.yaw_aligned_metrics`: columns `*_yaw`, `turn_deg`), beside the plain ones: on the
   procedural corpus the yaw of a shape cannot be told from any one of its images (see `evaluation.yaw`).

Whole shapes: a generator returns its mesh as generated, before floater removal (`pipeline_variant` asks
the pipeline for that). The share of surface area in the largest connected piece (`largest_piece`) is
measured on that mesh, so a thin part that broke off lowers it; the normal map and the reconstruction
metrics are then measured on the mesh a user gets, after the pipeline's default floater removal
(`triposg.geometry.remove_floaters`).

A generation that fails (e.g. no surface found) counts as an all-background normal map in the
distances, so a model cannot improve its score by failing; its reconstruction metrics are left empty
and the failure is counted in the summary.

Several GPUs: under `accelerate launch --num_processes N` each process generates and renders every N-th
object on its own device; the main process computes the distances once all are done (same files, same numbers).

Outputs in `out_dir`: `per_object.csv`, `summary.json`, `normals/ground_truth/<id>.png`,
`normals/generated/<id>.png` (the two image sets the distances are computed on) and `comparison.png`
(ground truth above generated for the first objects).

The package, one concept a module; every public name is importable from `evaluation.normal_fid`:
- this module: the protocol (`NormalFidConfig`, `run_normal_fid`, the per-object loop shared between
  processes, the distances and the summary);
- `test_sets`: `TestObject`, `TestSet`, corpus and mesh-collection test sets (`load_test_set`);
- `archives`: safe extraction of zipped mesh collections (`safe_extract_zip`);
- `model_variant`: the model under test (`ModelVariant`, `pipeline_variant`, `load_model_variant`);
- `identity`: what identifies a model's outputs (`model_identity`);
- `cache`: generated meshes reused between runs (`GenerationCache`);
- `extractors`: the named encoders of the labelled Fréchet distances (`NamedExtractor`).
"""

from __future__ import annotations

import io
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import trimesh
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object
from PIL import Image
from tqdm.auto import tqdm

from triposg.geometry import EmptySurfaceError, remove_floaters
from triposg.io import write_bytes_atomic
from triposg.rendering import EVALUATION_CAMERA, normalize_mesh, render, save_image_grid

from ..fid import MissingInceptionWeightsError, PathLike, compute_feature_fd, compute_fid, resolve_inception_weights
from ..metrics import largest_piece_share, reconstruction_metrics
from ..yaw import turn_about_up, yaw_aligned_metrics
from .archives import UnsafeArchiveError, ZipLimits, safe_extract_zip
from .cache import CachedGeneration, GenerationCache, canonical_json
from .extractors import NamedExtractor, dinov2_named_extractor, pixel_named_extractor
from .identity import model_identity
from .model_variant import ModelVariant, load_model_variant, pipeline_variant
from .test_sets import GT_FRAME_MARGIN, TestObject, TestSet, corpus_test_set, load_test_set, mesh_test_set

__all__ = [
    "GT_FRAME_MARGIN",
    "GenerationCache",
    "ModelVariant",
    "NamedExtractor",
    "NormalFidConfig",
    "NormalFidResult",
    "TestObject",
    "TestSet",
    "UnsafeArchiveError",
    "ZipLimits",
    "corpus_test_set",
    "dinov2_named_extractor",
    "format_summary",
    "load_model_variant",
    "load_test_set",
    "mesh_test_set",
    "model_identity",
    "pipeline_variant",
    "pixel_named_extractor",
    "run_normal_fid",
    "safe_extract_zip",
]

COMPARISON_GRID_OBJECTS = 8  # objects shown in comparison.png
GT_DIR = Path("normals") / "ground_truth"
GENERATED_DIR = Path("normals") / "generated"


@dataclass
class NormalFidConfig:
    """How the distances and reconstruction metrics are computed."""

    # "auto": FID/KID when Inception weights are found, else reported unavailable; "required": fail without
    # them (checked before any generation); "off": skip.
    fid: Literal["auto", "required", "off"] = "auto"
    inception_weights: PathLike | None = None  # local inception-2015-12-05.pt; default $TRIPOSG_INCEPTION_WEIGHTS
    recon_threshold: float = 0.05  # F-score threshold in the 1.8 frame (2.8 % of the longest side)
    recon_num_points: int = 20_000  # samples per surface; the corpus stores 20480 ground-truth points
    seed: int = 0  # surface sampling and KID subsets
    # Also score each mesh after its best turn about the up axis (`evaluation.yaw`): columns *_yaw and turn_deg.
    yaw_aligned: bool = False
    kid_subsets: int = 100  # clean-fid's default
    device: str | None = None  # for Inception features; None = CUDA when available

    def __post_init__(self) -> None:
        if self.fid not in ("auto", "required", "off"):
            raise ValueError(f"fid must be 'auto', 'required' or 'off', got {self.fid!r}")
        if not self.recon_threshold > 0 or self.recon_num_points < 1:
            raise ValueError("recon_threshold and recon_num_points must be positive")


@dataclass
class NormalFidResult:
    """`summary`: everything in `summary.json` (flat `summary["metrics"]` for tables and model cards);
    `per_object`: one row per test object (as `per_object.csv`); `out_dir`: where the files are."""

    summary: dict[str, Any]
    per_object: pd.DataFrame
    out_dir: Path


RECON_COLUMNS = ("chamfer", "f_score", "precision", "recall", "normal_consistency")
YAW_COLUMNS = ("chamfer_yaw", "f_score_yaw", "normal_consistency_yaw", "turn_deg")  # with config.yaw_aligned


def run_normal_fid(
    test_set: TestSet,
    variant: ModelVariant,
    out_dir: PathLike,
    config: NormalFidConfig | None = None,
    extractors: Sequence[NamedExtractor] = (),
    cache: GenerationCache | None = None,
    progress: bool = True,
) -> NormalFidResult:
    """Run the Normal-FID protocol (module docstring) of `variant` on `test_set`; write the outputs.

    `extractors`: encoders for labelled Fréchet distances besides FID (e.g. FD-DINOv2); `cache`: where
    generated meshes are reused from and stored (None = always generate). Raises `ValueError` for a test
    set with fewer than 2 objects, `MissingInceptionWeightsError` when `config.fid == "required"` and no
    weights are found, and `RuntimeError` when every generation fails.

    Under `accelerate launch` (or torchrun) with N processes, each evaluates every N-th object with its own
    `variant` (loaded on its own device) and writes into the shared `out_dir`; the main process computes the
    distances and writes the summary, and every process returns the whole result.
    """
    config = config or NormalFidConfig()
    start = time.perf_counter()
    if len(test_set) < 2:
        raise ValueError(f"Normal-FID needs at least 2 test objects, {test_set.name} has {len(test_set)}")
    try:
        canonical_json(variant.identity)
    except TypeError as error:
        raise ValueError(f"the identity of {variant.name!r} must be JSON-serialisable: {error}") from error
    if config.fid == "required":
        resolve_inception_weights(config.inception_weights)  # fail before hours of generation
    state = PartialState()  # one process, or several under accelerate launch (docstring)
    out_dir = Path(out_dir)
    if state.is_main_process:
        for folder in (GT_DIR, GENERATED_DIR):  # only our own folders: stale images would enter the distances
            if (out_dir / folder).exists():
                shutil.rmtree(out_dir / folder)
            (out_dir / folder).mkdir(parents=True)
    state.wait_for_everyone()
    share = range(state.process_index, len(test_set), state.num_processes)
    rows = _evaluate_objects([test_set.objects[i] for i in share], variant, out_dir, config, cache,
                             progress=progress and state.is_main_process)
    indexed_rows = sorted(gather_object(list(zip(share, rows))), key=lambda pair: pair[0])  # test-set order
    rows = [row for _, row in indexed_rows]

    counts = {"generated": sum(not row["cached"] for row in rows), "cached": sum(row["cached"] for row in rows),
              "failed": sum(row["status"] == "failed" for row in rows)}
    per_object = pd.DataFrame(rows)
    if state.is_main_process:
        per_object.to_csv(out_dir / "per_object.csv", index=False)
    if counts["failed"] == len(rows):
        raise RuntimeError(f"every generation failed for {variant.name!r} (errors in {out_dir / 'per_object.csv'}); "
                           f"first error: {rows[0]['error']}")

    summary = None
    if state.is_main_process:
        distances = _distances(out_dir, config, extractors)
        summary = _summary(test_set, variant, config, per_object, distances, counts, time.perf_counter() - start)
        write_bytes_atomic(out_dir / "summary.json", json.dumps(summary, indent=1, default=_json_default).encode())
        grid_images = _comparison_images(out_dir, rows[:COMPARISON_GRID_OBJECTS])
        _save_comparison_grid(grid_images, out_dir / "comparison.png")
    summary = broadcast_object_list([summary])[0]  # every process returns the whole result
    return NormalFidResult(summary, per_object, out_dir)


def _evaluate_objects(
    objects: Sequence[TestObject], variant: ModelVariant, out_dir: Path, config: NormalFidConfig,
    cache: GenerationCache | None, progress: bool,
) -> list[dict[str, Any]]:
    """`_evaluate_object` over `objects` with a progress bar; returns their rows in order."""
    rows, cached, failed = [], 0, 0
    bar = tqdm(objects, desc=f"Normal-FID {variant.name}", unit="obj", disable=not progress)
    for test_object in bar:
        row = _evaluate_object(test_object, variant, out_dir, config, cache)
        rows.append(row)
        cached += row["cached"]
        failed += row["status"] == "failed"
        if row["status"] == "failed":
            tqdm.write(f"generation failed for {test_object.object_id}: {row['error']}")
        bar.set_postfix(cached=cached, failed=failed)
    return rows


def _evaluate_object(
    test_object: TestObject, variant: ModelVariant, out_dir: Path, config: NormalFidConfig,
    cache: GenerationCache | None,
) -> dict[str, Any]:
    """Generate (or reuse), normalise, render and measure one object; returns its row (the two normal maps
    are written to `out_dir`)."""
    image_bytes = test_object.rgb_path.read_bytes()
    gt_normal = test_object.load_normal()
    key = GenerationCache.key(variant.identity, test_object.object_id, image_bytes)
    entry = cache.load(key) if cache is not None else None
    cached = entry is not None
    if entry is None:
        entry, repeatable = _generate(variant, test_object, image_bytes)
        if cache is not None and repeatable:
            cache.store(key, entry, {"variant": variant.identity, "object_id": test_object.object_id})

    row: dict[str, Any] = {"object_id": test_object.object_id, "family": test_object.metadata.get("family"),
                           "status": "ok", "error": None, "cached": cached, "generation_seconds": entry.seconds,
                           "cache_key": key}
    row.update({column: math.nan for column in (*RECON_COLUMNS, "largest_piece")})
    if config.yaw_aligned:
        row.update({column: math.nan for column in YAW_COLUMNS})
    if entry.mesh is not None:
        row["largest_piece"] = largest_piece_share(entry.mesh)  # before floater removal: broken parts count
        mesh = remove_floaters(entry.mesh)  # what a user gets
        if test_object.generated_turn_deg:  # into the reference's frame (a model trained with the yaw undone)
            mesh = trimesh.Trimesh(turn_about_up(mesh.vertices, test_object.generated_turn_deg), mesh.faces,
                                   process=False)
        mesh = normalize_mesh(mesh, margin=GT_FRAME_MARGIN)
        generated_normal = render(mesh, EVALUATION_CAMERA, resolution=gt_normal.shape[0])[0].normal
        reference = test_object.load_reference()
        if reference is not None:
            metrics = reconstruction_metrics(mesh, reference, num_points=config.recon_num_points,
                                             threshold=config.recon_threshold, seed=config.seed)
            row.update({column: metrics[column] for column in RECON_COLUMNS})
            if config.yaw_aligned:
                aligned = yaw_aligned_metrics(mesh, reference, num_points=config.recon_num_points,
                                              threshold=config.recon_threshold, seed=config.seed)
                row.update({f"{key}_yaw": aligned[key] for key in ("chamfer", "f_score", "normal_consistency")},
                           turn_deg=aligned["turn_deg"])
    else:  # a failure counts as an empty (all-background) normal map
        generated_normal = np.full_like(gt_normal, 255)
        row.update(status="failed", error=entry.error)

    name = f"{test_object.object_id}.png"
    shutil.copyfile(test_object.normal_path, out_dir / GT_DIR / name)
    Image.fromarray(generated_normal).save(out_dir / GENERATED_DIR / name)
    row.update(gt_normal=(GT_DIR / name).as_posix(), generated_normal=(GENERATED_DIR / name).as_posix())
    return row


def _generate(
    variant: ModelVariant, test_object: TestObject, image_bytes: bytes
) -> tuple[CachedGeneration, bool]:
    """Run the generator; returns the entry and whether it may be cached (a mesh, or a failure that the same
    inputs reproduce: no surface found). Other failures (out of memory, a bug) are retried next run."""
    start = time.perf_counter()
    with Image.open(io.BytesIO(image_bytes)) as image:
        image = image.convert("RGBA")
    try:
        mesh = variant.generate(image, test_object)
        if isinstance(mesh, trimesh.Scene):
            mesh = mesh.to_mesh()
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            raise ValueError(f"the generator returned {type(mesh).__name__} without faces, not a mesh")
        if not np.isfinite(mesh.vertices).all() or not np.ptp(mesh.vertices, axis=0).max() > 0:
            raise ValueError("the generated mesh is degenerate (non-finite vertices or zero extent)")
    except Exception as error:  # one object's failure is part of the result, not the end of the run
        entry = CachedGeneration(None, f"{type(error).__name__}: {error}", time.perf_counter() - start)
        return entry, isinstance(error, EmptySurfaceError)
    return CachedGeneration(mesh, None, time.perf_counter() - start), True


def _distances(out_dir: Path, config: NormalFidConfig, extractors: Sequence[NamedExtractor]) -> dict[str, Any]:
    """FID/KID (or why not) and each extractor's labelled Fréchet/kernel distance, ground truth vs generated."""
    gt_dir, generated_dir = out_dir / GT_DIR, out_dir / GENERATED_DIR
    result: dict[str, Any] = {}
    if config.fid == "off":
        result["fid"] = {"available": False, "reason": "not requested (fid='off')"}
    else:
        try:
            fid = compute_fid(gt_dir, generated_dir, config.inception_weights, device=config.device,
                              kid_subsets=config.kid_subsets, seed=config.seed)
            result["fid"] = {"available": True, **fid}
        except MissingInceptionWeightsError as error:
            if config.fid == "required":
                raise
            result["fid"] = {"available": False, "reason": str(error)}
    result["feature_distances"] = {}
    for extractor in extractors:
        distance = compute_feature_fd(gt_dir, generated_dir, extractor.extract, extractor.name,
                                      kid_subsets=config.kid_subsets, seed=config.seed)
        result["feature_distances"][extractor.name] = {**distance, "encoder": extractor.source}
    return result


def _summary(
    test_set: TestSet, variant: ModelVariant, config: NormalFidConfig, per_object: pd.DataFrame,
    distances: dict[str, Any], counts: dict[str, int], seconds: float,
) -> dict[str, Any]:
    from training.data.views import camera_record

    succeeded = per_object[per_object["status"] == "ok"]
    measured = succeeded.dropna(subset=["chamfer"])
    reconstruction = {f"{column}_mean": float(measured[column].mean()) if len(measured) else None
                      for column in RECON_COLUMNS}
    reconstruction.update(threshold=config.recon_threshold, num_points=config.recon_num_points,
                          num_objects=len(measured), frame="bbox centred, longest side 1.8")
    metrics: dict[str, Any] = {
        "fid": distances["fid"].get("fid"), "kid": distances["fid"].get("kid"),
        "kid_std": distances["fid"].get("kid_std"),
        **{key: value for entry in distances["feature_distances"].values()
           for key, value in entry.items() if key.startswith(("fd_", "kd_"))},
        "chamfer": reconstruction["chamfer_mean"], "f_score": reconstruction["f_score_mean"],
        "normal_consistency": reconstruction["normal_consistency_mean"],
        "largest_piece": float(succeeded["largest_piece"].mean()) if len(succeeded) else None,
    }
    if config.yaw_aligned:
        metrics.update({column: float(measured[column].mean()) if len(measured) else None
                        for column in YAW_COLUMNS if column != "turn_deg"})
    return {
        "model": variant.name,
        "identity": variant.identity,
        "test_set": {"name": test_set.name, "num_objects": len(test_set), "skipped": test_set.skipped},
        "camera": camera_record(EVALUATION_CAMERA),
        "counts": {**counts, "total": len(per_object)},
        "metrics": metrics,
        "fid": distances["fid"],
        "feature_distances": distances["feature_distances"],
        "reconstruction": reconstruction,
        "seconds": round(seconds, 3),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable end-of-run summary of a `run_normal_fid` summary."""
    counts = summary["counts"]
    header = (f"Normal-FID of {summary['model']} on {summary['test_set']['name']}: {counts['total']} objects "
              f"({counts['generated']} generated, {counts['cached']} from cache, {counts['failed']} failed) "
              f"in {summary['seconds']:.1f} s")
    lines = [header]
    fid = summary["fid"]
    if fid["available"]:
        lines.append(f"  FID ({fid['extractor']}): {_with_spread(fid['fid'], fid.get('fid_std'), 4)}   "
                     f"KID: {_with_spread(fid['kid'], fid['kid_std'], 5)}")
    else:
        lines.append(f"  FID: unavailable. {fid['reason']}")
    for name, distance in summary["feature_distances"].items():
        fd_key = next(key for key in distance if key.startswith("fd_"))
        kd_key = fd_key.replace("fd_", "kd_", 1)
        lines.append(f"  {name} ({distance['encoder']}; not FID): "
                     f"{_with_spread(distance[fd_key], distance.get(f'{fd_key}_std'), 4)}   "
                     f"KD: {_with_spread(distance[kd_key], distance[f'{kd_key}_std'], 5)}")
    recon = summary["reconstruction"]
    if recon["num_objects"]:
        lines.append(f"  vs ground truth ({recon['num_objects']} objects, {recon['frame']}): "
                     f"Chamfer {recon['chamfer_mean']:.4f}   F-score@{recon['threshold']:g} "
                     f"{recon['f_score_mean']:.4f}   normal consistency {recon['normal_consistency_mean']:.4f}")
        metrics = summary["metrics"]
        if metrics.get("f_score_yaw") is not None:
            lines.append(f"  after the best turn about the up axis: Chamfer {metrics['chamfer_yaw']:.4f}   "
                         f"F-score {metrics['f_score_yaw']:.4f}   normal consistency "
                         f"{metrics['normal_consistency_yaw']:.4f}")
    else:
        lines.append("  vs ground truth: no ground-truth surfaces in this test set")
    for name, reason in summary["test_set"]["skipped"]:
        lines.append(f"  skipped test input {name}: {reason}")
    return "\n".join(lines)


def _with_spread(value: float, spread: float | None, decimals: int) -> str:
    """"value ± spread", or the value and why there is no spread (a missing or NaN spread: the kernel
    distance's subsets were the whole sets)."""
    if spread is None or not math.isfinite(spread):
        return f"{value:.{decimals}f} ± n/a (too few objects for a spread)"
    return f"{value:.{decimals}f} ± {spread:.{decimals}f}"


def _comparison_images(out_dir: Path, rows: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    """The (ground truth, generated) normal-map pairs of `rows`, read back from `out_dir`, flattened."""
    images = []
    for row in rows:
        for column in ("gt_normal", "generated_normal"):
            with Image.open(out_dir / row[column]) as image:
                images.append(np.asarray(image.convert("RGB")))
    return images


def _save_comparison_grid(images: list[np.ndarray], path: Path) -> None:
    """Ground truth in the top row, generated below, for the first objects (pairs in `images`)."""
    truths, generated = images[0::2], images[1::2]
    save_image_grid(truths + generated, path, ncols=len(truths))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
