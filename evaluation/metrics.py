"""Reconstruction metrics between two surfaces: Chamfer distance, F-score and normal consistency; and how
whole one surface is (`largest_piece_share`).

Used for VAE reconstruction (paper §7.2, Table 3: "Chamfer distance, F-score with 0.02 threshold, and
the normal consistency") and for generated-vs-ground-truth comparisons.

Both surfaces are compared through point samples with normals: N points drawn area-uniformly from each
mesh (or a given point cloud with normals), nearest neighbours found with a k-d tree. Distances are
measured in whatever frame the inputs are in; every number here assumes the project's normalised frame,
objects centred and scaled into [-1, 1]^3 (longest side 2, as `triposg.rendering.normalize_mesh` does and
as the pipeline's meshes already are). The thresholds only mean what the paper's mean in that frame.

Definitions, with P and T the two sampled sets (prediction, target) and d(x, S) = min_{s in S} ||x - s||_2
(Euclidean, NOT squared):

- Chamfer distance  CD = 1/2 * ( mean_{p in P} d(p, T) + mean_{t in T} d(t, P) ).
- Precision(τ) = fraction of p in P with d(p, T) < τ;  recall(τ) = fraction of t in T with d(t, P) < τ;
  F-score(τ) = 2 * precision * recall / (precision + recall)  (0 when both are 0); default τ = 0.02.
- Normal consistency NC = 1/2 * ( mean_{p} |<n_p, n_{nn_T(p)}>| + mean_{t} |<n_t, n_{nn_P(t)}>| ), the
  absolute cosine between each point's unit normal and that of its nearest neighbour in the other set;
  the absolute value makes it independent of the meshes' orientation convention (flipped faces score 1).

Scale of the paper's numbers: Table 3 reports Chamfer ≈ 4.5 next to F-score 0.999 at τ = 0.02; the paper
does not state the unit. An F-score of 0.999 at 0.02 means almost every distance is below 0.02, which fits
CD ≈ 4.5e-3 with this (non-squared) definition, i.e. the table shows CD × 10^3. Compare `chamfer * 1e3`
with the table, and treat that comparison as an assumption, not a reproduction of the paper's protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

DEFAULT_NUM_POINTS = 100_000  # per surface; the sampling floor of CD is then ~1e-3 for unit-size objects
DEFAULT_F_SCORE_THRESHOLD = 0.02  # paper §7.2, in the [-1, 1] frame

# A mesh, an (N, 6) xyz + normal array, or a (points (N, 3), normals (N, 3)) pair.
SurfaceLike = trimesh.Trimesh | trimesh.Scene | np.ndarray | tuple[np.ndarray, np.ndarray]
Seed = int | np.random.SeedSequence


@dataclass(frozen=True)
class _Matches:
    """Nearest-neighbour results in both directions between two oriented point sets."""

    pred_to_target: np.ndarray  # (N_pred,) distance from each predicted point to the target set
    target_to_pred: np.ndarray  # (N_target,) distance from each target point to the predicted set
    pred_normal_cos: np.ndarray  # (N_pred,) |cos| between each predicted normal and its neighbour's
    target_normal_cos: np.ndarray  # (N_target,) |cos| between each target normal and its neighbour's


def sample_surface(
    mesh_or_points: SurfaceLike, num_points: int = DEFAULT_NUM_POINTS, seed: Seed = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Sample `num_points` points with unit normals from a surface.

    `mesh_or_points`: a `trimesh.Trimesh` (a `trimesh.Scene` is flattened into one mesh), sampled
    area-uniformly with the normal of the face each point lies on; or a point cloud with normals given as
    an (N, 6) array (xyz + normal) or a `(points (N, 3), normals (N, 3))` pair, returned as it is when
    N <= `num_points` and otherwise reduced to a random subset of `num_points` points (without replacement).
    Returns `(points (num_points, 3), normals (num_points, 3))` in float64, normals of unit length;
    the same inputs and `seed` always give the same samples.
    """
    if num_points <= 0:
        raise ValueError(f"num_points must be positive, got {num_points}")
    rng = np.random.default_rng(seed)
    if isinstance(mesh_or_points, (trimesh.Trimesh, trimesh.Scene)):
        mesh = _validated_mesh(mesh_or_points)
        points, face_index = trimesh.sample.sample_surface(mesh, num_points, seed=rng)
        normals = mesh.face_normals[face_index]
    else:
        points, normals = _validated_point_cloud(mesh_or_points)
        if len(points) > num_points:
            keep = np.sort(rng.choice(len(points), size=num_points, replace=False))
            points, normals = points[keep], normals[keep]
    return np.asarray(points, dtype=np.float64), _unit(np.asarray(normals, dtype=np.float64))


def chamfer_distance(
    pred: SurfaceLike, target: SurfaceLike, num_points: int = DEFAULT_NUM_POINTS, seed: int = 0
) -> float:
    """Symmetric Chamfer distance: mean of the two directions' mean Euclidean (not squared) nearest-neighbour
    distance, ½(mean_p d(p, T) + mean_t d(t, P)), over `num_points` samples per surface (see module docstring)."""
    return reconstruction_metrics(pred, target, num_points=num_points, seed=seed)["chamfer"]


def f_score(
    pred: SurfaceLike,
    target: SurfaceLike,
    threshold: float = DEFAULT_F_SCORE_THRESHOLD,
    num_points: int = DEFAULT_NUM_POINTS,
    seed: int = 0,
) -> float:
    """F-score at `threshold`: harmonic mean of precision (share of predicted samples closer than `threshold`
    to the target samples) and recall (share of target samples closer than `threshold` to the predicted ones)."""
    return reconstruction_metrics(pred, target, num_points=num_points, threshold=threshold, seed=seed)["f_score"]


