"""Conditioning renders: the paper's camera distribution, files written per object, alpha = mask."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import trimesh
from PIL import Image

from training.data.views import (
    CAMERAS_FILE,
    ViewDistribution,
    camera_from_record,
    read_view_mask,
    render_object_views,
    sample_focal_lengths,
    sample_view_cameras,
    sample_view_lightings,
)
from triposg.rendering import EVALUATION_CAMERA, Lighting, render

RES = 64


def test_camera_distribution_ranges_and_focal_choices():
    rng = np.random.default_rng(0)
    cameras = [camera for _ in range(200) for camera in sample_view_cameras(rng, num_views=8)]
    assert len(cameras) == 1600
    elevations = np.array([camera.elevation_deg for camera in cameras])
    azimuths = np.array([camera.azimuth_deg for camera in cameras])
    assert elevations.min() >= -15.0 and elevations.max() <= 30.0
    assert elevations.min() < -13.0 and elevations.max() > 28.0  # the whole range is used
    # In front of the object: a half circle centred on azimuth 0 (camera on +z).
    assert azimuths.min() >= -90.0 and azimuths.max() <= 90.0
    assert azimuths.min() < -85.0 and azimuths.max() > 85.0
    focal = [camera.focal_length_mm for camera in cameras]
    assert sum(f is None for f in focal) > 150  # orthographic ~1/6 of the views
    perspective = np.array([f for f in focal if f is not None])
    fixed = np.isin(perspective, [50.0, 85.0, 135.0])
    assert {50.0, 85.0, 135.0} <= set(perspective[fixed].tolist())
    assert np.all((perspective[~fixed] >= 35.0) & (perspective[~fixed] <= 65.0))
    assert (~fixed).sum() > 300  # the two random lengths are drawn as often as the fixed ones


def test_each_object_has_six_focal_choices_two_of_them_random():
    rng = np.random.default_rng(1)
    choices = sample_focal_lengths(rng)
    assert choices[:4] == [None, 50.0, 85.0, 135.0] and len(choices) == 6
    assert all(35.0 <= f <= 65.0 for f in choices[4:])
    cameras = sample_view_cameras(np.random.default_rng(2), num_views=64)
    assert {camera.focal_length_mm for camera in cameras} <= set(sample_focal_lengths(np.random.default_rng(2)))


def test_sampling_is_seeded_and_configurable():
    first = sample_view_cameras(np.random.default_rng(7))
    again = sample_view_cameras(np.random.default_rng(7))
    assert first == again and len(first) == 8
    narrow = ViewDistribution(
        elevation_range_deg=(10.0, 10.0), fixed_focal_lengths_mm=(50.0,), num_random_focal_lengths=0
    )
    assert all(
        c.elevation_deg == 10.0 and c.focal_length_mm == 50.0
        for c in sample_view_cameras(np.random.default_rng(0), 5, narrow)
    )
    with pytest.raises(ValueError, match="num_views"):
        sample_view_cameras(np.random.default_rng(0), num_views=0)


def test_sampled_views_keep_the_whole_normalisation_cube_in_frame():
    cube = trimesh.creation.box(extents=[1.8, 1.8, 1.8])  # the largest object the builder produces
    cameras = sample_view_cameras(np.random.default_rng(0), num_views=24)
    for view in render(cube, cameras, resolution=48):
        border = np.concatenate([view.mask[0], view.mask[-1], view.mask[:, 0], view.mask[:, -1]])
        assert not border.any(), view.camera
        assert view.mask.mean() > 0.2  # still a large object, not a speck
    default = sample_view_cameras(
        np.random.default_rng(0), num_views=24, distribution=ViewDistribution(frame_radius=None)
    )
    assert all(c.distance is None for c in default)


@pytest.fixture(scope="module")
def rendered_object(tmp_path_factory):
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    mesh.visual.vertex_colors = np.tile(np.array([[200, 60, 40, 255]], dtype=np.uint8), (len(mesh.vertices), 1))
    out_dir = tmp_path_factory.mktemp("object")
    cameras = sample_view_cameras(np.random.default_rng(3), num_views=3)
    records = render_object_views(mesh, out_dir, cameras, resolution=RES)
    return mesh, out_dir, cameras, records


def test_files_written_with_expected_names_and_sizes(rendered_object):
    _, out_dir, _, records = rendered_object
    expected = {f"view_{i:02d}_{kind}.png" for i in range(3) for kind in ("rgb", "normal")}
    expected |= {"eval_rgb.png", "eval_normal.png", CAMERAS_FILE}
    assert {path.name for path in out_dir.iterdir()} == expected
    for record in records:
        with Image.open(out_dir / record["rgb"]) as rgb, Image.open(out_dir / record["normal"]) as normal:
            assert rgb.mode == "RGBA" and rgb.size == (RES, RES)
            assert normal.mode == "RGB" and normal.size == (RES, RES)
        assert (out_dir / record["rgb"]).stat().st_size < 20 * RES * RES  # compressed, not raw


def test_records_are_json_and_describe_the_cameras(rendered_object):
    _, out_dir, cameras, records = rendered_object
    assert [r["name"] for r in records] == ["view_00", "view_01", "view_02", "eval"]
    assert [r["role"] for r in records] == ["view", "view", "view", "eval"]
    stored = json.loads((out_dir / CAMERAS_FILE).read_text())
    assert stored["views"] == json.loads(json.dumps(records))
    expected = [replace(camera, distance=camera.resolved_distance) for camera in cameras + [EVALUATION_CAMERA]]
    assert [camera_from_record(r) for r in records] == expected
    assert records[-1]["elevation_deg"] == 10.0 and records[-1]["focal_length_mm"] == 50.0
    assert records[-1]["azimuth_deg"] == 0.0


def test_rgb_alpha_matches_the_render_mask(rendered_object):
    mesh, out_dir, _, _ = rendered_object
    (eval_view,) = render(mesh, EVALUATION_CAMERA, resolution=RES)
    mask = read_view_mask(out_dir / "eval_rgb.png")
    np.testing.assert_array_equal(mask, eval_view.mask)
    with Image.open(out_dir / "eval_rgb.png") as image:
        rgba = np.asarray(image)
    assert set(np.unique(rgba[..., 3]).tolist()) == {0, 255}
    assert rgba[mask][:, 0].mean() > rgba[mask][:, 2].mean() + 30  # the red vertex colour was used
    with Image.open(out_dir / "eval_normal.png") as image:
        normal = np.asarray(image)
    assert (normal[0, 0] == 255).all()  # white background; silhouette pixels just outside the mask are blended
    assert (normal[~mask] == 255).all(axis=-1).mean() > 0.9


def test_training_views_skip_msaa_but_the_evaluation_view_keeps_it(rendered_object):
    mesh, out_dir, cameras, _ = rendered_object  # written with the default msaa=0
    (view_msaa0,) = render(mesh, cameras[0], resolution=RES, msaa=0)
    (eval_msaa4,) = render(mesh, EVALUATION_CAMERA, resolution=RES, msaa=4)
    with Image.open(out_dir / "view_00_normal.png") as image:
        np.testing.assert_array_equal(np.asarray(image), view_msaa0.normal)
    with Image.open(out_dir / "eval_normal.png") as image:
        np.testing.assert_array_equal(np.asarray(image), eval_msaa4.normal)


SIDE_LIGHT = Lighting(ambient=0.05, lights=(((2.0, 0.0, 0.0), 4.0),))


def test_lighting_sampler_mixes_the_corpus_rig_with_random_rigs():
    lightings = sample_view_lightings(np.random.default_rng(0), 400, probability=0.5)
    relit = [lighting for lighting in lightings if lighting is not None]
    assert 150 < len(relit) < 250
    assert all(0.02 <= lighting.ambient <= 0.35 and 1 <= len(lighting.lights) <= 2 for lighting in relit)
    key_x = np.array([lighting.lights[0][0][0] for lighting in relit])
    assert (key_x > 1.0).any() and (key_x < -1.0).any()  # key lights from both sides, not one direction
    assert all(light[0][2] > -1.5 for light in (lighting.lights[0] for lighting in relit))  # not from behind
    assert sample_view_lightings(np.random.default_rng(0), 5, 0.0) == [None] * 5
    assert sample_view_lightings(np.random.default_rng(1), 8) == sample_view_lightings(np.random.default_rng(1), 8)
    with pytest.raises(ValueError, match="probability"):
        sample_view_lightings(np.random.default_rng(0), 3, probability=1.5)


def test_render_takes_one_lighting_per_camera():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    cameras = [EVALUATION_CAMERA, replace(EVALUATION_CAMERA, azimuth_deg=40.0), EVALUATION_CAMERA]
    mixed = render(mesh, cameras, resolution=RES, lighting=[None, SIDE_LIGHT, SIDE_LIGHT])
    (corpus,) = render(mesh, cameras[0], resolution=RES)
    (side,) = render(mesh, cameras[2], resolution=RES, lighting=SIDE_LIGHT)
    np.testing.assert_array_equal(mixed[0].rgb, corpus.rgb)
    np.testing.assert_array_equal(mixed[2].rgb, side.rgb)
    mask = corpus.mask
    left, right = mask.copy(), mask.copy()
    left[:, RES // 2:], right[:, :RES // 2] = False, False
    lit = mixed[2].rgb.astype(float).mean(-1)
    assert lit[right].mean() > lit[left].mean() + 40  # lit from the right, dark on the left
    with pytest.raises(ValueError, match="one Lighting"):
        render(mesh, cameras, resolution=RES, lighting=[SIDE_LIGHT])


def test_relit_views_are_recorded_and_the_evaluation_view_keeps_the_corpus_rig(tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    cameras = [EVALUATION_CAMERA, EVALUATION_CAMERA]
    records = render_object_views(mesh, tmp_path, cameras, resolution=RES, lightings=[SIDE_LIGHT, None])
    assert records[0]["lighting"] == {"ambient": 0.05, "lights": [{"from": [2.0, 0.0, 0.0], "intensity": 4.0}]}
    assert records[1]["lighting"] is None and records[2]["lighting"] is None
    images = [np.asarray(Image.open(tmp_path / name))[..., :3] for name in ("view_00_rgb.png", "view_01_rgb.png")]
    assert np.abs(images[0].astype(int) - images[1]).mean() > 5  # the relit view differs from the corpus rig
    with pytest.raises(ValueError, match="one lighting per training view"):
        render_object_views(mesh, tmp_path, cameras, resolution=RES, lightings=[None])
