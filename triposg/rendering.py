"""Headless mesh rendering: lit colour, normal maps, masks and depth (pyrender + EGL/OSMesa).

The app (previews), the data builder (conditioning renders) and the evaluation (Normal-FID renders of
the paper's test view) all render through this one module, so they share one camera convention.

Coordinate convention
---------------------
World space is **y-up and right-handed**; meshes are rendered as they are (see `normalize_mesh` to
centre and scale a mesh into [-1, 1]^3 first). A `Camera` sits on a sphere around the origin and
always looks at the origin:

- azimuth 0, elevation 0: the camera is on the +z axis looking towards -z (the object's "front");
- positive azimuth rotates the camera about +y, counter-clockwise seen from above, i.e. from +z
  towards +x (azimuth 90 puts the camera on +x);
- positive elevation raises the camera towards +y (elevation 90 looks straight down).

Camera space is OpenGL's: x to the right of the image, y up, z towards the viewer (the camera looks
along -z). Camera x never leaves the horizontal plane, so there is no roll and no degeneracy at the
poles.

Framing: a perspective camera's default distance is `BASE_DISTANCE * focal_length_mm / 50`, so the
frame spans the same width (`2 * FRAME_HALF_WIDTH` = 3 world units) in the plane through the origin
at every focal length; an orthographic camera's default `ortho_scale` is that same width. A unit
sphere therefore fills about two thirds of the frame, and a mesh normalised into [-1, 1]^3 fits the
evaluation view (front, 50 mm, 10 degrees up). In oblique views the corners of [-1, 1]^3 reach up to
1.27x the half-frame at 50 mm (1.44x at 35 mm, 1.15x orthographic), so normalise with a margin
(`normalize_mesh(mesh, margin=0.25)` keeps even a cube inside every view at 50 mm) when nothing may
be clipped.

Normal maps
-----------
`RenderResult.normal` encodes a unit normal n (camera space by default: x right, y up, z towards the
viewer; or world space) as `round((n + 1) / 2 * 255)`, so a surface facing the camera is
(128, 128, 255). Background pixels are `normal_background` (default white, which no unit normal
encodes, so it cannot be mistaken for a surface); silhouette pixels are blended with it by their
pixel coverage. With `smooth=True` (default) normals are vertex normals interpolated across faces
and re-normalised per pixel, with the mesh first split along creases sharper than
`CREASE_ANGLE_DEG` (`trimesh.graph.smooth_shade`), so curved surfaces look smooth and boxes keep
their edges; with `smooth=False` every face is flat. Both passes (colour and normals) use the same
shading. Back faces (open meshes, flipped normals) are rendered too and show normals pointing away
from the viewer.

Backends
--------
PyOpenGL fixes its platform when it is first imported, so nothing is chosen at import time of this
module. On the first render a backend is picked once per process: an explicit `PYOPENGL_PLATFORM`
is respected; otherwise EGL, EGL with `EGL_PLATFORM=surfaceless`, then OSMesa are each tried in a
short subprocess (a failed platform cannot be swapped out inside a process) and the first that
works is set in `os.environ`. All OpenGL work then runs on one dedicated thread, because a GL context
is bound to the thread that made it current; one `pyrender.OffscreenRenderer` is cached per
resolution on that thread.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # imported lazily at run time: trimesh and PIL are not needed to import this module
    import trimesh
    from PIL import Image

__all__ = [
    "BASE_DISTANCE",
    "EVALUATION_CAMERA",
    "FRAME_HALF_WIDTH",
    "Camera",
    "Lighting",
    "PreparedMesh",
    "RenderResult",
    "RendererUnavailableError",
    "make_image_grid",
    "normalize_mesh",
    "prepare_mesh",
    "render",
    "renderer_backend",
    "save_image_grid",
    "turntable_cameras",
]

# Half the frame width, in world units, in the plane through the origin. 1.5 leaves a unit sphere at
# 2/3 of the frame, large enough for detail in Normal-FID renders; see the module docstring on clipping.
FRAME_HALF_WIDTH = 1.5
REFERENCE_FOCAL_LENGTH_MM = 50.0
DEFAULT_SENSOR_WIDTH_MM = 36.0  # full-frame sensor, as Blender's default camera
# Distance at 50 mm on a 36 mm sensor that puts FRAME_HALF_WIDTH at the edge of the frame (~4.17).
BASE_DISTANCE = FRAME_HALF_WIDTH * 2.0 * REFERENCE_FOCAL_LENGTH_MM / DEFAULT_SENSOR_WIDTH_MM
# Orthographic cameras only need to be outside the object; depth is measured from them.
ORTHOGRAPHIC_DISTANCE = 4.0
# Smooth shading keeps edges sharper than this (between faces' normals) as creases.
CREASE_ANGLE_DEG = 30.0

DEFAULT_MESH_COLOR = (180, 180, 180)  # sRGB neutral grey for meshes without colours
AMBIENT_LIGHT = 0.25
# (position in camera space the light shines from, intensity): a key light from the upper left,
# a weaker fill from the right and a rim light from behind so silhouettes and concavities read.
CAMERA_SPACE_LIGHTS = (
    ((-1.0, 1.2, 1.0), 3.0),
    ((1.5, 0.0, 0.8), 1.2),
    ((0.0, 1.0, -1.5), 1.0),
)


@dataclass(frozen=True)
class Lighting:
    """The lights of the lit colour pass: an ambient level and directional lights given as (position in camera
    space the light shines from, intensity), so they move with the camera. The default is the corpus lighting."""

    ambient: float = AMBIENT_LIGHT
    lights: tuple[tuple[tuple[float, float, float], float], ...] = CAMERA_SPACE_LIGHTS


class RendererUnavailableError(RuntimeError):
    """No headless OpenGL backend (EGL or OSMesa) could be started on this machine."""


# ----------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """A camera on a sphere around the origin, looking at the origin (see the module docstring).

    Args:
        elevation_deg: angle above the xz-plane, in [-90, 90].
        azimuth_deg: angle about +y from +z towards +x.
        focal_length_mm: perspective focal length on a `sensor_width_mm` sensor; None = orthographic.
        distance: distance from the origin; None = `BASE_DISTANCE * focal_length_mm / 50` for
            perspective (same framing at every focal length) and `ORTHOGRAPHIC_DISTANCE` otherwise.
        sensor_width_mm: sensor width; images are square, so it sets both fields of view.
        ortho_scale: full frame width in world units for orthographic cameras (Blender's meaning).
    """

    elevation_deg: float = 0.0
    azimuth_deg: float = 0.0
    focal_length_mm: float | None = REFERENCE_FOCAL_LENGTH_MM
    distance: float | None = None
    sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM
    ortho_scale: float = 2.0 * FRAME_HALF_WIDTH

    def __post_init__(self) -> None:
        if not -90.0 <= self.elevation_deg <= 90.0:
            raise ValueError(f"elevation_deg must be in [-90, 90], got {self.elevation_deg}")
        if self.focal_length_mm is not None and not self.focal_length_mm > 0:
            raise ValueError(f"focal_length_mm must be positive or None, got {self.focal_length_mm}")
        if self.distance is not None and not self.distance > 0:
            raise ValueError(f"distance must be positive or None, got {self.distance}")
        if not self.sensor_width_mm > 0 or not self.ortho_scale > 0:
            raise ValueError("sensor_width_mm and ortho_scale must be positive")

    @property
    def is_orthographic(self) -> bool:
        return self.focal_length_mm is None

    @property
    def fov_rad(self) -> float:
        """Full field of view in radians (horizontal = vertical for square images)."""
        if self.focal_length_mm is None:
            raise ValueError("an orthographic camera has no field of view")
        return 2.0 * math.atan(self.sensor_width_mm / (2.0 * self.focal_length_mm))

    @property
    def resolved_distance(self) -> float:
        """The distance actually used: `distance`, or the framing-preserving default."""
        if self.distance is not None:
            return float(self.distance)
        if self.focal_length_mm is None:
            return ORTHOGRAPHIC_DISTANCE
        return BASE_DISTANCE * self.focal_length_mm / REFERENCE_FOCAL_LENGTH_MM

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world space, shape (3,)."""
        elevation, azimuth = math.radians(self.elevation_deg), math.radians(self.azimuth_deg)
        direction = np.array([
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
            math.cos(elevation) * math.cos(azimuth),
        ])
        return self.resolved_distance * direction

    @property
    def rotation(self) -> np.ndarray:
        """Camera-to-world rotation, shape (3, 3); its columns are camera x (right), y (up), z (back)."""
        elevation, azimuth = math.radians(self.elevation_deg), math.radians(self.azimuth_deg)
        back = np.array([
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
            math.cos(elevation) * math.cos(azimuth),
        ])
        # cross(world up, back) normalised depends on the azimuth only, so it is well defined at the poles.
        right = np.array([math.cos(azimuth), 0.0, -math.sin(azimuth)])
        up = np.cross(back, right)
        return np.stack([right, up, back], axis=1)

    @property
    def pose(self) -> np.ndarray:
        """Camera-to-world transform, shape (4, 4), in OpenGL camera convention."""
        pose = np.eye(4)
        pose[:3, :3] = self.rotation
        pose[:3, 3] = self.position
        return pose


# The paper's test view for Normal-FID: front, 50 mm lens, 10 degrees above the horizon.
EVALUATION_CAMERA = Camera(elevation_deg=10.0, azimuth_deg=0.0, focal_length_mm=50.0)


def turntable_cameras(
    n: int,
    elevation_deg: float = 10.0,
    focal_length_mm: float | None = REFERENCE_FOCAL_LENGTH_MM,
    start_azimuth_deg: float = 0.0,
) -> list[Camera]:
    """`n` cameras evenly spaced in azimuth (starting at `start_azimuth_deg`) at one elevation."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return [
        Camera(
            elevation_deg=elevation_deg,
            azimuth_deg=start_azimuth_deg + 360.0 * i / n,
            focal_length_mm=focal_length_mm,
        )
        for i in range(n)
    ]


# ----------------------------------------------------------------------------------------------
# Meshes
# ----------------------------------------------------------------------------------------------


def _as_trimesh(mesh: object) -> trimesh.Trimesh:
    """Validate `mesh` (a Trimesh, or a trimesh.Scene flattened into one) and return a Trimesh."""
    import trimesh

    if isinstance(mesh, trimesh.Scene):
        mesh = mesh.to_mesh() if len(mesh.geometry) else trimesh.Trimesh()
    if not isinstance(mesh, trimesh.Trimesh):
        raise ValueError(f"expected a trimesh.Trimesh, got {type(mesh).__name__}")  # noqa: TRY004
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise ValueError("cannot render an empty mesh (it has no faces)")
    if not np.all(np.isfinite(mesh.vertices)):
        raise ValueError("the mesh has non-finite (NaN or inf) vertex coordinates")
    return mesh


def normalize_mesh(mesh: trimesh.Trimesh, margin: float = 0.0) -> trimesh.Trimesh:
    """Return a copy centred on its bounding-box centre and scaled uniformly into [-1, 1]^3.

    The longest bounding-box side becomes `2 * (1 - margin)` long, so `margin` is the fraction of
    the half-size kept empty on that axis.
    """
    mesh = _as_trimesh(mesh)
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    lower, upper = mesh.bounds
    extent = float(np.max(upper - lower))
    if extent <= 0.0:
        raise ValueError("the mesh is a single point; it cannot be normalised")
    normalized = mesh.copy()
    normalized.apply_translation(-(lower + upper) / 2.0)
    normalized.apply_scale(2.0 * (1.0 - margin) / extent)
    return normalized


# ----------------------------------------------------------------------------------------------
# Backend selection (lazy, once per process)
# ----------------------------------------------------------------------------------------------

# Each candidate: (name shown to users, environment variables that select it).
_BACKEND_CANDIDATES = (
    ("egl", {"PYOPENGL_PLATFORM": "egl"}),
    ("egl (surfaceless)", {"PYOPENGL_PLATFORM": "egl", "EGL_PLATFORM": "surfaceless"}),
    ("osmesa", {"PYOPENGL_PLATFORM": "osmesa"}),
)
_INSTALL_HINT = (
    "Install the Debian packages libegl1 libgl1-mesa-dri (EGL, preferred; works on CPU via llvmpipe "
    "and on NVIDIA GPUs), or libosmesa6 for OSMesa, together with PyOpenGL>=3.1.7 and pyrender; "
    "or set PYOPENGL_PLATFORM to a platform that works on this machine."
)
# Creates and frees a tiny offscreen context; run in a subprocess per candidate platform.
_PROBE_SCRIPT = """
import numpy as np
if not hasattr(np, "infty"):
    np.infty = np.inf
import pyrender
renderer = pyrender.OffscreenRenderer(8, 8)
renderer.delete()
"""

_backend_lock = threading.Lock()
_backend_name: str | None = None
_gl_executor: ThreadPoolExecutor | None = None
_renderers: dict[tuple[int, int], object] = {}  # (resolution, msaa) -> OffscreenRenderer; GL thread only
# pyrender hard-codes 4x multisampling when it allocates a renderer's framebuffer (on its first render).
# `_multisample_storage` replaces the GL call it uses and reads the sample count set here just before each
# render, so every cached renderer keeps the count it was created with. Touched on the GL thread only.
_msaa_samples = 4
MSAA_CHOICES = (0, 2, 4, 8)


def _probe_backend(env_overrides: dict[str, str]) -> str | None:
    """Try a platform in a subprocess; return None on success, else the last line of its error."""
    env = {**os.environ, **env_overrides}
    try:
        completed = subprocess.run(
            [sys.executable, "-c", _PROBE_SCRIPT], env=env, capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        return "timed out while creating a context"
    if completed.returncode == 0:
        return None
    lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {completed.returncode}"


def _select_backend() -> str:
    """Pick the OpenGL platform once per process and export it in `os.environ` for pyrender."""
    global _backend_name
    with _backend_lock:
        if _backend_name is not None:
            return _backend_name
        if "PYOPENGL_PLATFORM" in os.environ:  # the user's choice wins; failures surface on first use
            _backend_name = os.environ["PYOPENGL_PLATFORM"]
            return _backend_name
        failures = []
        for name, env_overrides in _BACKEND_CANDIDATES:
            error = _probe_backend(env_overrides)
            if error is None:
                os.environ.update(env_overrides)
                _backend_name = name
                return name
            failures.append(f"{name}: {error}")
        raise RendererUnavailableError(
            "No headless OpenGL backend could be started. Tried " + "; ".join(failures) + ". " + _INSTALL_HINT
        )


def _import_pyrender():
    # pyrender 0.1.45 still uses `np.infty`, which numpy 2 removed; restore the alias before importing it.
    if not hasattr(np, "infty"):
        np.infty = np.inf
    try:
        import pyrender
    except ImportError as error:
        raise RendererUnavailableError(f"pyrender could not be imported ({error}). {_INSTALL_HINT}") from error
    return pyrender


def renderer_backend() -> str:
    """Select (if needed) and return the OpenGL backend: "egl", "egl (surfaceless)", "osmesa", or the
    user's `PYOPENGL_PLATFORM`. Raises `RendererUnavailableError` if none works."""
    return _select_backend()


def _load_triton_before_mesa() -> None:
    """Import triton (installed with torch on Linux) before the first OpenGL context exists.

    Mesa's llvmpipe and triton each bring their own LLVM; importing triton after a llvmpipe context was
    created crashes the process (segmentation fault), and torch imports triton lazily (e.g. on the first
    `import diffusers`, through torch._dynamo). Loaded in this order, both work.
    """
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def _run_on_gl_thread(function, *args):
    """Run `function(*args)` on the single thread that owns every OpenGL context of this process."""
    global _gl_executor
    _select_backend()
    with _backend_lock:
        if _gl_executor is None:
            _load_triton_before_mesa()
            _gl_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triposg-gl")
    return _gl_executor.submit(function, *args).result()


def _multisample_storage(target, samples, internal_format, width, height):
    from OpenGL.GL import glRenderbufferStorageMultisample

    glRenderbufferStorageMultisample(target, _msaa_samples, internal_format, width, height)


def _get_renderer(pyrender, resolution: int, msaa: int = 4):
    """The cached offscreen renderer for this resolution and sample count (GL thread only)."""
    global _msaa_samples
    import pyrender.renderer

    pyrender.renderer.glRenderbufferStorageMultisample = _multisample_storage
    _msaa_samples = msaa
    renderer = _renderers.get((resolution, msaa))
    if renderer is None:
        try:
            renderer = pyrender.OffscreenRenderer(resolution, resolution)
        except Exception as error:  # pyrender raises assertions, ctypes and GL errors alike
            raise RendererUnavailableError(
                f"could not create an OpenGL context with backend {_backend_name!r}: "
                f"{type(error).__name__}: {error}. {_INSTALL_HINT}"
            ) from error
        _renderers[(resolution, msaa)] = renderer
    return renderer


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------


@dataclass
class RenderResult:
    """One view of a mesh, all arrays (H, W, ...) with row 0 at the top of the image.

    Attributes:
        rgb: (H, W, 3) uint8 lit colour composited on the background.
        normal: (H, W, 3) uint8 normal map, `round((n + 1) / 2 * 255)` (see the module docstring).
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


def crease_corner_normals(mesh: "trimesh.Trimesh", crease_angle_deg: float) -> np.ndarray:
    """(F, 3, 3) per-corner normals: the area-weighted mean of the normals of the faces around each corner's
    vertex that are within `crease_angle_deg` of the corner's own face, so smooth parts shade smoothly and
    edges sharper than the angle stay crisp.

    Where every face around a vertex is within half the angle of the vertex's mean normal, all of them are
    within the angle of each other, so each corner there gets that mean normal. Only the corners at creases go
    through the (corner, face around its vertex) pairs, vectorised.
    """
    faces = np.asarray(mesh.faces)
    face_normals = np.asarray(mesh.face_normals)
    weighted_normals = face_normals * np.asarray(mesh.area_faces)[:, None]
    num_vertices = len(mesh.vertices)
    corner_vertex = faces.reshape(-1)  # (3F,)
    corner_face = np.repeat(np.arange(len(faces)), 3)

    def sum_per(index: np.ndarray, values: np.ndarray, length: int) -> np.ndarray:
        return np.stack([np.bincount(index, values[:, k], length) for k in range(3)], axis=1)

    vertex_sum = sum_per(corner_vertex, weighted_normals[corner_face], num_vertices)  # (V, 3)
    vertex_unit = vertex_sum / np.maximum(np.linalg.norm(vertex_sum, axis=1, keepdims=True), 1e-30)
    near_mean = (face_normals[corner_face] * vertex_unit[corner_vertex]).sum(axis=1) >= math.cos(
        math.radians(crease_angle_deg / 2.0))
    crease_vertex = np.bincount(corner_vertex, ~near_mean, num_vertices) > 0
    normals = vertex_sum[corner_vertex]  # (3F, 3), right for corners of smooth vertices

    corners = np.flatnonzero(crease_vertex[corner_vertex])  # corners that need the per-face test
    if len(corners):
        order = np.argsort(corner_vertex, kind="stable")  # corners grouped by vertex
        counts = np.bincount(corner_vertex, minlength=num_vertices)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        vertex = corner_vertex[corners]
        group = counts[vertex]  # corners sharing each crease corner's vertex
        pair_corner = np.repeat(np.arange(len(corners)), group)
        offsets = np.arange(len(pair_corner)) - np.repeat(np.cumsum(group) - group, group)
        pair_face = corner_face[order[np.repeat(starts[vertex], group) + offsets]]
        own = face_normals[corner_face[corners][pair_corner]]
        keep = (own * face_normals[pair_face]).sum(axis=1) >= math.cos(math.radians(crease_angle_deg))
        normals[corners] = sum_per(pair_corner, weighted_normals[pair_face] * keep[:, None], len(corners))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 0, normals / np.maximum(length, 1e-30), face_normals[corner_face])
    return normals.reshape(len(faces), 3, 3)


def split_creases(mesh: "trimesh.Trimesh", crease_angle_deg: float) -> "trimesh.Trimesh":
    """A copy with one vertex per face corner carrying crease-aware normals (see `crease_corner_normals`),
    vertex colours carried over. Textured meshes go through trimesh's (slower) `smooth_shade`, which keeps UVs."""
    import trimesh

    if mesh.visual.kind not in (None, "vertex"):
        return trimesh.graph.smooth_shade(mesh, angle=math.radians(crease_angle_deg))
    faces = np.asarray(mesh.faces)
    corner_vertices = faces.reshape(-1)
    split = trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices)[corner_vertices],
        faces=np.arange(len(corner_vertices)).reshape(-1, 3),
        vertex_normals=crease_corner_normals(mesh, crease_angle_deg).reshape(-1, 3),
        process=False,
    )
    if mesh.visual.kind == "vertex":
        split.visual.vertex_colors = np.asarray(mesh.visual.vertex_colors)[corner_vertices]
    return split


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


