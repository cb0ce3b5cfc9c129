"""Yaw-aligned scores: a shape turned about the up axis is found again; shapes round about the axis lose nothing
to an unknown yaw, flat boxes a lot."""

import numpy as np
import pytest
import trimesh

from evaluation.metrics import reconstruction_metrics
from evaluation.yaw import turn_about_up, unknown_yaw_ceiling, yaw_aligned_metrics

NUM_POINTS = 20_000
THRESHOLD = 0.05


def in_frame(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Bounding box centred, longest side 1.8: the evaluation frame."""
    mesh = mesh.copy()
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return mesh.apply_scale(1.8 / float(np.max(mesh.extents)))


@pytest.fixture(scope="module")
def slab() -> trimesh.Trimesh:
    """A flat box (long in x, thin in z), face-on at yaw 0."""
    return in_frame(trimesh.creation.box(extents=(1.8, 1.0, 0.4)))


def turned(mesh: trimesh.Trimesh, degrees: float) -> trimesh.Trimesh:
    return in_frame(trimesh.Trimesh(turn_about_up(mesh.vertices, degrees), mesh.faces, process=False))


def test_turn_about_up_is_right_handed_and_keeps_height():
    points = np.array([[0.0, 0.5, 1.0], [1.0, -0.3, 0.0]])
    np.testing.assert_allclose(turn_about_up(points, 90.0), [[1.0, 0.5, 0.0], [0.0, -0.3, -1.0]], atol=1e-12)
    np.testing.assert_allclose(turn_about_up(turn_about_up(points, 37.0), -37.0), points, atol=1e-12)


@pytest.mark.parametrize("degrees", [30.0, -55.0])
def test_a_turned_shape_is_found_again(slab, degrees):
    prediction = turned(slab, degrees)
    plain = reconstruction_metrics(prediction, slab, num_points=NUM_POINTS, threshold=THRESHOLD)
    aligned = yaw_aligned_metrics(prediction, slab, num_points=NUM_POINTS, threshold=THRESHOLD)
    assert plain["f_score"] < 0.6
    assert aligned["turn_deg"] == pytest.approx(-degrees, abs=1.0)
    assert aligned["f_score"] > 0.99 and aligned["chamfer"] < 0.3 * plain["chamfer"]
    identical = reconstruction_metrics(slab, slab, num_points=NUM_POINTS, threshold=THRESHOLD)
    assert aligned["normal_consistency"] == pytest.approx(identical["normal_consistency"], abs=0.01)
    assert plain["normal_consistency"] < identical["normal_consistency"] - 0.1


def test_an_aligned_shape_stays_as_it_is(slab):
    aligned = yaw_aligned_metrics(slab, slab, num_points=NUM_POINTS, threshold=THRESHOLD)
    plain = reconstruction_metrics(slab, slab, num_points=NUM_POINTS, threshold=THRESHOLD)
    assert aligned["turn_deg"] == pytest.approx(0.0, abs=1.0)
    assert aligned["f_score"] == pytest.approx(plain["f_score"], abs=0.01)


def test_a_wrong_shape_is_not_made_right_by_turning(slab):
    sphere = in_frame(trimesh.creation.icosphere(subdivisions=4))
    aligned = yaw_aligned_metrics(sphere, slab, num_points=NUM_POINTS, threshold=THRESHOLD)
    assert aligned["f_score"] < 0.5


def test_unknown_yaw_costs_flat_boxes_and_not_shapes_round_about_the_up_axis(slab):
    cylinder = in_frame(trimesh.creation.cylinder(radius=0.6, height=1.5, sections=128).apply_transform(
        trimesh.transformations.rotation_matrix(np.pi / 2, [1.0, 0.0, 0.0])))  # axis along +y
    assert cylinder.extents[1] == pytest.approx(1.8)
    turns = [-60.0, -25.0, 10.0, 45.0]
    round_ceiling = unknown_yaw_ceiling(cylinder, turns, NUM_POINTS, THRESHOLD)
    slab_ceiling = unknown_yaw_ceiling(slab, turns, NUM_POINTS, THRESHOLD)
    assert round_ceiling["f_score"] > 0.99
    assert slab_ceiling["f_score"] < 0.6 and slab_ceiling["normal_consistency"] < 0.8
    assert unknown_yaw_ceiling(slab, [0.0], NUM_POINTS, THRESHOLD)["f_score"] > 0.99
    with pytest.raises(ValueError, match="empty"):
        unknown_yaw_ceiling(slab, [], NUM_POINTS, THRESHOLD)
