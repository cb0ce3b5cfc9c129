"""Texturing from the input image: camera recovery, colour placement, GLB/PLY/OBJ colours, pipeline and CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from triposg.geometry import export_mesh, linear_to_srgb, read_glb_metadata, read_mesh, srgb_to_linear
from triposg.pipelines import make_random_pipeline
from triposg.preprocessing import preprocess_image
from triposg.rendering import Camera, render
from triposg.texturing import TexturingConfig, fit_camera, texture_mesh, view_angle_deg

ROOT = Path(__file__).resolve().parent.parent
RED, BLUE = (220, 40, 40), (40, 60, 220)


def rendered_input(mesh: trimesh.Trimesh, camera: Camera, colors: np.ndarray | None = None, resolution: int = 256):
    """The project's renderer's view of `mesh` (sRGB vertex `colors`, if given), cut out and framed as the pipeline
    frames its inputs."""
    painted = mesh.copy()
    if colors is not None:
        # The renderer's shader takes vertex colours as linear and gamma-encodes its output.
        painted.visual.vertex_colors = srgb_to_linear(np.concatenate([colors, np.full((len(colors), 1), 255)], 1))
    (view,) = render(painted, camera, resolution=resolution)
    rgba = np.concatenate([view.rgb, (view.mask * np.uint8(255))[..., None]], axis=-1)
    return preprocess_image(Image.fromarray(rgba), background="alpha")


def two_tone_cylinder() -> tuple[trimesh.Trimesh, np.ndarray]:
    """An upright cylinder (y up) finely meshed, and its colours: red above the middle, blue below."""
    mesh = trimesh.creation.cylinder(radius=0.5, height=1.4, sections=48)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))  # z-up → y-up
    vertices, faces = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=0.06)
    mesh = trimesh.Trimesh(vertices, faces)
    colors = np.where(mesh.vertices[:, 1:2] > 0, RED, BLUE).astype(np.uint8)
    return mesh, colors


def asymmetric_object() -> trimesh.Trimesh:
    """A body with an arm on one side and a nose at the front: no two views share a silhouette."""
    body = trimesh.creation.box(extents=(0.7, 1.2, 0.5))
    arm = trimesh.creation.box(extents=(0.6, 0.2, 0.2), transform=trimesh.transformations.translation_matrix(
        (0.6, 0.35, 0.0)))
    nose = trimesh.creation.box(extents=(0.2, 0.2, 0.5), transform=trimesh.transformations.translation_matrix(
        (-0.15, -0.2, 0.45)))
    mesh = trimesh.util.concatenate([body, arm, nose])
    vertices, faces = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=0.08)
    return trimesh.Trimesh(vertices, faces)


@pytest.fixture(scope="module")
def textured_cylinder():
    mesh, colors = two_tone_cylinder()
    prepared = rendered_input(mesh, Camera(elevation_deg=20.0, azimuth_deg=30.0), colors)
    return mesh, texture_mesh(mesh, prepared)


def test_two_tone_object_comes_out_red_on_top_and_blue_below(textured_cylinder):
    mesh, result = textured_cylinder
    colors = np.asarray(result.mesh.visual.vertex_colors[:, :3], dtype=int)
    red_minus_blue = colors[:, 0] - colors[:, 2]
    top, bottom = mesh.vertices[:, 1] > 0.15, mesh.vertices[:, 1] < -0.15
    # The whole surface, the back the image does not show included.
    assert (red_minus_blue[top] > 80).mean() > 0.97
    assert (red_minus_blue[bottom] < -80).mean() > 0.97
    assert 0.2 < result.seen_fraction < 0.8  # a part is seen, the rest was filled
    np.testing.assert_array_equal(result.mesh.vertices, mesh.vertices)  # geometry untouched


def test_surface_hidden_behind_a_nearer_part_takes_no_colour_from_it():
    # A red block in front of a larger blue wall: the part of the wall's front behind the block faces the camera and
    # projects onto the block's red pixels, so only the depth test keeps it blue (then it is filled from the wall).
    wall = trimesh.creation.box(extents=(1.4, 1.0, 0.5), transform=trimesh.transformations.translation_matrix(
        (0.0, 0.0, -0.4)))
    block = trimesh.creation.box(extents=(0.6, 0.5, 0.3), transform=trimesh.transformations.translation_matrix(
        (0.2, -0.1, 0.3)))
    mesh = trimesh.util.concatenate([wall, block])
    vertices, faces = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=0.05)
    mesh = trimesh.Trimesh(vertices, faces)
    in_block = mesh.vertices[:, 2] > 0.1
    colors = np.where(in_block[:, None], RED, BLUE).astype(np.uint8)
    result = texture_mesh(mesh, rendered_input(mesh, Camera(elevation_deg=20.0, azimuth_deg=-15.0), colors))
    found = np.asarray(result.mesh.visual.vertex_colors[:, :3], dtype=int)
    wall_front = np.abs(mesh.vertices[:, 2] + 0.15) < 1e-6
    assert (found[wall_front, 2] - found[wall_front, 0] > 80).mean() > 0.97
    assert (found[in_block, 0] - found[in_block, 2] > 80).mean() > 0.95


@pytest.mark.parametrize("camera", [
    Camera(elevation_deg=20.0, azimuth_deg=35.0, focal_length_mm=50.0),
    Camera(elevation_deg=5.0, azimuth_deg=-60.0, focal_length_mm=None),
])
def test_recovered_camera_is_within_a_few_degrees(camera):
    mesh = asymmetric_object()
    prepared = rendered_input(mesh, camera)
    found = fit_camera(mesh.vertices, mesh.faces, np.asarray(prepared.mask, dtype=np.float32) / 255.0)
    assert view_angle_deg(found, camera) < 4.0, found
    assert found.iou > 0.9


def test_glb_round_trip_keeps_colours_and_extras(textured_cylinder, tmp_path):
    _, result = textured_cylinder
    colors = np.asarray(result.mesh.visual.vertex_colors)
    metadata = {"seed": 3, "texturing": result.metadata()}
    export_mesh(result.mesh, tmp_path / "m.glb", metadata=metadata)
    assert read_glb_metadata(tmp_path / "m.glb") == metadata
    loaded = read_mesh(tmp_path / "m.glb")
    # Stored as 8-bit linear: exactly what the sRGB → linear → sRGB round trip keeps (within 3 levels above 20).
    np.testing.assert_array_equal(loaded.visual.vertex_colors, linear_to_srgb(srgb_to_linear(colors)))
    assert np.abs(loaded.visual.vertex_colors.astype(int) - colors)[(colors[:, :3] > 20).all(axis=1)].max() <= 3
    # glTF's COLOR_0 is linear: a viewer reading the raw values must get the darker, linearised colours.
    raw = trimesh.load(tmp_path / "m.glb", force="mesh", process=False).visual.vertex_colors
    np.testing.assert_array_equal(raw, srgb_to_linear(colors))
    for file_format in ("ply", "obj"):  # sRGB as they are
        export_mesh(result.mesh, tmp_path / f"m.{file_format}")
        np.testing.assert_array_equal(read_mesh(tmp_path / f"m.{file_format}").visual.vertex_colors, colors)


def test_inputs_that_cannot_be_textured_are_refused():
    mesh, _ = two_tone_cylinder()
    with pytest.raises(ValueError, match="preprocessed"):
        texture_mesh(mesh, Image.new("RGB", (120, 80), "white"))
    with pytest.raises(ValueError, match="no foreground"):
        texture_mesh(mesh, Image.new("RGB", (64, 64), "white"), mask=np.zeros((64, 64)))


def disc_image(size: int = 96, color=RED) -> Image.Image:
    yy, xx = np.mgrid[:size, :size]
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[(xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2] = (*color, 255)
    return Image.fromarray(rgba, "RGBA")


FAST = dict(num_inference_steps=2, num_tokens=16, octree_resolution=32, guidance_scale=3.0)


def test_pipeline_texture_stage_colours_meshes_from_their_images():
    pipe = make_random_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    out = pipe([disc_image(color=RED), disc_image(color=BLUE)], seed=1, texture=True, **FAST)
    assert "texture" in out.timings and len(out.texturing) == 2
    for mesh, result, (vertices, _), expected in zip(out.meshes, out.texturing, out.samples, (RED, BLUE)):
        assert mesh is result.mesh and mesh.visual.kind == "vertex"
        np.testing.assert_allclose(mesh.vertices, vertices, atol=1e-6)
        mean = mesh.visual.vertex_colors[:, :3].mean(axis=0)
        assert np.abs(mean - expected).max() < 40, mean  # each mesh from its own image
    with pytest.raises(ValueError, match="output_type"):
        pipe(disc_image(), texture=True, output_type="latent", **FAST)


def test_cli_texture_writes_a_coloured_glb(tmp_path):
    from triposg.loading import GenerationDefaults

    model = tmp_path / "model"
    make_random_pipeline(seed=0).save_pretrained(model)
    GenerationDefaults(num_inference_steps=2, guidance_scale=3.0, num_tokens=16, octree_resolution=32,
                       seed=7).save(model)
    disc_image(color=BLUE).save(tmp_path / "disc.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "triposg", "generate", str(tmp_path / "disc.png"), "-o",
                               str(tmp_path / "out"), "--model", str(model), *args],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)

    result = run("--texture")
    assert result.returncode == 0, result.stderr
    mesh = read_mesh(tmp_path / "out" / "disc.glb")
    assert mesh.visual.kind == "vertex"
    assert np.abs(mesh.visual.vertex_colors[:, :3].mean(axis=0) - BLUE).max() < 40
    metadata = read_glb_metadata(tmp_path / "out" / "disc.glb")
    assert metadata["texture"] is True and metadata["seed"] == 7
    assert 0.0 < metadata["texturing"]["seen_vertices"] <= 1.0
    refused = run("--texture", "--format", "stl")
    assert refused.returncode == 2 and "STL" in refused.stderr


def test_texturing_config_is_passed_through():
    mesh, colors = two_tone_cylinder()
    prepared = rendered_input(mesh, Camera(elevation_deg=15.0, azimuth_deg=0.0), colors, resolution=128)
    plain = texture_mesh(mesh, prepared, config=TexturingConfig(mirror=False, smoothing_iterations=0))
    assert plain.mirror_normal is None and not plain.mirrored.any()


def test_remove_shading_evens_out_a_lit_one_colour_object():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.8)
    colors = np.tile(np.array([[180, 120, 60]], dtype=np.uint8), (len(sphere.vertices), 1))
    prepared = rendered_input(sphere, Camera(elevation_deg=10.0, azimuth_deg=0.0), colors, resolution=128)
    spread = {}
    for remove in (False, True):
        result = texture_mesh(sphere, prepared, config=TexturingConfig(remove_shading=remove))
        seen = np.asarray(result.mesh.visual.vertex_colors[result.seen, :3], dtype=float)
        spread[remove] = seen.std(axis=0).mean()
    assert spread[True] < 0.5 * spread[False], spread
