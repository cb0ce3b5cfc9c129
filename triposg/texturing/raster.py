"""A small z-buffer rasteriser (numpy/torch, no OpenGL): which surface is nearest the camera at each pixel."""

from __future__ import annotations

import numpy as np
import torch


def rasterize_depth(pixels: np.ndarray, depth: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """The depth of the nearest face at each pixel centre.

    Args:
        pixels: (V, 2) vertex positions in pixels (x right, y down; pixel (i, j) covers [i, i+1) x [j, j+1)).
        depth: (V,) vertex depths (larger is farther).
        faces: (F, 3) vertex indices.
        resolution: the image side R.
    Returns:
        (R, R) float32 depth buffer, +inf where no face covers the pixel centre. Depth is interpolated linearly
        in the image, which orders surfaces correctly at our meshes' face sizes.

    Every face is expanded into the pixel centres of its bounding box at once (a ragged batch), so the cost grows
    with the covered pixels, not with a loop over faces.
    """
    corners = pixels[faces]  # (F, 3, 2)
    low = np.ceil(corners.min(axis=1) - 0.5).astype(np.int64).clip(0, resolution)  # first centre inside the box
    high = np.floor(corners.max(axis=1) - 0.5).astype(np.int64).clip(-1, resolution - 1)
    width, height = (high - low + 1).clip(min=0).T
    counts = width * height
    edge_a, edge_b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area = edge_a[:, 0] * edge_b[:, 1] - edge_a[:, 1] * edge_b[:, 0]  # twice the signed area
    covered = (counts > 0) & (np.abs(area) > 1e-12)
    face_index = np.repeat(np.flatnonzero(covered), counts[covered])
    if len(face_index) == 0:
        return np.full((resolution, resolution), np.inf, dtype=np.float32)
    starts = np.repeat(np.cumsum(counts[covered]) - counts[covered], counts[covered])
    local = np.arange(len(face_index)) - starts
    x = low[face_index, 0] + local % width[face_index]
    y = low[face_index, 1] + local // width[face_index]
    # Barycentric coordinates of the pixel centre (edge functions over the doubled area).
    offset = np.stack([x + 0.5, y + 0.5], axis=1) - corners[face_index, 0]
    inverse_area = 1.0 / area[face_index]
    w1 = (offset[:, 0] * edge_b[face_index, 1] - offset[:, 1] * edge_b[face_index, 0]) * inverse_area
    w2 = (edge_a[face_index, 0] * offset[:, 1] - edge_a[face_index, 1] * offset[:, 0]) * inverse_area
    inside = (w1 >= -1e-9) & (w2 >= -1e-9) & (w1 + w2 <= 1.0 + 1e-9)
    face_depth = depth[faces[face_index[inside]]]  # (K, 3)
    z = face_depth[:, 0] + w1[inside] * (face_depth[:, 1] - face_depth[:, 0]) + w2[inside] * (
        face_depth[:, 2] - face_depth[:, 0])
    flat = torch.from_numpy(y[inside] * resolution + x[inside])
    buffer = torch.full((resolution * resolution,), float("inf"), dtype=torch.float64)
    buffer.scatter_reduce_(0, flat, torch.from_numpy(z), reduce="amin")
    return buffer.view(resolution, resolution).numpy().astype(np.float32)
