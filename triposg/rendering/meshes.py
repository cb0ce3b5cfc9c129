"""Meshes as the renderer takes them: validated, optionally normalised into [-1, 1]^3, and split at creases
once for smooth shading (`prepare_mesh`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported lazily at run time: trimesh is not needed to import this module
    import trimesh


# Smooth shading keeps edges sharper than this (between faces' normals) as creases.
CREASE_ANGLE_DEG = 30.0


def as_trimesh(mesh: object) -> trimesh.Trimesh:
    """Validate `mesh` (a Trimesh, or a trimesh.Scene flattened into one) and return a Trimesh."""
    import trimesh

    if isinstance(mesh, trimesh.Scene):
        mesh = mesh.to_mesh() if len(mesh.geometry) else trimesh.Trimesh()
    if not isinstance(mesh, trimesh.Trimesh):
        raise ValueError(f"expected a trimesh.Trimesh, got {type(mesh).__name__}")  # noqa: TRY004
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise ValueError("cannot render an empty mesh (it has no faces)")
    if not np.all(np.isfinite(mesh.vertices)):
        raise ValueError("the mesh has non-finite (NaN or inf) vertex coordinates")
    return mesh


def normalize_mesh(mesh: trimesh.Trimesh, margin: float = 0.0) -> trimesh.Trimesh:
    """Return a copy centred on its bounding-box centre and scaled uniformly into [-1, 1]^3.

    The longest bounding-box side becomes `2 * (1 - margin)` long, so `margin` is the fraction of
    the half-size kept empty on that axis.
    """
    mesh = as_trimesh(mesh)
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    lower, upper = mesh.bounds
    extent = float(np.max(upper - lower))
    if extent <= 0.0:
        raise ValueError("the mesh is a single point; it cannot be normalised")
    normalized = mesh.copy()
    normalized.apply_translation(-(lower + upper) / 2.0)
    normalized.apply_scale(2.0 * (1.0 - margin) / extent)
    return normalized


def crease_corner_normals(mesh: "trimesh.Trimesh", crease_angle_deg: float) -> np.ndarray:
    """(F, 3, 3) per-corner normals: the area-weighted mean of the normals of the faces around each corner's
    vertex that are within `crease_angle_deg` of the corner's own face, so smooth parts shade smoothly and
    edges sharper than the angle stay crisp.

    Where every face around a vertex is within half the angle of the vertex's mean normal, all of them are
    within the angle of each other, so each corner there gets that mean normal. Only the corners at creases go
    through the (corner, face around its vertex) pairs, vectorised.
    """
    faces = np.asarray(mesh.faces)
    face_normals = np.asarray(mesh.face_normals)
    weighted_normals = face_normals * np.asarray(mesh.area_faces)[:, None]
    num_vertices = len(mesh.vertices)
    corner_vertex = faces.reshape(-1)  # (3F,)
    corner_face = np.repeat(np.arange(len(faces)), 3)

    def sum_per(index: np.ndarray, values: np.ndarray, length: int) -> np.ndarray:
        return np.stack([np.bincount(index, values[:, k], length) for k in range(3)], axis=1)

    vertex_sum = sum_per(corner_vertex, weighted_normals[corner_face], num_vertices)  # (V, 3)
    vertex_unit = vertex_sum / np.maximum(np.linalg.norm(vertex_sum, axis=1, keepdims=True), 1e-30)
    near_mean = (face_normals[corner_face] * vertex_unit[corner_vertex]).sum(axis=1) >= math.cos(
        math.radians(crease_angle_deg / 2.0))
    crease_vertex = np.bincount(corner_vertex, ~near_mean, num_vertices) > 0
    normals = vertex_sum[corner_vertex]  # (3F, 3), right for corners of smooth vertices

    corners = np.flatnonzero(crease_vertex[corner_vertex])  # corners that need the per-face test
    if len(corners):
        order = np.argsort(corner_vertex, kind="stable")  # corners grouped by vertex
        counts = np.bincount(corner_vertex, minlength=num_vertices)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        vertex = corner_vertex[corners]
        group = counts[vertex]  # corners sharing each crease corner's vertex
        pair_corner = np.repeat(np.arange(len(corners)), group)
        offsets = np.arange(len(pair_corner)) - np.repeat(np.cumsum(group) - group, group)
        pair_face = corner_face[order[np.repeat(starts[vertex], group) + offsets]]
        own = face_normals[corner_face[corners][pair_corner]]
        keep = (own * face_normals[pair_face]).sum(axis=1) >= math.cos(math.radians(crease_angle_deg))
        normals[corners] = sum_per(pair_corner, weighted_normals[pair_face] * keep[:, None], len(corners))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 0, normals / np.maximum(length, 1e-30), face_normals[corner_face])
    return normals.reshape(len(faces), 3, 3)


def split_creases(mesh: "trimesh.Trimesh", crease_angle_deg: float) -> "trimesh.Trimesh":
    """A copy with one vertex per face corner carrying crease-aware normals (see `crease_corner_normals`),
    vertex colours carried over. Textured meshes go through trimesh's (slower) `smooth_shade`, which keeps UVs."""
    import trimesh

    if mesh.visual.kind not in (None, "vertex"):
        return trimesh.graph.smooth_shade(mesh, angle=math.radians(crease_angle_deg))
    faces = np.asarray(mesh.faces)
    corner_vertices = faces.reshape(-1)
    split = trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices)[corner_vertices],
        faces=np.arange(len(corner_vertices)).reshape(-1, 3),
        vertex_normals=crease_corner_normals(mesh, crease_angle_deg).reshape(-1, 3),
        process=False,
    )
    if mesh.visual.kind == "vertex":
        split.visual.vertex_colors = np.asarray(mesh.visual.vertex_colors)[corner_vertices]
    return split


@dataclass(frozen=True)
class PreparedMesh:
    """A mesh made ready for `render` once, to be rendered several times without repeating the work.

    `mesh`: with `smooth`, a copy with one vertex per face corner carrying crease-aware normals
    (`split_creases`, the costly part: ~0.1 s for 50k faces); else the validated mesh itself.
    """

    mesh: trimesh.Trimesh
    smooth: bool


def prepare_mesh(mesh: trimesh.Trimesh, smooth: bool = True) -> PreparedMesh:
    """Validate `mesh` and, for smooth shading, split it at creases (see `PreparedMesh`)."""
    mesh = as_trimesh(mesh)
    return PreparedMesh(split_creases(mesh, CREASE_ANGLE_DEG) if smooth else mesh, smooth)