def normal_consistency(
    pred: SurfaceLike, target: SurfaceLike, num_points: int = DEFAULT_NUM_POINTS, seed: int = 0
) -> float:
    """Normal consistency: mean absolute cosine between each sample's normal and its nearest neighbour's
    normal in the other set, averaged over both directions; 1 for matching surfaces, orientation-free."""
    return reconstruction_metrics(pred, target, num_points=num_points, seed=seed)["normal_consistency"]


def largest_piece_share(mesh: trimesh.Trimesh | trimesh.Scene) -> float:
    """Share of the surface area in the largest connected piece (faces joined by shared edges): 1.0 for a
    shape in one piece, lower when thin parts break off or the surface falls apart into fragments."""
    mesh = _validated_mesh(mesh)
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    areas = np.bincount(labels, weights=mesh.area_faces)
    return float(areas.max() / areas.sum())


def reconstruction_metrics(
    pred: SurfaceLike,
    target: SurfaceLike,
    num_points: int = DEFAULT_NUM_POINTS,
    threshold: float = DEFAULT_F_SCORE_THRESHOLD,
    seed: int = 0,
) -> dict[str, float]:
    """All reconstruction metrics between a predicted and a target surface, from one sampling.

    `pred`, `target`: meshes or point clouds with normals (see `sample_surface`), in the same frame,
    normalised into [-1, 1]^3. Each surface gets `num_points` samples from its own random stream derived
    from `seed` (independent draws, so two identical meshes score the sampling floor, not exactly 0).
    Returns {"chamfer", "f_score", "precision", "recall", "normal_consistency", "threshold", "num_points"};
    definitions in the module docstring.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    pred_seed, target_seed = np.random.SeedSequence(seed).spawn(2)
    pred_points, pred_normals = sample_surface(pred, num_points, seed=pred_seed)
    target_points, target_normals = sample_surface(target, num_points, seed=target_seed)
    matches = _match(pred_points, pred_normals, target_points, target_normals)

    precision = float(np.mean(matches.pred_to_target < threshold))
    recall = float(np.mean(matches.target_to_pred < threshold))
    f = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "chamfer": 0.5 * float(matches.pred_to_target.mean() + matches.target_to_pred.mean()),
        "f_score": f,
        "precision": precision,
        "recall": recall,
        "normal_consistency": 0.5 * float(matches.pred_normal_cos.mean() + matches.target_normal_cos.mean()),
        "threshold": float(threshold),
        "num_points": int(num_points),
    }


def _match(
    pred_points: np.ndarray, pred_normals: np.ndarray, target_points: np.ndarray, target_normals: np.ndarray
) -> _Matches:
    """Nearest neighbours both ways; `*_points`, `*_normals`: (N, 3) each, normals of unit length."""
    pred_to_target, nearest_target = cKDTree(target_points).query(pred_points, workers=-1)
    target_to_pred, nearest_pred = cKDTree(pred_points).query(target_points, workers=-1)
    pred_cos = np.abs(np.sum(pred_normals * target_normals[nearest_target], axis=1))
    target_cos = np.abs(np.sum(target_normals * pred_normals[nearest_pred], axis=1))
    # Rounding can push a cosine of unit vectors a hair above 1.
    return _Matches(pred_to_target, target_to_pred, np.minimum(pred_cos, 1.0), np.minimum(target_cos, 1.0))


def _validated_mesh(mesh: trimesh.Trimesh | trimesh.Scene) -> trimesh.Trimesh:
    if isinstance(mesh, trimesh.Scene):
        mesh = mesh.to_mesh() if len(mesh.geometry) else trimesh.Trimesh()
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise ValueError("cannot sample an empty mesh (it has no faces); check that the mesh file loaded "
                         "and that surface extraction found a surface")
    if not np.all(np.isfinite(mesh.vertices)):
        raise ValueError("the mesh has non-finite (NaN or inf) vertex coordinates")
    if not mesh.area > 0:
        raise ValueError("the mesh has zero surface area (all faces degenerate); nothing to sample")
    return mesh


def _validated_point_cloud(points: np.ndarray | tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(points, tuple):
        if len(points) != 2:
            raise ValueError("a point cloud given as a tuple must be (points (N, 3), normals (N, 3))")
        xyz, normals = (np.asarray(part, dtype=np.float64) for part in points)
    else:
        cloud = np.asarray(points, dtype=np.float64)
        if cloud.ndim != 2 or cloud.shape[1] != 6:
            raise ValueError(f"a point cloud array must be (N, 6) xyz + normals, got shape {cloud.shape}; "
                             "normal consistency needs normals")
        xyz, normals = cloud[:, :3], cloud[:, 3:]
    if xyz.ndim != 2 or xyz.shape[1] != 3 or normals.shape != xyz.shape:
        raise ValueError(f"expected points (N, 3) and normals (N, 3), got {xyz.shape} and {normals.shape}")
    if len(xyz) == 0:
        raise ValueError("the point cloud is empty")
    if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(normals))):
        raise ValueError("the point cloud has non-finite (NaN or inf) values")
    if np.any(np.linalg.norm(normals, axis=1) == 0):
        raise ValueError("the point cloud has zero-length normals")
    return xyz, normals


def _unit(vectors: np.ndarray) -> np.ndarray:
    """(N, 3) vectors scaled to unit length (face normals of degenerate faces stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)
