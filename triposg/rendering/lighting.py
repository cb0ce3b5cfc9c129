"""The lights of the lit colour pass; they are given in camera space, so they move with the camera."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .cameras import Camera


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


def light_pose(camera: Camera, camera_space_position: Sequence[float]) -> np.ndarray:
    """Pose of a directional light shining from a point given in camera space towards the origin."""
    from_point = camera.rotation @ np.asarray(camera_space_position, dtype=np.float64)
    back = from_point / np.linalg.norm(from_point)  # pyrender lights shine along their local -z
    helper = np.array([0.0, 1.0, 0.0]) if abs(back[1]) < 0.99 else np.array([1.0, 0.0, 0.0])
    right = np.cross(helper, back)
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, np.cross(back, right), back], axis=1)
    return pose
