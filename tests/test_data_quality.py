"""Data quality stages: II filtering, I scoring and III orientation fixing on constructed cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from training.data.filters import FilterConfig, run_filters
from training.data.orientation import axis_aligned_rotations, canonicalize_orientation
from training.data.scoring import QualityScorer, image_features, normal_map_descriptor
from triposg.rendering import EVALUATION_CAMERA, render

RES = 96

# ----------------------------------------------------------------------------------------------
# Constructed objects, normalised like the builder's output: centred, longest side 1.8, y-up
# ----------------------------------------------------------------------------------------------


def normalized(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    mesh = mesh.copy()
    lower, upper = mesh.bounds
    mesh.apply_translation(-(lower + upper) / 2)
    mesh.apply_scale(1.8 / np.max(upper - lower))
    return mesh


def box(size, center) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=size)
    mesh.apply_translation(center)
    return mesh


def y_frustum(bottom_radius, top_radius, height, y0, sections=32) -> trimesh.Trimesh:
    """A closed cone frustum (a cylinder when the radii are equal) along +y, from y0 up."""
    profile = np.array([[0, 0], [bottom_radius, 0], [top_radius, height], [0, height]])
    mesh = trimesh.creation.revolve(profile, sections=sections)  # about +z
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    mesh.apply_translation([0, y0, 0])
    return mesh


def table() -> trimesh.Trimesh:
    legs = [box([0.08, 0.72, 0.08], [sx * 0.65, 0.36, sz * 0.38]) for sx in (-1, 1) for sz in (-1, 1)]
    return normalized(trimesh.util.concatenate([box([1.6, 0.08, 1.0], [0, 0.76, 0])] + legs))


def chair() -> trimesh.Trimesh:
    legs = [box([0.05, 0.45, 0.05], [sx * 0.22, 0.225, sz * 0.22]) for sx in (-1, 1) for sz in (-1, 1)]
    seat, back = box([0.5, 0.05, 0.5], [0, 0.45, 0]), box([0.5, 0.5, 0.05], [0, 0.725, -0.225])
    return normalized(trimesh.util.concatenate([seat, back] + legs))


def bottle() -> trimesh.Trimesh:
    parts = [y_frustum(0.3, 0.3, 1.0, 0.0), y_frustum(0.3, 0.1, 0.2, 1.0), y_frustum(0.1, 0.1, 0.3, 1.2)]
    return normalized(trimesh.util.concatenate(parts))


def lamp() -> trimesh.Trimesh:
    parts = [y_frustum(0.35, 0.35, 0.05, 0.0), y_frustum(0.03, 0.03, 1.2, 0.05), y_frustum(0.35, 0.15, 0.45, 1.0)]
    return normalized(trimesh.util.concatenate(parts))


def sphere() -> trimesh.Trimesh:
    return normalized(trimesh.creation.icosphere(subdivisions=3))


def rotation(angle_deg: float, axis) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(np.radians(angle_deg), axis)


def eval_mask(mesh: trimesh.Trimesh) -> np.ndarray:
    (view,) = render(mesh, EVALUATION_CAMERA, resolution=RES)
    return view.mask


# ----------------------------------------------------------------------------------------------
# II Filtering
# ----------------------------------------------------------------------------------------------


def test_object_on_a_big_thin_slab_has_a_planar_base():
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    ball.apply_translation([0, 0.54, 0])
    mesh = normalized(trimesh.util.concatenate([ball, box([1.8, 0.04, 1.8], [0, 0.02, 0])]))
    report = run_filters(mesh)
    assert report.large_planar_base and not report.degenerate and report.flagged
    assert report.base_footprint_ratio > 3 and report.base_bbox_coverage > 0.9
    assert any("planar base" in reason for reason in report.reasons)


def test_single_sided_ground_plane_is_a_planar_base():
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    ball.apply_translation([0, 0.5, 0])
    ground = trimesh.Trimesh([[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1]], [[0, 2, 1], [0, 3, 2]])
    assert run_filters(normalized(trimesh.util.concatenate([ball, ground]))).large_planar_base


def cylinder() -> trimesh.Trimesh:
    return normalized(y_frustum(0.4, 0.4, 1.0, 0.0))


def torus() -> trimesh.Trimesh:
    return normalized(trimesh.creation.torus(0.6, 0.2, major_sections=48, minor_sections=16))


@pytest.mark.parametrize("make_mesh", [sphere, cylinder, torus, table, lamp], ids=lambda f: f.__name__)
def test_clean_objects_are_not_flagged(make_mesh):
    mesh = make_mesh()
    report = run_filters(mesh, eval_mask(mesh))
    assert not report.flagged, report.reasons
    assert report.largest_component_share == 1.0 and report.num_components == 1
    json.dumps(report.as_dict())  # manifest-ready


def test_a_table_top_is_planar_but_not_a_base():
    report = run_filters(table())
    assert not report.large_planar_base
    assert report.base_bbox_coverage < 0.1  # only the four feet touch the ground


def test_two_far_apart_spheres_are_multiple_objects():
    left, right = trimesh.creation.icosphere(3, radius=0.3), trimesh.creation.icosphere(3, radius=0.3)
    left.apply_translation([-0.6, 0, 0])
    right.apply_translation([0.6, 0, 0])
    mesh = normalized(trimesh.util.concatenate([left, right]))
    report = run_filters(mesh, eval_mask(mesh))
    assert report.multiple_objects and report.num_components == 2
    assert report.largest_component_share == pytest.approx(0.5, abs=0.05)
    assert report.mask_solidity < report.largest_component_solidity


def test_a_small_far_piece_is_caught_by_solidity():
    mask = np.zeros((RES, RES), dtype=bool)
    yy, xx = np.mgrid[:RES, :RES]
    mask |= (yy - 48) ** 2 + (xx - 40) ** 2 < 20**2  # main object
    mask |= (yy - 10) ** 2 + (xx - 88) ** 2 < 3**2  # a small piece far away
    report = run_filters(sphere(), mask)
    assert report.largest_component_share > FilterConfig().min_largest_component_share  # the share alone misses it
    assert report.multiple_objects
    specks = np.zeros_like(mask)
    specks[[5, 90], [5, 90]] = True  # single anti-aliasing pixels are ignored
    assert not run_filters(sphere(), (mask & ((yy - 48) ** 2 + (xx - 40) ** 2 < 20**2)) | specks).multiple_objects


@pytest.mark.parametrize(
    "mesh, reason",
    [
        (trimesh.Trimesh(), "no faces"),
        (trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]]), "faces"),
        (
            trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 0, 1], [1, 0, 1]], [[0, 1, 2], [1, 3, 2], [0, 2, 1], [1, 2, 3]]),
            "flat",
        ),
        (
            trimesh.Trimesh(
                [[0, 0, 0], [np.nan, 0, 0], [0, 1, 0], [0, 0, 1]],
                [[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]],
                process=False,
            ),
            "non-finite",
        ),
        (trimesh.Trimesh(np.zeros((4, 3)), [[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]], process=False), "point"),
    ],
    ids=["empty", "too-few-faces", "zero-volume", "nan", "point"],
)
def test_degenerate_meshes_are_flagged_not_raised(mesh, reason):
    report = run_filters(mesh)
    assert report.degenerate and report.flagged
    assert any(reason in line for line in report.reasons), report.reasons
    json.dumps(report.as_dict())


def test_an_empty_render_is_degenerate():
    report = run_filters(sphere(), np.zeros((RES, RES), dtype=bool))
    assert report.degenerate and "empty evaluation render" in report.as_dict()["reasons"]


# ----------------------------------------------------------------------------------------------
# I Scoring
# ----------------------------------------------------------------------------------------------


def synthetic_scores(rng: np.random.Generator, num_objects: int, num_features: int = 40):
    features = rng.normal(size=(num_objects, num_features))
    true_weights = rng.normal(size=num_features) * 0.2
    scores = 3.0 + features @ true_weights + rng.normal(scale=0.05, size=num_objects)
    return features, scores


def test_scorer_recovers_a_linear_relation_on_held_out_data():
    features, scores = synthetic_scores(np.random.default_rng(0), 600)
    scorer = QualityScorer(alpha=1.0, score_range=None).fit(features[:400], scores[:400])
    assert scorer.r2(features[400:], scores[400:]) > 0.9
    wide_features, wide_scores = synthetic_scores(np.random.default_rng(1), 300, num_features=500)  # F > N
    wide = QualityScorer(alpha=1.0, score_range=None).fit(wide_features[:200], wide_scores[:200])
    assert wide.num_features == 500 and np.isfinite(wide.predict(wide_features[200:])).all()


def test_scorer_clips_to_the_human_scale():
    scorer = QualityScorer().fit(np.array([[0.0], [1.0]]), np.array([1.0, 5.0]))
    np.testing.assert_allclose(scorer.predict(np.array([[-10.0], [0.5], [10.0]])), [1.0, 3.0, 5.0], atol=0.1)
    with pytest.raises(ValueError, match="columns"):
        scorer.predict(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="not fitted"):
        QualityScorer().predict(np.zeros((1, 1)))


def test_scorer_save_load_round_trip(tmp_path):
    features, scores = synthetic_scores(np.random.default_rng(2), 100)
    scorer = QualityScorer(alpha=0.5).fit(features, scores)
    path = scorer.save(tmp_path / "scorer.npz")
    loaded = QualityScorer.load(path)
    np.testing.assert_allclose(loaded.predict(features), scorer.predict(features))
    assert loaded.alpha == 0.5 and loaded.score_range == (1.0, 5.0)
    np.load(path, allow_pickle=False).close()  # plain arrays only


def test_fit_from_csv_averages_raters_and_reports_bad_files(tmp_path):
    features, scores = synthetic_scores(np.random.default_rng(3), 120)
    features_by_id = {f"obj{i:04d}": row for i, row in enumerate(features)}
    csv_path = tmp_path / "scores.csv"
    lines = ["object_id,score,rater"] + [f"obj{i:04d},{s:.4f},a" for i, s in enumerate(scores)]
    lines += ["obj0000,5.0,b", "obj0000,1.0,c"]  # a second and third rater for one object
    csv_path.write_text("\n".join(lines) + "\n")
    scorer = QualityScorer(score_range=None).fit_from_csv(csv_path, features_by_id)
    assert scorer.r2(features[1:], scores[1:]) > 0.9

    (tmp_path / "bad_header.csv").write_text("id,quality\nobj0000,3\n")
    with pytest.raises(ValueError, match="object_id"):
        QualityScorer().fit_from_csv(tmp_path / "bad_header.csv", features_by_id)
    (tmp_path / "unknown.csv").write_text("object_id,score\nobj0000,3\nghost,4\n")
    with pytest.raises(ValueError, match="ghost"):
        QualityScorer().fit_from_csv(tmp_path / "unknown.csv", features_by_id)


def test_image_features_from_rendered_normal_maps():
    views = render(sphere(), [EVALUATION_CAMERA], resolution=RES) + render(table(), [EVALUATION_CAMERA], resolution=RES)
    per_view = normal_map_descriptor(views[0].normal)
    assert per_view.shape == (315,) and np.isfinite(per_view).all()
    both = image_features([view.normal for view in views])
    assert both.shape == (630,)
    assert not np.allclose(both[:315], both[315:])  # sphere and table differ
    assert image_features([view.normal for view in views], reduce="mean").shape == (315,)
    encoded = image_features([view.normal for view in views], encoder=lambda image: image.mean(axis=(0, 1)))
    assert encoded.shape == (6,)
    with pytest.raises(ValueError, match="uint8"):
        image_features([np.zeros((RES, RES), dtype=np.float32)])


# ----------------------------------------------------------------------------------------------
# III Fixing: orientation
# ----------------------------------------------------------------------------------------------


def test_there_are_24_axis_aligned_rotations():
    rotations = axis_aligned_rotations()
    assert rotations.shape == (24, 3, 3)
    assert len({tuple(r.astype(int).ravel()) for r in rotations}) == 24
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0)


@pytest.mark.parametrize("make_mesh", [table, chair, bottle, lamp, sphere], ids=lambda f: f.__name__)
def test_upright_objects_are_left_alone(make_mesh):
    mesh = make_mesh()
    rotated, matrix, info = canonicalize_orientation(mesh)
    np.testing.assert_array_equal(matrix, np.eye(3))
    np.testing.assert_allclose(rotated.vertices, mesh.vertices)
    assert not info["rotated"] and info["up"] == "+y"
    json.dumps(info)


@pytest.mark.parametrize("make_mesh", [table, bottle, lamp], ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "tip", [(90, [1, 0, 0]), (-90, [1, 0, 0]), (90, [0, 0, 1]), (-90, [0, 0, 1])], ids=["fwd", "back", "left", "right"]
)
def test_tipped_over_objects_are_stood_up(make_mesh, tip):
    upright = make_mesh()
    tipped = upright.copy().apply_transform(rotation(*tip))
    restored, matrix, info = canonicalize_orientation(tipped)
    assert info["rotated"]
    np.testing.assert_allclose(restored.bounds, upright.bounds, atol=1e-6)  # same up axis and extents
    # The fix undoes the fall exactly: the front is kept.
    np.testing.assert_allclose(matrix @ rotation(*tip)[:3, :3], np.eye(3), atol=1e-9)


def test_a_chair_fallen_on_its_front_is_stood_up():
    upright = chair()
    restored, _, _ = canonicalize_orientation(upright.copy().apply_transform(rotation(90, [1, 0, 0])))
    np.testing.assert_allclose(restored.bounds, upright.bounds, atol=1e-6)


def test_widest_front_turns_the_long_side_to_the_viewer():
    turned = table().apply_transform(rotation(90, [0, 1, 0]))  # long side along z
    restored, matrix, _ = canonicalize_orientation(turned, front="widest")
    extents = restored.extents
    assert extents[0] > extents[2] and abs(matrix[1, 1]) == 1.0
