"""Surface-tracking volume decoding: the dense decode's surface from a fraction of its queries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from triposg.geometry import (
    DEFAULT_BOUNDS,
    EmptySurfaceError,
    SurfaceTrackingDecoder,
    decode_volume,
    default_probe_resolution,
    extract_mesh,
    extract_surface,
)
from triposg.geometry.tracking import _distinct
from triposg.geometry.volume import _cell_min_max


class Counting:
    """A field function that counts the points it is asked for."""

    def __init__(self, field):
        self.field, self.calls, self.points = field, 0, 0

    def __call__(self, xyz: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.points += xyz.shape[0]
        return self.field(xyz)


def sphere(center=(0.0, 0.0, 0.0), radius=0.5, scale=1.0):
    center = torch.tensor(center)
    return lambda xyz: scale * (radius - (xyz - center).norm(dim=-1))


def union(*fields):
    return lambda xyz: torch.stack([f(xyz) for f in fields]).amax(dim=0)


def slab(thickness: float, height: float = 0.6):
    """A thin square plate in the plane z = 0.013 (off the grid planes): positive inside, exact SDF of a box."""
    half = torch.tensor([height / 2, height / 2, thickness / 2])

    def field(xyz):
        q = (xyz - torch.tensor([0.0, 0.0, 0.013])).abs() - half
        return -(q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0))

    return field


EXACT = {"interpolation_tolerance": None}  # query every corner: exactly the dense surface


def crossing_cells(values: np.ndarray) -> np.ndarray:
    low, high = _cell_min_max(values)
    return (low <= 0) & (high > 0)


def assert_same_surface(tracked, dense):
    """Every cell the dense surface crosses is crossed in the tracked grid with identical corner values, and no
    other cell is: marching cubes gives the same triangles."""
    cells = crossing_cells(dense.values)
    assert np.array_equal(crossing_cells(tracked.values), cells)
    corners = np.zeros(dense.values.shape, dtype=bool)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                corners[dx : dx + cells.shape[0], dy : dy + cells.shape[1], dz : dz + cells.shape[2]] |= cells
    np.testing.assert_array_equal(tracked.values[corners], dense.values[corners])
    (tv, tf), (dv, df) = extract_surface(tracked), extract_surface(dense)
    np.testing.assert_array_equal(tf, df)
    np.testing.assert_allclose(tv, dv, atol=1e-6)


def blobs(count: int = 40, radius: float = 0.012, seed: int = 0):
    """Spheres smaller than a 128-grid cell (0.0157) scattered through the box: every one a separate piece."""
    centres = torch.from_numpy(np.random.default_rng(seed).uniform(-0.8, 0.8, size=(count, 3)).astype(np.float32))
    return lambda xyz: (radius - torch.cdist(xyz, centres)).amax(dim=1)


SHAPES = {
    "three spheres": union(sphere((-0.4, 0.1, 0.0), 0.3), sphere((0.35, -0.2, 0.2), 0.25), sphere((0.0, 0.5, -0.4), 0.15)),
    "thin plate": slab(0.01),  # a third of a 128-grid cell, a twentieth of a probe cell
    "small blob": sphere((0.21, -0.33, 0.47), 0.03),  # smaller than a probe cell and off its centre
    "sub-voxel blobs": blobs(),  # the default seeding keeps them; seed_band=0.25 lost 60 of 442 crossing cells
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_exact_tracking_gives_the_dense_surface_from_far_fewer_queries(name):
    field = Counting(SHAPES[name])
    tracked = decode_volume(field, DEFAULT_BOUNDS, 128, method="tracking", **EXACT)
    dense = decode_volume(SHAPES[name], DEFAULT_BOUNDS, 128, method="dense")
    assert_same_surface(tracked, dense)
    assert tracked.num_queries == field.points  # each point is asked for once
    assert tracked.num_queries < dense.num_queries / 8, (tracked.num_queries, dense.num_queries)


def pieces(mesh) -> int:
    return len(trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(mesh.faces))))


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_interpolation_keeps_every_piece_and_the_crossing_cells(name):
    """The default interpolates the grid points two stencils agree on, away from zero: the same crossing cells as
    the dense decode (so the same pieces, thin plate and sub-voxel blobs included), vertices within half a voxel
    (they move along their edges only), and fewer queries than exact tracking."""
    dense = decode_volume(SHAPES[name], DEFAULT_BOUNDS, 128, method="dense")
    tracked = decode_volume(SHAPES[name], DEFAULT_BOUNDS, 128, method="tracking")
    exact = decode_volume(SHAPES[name], DEFAULT_BOUNDS, 128, method="tracking", **EXACT)
    assert np.array_equal(crossing_cells(tracked.values), crossing_cells(dense.values))
    meshes = [extract_mesh(tracked), extract_mesh(dense)]
    assert pieces(meshes[0]) == pieces(meshes[1])
    voxel = float(dense.voxel_size.max())
    gap = max(cKDTree(b.vertices).query(a.vertices)[0].max() for a, b in (meshes, meshes[::-1]))
    assert gap < 0.5 * voxel, gap / voxel
    assert tracked.num_queries < exact.num_queries


def test_interpolation_saves_a_third_of_the_queries_on_smooth_surfaces():
    three_spheres = SHAPES["three spheres"]
    tracked = decode_volume(three_spheres, DEFAULT_BOUNDS, 128, method="tracking")
    exact = decode_volume(three_spheres, DEFAULT_BOUNDS, 128, method="tracking", **EXACT)
    assert tracked.num_queries < 0.75 * exact.num_queries, (tracked.num_queries, exact.num_queries)


def test_seeding_every_active_cell_is_the_provable_setting():
    """seed_band = band queries every cell the probe could not rule out: the dense surface for any 1-Lipschitz
    field, here 80 blobs of 0.6 cells radius, at a higher query count than the default."""
    field = blobs(count=80, radius=0.009, seed=1)
    dense = decode_volume(field, DEFAULT_BOUNDS, 128, method="dense")
    provable = SurfaceTrackingDecoder(seed_band=1.0, **EXACT)(field, DEFAULT_BOUNDS, 128)
    assert_same_surface(provable, dense)
    assert provable.num_queries > decode_volume(field, DEFAULT_BOUNDS, 128, method="tracking", **EXACT).num_queries


@pytest.mark.parametrize("name", ["three spheres", "sub-voxel blobs"])
def test_the_corner_stage_saves_probes_of_a_truncated_field(name):
    """Corners and centres of a 16-cell grid (7-9k queries) rule out most of the box before the 32-cell centre probe
    (33k): the same surface from fewer queries, for a field truncated at 0.1 as the released VAE's."""
    truncated = lambda xyz: SHAPES[name](xyz).clamp(-0.1, 0.1)  # noqa: E731
    dense = decode_volume(truncated, DEFAULT_BOUNDS, 128, method="dense")
    with_corners = decode_volume(truncated, DEFAULT_BOUNDS, 128, method="tracking", **EXACT)
    centres_only = SurfaceTrackingDecoder(corner_band=None, **EXACT)(truncated, DEFAULT_BOUNDS, 128)
    assert_same_surface(with_corners, dense)
    assert with_corners.num_queries < centres_only.num_queries - 15_000, (with_corners.num_queries,
                                                                          centres_only.num_queries)


