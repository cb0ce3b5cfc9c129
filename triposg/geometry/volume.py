"""Volume decoders: sample a field function on a regular grid.

A field function ``sdf_fn`` maps (Q, 3) xyz to (Q,) values, **positive inside and negative outside** (the value
the released TripoSG VAE decodes). A grid of ``resolution`` cells per side has ``resolution + 1`` sample points
per axis that span ``bounds`` exactly, so grid point ``i`` along x sits at ``xmin + i * (xmax - xmin) / resolution``.

Decoders produce the same :class:`VolumeResult`:

- :class:`DenseVolumeDecoder` queries every grid point ((R + 1)^3 queries).
- :class:`HierarchicalVolumeDecoder` queries a coarse grid, then doubles the resolution and queries only the cells
  near the zero level set, so the number of queries grows with the surface area rather than the volume.
- ``SurfaceTrackingDecoder`` (``tracking.py``, the default) probes coarse cell centres and follows the surface:
  the fewest queries. ``decoding.py`` holds the registry behind ``decode_volume``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

SDFFunction = Callable[[torch.Tensor], torch.Tensor]
# Called as progress(resolution, points_done, points_total) after every chunk of queries at one grid level.
ProgressCallback = Callable[[int, int, int], None]

DEFAULT_BOUNDS: tuple[float, ...] = (-1.005, -1.005, -1.005, 1.005, 1.005, 1.005)


@dataclass
class VolumeResult:
    """Field values sampled on a regular grid.

    ``values``: (R + 1, R + 1, R + 1) float32, indexed ``[x, y, z]``; ``bounds``: (xmin, ymin, zmin, xmax, ymax,
    zmax); ``resolution``: R cells per side; ``num_queries``: points ``sdf_fn`` was asked for in total.
    """

    values: np.ndarray
    bounds: tuple[float, ...]
    resolution: int
    num_queries: int

    @property
    def voxel_size(self) -> np.ndarray:
        """(3,) edge length of one grid cell along x, y, z."""
        return _voxel_size(self.bounds, self.resolution)


def _check_bounds(bounds: Sequence[float]) -> tuple[float, ...]:
    bounds = tuple(float(b) for b in bounds)
    if len(bounds) != 6:
        raise ValueError(f"bounds must be (xmin, ymin, zmin, xmax, ymax, zmax), got {len(bounds)} numbers")
    if not all(lo < hi for lo, hi in zip(bounds[:3], bounds[3:])):
        raise ValueError(f"bounds must have min < max on every axis, got {bounds}")
    return bounds


def _check_resolution(resolution: int) -> int:
    if int(resolution) != resolution or resolution < 1:
        raise ValueError(f"resolution must be a positive integer number of cells, got {resolution!r}")
    return int(resolution)


def _voxel_size(bounds: Sequence[float], resolution: int) -> np.ndarray:
    lo, hi = np.asarray(bounds[:3], dtype=np.float64), np.asarray(bounds[3:], dtype=np.float64)
    return (hi - lo) / resolution


def _evaluate_grid_points(
    sdf_fn: SDFFunction,
    flat_indices: Callable[[int, int], np.ndarray],
    num_points: int,
    out: np.ndarray,
    bounds: tuple[float, ...],
    resolution: int,
    chunk_size: int,
    device: torch.device | str | None,
    dtype: torch.dtype,
    progress: ProgressCallback | None,
    progress_resolution: int | None = None,
) -> None:
    """Query ``sdf_fn`` at ``num_points`` grid points and write the results into ``out`` (a grid of side R + 1).

    ``flat_indices(start, stop)`` returns the flat (C-order) indices of points ``start:stop`` of the query list,
    so callers never have to build all the coordinates at once: memory is bounded by ``chunk_size``.
    ``progress`` is told ``progress_resolution`` (default: ``resolution``) as the stage's resolution.
    """
    stage = resolution if progress_resolution is None else progress_resolution
    origin = np.asarray(bounds[:3], dtype=np.float64)
    step = _voxel_size(bounds, resolution)
    flat_out = out.reshape(-1)  # a view: `out` is always C-contiguous here
    with torch.no_grad():
        for start in range(0, num_points, chunk_size):
            stop = min(start + chunk_size, num_points)
            index = flat_indices(start, stop)
            ijk = np.stack(np.unravel_index(index, out.shape), axis=-1)  # (C, 3)
            xyz = (origin + ijk * step).astype(np.float32)
            points = torch.from_numpy(xyz).to(device=device, dtype=dtype)
            values = sdf_fn(points)
            values = values.detach().to(device="cpu", dtype=torch.float32).reshape(-1).numpy()
            if values.shape[0] != stop - start:
                raise ValueError(
                    f"sdf_fn must return one value per point: asked for {stop - start} points, got "
                    f"{values.shape[0]} values"
                )
            flat_out[index] = values
            if progress is not None:
                progress(stage, stop, num_points)


@dataclass
class DenseVolumeDecoder:
    """Query ``sdf_fn`` at every one of the (R + 1)^3 grid points."""

    chunk_size: int = 50_000  # points per sdf_fn call: bounds peak memory of the field function

    def __call__(
        self,
        sdf_fn: SDFFunction,
        bounds: Sequence[float] = DEFAULT_BOUNDS,
        resolution: int = 256,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        progress: ProgressCallback | None = None,
    ) -> VolumeResult:
        """``sdf_fn``: (Q, 3) xyz -> (Q,) values; ``device``/``dtype`` are those of the query points."""
        bounds = _check_bounds(bounds)
        resolution = _check_resolution(resolution)
        values = np.empty((resolution + 1,) * 3, dtype=np.float32)
        _evaluate_grid_points(
            sdf_fn,
            lambda start, stop: np.arange(start, stop),
            values.size,
            values,
            bounds,
            resolution,
            self.chunk_size,
            device,
            dtype,
            progress,
        )
        return VolumeResult(values=values, bounds=bounds, resolution=resolution, num_queries=values.size)


def _along(axis: int, index: slice) -> tuple[slice, ...]:
    """A 3D index that applies ``index`` along ``axis`` and takes everything along the other two."""
    return tuple(index if a == axis else slice(None) for a in range(3))


def _cell_min_max(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max over the 8 corners of every cell: (R + 1)^3 point values -> two (R, R, R) arrays.

    Separable pairwise reductions along x, y, z keep temporaries the size of the grid.
    """
    cell_min, cell_max = values, values
    for axis in range(3):
        lower, upper = _along(axis, slice(None, -1)), _along(axis, slice(1, None))
        cell_min = np.minimum(cell_min[lower], cell_min[upper])
        cell_max = np.maximum(cell_max[lower], cell_max[upper])
    return cell_min, cell_max


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a boolean (R, R, R) cell mask by ``radius`` cells in every direction (a cube structuring element)."""
    for _ in range(radius):
        for axis in range(3):
            lower, upper = _along(axis, slice(None, -1)), _along(axis, slice(1, None))
            grown = mask.copy()
            grown[lower] |= mask[upper]
            grown[upper] |= mask[lower]
            mask = grown
    return mask


def _cells_to_fine_points(active_cells: np.ndarray) -> np.ndarray:
    """Mark the fine grid points covered by active coarse cells: (r, r, r) cells -> (2r + 1)^3 point mask.

    Coarse cell ``c`` splits into fine cells ``2c, 2c + 1`` whose corners are fine points ``2c .. 2c + 2``. The
    rule factorises per axis, so it is applied along x, then y, then z: odd fine point ``2c + 1`` belongs to cell
    ``c`` only, even fine point ``2c`` to cells ``c - 1`` and ``c``.
    """
    mask = active_cells
    for axis in range(3):
        shape = list(mask.shape)
        shape[axis] = 2 * shape[axis] + 1
        fine = np.zeros(shape, dtype=bool)
        fine[_along(axis, slice(1, None, 2))] = mask
        fine[_along(axis, slice(0, -1, 2))] |= mask
        fine[_along(axis, slice(2, None, 2))] |= mask
        mask = fine
    return mask


def _upsample_values(coarse: np.ndarray) -> np.ndarray:
    """Trilinear 2x upsampling of grid values: (r + 1)^3 -> (2r + 1)^3.

    Even fine points copy the coarse values; odd ones average their two neighbours along each axis in turn, which
    is exactly trilinear interpolation at cell, face and edge midpoints. Writes in place, so no grid-sized
    temporaries beyond the output.
    """
    size = 2 * (coarse.shape[0] - 1) + 1
    fine = np.empty((size,) * 3, dtype=np.float32)
    fine[::2, ::2, ::2] = coarse
    filled_axes: list[int] = []
    # z first: strided passes along the contiguous axis then run on the smallest subset of points (2x faster).
    for axis in (2, 1, 0):
        # Along `axis`, fill the odd indices; along axes already filled take every index, along the others the
        # even ones only (their odd indices are filled by a later pass).
        index = [slice(None) if a in filled_axes else slice(None, None, 2) for a in range(3)]
        odd, before, after = list(index), list(index), list(index)
        odd[axis], before[axis], after[axis] = slice(1, None, 2), slice(0, -1, 2), slice(2, None, 2)
        target = fine[tuple(odd)]
        np.add(fine[tuple(before)], fine[tuple(after)], out=target)
        target *= 0.5
        filled_axes.append(axis)
    return fine


@dataclass
class HierarchicalVolumeDecoder:
    """Coarse-to-fine sampling that queries only the cells near the zero level set.

    A dense grid at ``coarse_resolution`` is queried first. Then, until the target resolution: a cell is *active*
    when its corners change sign or all of them have ``|value| < band * cell size``; active cells are dilated by
    ``dilation`` cells, the grid doubles, and only the fine points inside active cells are queried. Every other
    fine point is filled by trilinear interpolation of the coarser level, so far-away cells keep their sign
    (outside stays negative). Refinement targets level 0, the level :func:`extract_surface` uses by default.

    Why "all corners": if the surface of a true SDF (1-Lipschitz) passes through a cell, every corner is within one
    cell diagonal (sqrt(3) cells) of it, so ``band >= sqrt(3)`` refines every such cell, even those a thin feature
    crosses without a sign change at the corners, and the surface equals the dense one. Requiring all corners
    (rather than any) keeps the refined shell about two cells thinner. Fields that are not distance-scaled rely
    on the sign-change test and the dilation.
    """

    coarse_resolution: int = 64  # dense first level: must resolve every part of the shape to be refined at all
    band: float = 2.0  # near-surface threshold in cell sizes; sqrt(3) is the minimum for an exact SDF
    dilation: int = 1  # extra cells refined around active ones: margin for fields that are not exact SDFs
    chunk_size: int = 50_000  # points per sdf_fn call: bounds peak memory of the field function

    def __call__(
        self,
        sdf_fn: SDFFunction,
        bounds: Sequence[float] = DEFAULT_BOUNDS,
        resolution: int = 256,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        progress: ProgressCallback | None = None,
    ) -> VolumeResult:
        """``sdf_fn``: (Q, 3) xyz -> (Q,) values; ``resolution`` must be ``coarse_resolution * 2**k``, k >= 0."""
        bounds = _check_bounds(bounds)
        resolution = _check_resolution(resolution)
        coarse = _check_resolution(self.coarse_resolution)
        num_levels = _num_doublings(coarse, resolution)
        if self.band < 0 or self.dilation < 0:
            raise ValueError(f"band and dilation must be >= 0, got band={self.band}, dilation={self.dilation}")

        volume = DenseVolumeDecoder(self.chunk_size)(
            sdf_fn, bounds, coarse, device=device, dtype=dtype, progress=progress
        )
        values, num_queries = volume.values, volume.num_queries
        known = np.ones(values.shape, dtype=bool)  # points whose value was queried, not interpolated

        level_resolution = coarse
        for level in range(num_levels):
            # 1. Active cells at the current level: a sign change across the cell, or every corner within the band.
            threshold = self.band * float(_voxel_size(bounds, level_resolution).max())
            cell_min, cell_max = _cell_min_max(values)
            active = (cell_min <= 0) & (cell_max >= 0)
            active |= (cell_min > -threshold) & (cell_max < threshold)
            del cell_min, cell_max
            active = _dilate(active, self.dilation)

            # 2. Double the grid; fill it by interpolation, then overwrite the active region with queries.
            level_resolution *= 2
            values = _upsample_values(values)
            to_query = _cells_to_fine_points(active)
            del active
            # Even fine points are the coarse points: skip those already queried (a coarse-sized mask, not a fine one).
            to_query[::2, ::2, ::2] &= ~known
            if level < num_levels - 1:
                queried_before = known
                known = to_query.copy()
                known[::2, ::2, ::2] |= queried_before
                del queried_before
            query_index = np.flatnonzero(to_query)
            del to_query
            _evaluate_grid_points(
                sdf_fn,
                lambda start, stop, index=query_index: index[start:stop],
                query_index.size,
                values,
                bounds,
                level_resolution,
                self.chunk_size,
                device,
                dtype,
                progress,
            )
            num_queries += int(query_index.size)
            del query_index

        return VolumeResult(values=values, bounds=bounds, resolution=resolution, num_queries=num_queries)


def _num_doublings(
    coarse_resolution: int, resolution: int, minimum: int = 0, name: str = "coarse_resolution",
    method: str = "hierarchical decoding",
) -> int:
    """k >= ``minimum`` such that ``resolution == coarse_resolution * 2**k``; a ValueError naming the decoder's
    parameter (``name``) when there is none."""
    ratio, remainder = divmod(resolution, coarse_resolution)
    if remainder or ratio < 2**minimum or ratio & (ratio - 1):
        valid = [coarse_resolution * 2**k for k in range(minimum, minimum + 4)]
        raise ValueError(
            f"{method} needs resolution = {name} * 2**k with k >= {minimum}; got resolution={resolution} with "
            f"{name}={coarse_resolution}. Use one of {valid}, ..., change {name}, or use method=\"dense\"."
        )
    return ratio.bit_length() - 1
