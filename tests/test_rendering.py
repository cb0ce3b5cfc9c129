"""The shared renderer: cameras, headless backend, normal-map convention, masks, errors."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from triposg.rendering import (
    EVALUATION_CAMERA,
    Camera,
    RendererUnavailableError,
    backend,
    make_image_grid,
    normalize_mesh,
    render,
    renderer_backend,
    turntable_cameras,
)

RES = 128


def decode_normals(normal_map: np.ndarray) -> np.ndarray:
    """Inverse of the documented encoding `round((n + 1) / 2 * 255)`."""
    return normal_map.astype(np.float32) / 255.0 * 2.0 - 1.0


def silhouette_width(mask: np.ndarray) -> int:
    columns = np.nonzero(mask.any(axis=0))[0]
    return int(columns.max() - columns.min() + 1)


@pytest.fixture(scope="module")
def sphere():
    return trimesh.creation.icosphere(subdivisions=4, radius=1.0)


def test_a_headless_backend_is_available():
    # CI machines have Mesa EGL: failing here (not skipping) is what tells us rendering broke.
    assert renderer_backend() in ("egl", "egl (surfaceless)", "osmesa")


def test_sphere_at_the_evaluation_view(sphere):
    (view,) = render(sphere, EVALUATION_CAMERA, resolution=RES)
    assert view.rgb.shape == (RES, RES, 3) and view.normal.shape == (RES, RES, 3) and view.mask.shape == (RES, RES)
    ys, xs = np.nonzero(view.mask)
    assert abs(xs.mean() - RES / 2) < 2 and abs(ys.mean() - RES / 2) < 2  # centred
    assert 0.1 < view.mask.mean() < 0.6
    center = decode_normals(view.normal[RES // 2, RES // 2])
    assert center[2] > 0.95  # faces the camera (camera space z towards the viewer)
    right = decode_normals(view.normal[RES // 2, xs.max() - 2])
    assert right[0] > 0.7  # the right edge of the sphere faces right
    top = decode_normals(view.normal[ys.min() + 2, RES // 2])
    assert top[1] > 0.7  # the top faces up
    assert (view.normal[0, 0] == 255).all() and (view.rgb[0, 0] == 255).all()  # white backgrounds
    assert view.depth[RES // 2, RES // 2] > 0 and view.depth[0, 0] == 0
    assert view.rgb[view.mask].std() > 1  # shading varies across the lit sphere


def test_world_space_normals_follow_the_camera_azimuth(sphere):
    (side,) = render(sphere, Camera(azimuth_deg=90.0), resolution=RES, normal_space="world")
    facing = decode_normals(side.normal[RES // 2, RES // 2])
    assert facing[0] > 0.95  # azimuth 90° puts the camera on +x, so the visible centre faces +x


def test_azimuth_changes_the_silhouette_of_an_elongated_box():
    box = trimesh.creation.box(extents=(1.8, 0.6, 0.6))  # long along x
    front, side = render(box, [Camera(azimuth_deg=0.0), Camera(azimuth_deg=90.0)], resolution=RES)
    assert silhouette_width(front.mask) > 2.0 * silhouette_width(side.mask)


def test_orthographic_and_perspective_framing(sphere):
    ortho, persp, tele = render(
        sphere, [Camera(focal_length_mm=None), Camera(focal_length_mm=50), Camera(focal_length_mm=135)], resolution=RES
    )
    for view in (ortho, persp, tele):
        assert view.mask.any()
    # The framing-preserving distance keeps the object at a similar size at every focal length.
    assert abs(persp.mask.mean() - tele.mask.mean()) / tele.mask.mean() < 0.25
    assert silhouette_width(ortho.mask) == pytest.approx(RES * 2.0 / 3.0, rel=0.05)  # ortho_scale 3 → unit sphere at 2/3


def test_turntable_and_normalisation():
    cams = turntable_cameras(4, elevation_deg=20.0)
    assert [c.azimuth_deg for c in cams] == [0.0, 90.0, 180.0, 270.0]
    mesh = trimesh.creation.box(extents=(4.0, 1.0, 2.0))
    mesh.apply_translation((5.0, 0.0, 0.0))
    normalized = normalize_mesh(mesh)
    np.testing.assert_allclose(normalized.bounds, [[-1.0, -0.25, -0.5], [1.0, 0.25, 0.5]], atol=1e-6)


def test_bad_input_is_a_clear_error(sphere):
    with pytest.raises(ValueError, match="empty"):
        render(trimesh.Trimesh(), EVALUATION_CAMERA)
    with pytest.raises(ValueError, match="Trimesh"):
        render("not a mesh", EVALUATION_CAMERA)
    with pytest.raises(ValueError, match="elevation"):
        Camera(elevation_deg=120)
    with pytest.raises(ValueError, match="resolution"):
        render(sphere, EVALUATION_CAMERA, resolution=3)


def test_image_grid_tiles(sphere):
    views = render(sphere, turntable_cameras(3), resolution=32)
    grid = make_image_grid([v.rgb for v in views] + [views[0].mask], ncols=2)
    assert grid.size == (64, 64)


def test_depth_is_the_distance_along_the_view_axis(sphere):
    persp, ortho = render(sphere, [Camera(), Camera(focal_length_mm=None)], resolution=RES)
    c = RES // 2
    # The sphere's nearest point is 1 closer than the origin, for both projections.
    assert persp.depth[c, c] == pytest.approx(Camera().resolved_distance - 1.0, abs=0.02)
    assert ortho.depth[c, c] == pytest.approx(Camera(focal_length_mm=None).resolved_distance - 1.0, abs=0.02)


def test_smooth_shading_keeps_the_flat_faces_of_a_box_flat():
    (view,) = render(trimesh.creation.box(extents=(1.5, 1.5, 1.5)), EVALUATION_CAMERA, resolution=RES)
    front_face = view.normal[RES // 2 - 10 : RES // 2 + 10, RES // 2 - 10 : RES // 2 + 10].reshape(-1, 3)
    expected = EVALUATION_CAMERA.rotation.T @ np.array([0.0, 0.0, 1.0])  # world +z in camera space
    np.testing.assert_allclose(decode_normals(front_face), np.tile(expected, (len(front_face), 1)), atol=0.02)


def test_backend_falls_back_in_order_and_explains_a_missing_one(monkeypatch):
    # Pretend nothing was chosen yet and plain EGL fails: surfaceless EGL must be picked and exported.
    monkeypatch.setattr(backend, "_backend_name", None)
    for name in ("PYOPENGL_PLATFORM", "EGL_PLATFORM"):  # set-then-delete so monkeypatch restores both
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    tried = []

    def probe(env):
        tried.append(dict(env))
        return None if env.get("EGL_PLATFORM") == "surfaceless" else "EGL_NOT_INITIALIZED"

    monkeypatch.setattr(backend, "_probe_backend", probe)
    assert renderer_backend() == "egl (surfaceless)"
    assert tried[0] == {"PYOPENGL_PLATFORM": "egl"} and len(tried) == 2
    assert backend.os.environ["EGL_PLATFORM"] == "surfaceless"

    monkeypatch.setattr(backend, "_backend_name", None)
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(backend, "_probe_backend", lambda env: "libEGL.so.1: cannot open shared object file")
    with pytest.raises(RendererUnavailableError, match="libegl1 libgl1-mesa-dri.*libosmesa6"):
        renderer_backend()


def test_importing_the_package_leaves_the_gl_platform_unchosen():
    """PyOpenGL fixes its platform on first import, so importing `triposg.rendering` must neither import
    pyrender/OpenGL nor set the platform; the backend is picked on the first render."""
    script = ("import os, sys\nimport triposg.rendering\n"
              "print(sorted({'pyrender', 'OpenGL'} & set(sys.modules)), 'PYOPENGL_PLATFORM' in os.environ)\n")
    env = {key: value for key, value in os.environ.items() if key not in ("PYOPENGL_PLATFORM", "EGL_PLATFORM")}
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                               cwd=Path(__file__).resolve().parents[1], env=env, check=True)
    assert completed.stdout.split() == ["[]", "False"]


def test_crease_split_keeps_box_edges_sharp_and_spheres_smooth():
    from triposg.rendering import crease_corner_normals

    box = trimesh.creation.box()
    corners = crease_corner_normals(box, 30.0)
    np.testing.assert_allclose(corners, np.repeat(box.face_normals[:, None], 3, axis=1), atol=1e-6)
    sphere = trimesh.creation.icosphere(subdivisions=3)
    corners = crease_corner_normals(sphere, 30.0)
    radial = sphere.vertices[sphere.faces] / np.linalg.norm(sphere.vertices[sphere.faces], axis=-1, keepdims=True)
    assert (np.einsum("fkc,fkc->fk", corners, radial) > 0.999).all()  # smooth: close to the true normal


def test_crease_normals_match_the_per_corner_definition_on_mixed_meshes():
    """Smooth vertices take a shortcut (their mean normal); the result must equal the definition everywhere."""
    from triposg.rendering import crease_corner_normals

    capped = trimesh.creation.cylinder(radius=0.5, height=1.0, sections=24)  # smooth side, crease rims
    cone = trimesh.creation.cone(radius=0.5, height=1.0, sections=16)  # the apex is a cone of many faces
    coarse = [trimesh.creation.icosphere(subdivisions=n) for n in (0, 1)]  # faces ~42° and ~20° apart
    for mesh in (capped, cone, trimesh.creation.capsule(height=1.0, radius=0.3), *coarse):
        faces, normals, areas = mesh.faces, mesh.face_normals, mesh.area_faces
        expected = np.zeros((len(faces), 3, 3))
        for f, face in enumerate(faces):
            for k, vertex in enumerate(face):
                around = np.flatnonzero((faces == vertex).any(axis=1))
                keep = around[normals[around] @ normals[f] >= np.cos(np.radians(30.0))]
                total = (normals[keep] * areas[keep, None]).sum(axis=0)
                expected[f, k] = total / np.linalg.norm(total)
        np.testing.assert_allclose(crease_corner_normals(mesh, 30.0), expected, atol=1e-9)


def _edge_blend_share(normal_map: np.ndarray, mask: np.ndarray) -> float:
    """Share of background pixels next to the silhouette that hold a blended (not pure white) colour."""
    from scipy import ndimage

    ring = ndimage.binary_dilation(mask, iterations=1) & ~mask
    return float((normal_map[ring] != 255).any(axis=-1).mean())


def test_msaa_blends_silhouette_edges_and_zero_samples_do_not(sphere):
    (smooth,) = render(sphere, EVALUATION_CAMERA, resolution=RES)  # default: 4 samples
    (hard,) = render(sphere, EVALUATION_CAMERA, resolution=RES, msaa=0)
    assert _edge_blend_share(smooth.normal, smooth.mask) > 0.25
    assert _edge_blend_share(hard.normal, hard.mask) < 0.05
    # Same geometry either way: masks agree except along the edge, interior normals agree.
    assert (smooth.mask != hard.mask).mean() < 0.01
    (again,) = render(sphere, EVALUATION_CAMERA, resolution=RES)  # the cached 4x renderer kept its samples
    np.testing.assert_array_equal(again.normal, smooth.normal)
    with pytest.raises(ValueError, match="msaa"):
        render(sphere, EVALUATION_CAMERA, msaa=3)


def test_a_prepared_mesh_renders_like_the_mesh_itself():
    from triposg.rendering import prepare_mesh

    box = trimesh.creation.box(extents=(1.0, 0.6, 0.8))
    for smooth in (True, False):
        prepared = prepare_mesh(box, smooth=smooth)
        (direct,) = render(box, EVALUATION_CAMERA, resolution=RES, smooth=smooth)
        (again,) = render(prepared, EVALUATION_CAMERA, resolution=RES, smooth=not smooth)  # its own setting wins
        np.testing.assert_array_equal(again.normal, direct.normal)
        np.testing.assert_array_equal(again.rgb, direct.rgb)
    with pytest.raises(ValueError, match="empty"):
        prepare_mesh(trimesh.Trimesh())


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_importing_torch_compilers_after_rendering_does_not_crash():
    """Mesa's llvmpipe and triton both load an LLVM; a fresh process renders, then imports triton (as
    `import diffusers` does through torch._dynamo) and must still be alive."""
    script = ("import trimesh\nfrom triposg.rendering import EVALUATION_CAMERA, render\n"
              "render(trimesh.creation.icosphere(), EVALUATION_CAMERA)\nimport triton\nprint('alive')\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                               cwd=Path(__file__).resolve().parents[1])
    assert completed.returncode == 0 and "alive" in completed.stdout, completed.stderr[-2000:]
