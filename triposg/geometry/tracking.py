"""Surface-tracking volume decoding: query the field only at the corners of the cells the surface passes through.

:class:`SurfaceTrackingDecoder` produces a :class:`~triposg.geometry.volume.VolumeResult` like the dense decoder's,
in four stages:

1. **Probe cascade.** First, on a grid of half the probe resolution, the field is asked at every cell's eight
   corners, then at the centre of each cell whose corners all lie on one side of the band (the others are kept
   whatever their centre). A cell whose nine values have one sign and ``|v| >= corner_band * h`` (``h`` the cell
   edge) holds no surface when the field is a 1-Lipschitz SDF and ``corner_band >= sqrt(5) / 4 ~ 0.56``: every point
   of a cell is that close to one of the nine. Then, on the probe grid (``probe_resolution``) and below, only the
   children of cells not yet ruled out are probed, at their *centres*: a cell whose centre value has ``|v| >= band *
   h`` holds no surface when ``band >= sqrt(3) / 2`` (every point is within half a diagonal of the centre). Cells
   that fail are split in eight and their children's centres are probed, down to half the target resolution.
   Truncated SDFs (|v| capped at ``t``) can only be ruled out where ``band * h < t``, which is why the probe grid's
   half-diagonal is kept below the truncation (32 cells for the released VAE's 0.1 on the default bounds: the corner
   stage's 16 cells reach 0.56 h = 0.07; coarser grids would keep every cell, which is why the corner stage is
   skipped below 16 cells, e.g. for 32³ previews). The corner stage costs 7-9k queries (9k when every centre was
   asked) where the whole 32-cell probe cost 33k; the cells it keeps are the same kind of guarantee.
2. **Region.** At the last probe level (cells two grid cells wide) the cells whose centre is within
   ``seed_band`` cell edges of zero have every grid point given a value: the seeds of tracking.
3. **Tracking.** Starting from the region's cells, any cell whose corners change sign and has a corner without a
   value gets one; the surface is followed across cell faces until every cell it crosses has all eight corners
   valued. Points never valued take the value of the finest probe cell that owns them. A final pass over the
   whole grid restarts tracking wherever a crossing cell still has a filled corner: a surface whose sign shows
   between two probe centres is found that way, as are cells a field steeper than 1-Lipschitz made the probe rule
   out wrongly.
4. **Interpolation** (the default; ``interpolation_tolerance=None`` switches it off). A point is *valued* in
   stages 2-3 by a query, except a point with both odd and even grid coordinates: it lies between two
   even-even-even points along one axis and four odd-odd-odd points across it (or the other way round), which are
   queried first; where the two linear interpolations agree within ``interpolation_tolerance`` cell edges, have
   one sign and put the point ``interpolation_margin`` cell edges or more from zero, their mean is used instead of
   a query. Points nearer the surface, and thin parts that one stencil crosses and the other does not, are always
   queried, so the signs marching cubes reads are the field's.

Exact mode (``interpolation_tolerance=None``): every cell marching cubes sees crossing has eight queried corners,
so each surface piece that is found is exactly the dense decode's. Which pieces are found: for a 1-Lipschitz field
every piece passes through a cell that is still active at the last probe level, so with ``seed_band = band`` all
of them are (provably; about 14 % more queries than the default on the default model's example shapes). The default
``seed_band`` (half the band) seeds the cells nearest zero; a piece is still found when it crosses a seeded cell or
changes sign between two probe centres. It gives the dense surface exactly on the 14 example shapes of the default
model and on 40 sub-voxel blobs (radius 0.6-0.8 of a 128-grid cell), where ``seed_band = 0.25`` lost up to 45 % of
the blobs' crossing cells and ``0`` lost fragments of the examples. The queries grow with the surface area (about 4x
per doubling of the resolution), not the volume (8x).

The default (interpolation, tolerance 0.25, margin 0.5) is approximate and meets the surface criteria of issue 24 on
the 14 example shapes of the default model at 128³ (`benchmarks/extraction_model.py`): against a dense decode of the
same latents the symmetric Chamfer distance is at most 0.003 voxels, the Hausdorff distance at most 0.15 voxels
(the goal is Chamfer below half a voxel), every connected piece is kept, and it asks 21-35 % fewer queries than
exact mode (median 30 %); on the analytic thin plate and 40 sub-voxel blobs the pieces are kept too (Hausdorff 0.48
voxels on the blobs, whose whole surface lies within a voxel of the grid points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
import torch

from triposg.geometry.volume import (
    DEFAULT_BOUNDS,
    ProgressCallback,
    SDFFunction,
    VolumeResult,
    _along,
    _cell_min_max,
    _cells_to_fine_points,
    _check_bounds,
    _check_resolution,
    _evaluate_grid_points,
    _num_doublings,
    _voxel_size,
)

# Corner (dx, dy, dz) of a cell, in the order used by every (cells, 8) array below.
_CORNERS = np.array(list(product((0, 1), repeat=3)), dtype=np.int64)
# The six faces of a cell: (axis, side) with the four corners on that face.
_FACES = [(axis, side, np.flatnonzero(_CORNERS[:, axis] == side)) for axis in range(3) for side in (0, 1)]


def _cell_any_all(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Any and all over the 8 corners of every cell: (R + 1)^3 booleans -> two (R, R, R) arrays (separable, on
    booleans: an eighth of the memory traffic of a min/max over float values)."""
    any_, all_ = points, points
    for axis in range(3):
        lower, upper = _along(axis, slice(None, -1)), _along(axis, slice(1, None))
        any_ = any_[lower] | any_[upper]
        all_ = all_[lower] & all_[upper]
    return any_, all_