def _normal_mesh(pyrender, mesh: trimesh.Trimesh, smooth: bool):
    """A mesh whose unlit colours are world normals encoded as (n + 1) / 2, for the FLAT pass."""
    if smooth:
        positions, normals, indices = mesh.vertices, mesh.vertex_normals, mesh.faces
    else:
        positions = mesh.vertices[mesh.faces].reshape(-1, 3)
        normals = np.repeat(mesh.face_normals, 3, axis=0)
        indices = None
    primitive = pyrender.Primitive(
        positions=np.asarray(positions, dtype=np.float32),
        color_0=((np.asarray(normals, dtype=np.float32) + 1.0) / 2.0),
        indices=indices,
        material=pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], alphaMode="OPAQUE", doubleSided=True
        ),
    )
    return pyrender.Mesh(primitives=[primitive])


def _pyrender_camera(pyrender, camera: Camera):
    distance = camera.resolved_distance
    # Near/far bracket any mesh within radius 2*sqrt(3) of the origin; tight bounds keep depth precise.
    znear = max(0.01, distance - 4.0)
    zfar = distance + 4.0
    if camera.is_orthographic:
        half_width = camera.ortho_scale / 2.0
        return pyrender.OrthographicCamera(xmag=half_width, ymag=half_width, znear=znear, zfar=zfar)
    return pyrender.PerspectiveCamera(yfov=camera.fov_rad, aspectRatio=1.0, znear=znear, zfar=zfar)