def test_tracking_follows_a_surface_the_probes_rule_out():
    """A field 4x steeper than a distance (not 1-Lipschitz): the probe test wrongly rules out cells the surface
    passes through, and tracking across cell faces recovers all of them."""
    steep = sphere(radius=0.6, scale=4.0)
    decoder = SurfaceTrackingDecoder(band=0.3, seed_band=0.01, **EXACT)
    tracked = decoder(steep, DEFAULT_BOUNDS, 64)
    assert_same_surface(tracked, decode_volume(steep, DEFAULT_BOUNDS, 64, method="dense"))


def test_queries_grow_with_the_surface_not_the_volume():
    counts = [decode_volume(sphere(), DEFAULT_BOUNDS, r, method="tracking").num_queries for r in (64, 128, 256)]
    growth = [b / a for a, b in zip(counts, counts[1:])]
    # At most ~4x per doubling (less while the fixed 32^3 probe dominates); a volume method grows 8x.
    assert all(1.5 < g < 4.5 for g in growth), (counts, growth)
    assert counts[-1] < 257**3 / 50


def test_a_field_without_surface_gives_a_grid_of_one_sign():
    volume = decode_volume(lambda xyz: -1.0 - xyz[:, 0] ** 2, DEFAULT_BOUNDS, 64, method="tracking")
    assert volume.values.max() < 0
    with pytest.raises(EmptySurfaceError):
        extract_surface(volume)


