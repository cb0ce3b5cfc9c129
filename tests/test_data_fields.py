"""Field data (paper §4.4): watertight conversion of user meshes, sampling, storage and mesh loading."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from training.data.fields import (
    FieldConfig,
    FieldData,
    FieldDataError,
    load_mesh,
    make_watertight,
    mesh_field_data,
    sample_field_data,
)

RESOLUTION = 64  # small grid: a few tenths of a second per conversion
VOXEL = 2.0 / RESOLUTION


def chamfer_distance(a: trimesh.Trimesh, b: trimesh.Trimesh, count: int = 20000) -> float:
    """Symmetric mean nearest-neighbour distance between area-uniform samples of two meshes."""
    points_a = trimesh.sample.sample_surface(a, count, seed=0)[0]
    points_b = trimesh.sample.sample_surface(b, count, seed=1)[0]
    return 0.5 * (cKDTree(points_b).query(points_a)[0].mean() + cKDTree(points_a).query(points_b)[0].mean())


def box_with_holes(cells_per_side: int, hole_cells: int) -> trimesh.Trimesh:
    """A unit box tessellated into cells, with a square of ``hole_cells`` × ``hole_cells`` cells removed from the
    middle of its top (+y) face: an open mesh whose hole is ``hole_cells / cells_per_side`` wide."""
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    while len(box.faces) < 12 * cells_per_side**2 * 2:
        box = box.subdivide()
    half_hole = 0.5 * hole_cells / cells_per_side
    centers = box.triangles_center
    in_hole = (centers[:, 1] > 0.499) & (np.abs(centers[:, 0]) < half_hole) & (np.abs(centers[:, 2]) < half_hole)
    box.update_faces(~in_hole)
    box.remove_unreferenced_vertices()
    assert not box.is_watertight
    return box


def to_output(result, points: np.ndarray) -> np.ndarray:
    return trimesh.transform_points(points, result.transform)


# ----------------------------------------------------------------------------------------------
# make_watertight
# ----------------------------------------------------------------------------------------------


def test_open_box_becomes_closed_shell_near_the_input():
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    open_box = box.copy()
    open_box.update_faces(~(box.triangles_center[:, 1] > 0.499))  # remove the whole top side: a cup
    result = make_watertight(open_box, RESOLUTION)
    assert result.mesh.is_watertight
    assert result.tau == pytest.approx(3 * VOXEL, rel=0.02)

    original = open_box.copy()
    original.apply_transform(result.transform)
    # Both sides of every wall sit τ away from it, so the Chamfer distance is about τ.
    assert abs(chamfer_distance(result.mesh, original) - result.tau) < 2 * VOXEL

    bottom_center, side_far_outside = to_output(result, np.array([[0.0, -0.5, 0.0], [0.0, 0.0, 0.9]]))
    sdf = result.sdf(np.stack([bottom_center, side_far_outside, [0.0, 0.0, 0.0]]))
    assert sdf[0] == pytest.approx(-result.tau, abs=VOXEL)  # in the middle of the thickened bottom wall
    assert sdf[1] > 0.1
    assert sdf[2] > 0.5  # a cup stays open: its centre is air (holes wider than 2τ are not filled)


def test_box_with_a_crack_is_closed_and_solid_inside():
    cracked = box_with_holes(cells_per_side=16, hole_cells=1)  # hole narrower than 2τ after normalisation
    result = make_watertight(cracked, RESOLUTION)
    assert result.mesh.is_watertight
    assert result.mesh.body_count == 1
    original = cracked.copy()
    original.apply_transform(result.transform)
    assert abs(chamfer_distance(result.mesh, original) - result.tau) < 2 * VOXEL
    center, outside = result.sdf(np.array([[0.0, 0.0, 0.0], [0.0, 0.97, 0.0]]))
    assert center == pytest.approx(-0.9, abs=2 * VOXEL)  # the shell spans [-0.9, 0.9]
    assert outside == pytest.approx(0.07, abs=VOXEL)


def test_hidden_component_in_a_closed_box_is_dropped():
    outer = trimesh.creation.box((1.0, 1.0, 1.0))
    inner = trimesh.creation.box((0.2, 0.2, 0.2))
    result = make_watertight(trimesh.util.concatenate([outer, inner]), RESOLUTION)
    assert result.mesh.is_watertight
    assert result.mesh.body_count == 1
    # Every shell vertex belongs to the outer box's offset surface (|coordinate|_max = 0.9), none to the inner one.
    assert np.abs(result.mesh.vertices).max(axis=1).min() > 0.9 - VOXEL
    assert result.sdf(np.zeros((1, 3)))[0] < -0.8


def test_component_seen_only_through_a_small_hole_is_dropped():
    outer = box_with_holes(cells_per_side=8, hole_cells=2)  # hole wider than 2τ: the inside is reachable
    inner = trimesh.creation.box((0.2, 0.2, 0.2))
    result = make_watertight(trimesh.util.concatenate([outer, inner]), RESOLUTION)
    assert len(result.component_visibility) == 2
    assert result.num_dropped == 1
    assert result.component_visibility.min() < 0.02 < result.component_visibility.max()
    assert result.mesh.body_count == 1
    assert np.abs(result.mesh.vertices).max(axis=1).min() > 0.5  # nothing left near the centre
    assert result.sdf(np.zeros((1, 3)))[0] > 0.3  # the inner part's space is air now


def test_visible_separate_parts_are_kept():
    left = trimesh.creation.box((0.4, 1.0, 0.4))
    left.apply_translation((-0.6, 0.0, 0.0))
    right = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    right.apply_translation((0.6, 0.0, 0.0))
    result = make_watertight(trimesh.util.concatenate([left, right]), RESOLUTION)
    assert result.num_dropped == 0
    assert result.mesh.body_count == 2
    assert result.mesh.is_watertight


def test_badly_scaled_and_offset_input_is_normalised():
    box = trimesh.creation.box((1.0, 2.0, 0.5))
    box.apply_scale(1000.0)
    box.apply_translation((5000.0, -300.0, 12.0))
    result = make_watertight(box, RESOLUTION)
    lower, upper = result.mesh.bounds
    np.testing.assert_allclose((lower + upper) / 2, 0.0, atol=1e-6)
    assert np.max(upper - lower) == pytest.approx(1.8, abs=1e-6)
    # The transform takes the input to the output frame: the input sits τ inside the shell.
    mapped_lower, mapped_upper = trimesh.transform_points(box.bounds, result.transform)
    np.testing.assert_allclose(mapped_upper - mapped_lower, (upper - lower) - 2 * result.tau, atol=VOXEL)


def test_sdf_of_a_sphere_matches_its_offset_surface():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=37.0)
    result = make_watertight(sphere, RESOLUTION)
    rng = np.random.default_rng(0)
    points = rng.uniform(-1.0, 1.0, size=(5000, 3))
    expected = np.linalg.norm(points, axis=1) - 0.9  # the shell is the sphere offset by τ, renormalised to 0.9
    error = np.abs(result.sdf(points) - expected)
    assert error.max() < VOXEL  # "accurate to about a voxel"
    assert error[np.abs(expected) < 0.1].mean() < 0.1 * VOXEL
    beyond = np.array([[1.5, 0.0, 0.0], [0.0, -3.0, 0.0]])  # outside the grid: still positive, about right
    np.testing.assert_allclose(result.sdf(beyond), [0.6, 2.1], atol=VOXEL)


def test_make_watertight_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        make_watertight(trimesh.Trimesh(), RESOLUTION)
    with pytest.raises(ValueError, match="resolution"):
        make_watertight(trimesh.creation.box(), 8)


# ----------------------------------------------------------------------------------------------
# sample_field_data
# ----------------------------------------------------------------------------------------------

RADIUS = 0.8


def sphere_sdf(points: np.ndarray) -> np.ndarray:
    return (np.linalg.norm(points, axis=1) - RADIUS).astype(np.float32)


@pytest.fixture(scope="module")
def sphere_mesh() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)


SMALL = FieldConfig(num_surface=3000, num_near=2000, num_volume=1000, num_on_surface=1500)


def test_sampled_field_data_is_consistent_with_an_exact_sdf(sphere_mesh):
    data = sample_field_data(sphere_mesh, sphere_sdf, SMALL, seed=0)
    assert data.surface.shape == (3000, 6) and data.on_surface.shape == (1500, 6)
    assert data.near.shape == (2000, 4) and data.volume.shape == (1000, 4)
    for array in (data.surface, data.near, data.volume, data.on_surface):
        assert array.dtype == np.float32
    for oriented in (data.surface, data.on_surface):
        radii = np.linalg.norm(oriented[:, :3], axis=1)
        np.testing.assert_allclose(radii, RADIUS, atol=1e-5)  # projected onto the analytic surface
        normals = oriented[:, 3:]
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
        assert (np.sum(normals * oriented[:, :3], axis=1) / radii).min() > 0.999  # outward
    for supervision in (data.near, data.volume):
        expected = np.clip(np.linalg.norm(supervision[:, :3], axis=1) - RADIUS, -0.1, 0.1)
        np.testing.assert_allclose(supervision[:, 3], expected, atol=1e-6)
    assert np.abs(data.volume[:, :3]).max() <= 1.0
    near_distance = np.abs(data.near[:, 3])
    assert np.median(near_distance) < 0.02 and near_distance.max() < 0.1  # Gaussian offsets of 0.005 and 0.02
    assert np.count_nonzero(near_distance < 0.01) > 0.4 * len(near_distance)


def test_sampling_is_deterministic_by_seed(sphere_mesh):
    first = sample_field_data(sphere_mesh, sphere_sdf, SMALL, seed=3)
    again = sample_field_data(sphere_mesh, sphere_sdf, SMALL, seed=3)
    other = sample_field_data(sphere_mesh, sphere_sdf, SMALL, seed=4)
    for name in ("surface", "near", "volume", "on_surface"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
        assert not np.array_equal(getattr(first, name), getattr(other, name))


def test_mesh_normals_keep_points_on_the_mesh(sphere_mesh):
    data = sample_field_data(sphere_mesh, sphere_sdf, SMALL, seed=0, normals="mesh")
    # Points on a flat facet lie inside the circumscribed sphere, by at most the facets' sagitta.
    radii = np.linalg.norm(data.surface[:, :3], axis=1)
    assert radii.max() <= RADIUS + 1e-6 and radii.min() > 0.99 * RADIUS
    assert np.std(radii) > 1e-4  # not projected onto the analytic sphere
    unit = data.surface[:, :3] / np.linalg.norm(data.surface[:, :3], axis=1, keepdims=True)
    assert np.sum(data.surface[:, 3:] * unit, axis=1).min() > 0.99


def test_mesh_field_data_end_to_end(tmp_path):
    cracked = box_with_holes(cells_per_side=16, hole_cells=1)
    cracked.apply_scale(250.0)
    path = tmp_path / "cracked.obj"
    cracked.export(path)
    config = FieldConfig(num_surface=2000, num_near=1000, num_volume=1000, num_on_surface=1000,
                         udf_resolution=RESOLUTION)
    data, mesh = mesh_field_data(path, config, seed=0)
    assert mesh.is_watertight
    assert data.surface.shape == (2000, 6)
    # Inside the box (|x|_max < 0.85) the SDF is negative, outside the shell (> 0.95) positive.
    extent = np.abs(data.volume[:, :3]).max(axis=1)
    assert (data.volume[extent < 0.85, 3] < 0).all()
    assert (data.volume[extent > 0.95, 3] > 0).all()
    np.testing.assert_allclose(np.abs(data.on_surface[:, :3]).max(axis=1), 0.9, atol=VOXEL)


# ----------------------------------------------------------------------------------------------
# FieldData storage
# ----------------------------------------------------------------------------------------------


def test_save_load_round_trip_is_exact_and_atomic(sphere_mesh, tmp_path):
    data = sample_field_data(sphere_mesh, sphere_sdf, SMALL, seed=0)
    path = tmp_path / "objects" / "a" / "fields.npz"
    data.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["fields.npz"]  # no temporary file left behind
    loaded = FieldData.load(path)
    for name in ("surface", "near", "volume", "on_surface"):
        assert getattr(loaded, name).dtype == np.float32
        np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name))


def test_corrupt_or_mismatched_files_raise_naming_the_file(sphere_mesh, tmp_path):
    data = sample_field_data(sphere_mesh, sphere_sdf, SMALL, seed=0)
    good = tmp_path / "good.npz"
    data.save(good)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez_compressed(wrong_shape, format_version=1, surface=np.zeros((10, 3), np.float32), near=data.near,
                        volume=data.volume, on_surface=data.on_surface)
    missing_key = tmp_path / "missing_key.npz"
    np.savez_compressed(missing_key, format_version=1, surface=data.surface)
    old_version = tmp_path / "old_version.npz"
    np.savez_compressed(old_version, format_version=0, surface=data.surface, near=data.near, volume=data.volume,
                        on_surface=data.on_surface)
    for path in (truncated, garbage, wrong_shape, missing_key, old_version, tmp_path / "absent.npz"):
        with pytest.raises(FieldDataError, match=path.name):
            FieldData.load(path)


# ----------------------------------------------------------------------------------------------
# load_mesh
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", [".obj", ".ply", ".stl", ".glb"])
def test_load_mesh_reads_common_formats(tmp_path, extension):
    box = trimesh.creation.box((1.0, 2.0, 3.0))
    path = tmp_path / f"box{extension}"
    box.export(path)
    mesh = load_mesh(path)
    assert isinstance(mesh, trimesh.Trimesh)
    np.testing.assert_allclose(mesh.bounds, box.bounds, atol=1e-6)
    assert mesh.area == pytest.approx(box.area, rel=1e-6)


def test_load_mesh_flattens_a_multi_part_scene_with_transforms(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box((1.0, 1.0, 1.0)), node_name="a",
                       transform=trimesh.transformations.translation_matrix((10.0, 0.0, 0.0)))
    scene.add_geometry(trimesh.creation.icosphere(subdivisions=1), node_name="b",
                       transform=trimesh.transformations.scale_matrix(2.0))
    path = tmp_path / "scene.glb"
    scene.export(path)
    mesh = load_mesh(path)
    assert mesh.body_count == 2
    np.testing.assert_allclose(mesh.bounds, [[-2.0, -2.0, -2.0], [10.5, 2.0, 2.0]], atol=1e-5)


def test_load_mesh_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.obj"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.glb"
    garbage.write_bytes(b"\x00\x01 definitely not a glb")
    points_only = tmp_path / "points.obj"
    points_only.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    flat = tmp_path / "flat.obj"
    flat.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")  # one zero-area triangle
    for path in (empty, garbage, points_only, flat):
        with pytest.raises(ValueError, match=path.name):
            load_mesh(path)
    notes = tmp_path / "notes.txt"
    notes.write_text("v 0 0 0")
    with pytest.raises(ValueError, match="unsupported extension"):
        load_mesh(notes)
    with pytest.raises(FileNotFoundError, match="absent.obj"):
        load_mesh(tmp_path / "absent.obj")
