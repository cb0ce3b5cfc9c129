"""Headless mesh rendering: lit colour, normal maps, masks and depth (pyrender + EGL/OSMesa).

The app (previews), the data builder (conditioning renders) and the evaluation (Normal-FID renders of
the paper's test view) all render through this one package, so they share one camera convention.
Import from here; the modules hold one concept each:

- `cameras`: `Camera` and the coordinate convention (y-up, azimuth 0 = camera on +z), the framing
  constants, `EVALUATION_CAMERA` (the paper's test view), `turntable_cameras`;
- `lighting`: `Lighting`, the corpus lights, given in camera space;
- `meshes`: validation, `normalize_mesh` into [-1, 1]^3, crease splitting for smooth shading, `prepare_mesh`;
- `normal_maps`: the normal-map encoding `round((n + 1) / 2 * 255)` and its unlit pass;
- `backend`: the headless OpenGL platform, picked once per process on the first render, and the GL thread;
- `renderer`: `render` and `RenderResult`;
- `grids`: `make_image_grid`, `save_image_grid`.

No module imports pyrender, PyOpenGL, trimesh or PIL at import time: PyOpenGL fixes its platform when it is
first imported, so the backend (`backend.renderer_backend`) must be chosen and exported in `os.environ`
before that, which happens on the first render.
"""

from .backend import MSAA_CHOICES, RendererUnavailableError, renderer_backend
from .cameras import (
    BASE_DISTANCE,
    DEFAULT_SENSOR_WIDTH_MM,
    EVALUATION_CAMERA,
    FRAME_HALF_WIDTH,
    ORTHOGRAPHIC_DISTANCE,
    REFERENCE_FOCAL_LENGTH_MM,
    Camera,
    turntable_cameras,
)
from .grids import make_image_grid, save_image_grid
from .lighting import AMBIENT_LIGHT, CAMERA_SPACE_LIGHTS, Lighting
from .meshes import CREASE_ANGLE_DEG, PreparedMesh, crease_corner_normals, normalize_mesh, prepare_mesh, split_creases
from .renderer import DEFAULT_MESH_COLOR, RenderResult, render

# Every public name of the former single module rendering.py (its __all__, and the constants and crease
# helpers that evaluation.shifted and the tests import), so no importer changes.
__all__ = [
    "AMBIENT_LIGHT",
    "BASE_DISTANCE",
    "CAMERA_SPACE_LIGHTS",
    "CREASE_ANGLE_DEG",
    "DEFAULT_MESH_COLOR",
    "DEFAULT_SENSOR_WIDTH_MM",
    "EVALUATION_CAMERA",
    "FRAME_HALF_WIDTH",
    "MSAA_CHOICES",
    "ORTHOGRAPHIC_DISTANCE",
    "REFERENCE_FOCAL_LENGTH_MM",
    "Camera",
    "Lighting",
    "PreparedMesh",
    "RenderResult",
    "RendererUnavailableError",
    "crease_corner_normals",
    "make_image_grid",
    "normalize_mesh",
    "prepare_mesh",
    "render",
    "renderer_backend",
    "save_image_grid",
    "split_creases",
    "turntable_cameras",
]
