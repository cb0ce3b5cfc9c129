"""Surface extraction: marching cubes on a sampled field, vertices mapped back into the grid's bounds."""

from __future__ import annotations

import numpy as np
import trimesh
from skimage import measure

from triposg.geometry.volume import VolumeResult


class EmptySurfaceError(ValueError):
    """The field never crosses the extraction level inside the bounds, so there is no surface to extract."""


def extract_surface(volume: VolumeResult, level: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on ``volume.values`` at ``level`` (positive inside).

    Returns ``vertices``: (V, 3) float32 xyz inside ``volume.bounds`` and ``faces``: (F, 3) int64 vertex indices,
    wound counter-clockwise seen from outside (normals point out of the positive-inside region).
    """
    values = volume.values
    num_bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if num_bad:
        raise ValueError(
            f"the field has {num_bad} NaN/inf values, so marching cubes would produce garbage; check the field "
            f"function (e.g. run the decoder in float32 rather than float16, or check the latents for NaNs)"
        )
    low, high = float(values.min()), float(values.max())
    if not low < level < high:
        where = "inside" if low >= level else "outside"
        raise EmptySurfaceError(
            f"the field never crosses level {level} (values span [{low:.4g}, {high:.4g}]): every grid point is "
            f"{where}. Check the sign convention (positive inside), widen `bounds` if the shape fills the whole "
            f"box, or raise the resolution if the shape is smaller than a cell."
        )
    # 'ascent' winds triangles for a field that grows towards the inside, giving outward normals here.
    vertices, faces, _, _ = measure.marching_cubes(
        values, level=level, spacing=tuple(volume.voxel_size), gradient_direction="ascent"
    )
    vertices = vertices + np.asarray(volume.bounds[:3])
    return vertices.astype(np.float32), faces.astype(np.int64)


def extract_mesh(volume: VolumeResult, level: float = 0.0) -> trimesh.Trimesh:
    """:func:`extract_surface` as a ``trimesh.Trimesh`` with coincident vertices merged (so it can be watertight).

    Marching cubes makes one vertex per crossed grid edge, shared by the faces around it, so vertices only
    coincide where a grid value equals ``level`` exactly (every edge through that point puts its vertex there):
    only then are they merged (a 60-75 ms search on a 128³ mesh, otherwise a no-op)."""
    vertices, faces = extract_surface(volume, level)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    if np.any(volume.values == level):
        mesh.merge_vertices()
    return mesh
