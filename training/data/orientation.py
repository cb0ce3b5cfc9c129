"""III Fixing (paper §4.3): canonical upright orientation by a geometric method.

The paper classifies 24 axis-aligned orientations from DINOv2 features of six rendered views with a
trained model. Without such labels we pick the orientation geometrically, among the same 24 rotations:

1. **Up**: each of the six axis directions ±x, ±y, ±z is a candidate "up" (the object rests on the opposite
   side). For each we measure
   - *static stability*: the contact points (vertices within `contact_tolerance` of the ground) span a
     support polygon; the centre of mass (volume centroid of a closed mesh, area centroid otherwise)
     projected on the ground must lie inside it. The *tipping angle* atan(margin / height) — margin the
     distance from the projected centre of mass to the polygon edge, height the centre of mass above the
     ground — is how far the object can be tilted before it falls; a candidate is *stable* above
     `min_tipping_angle_deg`;
   - *symmetry*: man-made objects are usually mirror-symmetric about vertical planes, so the up axis lies in
     their mirror planes. For each axis we count the axis-aligned mirror planes (through the bounding-box
     centre) that contain it (0–2);
   - *contact solidity*: area of the faces lying on the ground / support-polygon area. Upright objects stand
     on feet or a base; a large face lying flat (a table top upside down) hides surface designers show;
   - *support ratio*: support-polygon area / area of the object's footprint (convex hull of its projection).

   Rule: keep the current up (+y) if it is stable and its axis is in as many mirror planes as any axis
   (an already-upright object is never turned). Otherwise, among the stable candidates on the most symmetric
   axes, keep those within `solidity_tolerance` of the lowest contact solidity, then those within
   `support_tolerance` of the largest support ratio, then take the largest tipping angle (ties: the smallest
   rotation). If no candidate is stable (a sphere), nothing is changed.
2. **Front**: left as it is as far as the new up allows — among the four rotations that bring the chosen
   up to +y, the one that keeps +z (the front) closest to +z, then the one closest to the identity. This
   undoes a tip-over exactly (a 90° fall about a horizontal axis); with `front="widest"` the longer
   horizontal side is turned to face the viewer (x becomes the wider axis), since most objects are
   photographed from their broad side.

Limitations (a learned classifier, as in the paper, is needed to do better): an object that is itself stable
when tipped over and whose mirror symmetry does not single out its up axis (a chair lying on its back) stays as
it is, and so does a stable upside-down object (the rule never turns a stable current up upside down, because
a cup on its rim and a table on its top look alike to it); a tipped-over cup or vase wider at the top may be
stood on its rim (the rim touches less of the ground than the bottom); long symmetric objects lying on their
side (a log) may be stood up. Procedural shapes are built upright, so a builder should apply this to mesh
folders only.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import trimesh

__all__ = ["OrientationConfig", "axis_aligned_rotations", "canonicalize_orientation", "evaluate_up_candidates"]

AXIS_NAMES = ("x", "y", "z")


@dataclass(frozen=True)
class OrientationConfig:
    """Thresholds of the geometric orientation fix. Lengths are fractions of the longest bounding-box side."""

    contact_tolerance: float = 2e-3  # vertices this close to the ground touch it
    min_tipping_angle_deg: float = 5.0  # below: falls over at a nudge (a cylinder on its side, a bottle on its neck)
    symmetry_tolerance: float = 0.01  # mean distance of mirrored samples to the surface: below → mirror plane
    num_symmetry_samples: int = 1000  # mirrored query points per plane
    num_reference_samples: int = 20000  # surface samples the mirrored points are compared with
    solidity_tolerance: float = 0.3  # contact-solidity differences below this are ties
    support_tolerance: float = 0.1  # support-ratio differences below this are ties
    contact_normal_tolerance_deg: float = 10.0  # a face lies on the ground if it faces down within this angle


@dataclass
class UpCandidate:
    """Measurements of one candidate up direction (see the module docstring)."""

    up: str  # "+x", "-y", ...
    stable: bool
    tipping_angle_deg: float
    symmetry_count: int
    contact_solidity: float
    support_ratio: float
    support_area: float
    com_height: float  # centre of mass above the ground, fraction of the extent


def axis_aligned_rotations() -> np.ndarray:
    """The 24 proper rotations that map coordinate axes to coordinate axes, shape (24, 3, 3)."""
    rotations = []
    for permutation in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = np.zeros((3, 3))
            matrix[np.arange(3), permutation] = signs
            if np.linalg.det(matrix) > 0:
                rotations.append(matrix)
    return np.stack(rotations)


def _center_of_mass(mesh: trimesh.Trimesh) -> np.ndarray:
    """Volume centroid of a closed mesh with positive volume, area centroid of the surface otherwise."""
    if mesh.is_watertight and mesh.volume > 1e-12 * float(np.max(mesh.extents)) ** 3:
        return np.asarray(mesh.center_mass, dtype=np.float64)
    areas = np.asarray(mesh.area_faces)
    return (np.asarray(mesh.triangles_center) * areas[:, None]).sum(axis=0) / areas.sum()


def _hull_2d(points: np.ndarray):
    """scipy ConvexHull of (N, 2) points, or None for fewer than three or collinear points."""
    from scipy.spatial import ConvexHull, QhullError

    if len(points) < 3:
        return None
    try:
        return ConvexHull(points)
    except QhullError:
        return None


def _mirror_symmetries(mesh: trimesh.Trimesh, config: OrientationConfig) -> np.ndarray:
    """(3,) bool: is the mesh mirror-symmetric about the plane x = c, y = c, z = c (c the bbox centre)?"""
    import trimesh
    from scipy.spatial import cKDTree

    reference, _ = trimesh.sample.sample_surface(mesh, config.num_reference_samples, seed=0)
    queries, _ = trimesh.sample.sample_surface(mesh, config.num_symmetry_samples, seed=1)
    tree = cKDTree(reference)
    center = mesh.bounds.mean(axis=0)
    symmetric = np.zeros(3, dtype=bool)
    for axis in range(3):
        mirrored = np.array(queries, dtype=np.float64)
        mirrored[:, axis] = 2.0 * center[axis] - mirrored[:, axis]
        distances, _ = tree.query(mirrored)
        symmetric[axis] = distances.mean() / float(np.max(mesh.extents)) < config.symmetry_tolerance
    return symmetric


def evaluate_up_candidates(mesh: trimesh.Trimesh, config: OrientationConfig = OrientationConfig()) -> list[UpCandidate]:
    """Measure all six axis directions as the up direction of `mesh` (order +x, -x, +y, -y, +z, -z)."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    extent = float(np.max(mesh.extents))
    center_of_mass = _center_of_mass(mesh)
    symmetric = _mirror_symmetries(mesh, config)
    face_normals = np.asarray(mesh.face_normals)
    face_areas = np.asarray(mesh.area_faces)
    faces = np.asarray(mesh.faces)
    contact_cos = math.cos(math.radians(config.contact_normal_tolerance_deg))

    candidates = []
    for axis, sign in itertools.product(range(3), (1.0, -1.0)):
        plane_axes = [other for other in range(3) if other != axis]  # the ground plane's coordinates
        heights = sign * vertices[:, axis]
        ground = heights.min()
        touching = heights <= ground + config.contact_tolerance * extent
        support = _hull_2d(vertices[touching][:, plane_axes])
        footprint = _hull_2d(vertices[:, plane_axes])
        com_height = float(sign * center_of_mass[axis] - ground)
        if support is None:
            margin, support_area = 0.0, 0.0
        else:
            # Hull equations are (unit normal, offset) with normal . p + offset <= 0 inside.
            margin = float(-np.max(support.equations[:, :2] @ center_of_mass[plane_axes] + support.equations[:, 2]))
            support_area = float(support.volume)
        tipping_angle = math.degrees(math.atan2(margin, max(com_height, 1e-12 * extent)))
        on_ground = touching[faces].all(axis=1) & (sign * face_normals[:, axis] <= -contact_cos)
        contact_area = float(face_areas[on_ground].sum())
        candidates.append(
            UpCandidate(
                up=("+" if sign > 0 else "-") + AXIS_NAMES[axis],
                stable=tipping_angle >= config.min_tipping_angle_deg,
                tipping_angle_deg=tipping_angle,
                symmetry_count=int(symmetric[plane_axes].sum()),
                contact_solidity=contact_area / support_area if support_area > 0 else 0.0,
                support_ratio=support_area / float(footprint.volume) if footprint is not None else 0.0,
                support_area=support_area / extent**2,
                com_height=com_height / extent,
            )
        )
    return candidates