def _light_pose(camera: Camera, camera_space_position: Sequence[float]) -> np.ndarray:
    """Pose of a directional light shining from a point given in camera space towards the origin."""
    from_point = camera.rotation @ np.asarray(camera_space_position, dtype=np.float64)
    back = from_point / np.linalg.norm(from_point)  # pyrender lights shine along their local -z
    helper = np.array([0.0, 1.0, 0.0]) if abs(back[1]) < 0.99 else np.array([1.0, 0.0, 0.0])
    right = np.cross(helper, back)
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, np.cross(back, right), back], axis=1)
    return pose


def _orthographic_depth(depth: np.ndarray, znear: float, zfar: float) -> np.ndarray:
    """Undo pyrender's perspective depth linearisation, which it applies to orthographic cameras too."""
    depth = depth.astype(np.float64)
    valid = depth > 0
    ndc = np.zeros_like(depth)
    ndc[valid] = (zfar + znear - 2.0 * znear * zfar / depth[valid]) / (zfar - znear)
    linear = znear + (ndc + 1.0) / 2.0 * (zfar - znear)
    return np.where(valid, linear, 0.0).astype(np.float32)


def _decode_normals(
    encoded: np.ndarray,
    mask: np.ndarray,
    camera: Camera,
    normal_space: str,
    normal_background: tuple[int, int, int],
) -> np.ndarray:
    """Turn the FLAT pass (world normals, cleared to the zero normal) into the output normal map.

    Because the pass is cleared to the encoding of the zero vector, a multisampled edge pixel holds
    coverage * n: its direction is the surface normal and its length is the pixel coverage.
    """
    from scipy import ndimage

    scaled = encoded.astype(np.float32) / 255.0 * 2.0 - 1.0  # (H, W, 3) coverage * n
    length = np.linalg.norm(scaled, axis=-1)
    normals = scaled / np.maximum(length, 1e-6)[..., None]
    if normal_space == "camera":
        normals = normals @ camera.rotation  # row vectors: n_cam = R^T n_world
    # Inside the silhouette interpolated normals can be slightly shorter than 1; only edges are partial.
    coverage = np.clip(length, 0.0, 1.0)
    coverage[coverage < 0.02] = 0.0  # the cleared value 128/255 is not exactly zero
    coverage[ndimage.binary_erosion(mask, iterations=1, border_value=0)] = 1.0
    normal_colors = (normals + 1.0) / 2.0 * 255.0
    background = np.asarray(normal_background, dtype=np.float32)
    blended = coverage[..., None] * normal_colors + (1.0 - coverage[..., None]) * background
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


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
    lighting: Lighting,
) -> list[RenderResult]:
    """All passes for all cameras; runs on the GL thread. `mesh` is already prepared (`prepare_mesh`)."""
    pyrender = _import_pyrender()
    renderer = _get_renderer(pyrender, resolution, msaa)
    flags = pyrender.RenderFlags

    scene = pyrender.Scene(ambient_light=np.full(3, lighting.ambient))
    lit_mesh = _lit_mesh(pyrender, mesh, color, smooth)
    normal_mesh = _normal_mesh(pyrender, mesh, smooth)
    scene.add(lit_mesh)
    scene.add(normal_mesh)
    light_nodes = [
        scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=intensity))
        for _, intensity in lighting.lights
    ]
    rgb_background = np.array([*background, 255], dtype=np.float64) / 255.0
    zero_normal_background = np.array([0.5, 0.5, 0.5, 1.0])

    results = []
    camera_node = None
    for camera in cameras:
        if camera_node is not None:
            scene.remove_node(camera_node)
        gl_camera = _pyrender_camera(pyrender, camera)
        camera_node = scene.add(gl_camera, pose=camera.pose)
        for node, (position, _) in zip(light_nodes, lighting.lights):
            scene.set_pose(node, _light_pose(camera, position))

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
        normal = _decode_normals(encoded_normals, mask, camera, normal_space, normal_background)
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


