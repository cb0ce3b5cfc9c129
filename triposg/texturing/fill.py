"""Colours for the surface the image does not show: a mirror image where the shape is symmetric, then the nearest
seen colour along the surface."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree


def find_mirror_plane(
    surface: np.ndarray, tolerance: float, step_deg: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The vertical plane (through the surface's centroid, normal (cos a, 0, sin a)) that best maps the surface
    onto itself, as (unit normal (3,), point (3,), error), or None when even the best one misses by more than
    `tolerance` (mean distance of mirrored points to the surface, in mesh units).

    `surface`: (P, 3) points spread evenly over the surface. Only vertical planes are tried: objects stand upright
    (y up), and their left-right (or front-back) symmetry is what shows the side the image hides. Orientations
    are searched every 10 degrees, then every `step_deg` around the best."""
    tree = cKDTree(surface)
    centre = surface.mean(axis=0)
    probe = surface[:: max(1, len(surface) // 1000)]

    def error(angle_deg: float) -> float:
        normal = np.array([math.cos(math.radians(angle_deg)), 0.0, math.sin(math.radians(angle_deg))])
        mirrored = probe - 2.0 * ((probe - centre) @ normal)[:, None] * normal
        return float(tree.query(mirrored)[0].mean())

    coarse = min(np.arange(0.0, 180.0, 10.0), key=error)
    best = min(coarse + np.arange(-5.0, 5.0 + 1e-9, step_deg), key=error)
    best_error = error(best)
    if best_error > tolerance:
        return None
    normal = np.array([math.cos(math.radians(best)), 0.0, math.sin(math.radians(best))])
    return normal, centre, best_error


def mirror_colors(
    vertices: np.ndarray, colors: np.ndarray, known: np.ndarray, plane: tuple[np.ndarray, np.ndarray, float],
    tolerance: float,
) -> np.ndarray:
    """(V,) bool: unknown vertices whose mirror image lies within `tolerance` of a known vertex; their `colors`
    (V, 3) are set from it in place."""
    normal, point, _ = plane
    unknown = np.flatnonzero(~known)
    if len(unknown) == 0 or not known.any():
        return np.zeros(len(vertices), dtype=bool)
    mirrored = vertices[unknown] - 2.0 * ((vertices[unknown] - point) @ normal)[:, None] * normal
    known_index = np.flatnonzero(known)
    distance, nearest = cKDTree(vertices[known_index]).query(mirrored)
    close = distance <= tolerance
    colors[unknown[close]] = colors[known_index[nearest[close]]]
    filled = np.zeros(len(vertices), dtype=bool)
    filled[unknown[close]] = True
    return filled


def propagate_colors(
    vertices: np.ndarray, edges: np.ndarray, colors: np.ndarray, known: np.ndarray, smoothing_iterations: int,
) -> np.ndarray:
    """Colours (V, 3) for every vertex: known ones kept, each other one the colour of the nearest known vertex along
    the mesh's edges (multi-source Dijkstra; in 3D where its piece has no known vertex), then smoothed by
    `smoothing_iterations` steps of averaging with its neighbours (known vertices stay fixed), which softens the
    seams where two nearest colours meet.

    `edges`: (E, 2) unique vertex pairs; `known`: (V,) bool."""
    colors = colors.copy()
    count = len(vertices)
    if known.all() or not known.any():
        return colors
    lengths = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1) + 1e-12
    graph = scipy.sparse.coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(count, count)).tocsr()
    sources = np.flatnonzero(known)
    distance, _, nearest = dijkstra(graph, directed=False, indices=sources, min_only=True, return_predecessors=True)
    reached = np.isfinite(distance) & ~known
    colors[reached] = colors[nearest[reached]]
    stranded = ~np.isfinite(distance)
    if stranded.any():
        _, closest = cKDTree(vertices[sources]).query(vertices[stranded])
        colors[stranded] = colors[sources[closest]]
    if smoothing_iterations > 0:
        adjacency = graph + graph.T
        adjacency.data[:] = 1.0
        degree = np.asarray(adjacency.sum(axis=1)).ravel()
        free = ~known & (degree > 0)
        for _ in range(smoothing_iterations):
            average = (adjacency @ colors) / np.maximum(degree, 1.0)[:, None]
            colors[free] = average[free]
    return colors
