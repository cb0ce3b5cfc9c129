"""`render`: a mesh from a list of cameras, all passes (lit colour, depth, normals) on the GL thread."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .backend import MSAA_CHOICES, get_renderer, import_pyrender, run_on_gl_thread
from .cameras import Camera, pyrender_camera
from .lighting import Lighting, light_pose
from .meshes import PreparedMesh, prepare_mesh
from .normal_maps import decode_normals, encoded_normal_mesh

if TYPE_CHECKING:
    import trimesh


DEFAULT_MESH_COLOR = (180, 180, 180)  # sRGB neutral grey for meshes without colours


@dataclass
class RenderResult:
    """One view of a mesh, all arrays (H, W, ...) with row 0 at the top of the image.

    Attributes:
        rgb: (H, W, 3) uint8 lit colour composited on the background.
        normal: (H, W, 3) uint8 normal map, `round((n + 1) / 2 * 255)` (see `normal_maps`).
        mask: (H, W) bool, True where the mesh covers the pixel centre.
        depth: (H, W) float32 distance along the viewing axis from the camera, 0 where empty.
        camera: the camera of this view.
    """

    rgb: np.ndarray
    normal: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    camera: Camera


def _srgb_to_linear(color: Sequence[float]) -> list[float]:
    # pyrender's lit shader gamma-encodes its output (pow 1/2.2), so base colours must be linear.
    return [(channel / 255.0) ** 2.2 for channel in color]


def _check_color(color: Sequence[int], name: str) -> tuple[int, int, int]:
    values = tuple(int(c) for c in color)
    if len(values) != 3 or not all(0 <= c <= 255 for c in values):
        raise ValueError(f"{name} must be three integers in [0, 255], got {color!r}")
    return values


def _lit_mesh(pyrender, mesh: trimesh.Trimesh, color: tuple[int, int, int] | None, smooth: bool):
    """The pyrender mesh for the RGB pass: `color`, else the mesh's own colours, else neutral grey."""
    if color is None and mesh.visual.defined:
        # pyrender cannot interpolate face colours, so such meshes are drawn faceted.
        primitive_mesh = pyrender.Mesh.from_trimesh(mesh, smooth=smooth and mesh.visual.kind != "face")
        for primitive in primitive_mesh.primitives:
            primitive.material.doubleSided = True
        return primitive_mesh
    material = pyrender.MetallicRoughnessMaterial(
        baseColorFactor=_srgb_to_linear(color or DEFAULT_MESH_COLOR) + [1.0],
        metallicFactor=0.0,
        roughnessFactor=0.7,
        alphaMode="OPAQUE",
        doubleSided=True,
    )
    return pyrender.Mesh.from_trimesh(mesh, material=material, smooth=smooth)


def _orthographic_depth(depth: np.ndarray, znear: float, zfar: float) -> np.ndarray:
    """Undo pyrender's perspective depth linearisation, which it applies to orthographic cameras too."""
    depth = depth.astype(np.float64)
    valid = depth > 0
    ndc = np.zeros_like(depth)
    ndc[valid] = (zfar + znear - 2.0 * znear * zfar / depth[valid]) / (zfar - znear)
    linear = znear + (ndc + 1.0) / 2.0 * (zfar - znear)
    return np.where(valid, linear, 0.0).astype(np.float32)


def _render_views(
    mesh: trimesh.Trimesh,
    cameras: list[Camera],
    resolution: int,
    background: tuple[int, int, int],
    normal_background: tuple[int, int, int],
    normal_space: str,
    color: tuple[int, int, int] | None,
    smooth: bool,
    msaa: int,
    lightings: list[Lighting],
) -> list[RenderResult]:
    """All passes for all cameras; runs on the GL thread. `mesh` is already prepared (`prepare_mesh`);
    `lightings` holds one `Lighting` per camera."""
    pyrender = import_pyrender()
    renderer = get_renderer(pyrender, resolution, msaa)
    flags = pyrender.RenderFlags

    scene = pyrender.Scene()
    lit_mesh = _lit_mesh(pyrender, mesh, color, smooth)
    normal_mesh = encoded_normal_mesh(pyrender, mesh, smooth)
    scene.add(lit_mesh)
    scene.add(normal_mesh)
    rgb_background = np.array([*background, 255], dtype=np.float64) / 255.0
    zero_normal_background = np.array([0.5, 0.5, 0.5, 1.0])

    results = []
    camera_node = None
    light_nodes: list = []
    current_lighting = None
    for camera, lighting in zip(cameras, lightings):
        if camera_node is not None:
            scene.remove_node(camera_node)
        gl_camera = pyrender_camera(pyrender, camera)
        camera_node = scene.add(gl_camera, pose=camera.pose)
        if lighting != current_lighting:  # the corpus renders one rig for every view: set up once
            for node in light_nodes:
                scene.remove_node(node)
            scene.ambient_light = np.full(3, lighting.ambient)
            light_nodes = [scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=intensity))
                           for _, intensity in lighting.lights]
            current_lighting = lighting
        for node, (position, _) in zip(light_nodes, lighting.lights):
            scene.set_pose(node, light_pose(camera, position))

        # 1. Lit colour and depth.
        lit_mesh.is_visible, normal_mesh.is_visible = True, False
        scene.bg_color = rgb_background
        rgb, depth = renderer.render(scene, flags=flags.SKIP_CULL_FACES)
        # 2. Unlit world normals.
        lit_mesh.is_visible, normal_mesh.is_visible = False, True
        scene.bg_color = zero_normal_background
        encoded_normals, _ = renderer.render(scene, flags=flags.FLAT | flags.SKIP_CULL_FACES)

        if camera.is_orthographic:
            depth = _orthographic_depth(depth, gl_camera.znear, gl_camera.zfar)
        mask = depth > 0
        normal = decode_normals(encoded_normals, mask, camera, normal_space, normal_background)
        results.append(
            RenderResult(
                rgb=np.ascontiguousarray(rgb[..., :3], dtype=np.uint8),
                normal=normal,
                mask=mask,
                depth=depth.astype(np.float32),
                camera=camera,
            )
        )
    return results