def _up_vector(name: str) -> np.ndarray:
    vector = np.zeros(3)
    vector[AXIS_NAMES.index(name[1])] = 1.0 if name[0] == "+" else -1.0
    return vector


def _rotation_for(up: str, mesh: trimesh.Trimesh, front: Literal["keep", "widest"]) -> np.ndarray:
    """The axis-aligned rotation taking `up` to +y, choosing the front as described in the module docstring."""
    up_vector = _up_vector(up)
    options = [rotation for rotation in axis_aligned_rotations() if np.allclose(rotation @ up_vector, [0, 1, 0])]
    if front == "widest":
        # Keep only rotations after which x is the longer horizontal side.
        extents = [np.ptp(np.asarray(mesh.vertices) @ rotation.T, axis=0) for rotation in options]
        widest = [rotation for rotation, size in zip(options, extents) if size[0] >= size[2] - 1e-9 * size.max()]
        options = widest or options
    elif front != "keep":
        raise ValueError(f"front must be 'keep' or 'widest', got {front!r}")
    # Closest to keeping +z as +z, then closest to the identity.
    return max(options, key=lambda rotation: (rotation[2, 2], np.trace(rotation)))


def _within(candidates: list[UpCandidate], key, tolerance: float, larger_is_better: bool) -> list[UpCandidate]:
    values = [key(candidate) for candidate in candidates]
    best = max(values) if larger_is_better else min(values)
    return [c for c, v in zip(candidates, values) if abs(v - best) <= tolerance]