def _distinct(index: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer array: ``np.unique``'s result, by a sort. numpy 2.4's ``np.unique``
    hashes integers, which measured 15-40x slower on this module's flat grid indices (1M indices: 1.3 s against
    37 ms on 2 cores, timed beside a training run; the ratio is what counts)."""
    if index.size < 2:
        return np.array(index, copy=True)
    index = np.sort(index)
    keep = np.empty(index.size, dtype=bool)
    keep[0] = True
    np.not_equal(index[1:], index[:-1], out=keep[1:])
    return index[keep]


def _repeat2(cells: np.ndarray) -> np.ndarray:
    """Split every cell of a (r, r, r) array into its 8 children: (2r, 2r, 2r), children copy the parent."""
    for axis in range(3):
        cells = np.repeat(cells, 2, axis=axis)
    return cells


def _region_cells(grid: "_Grid", seeds: np.ndarray) -> np.ndarray:
    """The grid cells inside the seed cells of the last probe level (8 each, two grid cells wide), as cell ids."""
    return grid.flat((seeds[:, None, :] * 2 + _CORNERS[None, :, :]).reshape(-1, 3))


class _Grid:
    """The (R + 1)^3 grid of field values being filled: which points are queried, and the query loop."""

    def __init__(self, sdf_fn, bounds, resolution, chunk_size, device, dtype, progress):
        self.sdf_fn, self.bounds, self.resolution = sdf_fn, bounds, resolution
        self.chunk_size, self.device, self.dtype, self.progress = chunk_size, device, dtype, progress
        self.size = resolution + 1
        self.strides = np.array([self.size * self.size, self.size, 1], dtype=np.int64)
        self.corner_offsets = _CORNERS @ self.strides  # flat offsets of a cell's 8 corners from its lowest one
        self.values = np.zeros(self.size**3, dtype=np.float32)
        self.known = np.zeros(self.size**3, dtype=bool)
        self.num_queries = 0

    def flat(self, ijk: np.ndarray) -> np.ndarray:
        """(n, 3) integer grid coordinates -> (n,) flat point indices."""
        return ijk @ self.strides

    def query(self, index: np.ndarray, stage_resolution: int, distinct: bool = False) -> np.ndarray:
        """Query the not-yet-known points among flat ``index`` (any order; duplicates allowed unless the caller
        says they are ``distinct``); returns them."""
        index = index[~self.known[index]]
        if not distinct:
            index = _distinct(index)
        _evaluate_grid_points(
            self.sdf_fn, lambda start, stop: index[start:stop], index.size, self.values.reshape((self.size,) * 3),
            self.bounds, self.resolution, self.chunk_size, self.device, self.dtype, self.progress, stage_resolution,
        )
        self.known[index] = True
        self.num_queries += index.size
        return index

    def cell_corners(self, cells: np.ndarray) -> np.ndarray:
        """(n,) cell ids (flat index of the lowest corner) -> (n, 8) flat corner indices."""
        return cells[:, None] + self.corner_offsets[None, :]


@dataclass
class SurfaceTrackingDecoder:
    """Probe coarse cells, value the grid points near the surface, follow the surface across cell faces.

    See the module docstring for the algorithm and why it keeps thin parts: a part of any thickness leaves a
    zero within half a diagonal of the centre of every probe cell it passes through. The default interpolates the
    grid points that are safe to interpolate (within 0.003 voxels Chamfer of the dense surface on the default model's
    examples, every piece kept); ``interpolation_tolerance=None`` queries every corner and gives exactly the dense
    surface.
    """

    probe_resolution: int = 32  # the first centre-probe grid: its cells' half-diagonal must be below the truncation
    band: float = 1.0  # probe threshold in cell edges; sqrt(3) / 2 ~ 0.87 is the minimum for a 1-Lipschitz field
    # Corner stage on probe_resolution / 2 (corners and centre of each cell), threshold in cell edges: sqrt(5) / 4 ~
    # 0.56 is the minimum for a 1-Lipschitz field (the same 16 % margin as `band`); None starts at the probe grid.
    corner_band: float | None = 0.65
    # ...run only on grids this fine or finer: coarser cells are too large to rule out anything of a truncated field
    # (0.65 h is 0.08 on the default bounds at 16 cells, under the released VAE's 0.1; at 8 cells it is 0.16).
    min_corner_resolution: int = 16
    # Interpolation (approximate; None queries every corner, exactly the dense surface): a grid point with an odd and an
    # even coordinate is taken from its neighbours where two stencils agree within this many cell edges (module doc, 4.)
    interpolation_tolerance: float | None = 0.25
    interpolation_margin: float = 0.5  # ...and both put it at least this many cell edges from zero (sign-safe)
    seed_band: float = 0.5  # last probe level: cells whose centre is this close to zero (in cell edges) seed tracking
    chunk_size: int = 10_000  # points per sdf_fn call: bounds peak memory of the field function

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
        """``sdf_fn``: (Q, 3) xyz -> (Q,) values; ``resolution`` must be ``probe_resolution * 2**k``, k >= 1."""
        bounds = _check_bounds(bounds)
        resolution = _check_resolution(resolution)
        probe = _check_resolution(self.probe_resolution)
        _num_doublings(probe, resolution, minimum=1, name="probe_resolution", method="surface tracking")
        if self.band <= 0:
            raise ValueError(f"band must be > 0 cell edges, got {self.band}")
        if self.corner_band is not None and self.corner_band <= 0:
            raise ValueError(f"corner_band must be > 0 cell edges (or None to skip the corner stage), got {self.corner_band}")

        if self.interpolation_tolerance is not None and self.interpolation_tolerance < 0:
            raise ValueError(f"interpolation_tolerance must be >= 0 cell edges (or None to query every corner), got "
                             f"{self.interpolation_tolerance}")
        grid = _Grid(sdf_fn, bounds, resolution, self.chunk_size, device, dtype, progress)
        fill, seeds = self._probe_cascade(grid, probe)
        np.copyto(grid.values, fill, where=~grid.known)
        del fill
        self._track(grid, _region_cells(grid, seeds))
        values = grid.values.reshape((grid.size,) * 3)
        return VolumeResult(values=values, bounds=bounds, resolution=resolution, num_queries=grid.num_queries)

    # ------------------------------------------------------------------ stage 1: probe cascade

    def _probe_cascade(self, grid: _Grid, probe: int) -> tuple[np.ndarray, np.ndarray]:
        """Probe cell centres from ``probe`` cells per side down to R / 2; query the points of the last active cells.

        Returns fill values for the whole grid (each point: the centre value of the finest probe cell that owns
        it, cells owning their lowest corner) and the seed cells of the last level as (n, 3) cell coordinates,
        whose points it leaves queried in ``grid``.

        Why the fill has the right sign: a point's owner at some level is either ruled out (its closed cell holds
        no zero, so the point has the centre's sign) or active, and then the owner one level down is a child of
        it; the chain ends at a ruled-out cell or at an active cell of the last level, whose points are queried.
        """
        resolution = grid.resolution
        if self.corner_band is not None and probe % 2 == 0 and probe // 2 >= self.min_corner_resolution:
            cells, coarse_fill = self._corner_probe(grid, probe // 2)
            cell_fill = _repeat2(coarse_fill)  # centre value of each cell's finest probed owner
            del coarse_fill
        else:
            cell_fill = np.zeros((probe,) * 3, dtype=np.float32)
            cells = np.stack(np.meshgrid(*[np.arange(probe)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
        level = probe
        while True:
            span = resolution // level  # grid points per probe cell edge
            centres = grid.flat(cells * span + span // 2)
            grid.query(centres, level, distinct=True)
            centre_values = grid.values[centres]
            cell_fill[cells[:, 0], cells[:, 1], cells[:, 2]] = centre_values
            edge = float(_voxel_size(grid.bounds, level).max())
            if span == 2:
                cells = cells[np.abs(centre_values) < self.seed_band * edge]
                break
            cells = cells[np.abs(centre_values) < self.band * edge]
            level *= 2
            cells = (cells[:, None, :] * 2 + _CORNERS[None, :, :]).reshape(-1, 3)  # the children of active cells
            cell_fill = _repeat2(cell_fill)
        # Stage 2: every point of the seed cells of the last level (R / 2), 2 x 2 x 2 grid cells each.
        if cells.size:
            active = np.zeros((resolution // 2,) * 3, dtype=bool)
            active[cells[:, 0], cells[:, 1], cells[:, 2]] = True
            self._resolve(grid, np.flatnonzero(_cells_to_fine_points(active)))
            del active
        # Cells of R / 2 -> points of R: each cell owns its 2 x 2 x 2 lowest points, the far faces copy the last.
        owner = np.minimum(np.arange(grid.size) // 2, resolution // 2 - 1)  # owning cell of each point, per axis
        return cell_fill.take(owner, axis=0).take(owner, axis=1).take(owner, axis=2).reshape(-1), cells

    def _corner_probe(self, grid: _Grid, level: int) -> tuple[np.ndarray, np.ndarray]:
        """Ask the field at the corners of a ``level``-cell grid, then at the centres of the cells whose eight corners
        all lie on one side, ``corner_band * h`` or more from zero; rule out the cells whose nine values pass that
        test. A cell with a corner nearer zero, or corners of both signs, is kept whatever its centre, so its centre
        is not asked (about a fifth of the centres on the default model's examples). Returns the children (cell
        coordinates at ``2 * level``) of the cells kept and every cell's fill: the centre value of a ruled-out cell
        (it holds no zero, so all its points have that sign), 0 for a kept one (its children's probes replace it)."""
        span = grid.resolution // level  # grid points per cell edge
        corner_axis = np.arange(level + 1) * span
        corners = grid.flat(np.stack(np.meshgrid(*[corner_axis] * 3, indexing="ij"), axis=-1).reshape(-1, 3))
        grid.query(corners, level, distinct=True)
        low, high = _cell_min_max(grid.values[corners].reshape((level + 1,) * 3))
        threshold = self.corner_band * float(_voxel_size(grid.bounds, level).max())
        outside, inside = high <= -threshold, low >= threshold  # all eight corners far on one side
        undecided = np.argwhere(outside | inside)
        centres = grid.flat(undecided * span + span // 2)
        grid.query(centres, level, distinct=True)
        centre_values = np.zeros((level,) * 3, dtype=np.float32)
        centre_values[tuple(undecided.T)] = grid.values[centres]
        kept = ~(outside & (centre_values <= -threshold)) & ~(inside & (centre_values >= threshold))
        kept = np.argwhere(kept)
        children = (kept[:, None, :] * 2 + _CORNERS[None, :, :]).reshape(-1, 3)
        return children, centre_values

    # ------------------------------------------------------------------ stage 3: tracking

    def _track(self, grid: _Grid, frontier: np.ndarray) -> None:
        """Follow the surface from ``frontier`` cells until every crossing cell has eight queried corners."""
        resolution = grid.resolution
        visited = np.zeros(grid.size**3, dtype=bool)  # indexed by cell id (flat index of the lowest corner)
        while True:
            while frontier.size:
                frontier = _distinct(frontier)
                frontier = frontier[~visited[frontier]]
                if not frontier.size:
                    break
                corners = grid.cell_corners(frontier)
                inside = grid.values[corners] > 0
                crossing = inside.any(axis=1) & ~inside.all(axis=1)
                needed = corners[crossing][~grid.known[corners[crossing]]]
                if needed.size:
                    self._resolve(grid, _distinct(needed))
                    inside = grid.values[corners] > 0  # real values now: re-test those cells
                    crossing = inside.any(axis=1) & ~inside.all(axis=1)
                visited[frontier] = True
                frontier = self._neighbours_across_crossing_faces(grid, frontier[crossing], inside[crossing])
            # Final check over the whole grid: a crossing cell that still has a filled corner restarts tracking.
            inside = grid.values.reshape((grid.size,) * 3) > 0
            any_inside, all_inside = _cell_any_all(inside)
            del inside
            missed = any_inside & ~all_inside  # crossing cells...
            del any_inside, all_inside
            any_unknown, _ = _cell_any_all(~grid.known.reshape((grid.size,) * 3))
            missed &= any_unknown  # ...with a corner that was filled, not queried
            del any_unknown
            missed = np.argwhere(missed)
            if not missed.size:
                return
            frontier = grid.flat(missed)
            visited[frontier] = False

    def _resolve(self, grid: _Grid, index: np.ndarray) -> None:
        """Give the distinct, not yet known grid points ``index`` their values: queried, or with interpolation on,
        the even-even-even and odd-odd-odd ones queried first and the others interpolated where that is safe."""
        if self.interpolation_tolerance is None:
            grid.query(index, grid.resolution, distinct=True)
            return
        odd = np.stack(np.unravel_index(index, (grid.size,) * 3), axis=-1) & 1
        mixed = (odd.sum(axis=1) % 3) != 0
        grid.query(index[~mixed], grid.resolution, distinct=True)
        interpolated = self._interpolate(grid, index[mixed])
        grid.query(index[mixed][~interpolated], grid.resolution, distinct=True)

    def _interpolate(self, grid: _Grid, index: np.ndarray) -> np.ndarray:
        """Fill the mixed-parity points ``index`` (one or two odd coordinates) that two stencils agree on; returns which.

        Along its odd axis an edge midpoint of the half-resolution grid lies between two even-even-even points, and
        in the plane of its even axes between four odd-odd-odd ones; a face centre the other way round. Each stencil
        interpolates linearly (error ~ h^2 / 8 times the second derivatives across it, different ones for the two), so
        where both agree within ``interpolation_tolerance`` cell edges, have one sign and lie ``interpolation_margin``
        cell edges or more from zero, their mean is used: a point that close to the surface, or a thin part that one
        stencil crosses and the other does not, is queried."""
        resolution = grid.resolution
        ijk = np.stack(np.unravel_index(index, (grid.size,) * 3), axis=-1)
        odd = ijk & 1
        # The stencil axis: the odd one of an edge midpoint, the even one of a face centre.
        axis = np.where(odd.sum(axis=1) == 1, odd.argmax(axis=1), odd.argmin(axis=1))
        inner = ((ijk > 0) & (ijk < resolution)).all(axis=1)
        ok = np.zeros(index.size, dtype=bool)
        values = np.zeros(index.size, dtype=np.float32)
        edge = float(_voxel_size(grid.bounds, resolution).max())
        for a in range(3):
            rows = np.flatnonzero((axis == a) & inner)
            if not rows.size:
                continue
            sa, (sb, sc) = grid.strides[a], np.delete(grid.strides, a)
            offsets = np.array([sa, -sa, sb + sc, sb - sc, -sb + sc, -sb - sc])
            stencil = index[rows, None] + offsets[None, :]
            known = grid.known[stencil].all(axis=1)
            rows, stencil = rows[known], stencil[known]
            samples = grid.values[stencil]
            pair, quad = samples[:, :2].mean(axis=1), samples[:, 2:].mean(axis=1)
            agree = (np.abs(pair - quad) < self.interpolation_tolerance * edge) & (np.sign(pair) == np.sign(quad))
            agree &= np.minimum(np.abs(pair), np.abs(quad)) >= self.interpolation_margin * edge
            ok[rows[agree]] = True
            values[rows[agree]] = 0.5 * (pair[agree] + quad[agree])
        grid.values[index[ok]] = values[ok]
        grid.known[index[ok]] = True
        return ok

    @staticmethod
    def _neighbours_across_crossing_faces(grid: _Grid, cells: np.ndarray, inside: np.ndarray) -> np.ndarray:
        """Cell ids across every face of ``cells`` whose four corners change sign (the surface continues there)."""
        resolution = grid.resolution
        ijk = np.stack(np.unravel_index(cells, (grid.size,) * 3), axis=-1)
        found = []
        for axis, side, face in _FACES:
            on_face = inside[:, face]
            changes = on_face.any(axis=1) & ~on_face.all(axis=1)
            if side == 0:
                changes &= ijk[:, axis] > 0
            else:
                changes &= ijk[:, axis] < resolution - 1
            step = grid.strides[axis] if side else -grid.strides[axis]
            found.append(cells[changes] + step)
        return np.concatenate(found)