@dataclass(frozen=True)
class PreparedMesh:
    """A mesh made ready for `render` once, to be rendered several times without repeating the work.

    `mesh`: with `smooth`, a copy with one vertex per face corner carrying crease-aware normals
    (`split_creases`, the costly part: ~0.1 s for 50k faces); else the validated mesh itself.
    """

    mesh: trimesh.Trimesh
    smooth: bool


def prepare_mesh(mesh: trimesh.Trimesh, smooth: bool = True) -> PreparedMesh:
    """Validate `mesh` and, for smooth shading, split it at creases (see `PreparedMesh`)."""
    mesh = _as_trimesh(mesh)
    return PreparedMesh(split_creases(mesh, CREASE_ANGLE_DEG) if smooth else mesh, smooth)


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
    lighting: Lighting | None = None,
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
        lighting: the lit pass's lights (`Lighting`); None is the corpus lighting.

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
    if lighting is not None and not isinstance(lighting, Lighting):
        raise ValueError(f"lighting must be a Lighting or None, got {type(lighting).__name__}")
    return _run_on_gl_thread(
        _render_views, prepared.mesh, camera_list, int(resolution), background, normal_background, normal_space,
        color, prepared.smooth, int(msaa), lighting or Lighting(),
    )


# ----------------------------------------------------------------------------------------------
# Image grids (model card, reports)
# ----------------------------------------------------------------------------------------------