def _choose_up(candidates: list[UpCandidate], config: OrientationConfig) -> tuple[str, str]:
    """The chosen up direction and the reason, following the rule of the module docstring."""
    by_name = {candidate.up: candidate for candidate in candidates}
    current = by_name["+y"]
    max_symmetry = max(candidate.symmetry_count for candidate in candidates)
    if current.stable and current.symmetry_count == max_symmetry:
        return "+y", "current up is stable and lies in as many mirror planes as any axis"
    stable = [candidate for candidate in candidates if candidate.stable]
    if not stable:
        return "+y", "no stable orientation: left unchanged"
    best_symmetry = max(candidate.symmetry_count for candidate in stable)
    pool = [candidate for candidate in stable if candidate.symmetry_count == best_symmetry]
    pool = _within(pool, lambda c: c.contact_solidity, config.solidity_tolerance, larger_is_better=False)
    pool = _within(pool, lambda c: c.support_ratio, config.support_tolerance, larger_is_better=True)
    # Largest tipping angle; exact ties prefer the current up, then the order +x, -x, ... (deterministic).
    chosen = max(pool, key=lambda c: (round(c.tipping_angle_deg, 6), c.up == "+y"))
    if chosen.up == "+y":
        return "+y", "current up is the best stable candidate"
    return chosen.up, (
        f"current up {'unstable' if not current.stable else 'less symmetric'}; "
        f"{chosen.up} is stable (tipping angle {chosen.tipping_angle_deg:.0f} deg) on a symmetry axis"
    )


def canonicalize_orientation(
    mesh: trimesh.Trimesh,
    config: OrientationConfig = OrientationConfig(),
    front: Literal["keep", "widest"] = "keep",
) -> tuple[trimesh.Trimesh, np.ndarray, dict]:
    """Rotate `mesh` so that it stands upright (+y up) by the geometric rule of the module docstring.

    Returns:
        (rotated copy of the mesh, (3, 3) rotation R with rotated = R @ original points, info dict with
        "up" (the original direction that became +y), "reason", "rotated" and the per-candidate
        measurements under "candidates").
    """
    import trimesh

    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError("canonicalize_orientation needs a non-empty trimesh.Trimesh")
    if not np.all(np.isfinite(mesh.vertices)):
        raise ValueError("the mesh has non-finite vertex coordinates; run the degenerate filter first")
    candidates = evaluate_up_candidates(mesh, config)
    up, reason = _choose_up(candidates, config)
    rotation = _rotation_for(up, mesh, front)
    rotated = mesh.copy()
    if not np.allclose(rotation, np.eye(3)):
        transform = np.eye(4)
        transform[:3, :3] = rotation
        rotated.apply_transform(transform)
    info = {
        "up": up,
        "reason": reason,
        "rotated": not np.allclose(rotation, np.eye(3)),
        "candidates": [asdict(candidate) for candidate in candidates],
    }
    return rotated, rotation, info
