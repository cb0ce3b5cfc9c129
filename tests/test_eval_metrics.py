"""Reconstruction metrics on analytic cases: identical, scaled, flipped and differently shaped surfaces."""

import numpy as np
import pytest
import trimesh

from evaluation.metrics import (
    chamfer_distance,
    f_score,
    largest_piece_share,
    normal_consistency,
    reconstruction_metrics,
    sample_surface,
)

# 100k samples on a unit sphere put the independent-sampling floor of the Chamfer distance near 0.006.
NUM_POINTS = 100_000


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5, radius=1.0)


@pytest.fixture(scope="module")
def larger_sphere(sphere) -> trimesh.Trimesh:
    return sphere.copy().apply_scale(1.05)


def test_identical_meshes_score_the_sampling_floor(sphere):
    metrics = reconstruction_metrics(sphere, sphere.copy(), num_points=NUM_POINTS)
    assert metrics["chamfer"] < 0.008
    assert metrics["f_score"] > 0.999
    assert metrics["normal_consistency"] > 0.999


def test_scaled_sphere_chamfer_is_the_radius_gap(sphere, larger_sphere):
    metrics = reconstruction_metrics(sphere, larger_sphere, num_points=NUM_POINTS)
    # Every point is 0.05 from the other sphere (plus a tangential sampling offset that adds ~1e-3).
    assert metrics["chamfer"] == pytest.approx(0.05, abs=0.003)
    assert metrics["f_score"] == 0.0 and metrics["precision"] == 0.0 and metrics["recall"] == 0.0
    assert metrics["normal_consistency"] > 0.999


def test_f_score_threshold(sphere, larger_sphere):
    assert f_score(sphere, larger_sphere, threshold=0.02, num_points=20_000) == 0.0
    assert f_score(sphere, larger_sphere, threshold=0.1, num_points=20_000) == 1.0


def test_flipped_normals_keep_normal_consistency(sphere):
    flipped = sphere.copy()
    flipped.invert()
    assert normal_consistency(sphere, flipped, num_points=20_000) > 0.999


def test_box_against_sphere_has_lower_normal_consistency(sphere):
    box = trimesh.creation.box(extents=(1.6, 1.6, 1.6))
    assert normal_consistency(box, sphere, num_points=20_000) < 0.9


def test_same_seed_same_result_other_seed_other_samples(sphere, larger_sphere):
    first = reconstruction_metrics(sphere, larger_sphere, num_points=5_000, seed=3)
    again = reconstruction_metrics(sphere, larger_sphere, num_points=5_000, seed=3)
    other = reconstruction_metrics(sphere, larger_sphere, num_points=5_000, seed=4)
    assert first == again
    assert first["chamfer"] != other["chamfer"]


def test_point_cloud_input_matches_mesh_input(sphere, larger_sphere):
    points, normals = sample_surface(larger_sphere, 20_000, seed=7)
    assert points.shape == normals.shape == (20_000, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)
    from_pair = chamfer_distance(sphere, (points, normals), num_points=20_000)
    from_array = chamfer_distance(sphere, np.concatenate([points, normals], axis=1), num_points=20_000)
    assert from_pair == from_array == pytest.approx(0.05, abs=0.005)


def test_point_cloud_is_passed_through_or_subsampled(sphere):
    points, normals = sample_surface(sphere, 1_000, seed=0)
    same_points, same_normals = sample_surface((points, normals), 5_000, seed=1)
    np.testing.assert_array_equal(same_points, points)
    np.testing.assert_allclose(same_normals, normals)
    fewer_points, _ = sample_surface((points, normals), 100, seed=1)
    assert fewer_points.shape == (100, 3)
    assert np.isin(fewer_points[:, 0], points[:, 0]).all()


@pytest.mark.parametrize(
    "surface, message",
    [
        (trimesh.Trimesh(), "empty mesh"),
        (trimesh.Scene(), "empty mesh"),
        (np.zeros((0, 6)), "empty"),
        (np.zeros((10, 3)), "normals"),
    ],
)
def test_bad_inputs_raise_clear_errors(sphere, surface, message):
    with pytest.raises(ValueError, match=message):
        reconstruction_metrics(surface, sphere, num_points=100)


def test_largest_piece_share_is_the_area_fraction_of_the_biggest_component():
    big = trimesh.creation.icosphere(subdivisions=3, radius=0.6)
    small = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    small.apply_translation([1.2, 0, 0])
    assert largest_piece_share(big) == pytest.approx(1.0)
    broken = trimesh.util.concatenate([big, small])
    assert largest_piece_share(broken) == pytest.approx(big.area / (big.area + small.area))  # 0.8: 0.36 vs 0.09
    with pytest.raises(ValueError, match="empty mesh"):
        largest_piece_share(trimesh.Trimesh())