def make_image_grid(
    images: Sequence[np.ndarray | Image.Image],
    ncols: int = 4,
    background: Sequence[int] = (255, 255, 255),
) -> Image.Image:
    """Tile images row-major into one RGB image; every tile is resized to the first image's size.

    `images` are PIL images or (H, W), (H, W, 3) or (H, W, 4) uint8 / bool arrays.
    """
    from PIL import Image

    if len(images) == 0:
        raise ValueError("images is empty")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    tiles = []
    for image in images:
        if isinstance(image, np.ndarray):
            array = image.astype(np.uint8) * 255 if image.dtype == bool else image
            image = Image.fromarray(np.ascontiguousarray(array))
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            flattened = Image.new("RGB", image.size, tuple(background))
            flattened.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
            image = flattened
        tiles.append(image.convert("RGB"))
    width, height = tiles[0].size
    ncols = min(ncols, len(tiles))
    nrows = math.ceil(len(tiles) / ncols)
    grid = Image.new("RGB", (ncols * width, nrows * height), tuple(background))
    for index, tile in enumerate(tiles):
        if tile.size != (width, height):
            tile = tile.resize((width, height), Image.Resampling.LANCZOS)
        grid.paste(tile, ((index % ncols) * width, (index // ncols) * height))
    return grid


def save_image_grid(
    images: Sequence[np.ndarray | Image.Image],
    path: str | Path,
    ncols: int = 4,
    background: Sequence[int] = (255, 255, 255),
) -> Image.Image:
    """`make_image_grid` and save it to `path` (format from the suffix); returns the grid."""
    grid = make_image_grid(images, ncols=ncols, background=background)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return grid
