"""Conditioning renders for flow training (paper §5.1): 8 random views per object plus the evaluation view.

Camera distribution
-------------------
The paper renders "8 random viewpoints in front of the 3D models" with elevation in [-15°, 30°], azimuth
in [0°, 180°] and a focal length drawn from [orthographic, 50 mm, 85 mm, 135 mm, two random in 35–65 mm].

- Azimuth: a 180° range "in front of" the object is a half circle centred on its front. In our convention
  (`triposg.rendering`: azimuth 0 puts the camera on +z, the object's front; +90 puts it on +x) that half
  circle is azimuth U(-90°, 90°): every camera sees the front half of the object, from the left side
  through the front to the right side. The paper's [0°, 180°] is the same interval in a convention whose
  zero is one side of the object.
- Elevation: U(-15°, 30°), positive above the horizon.
- Focal length: per object a list of six choices is built — orthographic, 50, 85, 135 mm and two lengths
  drawn once per object from U(35, 65) mm — and each view draws one entry of that list uniformly (with
  replacement). The evaluation view (front, 50 mm, 10° elevation; `EVALUATION_CAMERA`) lies inside this
  distribution, as the paper notes.

Framing: cameras start from the renderer's rule (the frame spans 3 world units through the origin at any
focal length) and move back just enough that a sphere of radius `frame_radius` around the origin stays in
the frame. The default radius 0.9·√3 encloses the whole normalisation cube [-0.9, 0.9]^3, whose corners the
renderer's default framing clips in about a fifth of the oblique views (it is tuned for the front view);
the cameras then sit 0–17 % farther away. The flow dataset re-crops the foreground to a fixed ratio, so the
small change of scale does not matter; the evaluation view keeps `EVALUATION_CAMERA` exactly.

Lighting (ours; the paper does not say): half the training views are lit by a random rig
(`sample_view_lightings`: a key light from the side, above or below, an optional fill, dim to bright ambient),
the rest and the evaluation view by the corpus rig (`triposg.rendering.Lighting()`), so the evaluation stays
comparable across corpora while the flow sees photographs' kinds of light.

Files written per object (all PNG, 8-bit):
`view_00_rgb.png` ... (RGBA: lit colour, alpha = the render mask, so the flow dataset can re-composite the
foreground on any background), `view_00_normal.png` ... (RGB camera-space normal map, white background,
encoding of `triposg.rendering`), `eval_rgb.png`, `eval_normal.png`, and `cameras.json` with the records
returned by `render_object_views`.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from triposg.io import write_bytes_atomic
from triposg.rendering import EVALUATION_CAMERA, Camera, Lighting, prepare_mesh, render

if TYPE_CHECKING:
    import trimesh

__all__ = [
    "CAMERAS_FILE",
    "ViewDistribution",
    "camera_from_record",
    "camera_record",
    "fit_sphere_in_frame",
    "read_view_mask",
    "render_object_views",
    "sample_focal_lengths",
    "sample_view_cameras",
    "sample_view_lightings",
]

CAMERAS_FILE = "cameras.json"
EVAL_VIEW_NAME = "eval"
# zlib level for PNGs: 6 is ~3x faster than 9 on renders with large flat backgrounds for a few % more bytes.
PNG_COMPRESS_LEVEL = 1  # zlib level: 1 encodes ~3x faster than 6 for ~15 % larger files (build rate)


@dataclass(frozen=True)
class ViewDistribution:
    """The paper's view distribution (§5.1), in `triposg.rendering` angles (see the module docstring)."""

    elevation_range_deg: tuple[float, float] = (-15.0, 30.0)  # paper: [-15°, 30°]
    azimuth_range_deg: tuple[float, float] = (-90.0, 90.0)  # paper's [0°, 180°]: the front half circle
    # None = orthographic; the fixed part of the paper's focal-length list.
    fixed_focal_lengths_mm: tuple[float | None, ...] = (None, 50.0, 85.0, 135.0)
    random_focal_range_mm: tuple[float, float] = (35.0, 65.0)  # paper: "2 randomly selected from 35mm-65mm"
    num_random_focal_lengths: int = 2
    # Radius around the origin kept inside every frame (None: the renderer's default framing).
    frame_radius: float | None = 0.9 * math.sqrt(3.0)


def sample_focal_lengths(
    rng: np.random.Generator, distribution: ViewDistribution = ViewDistribution()
) -> list[float | None]:
    """The per-object focal-length list: the fixed choices followed by the random ones (None = orthographic)."""
    low, high = distribution.random_focal_range_mm
    random_lengths = rng.uniform(low, high, size=distribution.num_random_focal_lengths)
    return list(distribution.fixed_focal_lengths_mm) + [float(length) for length in random_lengths]