def render(
    mesh: trimesh.Trimesh | PreparedMesh,
    cameras: Camera | Sequence[Camera],
    resolution: int = 512,
    background: Sequence[int] = (255, 255, 255),
    normal_space: Literal["camera", "world"] = "camera",
    color: Sequence[int] | None = None,
    normal_background: Sequence[int] = (255, 255, 255),
    smooth: bool = True,
    msaa: int = 4,
    lighting: Lighting | Sequence[Lighting | None] | None = None,
) -> list[RenderResult]:
    """Render `mesh` from each camera: lit colour, normal map, mask and depth, each (H, W, ...) square.

    Args:
        mesh: a non-empty `trimesh.Trimesh` (a `trimesh.Scene` is flattened), rendered as it is, or a
            `PreparedMesh` (then its own `smooth` setting is used and the `smooth` argument is ignored).
        cameras: one `Camera` or a sequence of them.
        resolution: image side in pixels.
        background: sRGB colour behind the lit render.
        normal_space: "camera" (x right, y up, z towards the viewer) or "world" normals.
        color: sRGB colour for the whole mesh; None uses the mesh's vertex/face colours or texture,
            or neutral grey if it has none.
        normal_background: colour of empty pixels in the normal map (white encodes no unit normal).
        smooth: smooth shading that keeps creases (True) or flat faces (False), in both passes.
        msaa: multisamples per pixel (0, 2, 4 or 8). 4 (the default) gives anti-aliased edges; 0 renders
            about 2x faster on a software GL (training views), with hard edges and binary edge normals.
        lighting: the lit pass's lights (`Lighting`), or one per camera; None is the corpus lighting.

    Returns:
        One `RenderResult` per camera, in order.

    Raises:
        ValueError: bad mesh, camera or argument.
        RendererUnavailableError: no headless OpenGL backend works here (the message names the fix).
    """
    prepared = mesh if isinstance(mesh, PreparedMesh) else prepare_mesh(mesh, smooth)
    camera_list = [cameras] if isinstance(cameras, Camera) else list(cameras)
    if not camera_list or not all(isinstance(camera, Camera) for camera in camera_list):
        raise ValueError("cameras must be a Camera or a non-empty sequence of Camera")
    if not isinstance(resolution, (int, np.integer)) or not 8 <= resolution <= 8192:
        raise ValueError(f"resolution must be an integer in [8, 8192], got {resolution!r}")
    if normal_space not in ("camera", "world"):
        raise ValueError(f"normal_space must be 'camera' or 'world', got {normal_space!r}")
    background = _check_color(background, "background")
    normal_background = _check_color(normal_background, "normal_background")
    color = None if color is None else _check_color(color, "color")
    if msaa not in MSAA_CHOICES:
        raise ValueError(f"msaa must be one of {MSAA_CHOICES}, got {msaa!r}")
    if lighting is None or isinstance(lighting, Lighting):
        lightings = [lighting or Lighting()] * len(camera_list)
    elif isinstance(lighting, Sequence) and not isinstance(lighting, (str, bytes)):
        if len(lighting) != len(camera_list) or not all(item is None or isinstance(item, Lighting)
                                                        for item in lighting):
            raise ValueError(f"lighting as a sequence needs one Lighting (or None) per camera: "
                             f"{len(camera_list)} cameras, got {len(lighting)} entries")
        lightings = [item or Lighting() for item in lighting]
    else:
        raise ValueError(f"lighting must be a Lighting, a sequence of them or None, got {type(lighting).__name__}")
    return run_on_gl_thread(
        _render_views, prepared.mesh, camera_list, int(resolution), background, normal_background, normal_space,
        color, prepared.smooth, int(msaa), lightings,
    )
