"""Cameras of the renderer: where a view is taken from and its lens.

Coordinate convention
---------------------
World space is **y-up and right-handed**; meshes are rendered as they are (see `meshes.normalize_mesh` to
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Half the frame width, in world units, in the plane through the origin. 1.5 leaves a unit sphere at
# 2/3 of the frame, large enough for detail in Normal-FID renders; see the module docstring on clipping.
FRAME_HALF_WIDTH = 1.5
REFERENCE_FOCAL_LENGTH_MM = 50.0
DEFAULT_SENSOR_WIDTH_MM = 36.0  # full-frame sensor, as Blender's default camera
# Distance at 50 mm on a 36 mm sensor that puts FRAME_HALF_WIDTH at the edge of the frame (~4.17).
BASE_DISTANCE = FRAME_HALF_WIDTH * 2.0 * REFERENCE_FOCAL_LENGTH_MM / DEFAULT_SENSOR_WIDTH_MM
# Orthographic cameras only need to be outside the object; depth is measured from them.
ORTHOGRAPHIC_DISTANCE = 4.0


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
    def back(self) -> np.ndarray:
        """Unit vector from the target towards the camera (the camera's z axis), shape (3,)."""
        elevation, azimuth = math.radians(self.elevation_deg), math.radians(self.azimuth_deg)
        return np.array([
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
            math.cos(elevation) * math.cos(azimuth),
        ])

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world space, shape (3,)."""
        return self.resolved_distance * self.back

    @property
    def rotation(self) -> np.ndarray:
        """Camera-to-world rotation, shape (3, 3); its columns are camera x (right), y (up), z (back)."""
        azimuth, back = math.radians(self.azimuth_deg), self.back
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


def pyrender_camera(pyrender, camera: Camera):
    """The pyrender camera (lens and near/far planes) for `camera`; its pose is `camera.pose`."""
    distance = camera.resolved_distance
    # Near/far bracket any mesh within radius 2*sqrt(3) of the origin; tight bounds keep depth precise.
    znear = max(0.01, distance - 4.0)
    zfar = distance + 4.0
    if camera.is_orthographic:
        half_width = camera.ortho_scale / 2.0
        return pyrender.OrthographicCamera(xmag=half_width, ymag=half_width, znear=znear, zfar=zfar)
    return pyrender.PerspectiveCamera(yfov=camera.fov_rad, aspectRatio=1.0, znear=znear, zfar=zfar)