def sample_view_cameras(
    rng: np.random.Generator, num_views: int = 8, distribution: ViewDistribution = ViewDistribution()
) -> list[Camera]:
    """`num_views` cameras for one object: uniform elevation and azimuth, focal length drawn per view
    from the object's six-entry list (`sample_focal_lengths`)."""
    if num_views < 1:
        raise ValueError(f"num_views must be at least 1, got {num_views}")
    focal_lengths = sample_focal_lengths(rng, distribution)
    elevations = rng.uniform(*distribution.elevation_range_deg, size=num_views)
    azimuths = rng.uniform(*distribution.azimuth_range_deg, size=num_views)
    choices = rng.integers(0, len(focal_lengths), size=num_views)
    cameras = [
        Camera(elevation_deg=float(elevation), azimuth_deg=float(azimuth), focal_length_mm=focal_lengths[choice])
        for elevation, azimuth, choice in zip(elevations, azimuths, choices)
    ]
    if distribution.frame_radius is None:
        return cameras
    return [fit_sphere_in_frame(camera, distribution.frame_radius) for camera in cameras]


def _light_position(rng: np.random.Generator, azimuth_range: tuple[float, float],
                    elevation_range: tuple[float, float]) -> tuple[float, float, float]:
    """A camera-space point 2 units from the origin: azimuth 0 is the camera (+z), +90 its right (+x)."""
    azimuth = math.radians(rng.uniform(*azimuth_range))
    elevation = math.radians(rng.uniform(*elevation_range))
    return (round(2.0 * math.sin(azimuth) * math.cos(elevation), 4), round(2.0 * math.sin(elevation), 4),
            round(2.0 * math.cos(azimuth) * math.cos(elevation), 4))


def sample_view_lightings(rng: np.random.Generator, num_views: int, probability: float = 0.5
                          ) -> list[Lighting | None]:
    """One lighting per training view: None (the corpus rig) or, with `probability`, a random rig.

    The corpus rig lights every object the same way, so a model trained on it alone meets a photo lit from one
    side, or a dim room, as something new (the shifted test set's side light cost default model v2 0.21
    F-score). A random rig has a key light from anywhere in front of or beside the object (azimuth ±135° from
    the camera, elevation -30° to 75°) with intensity U(1.5, 5), with probability 0.6 a fill light from
    anywhere (U(0.2, 1.5)), and an ambient level U(0.02, 0.35): hard side light, low sun, dim and bright rooms.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    lightings: list[Lighting | None] = []
    for _ in range(num_views):
        if rng.random() >= probability:
            lightings.append(None)
            continue
        lights = [(_light_position(rng, (-135.0, 135.0), (-30.0, 75.0)), round(float(rng.uniform(1.5, 5.0)), 3))]
        if rng.random() < 0.6:
            lights.append((_light_position(rng, (-180.0, 180.0), (-60.0, 90.0)), round(float(rng.uniform(0.2, 1.5)), 3)))
        lightings.append(Lighting(ambient=round(float(rng.uniform(0.02, 0.35)), 3), lights=tuple(lights)))
    return lightings


def lighting_record(lighting: Lighting | None) -> dict | None:
    """JSON form of a view's lighting for `cameras.json` (None: the corpus rig)."""
    if lighting is None:
        return None
    return {"ambient": lighting.ambient,
            "lights": [{"from": list(position), "intensity": intensity} for position, intensity in lighting.lights]}


def fit_sphere_in_frame(camera: Camera, radius: float) -> Camera:
    """`camera` moved back (perspective) or widened (orthographic), never closer or narrower, so that a
    sphere of `radius` around the origin is entirely inside the square frame."""
    if camera.is_orthographic:
        return replace(camera, ortho_scale=max(camera.ortho_scale, 2.0 * radius))
    # The sphere's silhouette cone has half-angle asin(radius / distance); it must fit in half the field of view.
    distance = max(camera.resolved_distance, radius / math.sin(camera.fov_rad / 2.0))
    return replace(camera, distance=distance)


def camera_record(camera: Camera) -> dict:
    """JSON-serialisable parameters of `camera`, enough to rebuild it with `camera_from_record`."""
    return {
        "elevation_deg": float(camera.elevation_deg),
        "azimuth_deg": float(camera.azimuth_deg),
        "focal_length_mm": None if camera.focal_length_mm is None else float(camera.focal_length_mm),
        "orthographic": camera.is_orthographic,
        "distance": camera.resolved_distance,
        "sensor_width_mm": float(camera.sensor_width_mm),
        "ortho_scale": float(camera.ortho_scale),
    }


