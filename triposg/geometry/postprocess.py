"""Mesh post-processing: floater removal and quadric face reduction."""

from __future__ import annotations

from dataclasses import dataclass

import fast_simplification
import numpy as np
import trimesh
from scipy.spatial import cKDTree


def remove_floaters(mesh: trimesh.Trimesh, min_face_fraction: float = 0.05) -> trimesh.Trimesh:
    """Drop connected components with fewer than ``min_face_fraction`` x the largest component's faces.

    Components are faces joined by shared edges. The largest component is always kept. Returns a new mesh.
    """
    if len(mesh.faces) == 0:
        return mesh.copy()
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    face_counts = np.bincount(labels)
    keep_labels = face_counts >= min_face_fraction * face_counts.max()
    keep_labels[np.argmax(face_counts)] = True
    keep_faces = keep_labels[labels]
    if keep_faces.all():
        return mesh.copy()
    cleaned = mesh.copy()
    cleaned.update_faces(keep_faces)
    cleaned.remove_unreferenced_vertices()
    return cleaned


def simplify(mesh: trimesh.Trimesh, target_faces: int) -> trimesh.Trimesh:
    """Quadric edge-collapse reduction to at most ``target_faces`` faces; a copy if the mesh is already smaller."""
    if target_faces < 1:
        raise ValueError(f"target_faces must be >= 1, got {target_faces}")
    if len(mesh.faces) <= target_faces:
        return mesh.copy()
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int32)
    # The collapse order can leave a few faces above the requested count; ask for slightly fewer until it fits.
    request = target_faces
    for _ in range(8):
        new_vertices, new_faces = fast_simplification.simplify(vertices, faces, target_count=request)
        if len(new_faces) <= target_faces:
            break
        request = max(1, request - (len(new_faces) - target_faces) - 1)
    reduced = trimesh.Trimesh(vertices=new_vertices, faces=new_faces.astype(np.int64), process=False)
    if mesh.visual.kind == "vertex":
        # Edge collapse keeps vertices near the originals: give each the colour of its nearest original vertex.
        _, nearest = cKDTree(vertices).query(new_vertices)
        reduced.visual.vertex_colors = np.asarray(mesh.visual.vertex_colors)[nearest]
    return reduced


@dataclass
class PostProcessor:
    """The post-processing steps applied to an extracted mesh, in order."""

    remove_floaters: bool = True  # marching cubes on generated fields leaves small detached blobs
    min_face_fraction: float = 0.05  # components below this fraction of the largest one's faces are floaters
    target_faces: int | None = None  # quadric reduction target; None keeps every face

    def __call__(self, mesh: trimesh.Trimesh) -> trimesh.Trimesh:
        """Return a new mesh; ``mesh`` is left untouched."""
        if self.remove_floaters:
            mesh = remove_floaters(mesh, self.min_face_fraction)
        if self.target_faces is not None:
            mesh = simplify(mesh, self.target_faces)
        return mesh
