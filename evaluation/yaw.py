"""Scores that do not charge a model for a yaw it cannot see, and what that yaw costs a perfect model.

The procedural corpus turns every shape about the up axis (+y) by a random yaw in ±45° (`training.data.procedural.
MAX_YAW_DEG`) and renders its training views from a random camera azimuth in ±90° (`training.data.views`). An
image shows only the angle between the two; at the evaluation view (azimuth 0) every yaw in ±45° stays equally
likely whatever the image shows. A model that generates in the corpus frame must guess the yaw, and the
reconstruction metrics charge every guess that differs from the truth, however right the shape.

- `yaw_aligned_metrics`: the metrics after the generated mesh is turned about +y by the angle (within ±90°, the
  range of the difference of two yaws) that brings it closest to the target (least Chamfer), renormalised into
  the evaluation frame as the unturned mesh was. Reported beside the plain metrics, never instead of them.
- `unknown_yaw_ceiling`: the plain metrics of a *perfect* shape turned by given angles, e.g. the difference of
  two independent yaws of the corpus — what a model that samples the right shape at a yaw drawn from its prior
  would score. On the default model's 40 validation objects: F-score@0.05 0.74, normal consistency 0.863.

The cure is in the training data, not here: `FlowDataConfig.undo_yaw` trains on each shape turned back to yaw 0
(`training.data.procedural.undo_yaw`) and `corpus_test_set(undo_yaw=True)` measures such a model.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from training.data.sdf import rotation_matrix

from .metrics import SurfaceLike, reconstruction_metrics, sample_surface

__all__ = ["turn_about_up", "unknown_yaw_ceiling", "yaw_aligned_metrics"]

SEARCH_POINTS = 5_000  # samples per surface while searching the turn; the reported metrics use `num_points`


def turn_about_up(points: np.ndarray, degrees: float) -> np.ndarray:
    """`points` (N, 3) turned about +y by `degrees` (right-handed: +90 takes +z to +x), as the corpus turns shapes."""
    return np.asarray(points, dtype=np.float64) @ rotation_matrix("y", degrees).T


def _renormalisation(vertices: np.ndarray, half_extent: float) -> tuple[np.ndarray, float]:
    """(centre, scale) that put `vertices`' bounding box centred with its longest side 2 * `half_extent`."""
    lower, upper = vertices.min(axis=0), vertices.max(axis=0)
    return (lower + upper) / 2.0, 2.0 * half_extent / float(np.max(upper - lower))


def _turned_mesh(mesh: trimesh.Trimesh, degrees: float, half_extent: float) -> trimesh.Trimesh:
    vertices = turn_about_up(mesh.vertices, degrees)
    centre, scale = _renormalisation(vertices, half_extent)
    return trimesh.Trimesh((vertices - centre) * scale, mesh.faces, process=False)


def yaw_aligned_metrics(
    pred: trimesh.Trimesh,
    target: SurfaceLike,
    num_points: int,
    threshold: float,
    seed: int = 0,
    max_turn_deg: float = 90.0,
    coarse_step_deg: float = 10.0,
    fine_step_deg: float = 1.0,
) -> dict[str, float]:
    """`reconstruction_metrics` of `pred` turned about +y by the best angle in ±`max_turn_deg`, plus `turn_deg`.

    `pred`: the generated mesh in the evaluation frame (bounding box centred; its longest side sets the frame's
    size, which the turned mesh keeps). The angle minimises Chamfer on `SEARCH_POINTS` samples: every
    `coarse_step_deg`, then every `fine_step_deg` around the best. Turn 0 is among the candidates, so the aligned
    Chamfer is never worse than the plain one (on the search samples).
    """
    if max_turn_deg <= 0 or coarse_step_deg <= 0 or fine_step_deg <= 0:
        raise ValueError("max_turn_deg, coarse_step_deg and fine_step_deg must be positive")
    half_extent = float(np.max(pred.extents)) / 2.0
    pred_points, _ = sample_surface(pred, SEARCH_POINTS, seed=seed)
    target_points, _ = sample_surface(target, SEARCH_POINTS, seed=seed + 1)
    target_tree = cKDTree(target_points)
    vertices = np.asarray(pred.vertices, dtype=np.float64)

    def chamfer_at(degrees: float) -> float:
        centre, scale = _renormalisation(turn_about_up(vertices, degrees), half_extent)
        turned = (turn_about_up(pred_points, degrees) - centre) * scale
        to_target, _ = target_tree.query(turned, workers=-1)
        to_pred, _ = cKDTree(turned).query(target_points, workers=-1)
        return 0.5 * float(to_target.mean() + to_pred.mean())

    def best(candidates: Iterable[float]) -> float:
        return min(candidates, key=chamfer_at)

    coarse = best(np.unique(np.concatenate([np.arange(0.0, max_turn_deg + 1e-9, coarse_step_deg),
                                            -np.arange(coarse_step_deg, max_turn_deg + 1e-9, coarse_step_deg)])))
    fine = np.arange(coarse - coarse_step_deg + fine_step_deg, coarse + coarse_step_deg, fine_step_deg)
    turn = best([0.0, *(float(a) for a in fine if abs(a) <= max_turn_deg + 1e-9)])
    metrics = reconstruction_metrics(_turned_mesh(pred, turn, half_extent), target, num_points=num_points,
                                     threshold=threshold, seed=seed)
    return {**metrics, "turn_deg": float(turn)}


def unknown_yaw_ceiling(
    target: SurfaceLike, turns_deg: Iterable[float], num_points: int, threshold: float, seed: int = 0
) -> dict[str, float]:
    """Mean `reconstruction_metrics` of the perfect shape `target` (a mesh or (N, 6) points with normals in the
    evaluation frame) turned about +y by each of `turns_deg` and renormalised, against itself unturned."""
    points, normals = sample_surface(target, num_points, seed=seed)
    half_extent = float(np.max(points.max(axis=0) - points.min(axis=0))) / 2.0
    rows = []
    for degrees in turns_deg:
        turned = turn_about_up(points, degrees)
        centre, scale = _renormalisation(turned, half_extent)
        prediction = ((turned - centre) * scale, turn_about_up(normals, degrees))
        rows.append(reconstruction_metrics(prediction, target, num_points=num_points, threshold=threshold,
                                           seed=seed + 1))
    if not rows:
        raise ValueError("turns_deg is empty")
    return {key: float(np.mean([row[key] for row in rows])) for key in ("chamfer", "f_score", "normal_consistency")}