def camera_from_record(record: dict) -> Camera:
    """Inverse of `camera_record` (extra keys, such as file names, are ignored)."""
    return Camera(
        elevation_deg=record["elevation_deg"],
        azimuth_deg=record["azimuth_deg"],
        focal_length_mm=record["focal_length_mm"],
        distance=record["distance"],
        sensor_width_mm=record["sensor_width_mm"],
        ortho_scale=record["ortho_scale"],
    )


EVAL_VIEW_MSAA = 4  # the renderer's default, used for generated meshes in the evaluation lab


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def render_object_views(
    mesh: trimesh.Trimesh,
    out_dir: str | Path,
    cameras: Sequence[Camera],
    resolution: int = 256,
    msaa: int = 0,
    lightings: Sequence[Lighting | None] | None = None,
) -> list[dict]:
    """Render `mesh` from every camera and from `EVALUATION_CAMERA`; write the PNGs and `cameras.json`.

    Args:
        mesh: the normalised object (y-up, front +z); vertex colours, if any, are used for the RGB pass.
        out_dir: folder for this object's images (created if needed; files are replaced atomically).
        cameras: the training views, e.g. from `sample_view_cameras`; may be empty (evaluation view only).
        resolution: image side in pixels.
        msaa: multisamples for the training views. 0 (no anti-aliasing) halves the render time on a
            software GL; the flow dataset resizes the views, which smooths their edges. The evaluation view
            is always rendered with 4x MSAA, like the generated meshes it is compared with (Normal-FID).
        lightings: one per training view (`sample_view_lightings`; None entries = the corpus rig), or None for
            the corpus rig everywhere. The evaluation view always has the corpus rig.

    Returns:
        One record per image pair, training views first (`view_00`, ...) and the evaluation view last:
        `{"name", "role": "view" | "eval", "rgb": file name, "normal": file name, "resolution",
        **camera_record(camera)}`. The same list is stored in `out_dir / "cameras.json"` under "views".
    """
    out_dir = Path(out_dir)
    cameras = list(cameras)
    if len(cameras) > 100:
        raise ValueError(f"at most 100 training views are supported (two-digit names), got {len(cameras)}")
    lightings = [None] * len(cameras) if lightings is None else list(lightings)
    if len(lightings) != len(cameras):
        raise ValueError(f"one lighting per training view: {len(cameras)} cameras, {len(lightings)} lightings")
    names = [f"view_{index:02d}" for index in range(len(cameras))] + [EVAL_VIEW_NAME]
    roles = ["view"] * len(cameras) + ["eval"]
    mesh = prepare_mesh(mesh)  # the crease split once for both render calls
    if msaa == EVAL_VIEW_MSAA:
        results = render(mesh, cameras + [EVALUATION_CAMERA], resolution=resolution, msaa=msaa,
                         lighting=lightings + [None])
    else:
        results = render(mesh, cameras, resolution=resolution, msaa=msaa, lighting=lightings) if cameras else []
        results += render(mesh, EVALUATION_CAMERA, resolution=resolution, msaa=EVAL_VIEW_MSAA)

    records = []
    for name, role, result, lighting in zip(names, roles, results, lightings + [None]):
        rgba = np.concatenate([result.rgb, (result.mask * np.uint8(255))[..., None]], axis=-1)  # (H, W, 4)
        record = {
            "name": name,
            "role": role,
            "rgb": f"{name}_rgb.png",
            "normal": f"{name}_normal.png",
            "resolution": int(resolution),
            **camera_record(result.camera),
            "lighting": lighting_record(lighting),
        }
        write_bytes_atomic(out_dir / record["rgb"], _png_bytes(rgba))
        write_bytes_atomic(out_dir / record["normal"], _png_bytes(result.normal))
        records.append(record)
    manifest = {"convention": "triposg.rendering (y-up, azimuth 0 = camera on +z)", "views": records}
    write_bytes_atomic(out_dir / CAMERAS_FILE, json.dumps(manifest, indent=1).encode())
    return records


def read_view_mask(rgba_path: str | Path) -> np.ndarray:
    """The (H, W) bool foreground mask stored in the alpha channel of a `*_rgb.png` written above."""
    from PIL import Image

    with Image.open(rgba_path) as image:
        if image.mode != "RGBA":
            raise ValueError(
                f"{rgba_path} has no alpha channel (mode {image.mode}); expected a render_object_views RGB"
            )
        return np.asarray(image.getchannel("A")) > 127
