"""Procedural corpus: analytic SDF primitives and operators, shape families, sampling."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from training.data.procedural import (
    FAMILIES,
    HALF_EXTENT,
    Material,
    corpus_seeds,
    sample_corpus,
    sample_shape,
)
from training.data.sdf import (
    Box,
    Capsule,
    Cone,
    Cylinder,
    Ellipsoid,
    HalfSpace,
    RoundedBox,
    Sphere,
    Torus,
    gradient,
    intersection,
    smooth_union,
    subtract,
    surface_bounds,
    union,
)

MESH_RESOLUTION = 64  # coarse meshes keep the file fast; one voxel is 2.01 / 64
VOXEL = 2.01 / MESH_RESOLUTION
GENUS_ONE = ("torus", "mug", "ring_on_post")  # one through-hole each: Euler characteristic 0
PRIMITIVES = ("sphere", "ellipsoid", "box", "rounded_box", "cylinder", "cone", "capsule")  # convex ones


def assert_distances(field, points, expected, atol=1e-5):
    np.testing.assert_allclose(field(np.asarray(points, dtype=np.float64)), expected, atol=atol)


def assert_one_lipschitz(field, points, seed=0):
    """|f(p) - f(q)| <= |p - q| for pairs near and far: a distance field (or a bound) never changes faster."""
    rng = np.random.default_rng(seed)
    for step in (0.01, 0.1, 1.0):
        others = points + rng.normal(scale=step, size=points.shape)
        change = np.abs(field(points).astype(np.float64) - field(others))
        assert np.all(change <= np.linalg.norm(points - others, axis=1) + 1e-5)


@pytest.fixture(scope="module")
def family_meshes():
    """family -> [(shape, mesh)] for seeds 0 and 1, at MESH_RESOLUTION."""
    return {family: [(shape, shape.to_mesh(MESH_RESOLUTION)) for shape in (sample_shape(family, s) for s in (0, 1))]
            for family in FAMILIES}


# ----------------------------------------------------------------------------------------------
# Primitives: sign and distance at known points
# ----------------------------------------------------------------------------------------------


def test_sphere_distance_is_centre_distance_minus_radius():
    sphere = Sphere(0.5)
    assert_distances(sphere, [[0, 0, 0], [0.5, 0, 0], [0, 0.8, 0], [0.3, 0.4, 0.0], [1, 1, 1]],
                     [-0.5, 0.0, 0.3, 0.0, math.sqrt(3) - 0.5])


def test_box_face_edge_and_corner_distances():
    box = Box((0.5, 0.4, 0.3))
    points = [
        [0, 0, 0],  # centre: nearest face is the z one
        [0.7, 0, 0],  # in front of the x face
        [0, -0.4, 0],  # on the y face
        [0.8, 0.8, 0],  # off the x-y edge
        [0.8, 0.8, 0.7],  # off the corner
        [0.45, 0.0, 0.0],  # inside, near the x face
    ]
    expected = [-0.3, 0.2, 0.0, math.hypot(0.3, 0.4), math.sqrt(0.3**2 + 0.4**2 + 0.4**2), -0.05]
    assert_distances(box, points, expected)


def test_rounded_box_rounds_edges_and_corners_only():
    rounded = RoundedBox((0.5, 0.4, 0.3), radius=0.1)
    corner = np.array([0.4, 0.3, 0.2])  # centre of the corner's rounding sphere
    direction = np.array([1.0, 1.0, 1.0]) / math.sqrt(3)
    assert_distances(rounded, [[0.7, 0, 0], corner + 0.3 * direction, [0, 0, 0]], [0.2, 0.2, -0.3])


def test_cylinder_side_cap_and_rim_distances():
    cylinder = Cylinder(radius=0.5, half_height=0.3)
    points = [[0, 0, 0], [0, 0, 0.9], [0, 0.5, 0], [0.8, 0.7, 0], [0.4, 0.0, 0.0]]
    assert_distances(cylinder, points, [-0.3, 0.4, 0.2, 0.5, -0.1])


@pytest.mark.parametrize("bottom, top, half_height", [(0.8, 0.3, 0.6), (0.8, 0.0, 0.6), (0.2, 0.9, 0.4)])
def test_cone_matches_brute_force_distance_to_its_profile(bottom, top, half_height):
    """A solid of revolution is as far from a point as its (rho, y) profile is from (|xz|, y)."""
    profile = np.array([[0, -half_height], [bottom, -half_height], [top, half_height], [0, half_height]])
    t = np.linspace(0.0, 1.0, 20_000)[:, None]
    boundary = np.concatenate([a + t * (b - a) for a, b in itertools.pairwise(profile)])
    points = np.random.default_rng(0).uniform(-1.2, 1.2, (5_000, 3))
    reference, _ = cKDTree(boundary).query(np.stack([np.hypot(points[:, 0], points[:, 2]), points[:, 1]], axis=1))
    distances = Cone(bottom, top, half_height)(points)
    np.testing.assert_allclose(np.abs(distances), reference, atol=1e-4)
    rho = np.hypot(points[:, 0], points[:, 2])
    inside = (np.abs(points[:, 1]) < half_height) & (rho < bottom + (top - bottom) * (points[:, 1] + half_height)
                                                       / (2 * half_height))
    np.testing.assert_array_equal(distances < 0, inside)


def test_capsule_distance_is_segment_distance_minus_radius():
    capsule = Capsule((0, -0.5, 0), (0, 0.5, 0), 0.2)
    assert_distances(capsule, [[0, 0, 0], [0.5, 0.2, 0], [0, 1.0, 0], [0.3, -0.9, 0.0]],
                     [-0.2, 0.3, 0.3, 0.5 - 0.2])


def test_torus_lies_in_the_xz_plane_and_stands_up_with_rotate_x():
    torus = Torus(major_radius=0.6, minor_radius=0.2)
    assert_distances(torus, [[0.6, 0, 0], [0, 0, -0.6], [0, 0, 0], [0, 0.5, 0.6], [1.0, 0, 0]],
                     [-0.2, -0.2, 0.4, 0.3, 0.2])
    upright = torus.rotate_x(90)  # ring in the xy-plane, facing +z
    assert_distances(upright, [[0, 0.6, 0], [0, 0, 0.5], [0.6, 0, 0.3]], [-0.2, math.hypot(0.6, 0.5) - 0.2, 0.1])


def test_ellipsoid_is_exact_on_its_surface_and_along_its_axes():
    radii = (0.8, 0.3, 0.5)
    ellipsoid = Ellipsoid(radii)
    angles = np.random.default_rng(0).uniform(0, 2 * np.pi, (200, 2))
    on_surface = np.stack([radii[0] * np.cos(angles[:, 0]) * np.sin(angles[:, 1]),
                           radii[1] * np.cos(angles[:, 1]),
                           radii[2] * np.sin(angles[:, 0]) * np.sin(angles[:, 1])], axis=1)
    assert_distances(ellipsoid, on_surface, np.zeros(200))
    assert_distances(ellipsoid, [[1.0, 0, 0], [0, -0.5, 0], [0, 0, 0.2], [0, 0, 0]], [0.2, 0.2, -0.3, -0.3])


# ----------------------------------------------------------------------------------------------
# Operators
# ----------------------------------------------------------------------------------------------


def test_transforms_move_and_scale_the_field_rigidly():
    sphere = Sphere(0.5)
    assert_distances(sphere.translate((1, 0, 0)), [[1, 0, 0], [2, 0, 0]], [-0.5, 0.5])
    assert_distances(sphere.scale(2.0), [[0, 0, 0], [3, 0, 0]], [-1.0, 2.0])  # still a distance
    # rotate_y turns +z towards +x: a box long along z becomes long along x.
    long_box = Box((0.1, 0.1, 0.5)).rotate_y(90)
    assert_distances(long_box, [[0.5, 0, 0], [0, 0, 0.5]], [0.0, 0.4])


def test_shell_and_half_space():
    assert_distances(Sphere(0.5).shell(0.1), [[0, 0, 0], [0.5, 0, 0], [0.6, 0, 0]], [0.45, -0.05, 0.05])
    below = HalfSpace((0, 2, 0), 0.25)  # y <= 0.25; the normal need not be unit length
    assert_distances(below, [[3, 0, -1], [0, 1, 0]], [-0.25, 0.75])
    assert below.bounds()[1][1] == 0.25 and np.isinf(below.bounds()[0]).all()


def test_boolean_operators_combine_parts():
    a, b = Sphere(0.5), Sphere(0.5).translate((0.6, 0, 0))
    points = [[-0.4, 0, 0], [0.3, 0, 0], [1.0, 0, 0]]
    expected_a, expected_b = a(points), b(points)
    np.testing.assert_allclose(union(a, b)(points), np.minimum(expected_a, expected_b))
    np.testing.assert_allclose(intersection(a, b)(points), np.maximum(expected_a, expected_b))
    np.testing.assert_allclose(subtract(a, b)(points), np.maximum(expected_a, -expected_b))
    assert subtract(a, b)(np.array([[0.3, 0, 0]]))[0] > 0  # the overlap is carved out


def test_smooth_union_adds_at_most_k_over_4_and_only_near_seams():
    a, b, k = Sphere(0.5).translate((-0.45, 0, 0)), Sphere(0.5).translate((0.45, 0, 0)), 0.2
    points = np.random.default_rng(0).uniform(-1.2, 1.2, (2_000, 3))
    hard, smooth = union(a, b)(points), smooth_union(a, b, k=k)(points)
    assert np.all(smooth <= hard + 1e-6) and np.all(smooth >= hard - k / 4 - 1e-6)
    far_from_seam = np.abs(a(points) - b(points)) > k
    np.testing.assert_allclose(smooth[far_from_seam], hard[far_from_seam], atol=1e-6)
    assert smooth_union(a, b, k=k)(np.array([[0.0, 0.3, 0]]))[0] < union(a, b)(np.array([[0.0, 0.3, 0]]))[0]


def test_points_must_be_n_by_3():
    with pytest.raises(ValueError, match="shape"):
        Sphere(1.0)(np.zeros((4, 2)))


# ----------------------------------------------------------------------------------------------
# Gradients: a distance field has unit gradient norm
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", [
    Sphere(0.5), Box((0.5, 0.3, 0.2)), RoundedBox((0.5, 0.3, 0.2), 0.1), Cylinder(0.4, 0.3), Cone(0.6, 0.1, 0.4),
    Cone(0.5, 0.0, 0.5), Capsule((0, -0.3, 0), (0.2, 0.4, 0), 0.2), Torus(0.5, 0.15),
    Torus(0.5, 0.15).rotate_x(90).rotate_y(30).translate((0.1, 0.2, 0)).scale(1.5),
], ids=lambda field: type(field).__name__)
def test_primitive_gradients_have_unit_norm(field):
    points = np.random.default_rng(0).uniform(-1, 1, (4_000, 3))
    norms = np.linalg.norm(gradient(field, points, eps=1e-3), axis=1)
    # Finite differences straddling a ridge (e.g. a box's inner diagonals) are off: allow a few.
    assert np.mean(np.abs(norms - 1) < 1e-2) > 0.97
    assert_one_lipschitz(field, points)


def test_ellipsoid_gradient_has_unit_norm_near_its_surface():
    ellipsoid = Ellipsoid((0.8, 0.3, 0.5))
    points = np.random.default_rng(0).uniform(-1, 1, (20_000, 3))
    points = points[np.abs(ellipsoid(points)) < 0.02]
    norms = np.linalg.norm(gradient(ellipsoid, points), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=0.1)


@pytest.mark.parametrize("family", ["table", "mug", "snowman", "rocket", "lamp"])
def test_family_fields_are_close_to_distance_fields_near_the_surface(family):
    shape = sample_shape(family, 0)
    points = np.random.default_rng(0).uniform(-1, 1, (40_000, 3))
    points = points[np.abs(shape.sdf(points)) < 0.05]  # the band the data builder samples
    norms = np.linalg.norm(gradient(shape.distance_field, points), axis=1)
    assert np.mean(np.abs(norms - 1) < 0.05) > 0.9  # only points near CSG seams and ridges are off
    assert_one_lipschitz(shape.sdf, points)  # min / max / smooth min of distance fields stay bounds


def test_surface_bounds_are_tight_where_analytic_bounds_are_not():
    turned_cylinder = Cylinder(0.5, 0.3).rotate_y(30)  # its xz-box is still the disc's
    conservative_lower, _ = turned_cylinder.bounds()
    assert conservative_lower[0] < -0.6
    lower, upper = surface_bounds(turned_cylinder)
    np.testing.assert_allclose(lower, [-0.5, -0.3, -0.5], atol=2e-3)
    np.testing.assert_allclose(upper, [0.5, 0.3, 0.5], atol=2e-3)
    turned_box = Box((0.5, 0.2, 0.1)).rotate_y(30)  # for a box the corner-based box is exact
    np.testing.assert_allclose(np.stack(surface_bounds(turned_box)), np.stack(turned_box.bounds()), atol=1e-3)


# ----------------------------------------------------------------------------------------------
# Families
# ----------------------------------------------------------------------------------------------


def test_there_are_at_least_sixteen_families():
    assert len(FAMILIES) >= 16 and len(set(FAMILIES)) == len(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_meshes_are_closed_single_objects_filling_the_normalised_box(family, family_meshes):
    for shape, mesh in family_meshes[family]:
        assert len(mesh.faces) > 500 and mesh.is_watertight
        assert len(mesh.split(only_watertight=False)) == 1
        lower, upper = mesh.bounds
        assert np.all(np.abs(mesh.bounds) <= HALF_EXTENT + VOXEL)
        assert abs(float(np.max(upper - lower)) - 2 * HALF_EXTENT) < 2 * VOXEL  # longest side spans [-0.9, 0.9]
        np.testing.assert_allclose((lower + upper) / 2, 0.0, atol=VOXEL)  # centred
        np.testing.assert_allclose(np.stack(shape.bounds), mesh.bounds, atol=VOXEL)
        fill = mesh.volume / float(np.prod(upper - lower))
        assert 0.02 < fill < 0.8  # a sphere fills 0.52 of its box, a table about 0.05
        np.testing.assert_array_equal(mesh.visual.vertex_colors[0], shape.material.rgba8)


@pytest.mark.parametrize("family", FAMILIES)
def test_normalised_field_is_outside_beyond_its_bounds(family):
    axis = np.linspace(-1.0, 1.0, 41)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    for seed in (2, 3, 4):
        shape = sample_shape(family, seed)
        lower, upper = shape.bounds
        np.testing.assert_allclose(np.max(upper - lower), 2 * HALF_EXTENT, atol=1e-6)
        np.testing.assert_allclose((lower + upper) / 2, 0.0, atol=1e-6)
        values = shape.sdf(grid)
        beyond = np.any((grid < lower - 0.01) | (grid > upper + 0.01), axis=1)
        assert np.all(values[beyond] > 0) and np.min(values) < 0


def test_topology_tells_holed_families_apart(family_meshes):
    for family, samples in family_meshes.items():
        for _, mesh in samples:
            if family in GENUS_ONE:
                assert mesh.euler_number == 0, family  # a single handle
            elif family in PRIMITIVES + ("bottle", "mushroom", "snowman", "rocket", "table", "lamp", "arch"):
                assert mesh.euler_number == 2, family  # a sphere, topologically


def test_simple_statistics_tell_families_apart(family_meshes):
    def solidity(mesh):
        return mesh.volume / mesh.convex_hull.volume

    def aspect(mesh):  # height over the wider horizontal side
        width, height, depth = mesh.extents
        return height / max(width, depth)

    for family, samples in family_meshes.items():
        for _, mesh in samples:
            if family in PRIMITIVES:
                assert solidity(mesh) > 0.95, family  # convex
            if family in ("table", "chair", "stool", "lamp", "mug", "ring_on_post", "torus"):
                assert solidity(mesh) < 0.7, family  # legs, hollows and holes
            if family in ("bottle", "rocket", "snowman", "ring_on_post"):
                assert aspect(mesh) > 1.3, family  # tall
            if family in ("table", "dumbbell"):
                assert aspect(mesh) < 0.9, family  # wide


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------


def test_sampling_is_deterministic_by_family_and_seed():
    points = np.random.default_rng(0).uniform(-1, 1, (1_000, 3))
    for family in ("chair", "snowman", "box"):
        first, again, other = sample_shape(family, 7), sample_shape(family, 7), sample_shape(family, 8)
        assert first == again  # family, seed, params, material
        np.testing.assert_array_equal(first.sdf(points), again.sdf(points))
        assert first.params != other.params and first.material != other.material
        assert not np.allclose(first.sdf(points), other.sdf(points))
    assert sample_shape("table", 7).params != sample_shape("stool", 7).params  # the family is part of the seed


def test_shape_record_is_json_serialisable_and_named():
    shape = sample_shape("rocket", 42)
    assert shape.object_id == "rocket-000042"
    assert json.loads(json.dumps(shape.params)) == shape.params
    assert {"yaw_deg", "scale", "center", "num_fins"} <= set(shape.params)
    assert abs(shape.params["yaw_deg"]) <= 45 and shape.params["num_fins"] in (3, 4)
    assert isinstance(shape.material, Material)
    assert all(0 <= c <= 1 for c in shape.material.base_color) and 0 <= shape.material.roughness <= 1
    assert shape.sdf(np.zeros((5, 3))).dtype == np.float32


def test_every_family_has_json_params(family_meshes):
    for samples in family_meshes.values():
        for shape, _ in samples:
            assert json.loads(json.dumps(shape.params)) == shape.params


def test_sample_corpus_cycles_through_families_evenly():
    num_families = len(FAMILIES)
    corpus = list(sample_corpus(num_families + 3, seed=1))
    assert [s.family for s in corpus[:num_families]] == list(FAMILIES)
    assert [s.family for s in corpus[num_families:]] == list(FAMILIES[:3])
    assert len({s.object_id for s in corpus}) == len(corpus)
    assert [(s.family, s.seed) for s in corpus] == list(corpus_seeds(num_families + 3, seed=1))
    assert corpus[0] == next(sample_corpus(1, seed=1))  # a prefix is the same corpus
    assert corpus[0] != next(sample_corpus(1, seed=2))


def test_unknown_family_and_bad_seed_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown shape family 'teapot'.*sphere.*ring_on_post"):
        sample_shape("teapot", 0)
    with pytest.raises(ValueError, match="non-negative"):
        sample_shape("sphere", -1)


def test_undo_yaw_turns_a_box_back_onto_its_axes():
    """A box's surface turned back by its yaw: its normals lie along the axes again and its bounding box has the
    box's own proportions, longest side 2 * HALF_EXTENT, centred."""
    from training.data.procedural import HALF_EXTENT, undo_yaw

    shape = sample_shape("box", 3)
    yaw = shape.params["yaw_deg"]
    assert abs(yaw) > 5
    mesh = shape.to_mesh(64)
    points, faces = trimesh.sample.sample_surface(mesh, 4000, seed=0)
    surface = np.concatenate([points, mesh.face_normals[faces]], axis=1).astype(np.float32)
    assert np.abs(surface[:, 3:]).max(axis=1).mean() < 0.97  # turned: many normals off the axes
    undone = undo_yaw(surface, yaw)
    assert undone.dtype == np.float32 and undone.shape == surface.shape
    assert np.abs(undone[:, 3:]).max(axis=1).mean() > 0.99
    extents = undone[:, :3].max(axis=0) - undone[:, :3].min(axis=0)
    half_size = np.asarray(shape.params["half_size"])
    np.testing.assert_allclose(extents / extents.max(), half_size / half_size.max(), atol=0.03)
    assert extents.max() == pytest.approx(2 * HALF_EXTENT)
    np.testing.assert_allclose(undone[:, :3].max(axis=0) + undone[:, :3].min(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(undo_yaw(undone, 0.0), undone, atol=1e-5)
    with pytest.raises(ValueError, match="points \\+ normals"):
        undo_yaw(surface[:, :3], yaw)