def test_the_default_probe_grid_divides_the_resolution():
    assert [default_probe_resolution(r) for r in (32, 48, 64, 96, 128, 512)] == [16, 24, 32, 24, 32, 32]
    for r in (32, 48, 64, 96, 100, 128):
        probe = default_probe_resolution(r)
        ratio = r // probe
        assert r % probe == 0 and ratio >= 2 and ratio & (ratio - 1) == 0


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match="probe_resolution"):
        SurfaceTrackingDecoder(probe_resolution=32)(sphere(), DEFAULT_BOUNDS, 96)
    with pytest.raises(ValueError, match="probe_resolution"):
        decode_volume(sphere(), DEFAULT_BOUNDS, 33, method="tracking")
    with pytest.raises(ValueError, match="band"):
        SurfaceTrackingDecoder(band=0)(sphere(), DEFAULT_BOUNDS, 64)
    with pytest.raises(ValueError, match="corner_band"):
        SurfaceTrackingDecoder(corner_band=-1.0)(sphere(), DEFAULT_BOUNDS, 64)
    with pytest.raises(ValueError, match="interpolation_tolerance"):
        SurfaceTrackingDecoder(interpolation_tolerance=-0.1)(sphere(), DEFAULT_BOUNDS, 64)
    with pytest.raises(ValueError, match="one value per point"):
        decode_volume(lambda xyz: torch.zeros(3), DEFAULT_BOUNDS, 64, method="tracking")


def test_progress_reports_every_stage():
    seen = []
    decode_volume(sphere(), DEFAULT_BOUNDS, 128, method="tracking", progress=lambda *a: seen.append(a))
    stages = [resolution for resolution, _, _ in seen]
    assert stages[0] == 16 and 32 in stages and 64 in stages and stages[-1] == 128
    assert all(0 < done <= total for _, done, total in seen)


def test_non_cubic_bounds_and_float64_points():
    bounds = (-1.0, -0.5, -0.8, 1.0, 0.5, 0.8)  # cells of three different edge lengths
    field = sphere((0.1, 0.0, -0.05), 0.42)
    tracked = decode_volume(lambda xyz: field(xyz.float()), bounds, 64, method="tracking", dtype=torch.float64, **EXACT)
    dense = decode_volume(lambda xyz: field(xyz.float()), bounds, 64, method="dense", dtype=torch.float64)
    assert_same_surface(tracked, dense)
    assert tracked.bounds == bounds and tracked.num_queries < dense.num_queries / 2


@pytest.mark.parametrize("size", [0, 1, 2, 5_000])
def test_distinct_indices_equal_numpy_unique(size):
    """The sort-based dedupe the tracker uses instead of `np.unique` (slow on integers in numpy 2.4) gives its result."""
    index = np.random.default_rng(size).integers(0, 300, size)
    distinct = _distinct(index)
    np.testing.assert_array_equal(distinct, np.unique(index))
    assert distinct.dtype == index.dtype
