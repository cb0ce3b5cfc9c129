"""Camera recovery: the view under which a mesh's silhouette best matches the input image's foreground mask.

The input image is a crop: preprocessing (`triposg.preprocessing`) cuts out the foreground, crops its box and pads
it to a square, so the image is some camera's view of the object moved and scaled in the image plane. We model it
as an `ImageCamera`: a camera of `triposg.rendering` (azimuth, elevation and distance, looking at the origin;
`distance=None` is orthographic) followed by a similarity in the image plane (`scale`, `offset`). For a given
view the similarity is not searched: it maps the box of the projected mesh onto the box of the mask (least squares
over width and height; exact when the mask is the silhouette). Only the view is searched, coarse to fine:
every stage scores its candidates by the IoU of their silhouettes with the mask at the stage's resolution, and the
next stage searches a finer grid around the best few. Silhouettes are splatted surface points closed by a 3x3
morphological closing, hundreds of views in one batched tensor operation (faster than rendering each).

Silhouettes alone are ambiguous for symmetric shapes (a box seen from azimuth 30 and 210 has the same outline), so
views outside the training renders' range (paper §5.1: azimuth in the front half circle, elevation -15 to 30
degrees; a generated mesh is placed in its frame as such a view's object was) pay a small penalty, which decides
ties and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import ConvexHull, QhullError

from ..rendering import Camera


MAX_OUTLINE_POINTS = 2000


@dataclass(frozen=True)
class ImageCamera:
    """A view of the mesh and where it lands in the image.

    `azimuth_deg`, `elevation_deg`: as `triposg.rendering.Camera` (azimuth 0 looks at the front, +z; elevation up).
    `distance`: of the camera from the origin in mesh units; None is orthographic. `scale`, `offset`: image position
    = offset + scale * (x, -y) of the point projected on the plane through the origin, in units of the image's side
    (x right, y down; (0, 0) is the top-left corner). `iou`: the silhouette's IoU with the mask where it was scored.
    """

    azimuth_deg: float
    elevation_deg: float
    distance: float | None
    scale: float
    offset: tuple[float, float]
    iou: float = 0.0

    @property
    def rotation(self) -> np.ndarray:
        """Camera-to-world rotation (3, 3), columns right, up, back (`triposg.rendering.Camera.rotation`)."""
        return Camera(elevation_deg=self.elevation_deg, azimuth_deg=self.azimuth_deg).rotation

    @property
    def view_direction(self) -> np.ndarray:
        """(3,) unit vector from the origin towards the camera."""
        return self.rotation[:, 2]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`points` (N, 3) → image positions (N, 2) in units of the image side (x right, y down) and depth (N,)
        along the viewing axis (larger is farther; only its order means anything for orthographic cameras)."""
        points_t = torch.from_numpy(np.asarray(points, dtype=np.float64))
        plane, depth = project_views(points_t, self.rotation[None], np.array([self.distance or math.inf]))
        return self.offset + self.scale * plane[0].T.numpy() * np.array([1.0, -1.0]), depth[0].numpy()

    def to_dict(self) -> dict:
        """JSON-serialisable parameters (for the GLB extras)."""
        return {"azimuth_deg": round(self.azimuth_deg, 2), "elevation_deg": round(self.elevation_deg, 2),
                "distance": None if self.distance is None else round(self.distance, 3),
                "scale": round(self.scale, 5), "offset": [round(float(o), 5) for o in self.offset],
                "iou": round(self.iou, 4)}


@dataclass(frozen=True)
class SearchStage:
    """One level of the coarse-to-fine search: a grid of views scored at `resolution` with `num_points` points.

    The first stage's grid covers the whole `CameraSearch` range; a later one spans ±`span_deg` around each of the
    previous stage's `keep` best views."""

    resolution: int
    num_points: int
    azimuth_step_deg: float
    elevation_step_deg: float
    span_deg: float = 0.0
    keep: int = 1
    try_distances: bool = False  # try every `CameraSearch.distances` (else the first stage's / the kept view's)
    # The views kept for this stage differ by more than this in azimuth or elevation (None: `span_deg`, so that
    # no grid is searched twice); larger keeps separate basins (a symmetric shape's other turns) in the running.
    separation_deg: float | None = None


@dataclass(frozen=True)
class CameraSearch:
    """The views searched and how (defaults: ~0.2 s for a 50k-face mesh on 2 CPU cores)."""

    azimuth_range_deg: tuple[float, float] = (-180.0, 180.0)  # the whole circle: meshes from anywhere
    elevation_range_deg: tuple[float, float] = (-40.0, 70.0)  # wider than the training renders' (-15, 30)
    # Camera distances tried (None: orthographic). The training renders' lenses (35-135 mm and orthographic,
    # framed as `training/data/views.py` does) put the camera 3.4 to 11.8 units from a [-0.9, 0.9]^3 object.
    distances: tuple[float | None, ...] = (3.4, 4.6, 6.0, 7.5, 11.8, None)
    # The first stage tries a near and a far lens (50 and 135 mm): thin parts (legs) match only under the right
    # kind of lens, and a symmetric shape turned the wrong way can fit better under the wrong one.
    coarse_distances: tuple[float | None, ...] = (4.6, 11.8)
    # Angles and lens alternate: the lens of each of the best coarse views; the angles around the best of those;
    # the lens again for the three best basins (thin parts make the peaks narrow: a basin's best angle under the
    # wrong lens can lose to another basin); the angles finely around the two best; a last look at the lens.
    stages: tuple[SearchStage, ...] = (
        SearchStage(resolution=48, num_points=2000, azimuth_step_deg=15.0, elevation_step_deg=10.0),
        SearchStage(resolution=96, num_points=8000, azimuth_step_deg=15.0, elevation_step_deg=10.0, keep=8,
                    try_distances=True),
        SearchStage(resolution=96, num_points=8000, azimuth_step_deg=2.5, elevation_step_deg=2.5, span_deg=7.5,
                    keep=4),
        SearchStage(resolution=128, num_points=12000, azimuth_step_deg=2.5, elevation_step_deg=2.5, keep=3,
                    try_distances=True, separation_deg=10.0),
        SearchStage(resolution=128, num_points=12000, azimuth_step_deg=1.0, elevation_step_deg=1.0, span_deg=2.0,
                    keep=2, separation_deg=10.0),
        SearchStage(resolution=128, num_points=12000, azimuth_step_deg=1.0, elevation_step_deg=1.0, keep=1,
                    try_distances=True),
    )
    # The training renders' view range (paper §5.1) and the IoU a view pays per 90 degrees outside it: enough to
    # decide between views whose silhouettes are the same (symmetric shapes), too little to override the mask.
    azimuth_prior_deg: tuple[float, float] = (-90.0, 90.0)
    elevation_prior_deg: tuple[float, float] = (-15.0, 30.0)
    prior_weight: float = 0.02
    seed: int = 0  # surface points are drawn with this seed: the same mesh and mask always give the same camera


def sample_surface(mesh_vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) points spread over the surface by area, drawn with `seed`."""
    triangles = mesh_vertices[faces]  # (F, 3, 3)
    areas = 0.5 * np.linalg.norm(np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(faces), size=count, p=areas / areas.sum())
    a, b = rng.random((2, count))
    flip = a + b > 1.0  # fold the unit square onto the triangle: uniform barycentrics
    a, b = np.where(flip, 1.0 - a, a), np.where(flip, 1.0 - b, b)
    corners = triangles[chosen]
    return corners[:, 0] + a[:, None] * (corners[:, 1] - corners[:, 0]) + b[:, None] * (corners[:, 2] - corners[:, 0])


def project_views(
    points: torch.Tensor, rotations: np.ndarray, distances: np.ndarray,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project `points` (P, 3) in N views: `rotations` (N, 3, 3) camera-to-world, `distances` (N,) (inf:
    orthographic). Returns positions on the plane through the origin (N, 2, P): rows x right and y up, in mesh
    units; and depths (N, P) along the viewing axis; in the dtype of `points`."""
    num_views = len(rotations)
    # One matrix product for every view: the rows of R^T stacked (3N, 3) times the points (3, P).
    world_to_camera = torch.as_tensor(np.asarray(rotations).transpose(0, 2, 1).reshape(-1, 3), dtype=points.dtype)
    camera = (world_to_camera @ points.T).view(num_views, 3, -1)  # (N, 3, P): right, up, back
    plane, depth = camera[:, :2], camera[:, 2].neg()
    finite = np.isfinite(np.asarray(distances, dtype=np.float64))
    if finite.any():
        # Perspective: scale by distance / (distance - back), so a point on the plane through the origin stays put.
        distance = torch.as_tensor(np.where(finite, distances, 1.0), dtype=points.dtype)[:, None]
        factor = distance / (distance + depth).clamp(min=1e-6)
        factor[torch.from_numpy(~finite)] = 1.0
        plane = plane * factor[:, None]
    return plane, depth


class SilhouetteTarget:
    """The mask at several resolutions and its foreground box, to score views against."""

    def __init__(self, mask: np.ndarray):
        """`mask`: (H, W) float in [0, 1] (or bool), the foreground of the preprocessed image."""
        mask = np.asarray(mask, dtype=np.float32)
        if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
            raise ValueError(f"the mask must be a square (H, H) image, like a preprocessed image's, got {mask.shape}")
        ys, xs = np.nonzero(mask >= 0.5)
        if len(xs) == 0:
            raise ValueError("the mask has no foreground: pass the preprocessed image's mask (its object is white)")
        side = mask.shape[0]
        self.mask = mask
        self.box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64) / side  # x0 y0 x1 y1
        self._grids: dict[int, torch.Tensor] = {}

    def at(self, resolution: int) -> torch.Tensor:
        """(R, R) bool: the mask area-resampled to `resolution`."""
        if resolution not in self._grids:
            tensor = torch.from_numpy(self.mask)[None, None]
            resized = F.interpolate(tensor, size=(resolution, resolution), mode="area")[0, 0]
            self._grids[resolution] = resized >= 0.5
        return self._grids[resolution]


def fit_similarity(plane: torch.Tensor, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale (N,) and offset (N, 2) mapping each view's projected box onto the mask's `box` (x0, y0, x1, y1).

    `plane`: (N, 2, P) projected points whose box is the silhouette's (the convex hull's vertices suffice)."""
    low, high = plane.amin(dim=2).double().numpy(), plane.amax(dim=2).double().numpy()  # (N, 2)
    size = np.maximum(high - low, 1e-9)
    target_size = box[2:] - box[:2]
    scale = (size * target_size).sum(axis=1) / (size**2).sum(axis=1)  # least squares over width and height
    centre = (low + high) / 2.0 * np.array([1.0, -1.0])  # y flips: image rows go down
    offset = (box[:2] + box[2:]) / 2.0 - scale[:, None] * centre
    return scale, offset


def silhouette_iou(scale: np.ndarray, offset: np.ndarray, plane: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """IoU (N,) of N splatted silhouettes with `target` (R, R). `plane`: (N, 2, P) projected surface samples,
    placed in the image by `scale` (N,) and `offset` (N, 2) (see `ImageCamera`)."""
    num_views = plane.shape[0]
    resolution = target.shape[0]
    padded = resolution + 2  # a one-pixel border collects the points that fall outside the frame
    scale_t = torch.as_tensor(scale, dtype=plane.dtype)[:, None] * resolution
    offset_t = torch.as_tensor(offset, dtype=plane.dtype) * resolution + 1.0
    # Truncation is floor on the clamped, non-negative range.
    column = torch.addcmul(offset_t[:, :1], scale_t, plane[:, 0]).clamp_(0.0, padded - 1.0).to(torch.int32)
    row = torch.addcmul(offset_t[:, 1:], scale_t, plane[:, 1], value=-1.0).clamp_(0.0, padded - 1.0).to(torch.int32)
    flat = row.mul_(padded).add_(column).add_((torch.arange(num_views, dtype=torch.int32) * padded**2)[:, None])
    occupied = torch.zeros(num_views * padded**2, dtype=torch.float32)
    occupied.scatter_(0, flat.flatten().long(), 1.0)
    occupied = occupied.view(num_views, 1, padded, padded)[:, :, 1:-1, 1:-1]
    # Closing: fill the gaps between splatted points without growing the outline.
    occupied = -F.max_pool2d(-F.max_pool2d(occupied, 3, 1, 1), 3, 1, 1)
    silhouettes = occupied.reshape(num_views, -1)  # (N, R*R) of 0 / 1
    target = target.reshape(-1).float()
    intersection = silhouettes @ target
    union = silhouettes.sum(dim=1) + target.sum() - intersection
    return (intersection / union.clamp(min=1)).double().numpy()


def _prior_penalty(azimuth: np.ndarray, elevation: np.ndarray, search: CameraSearch) -> np.ndarray:
    wrapped = (azimuth + 180.0) % 360.0 - 180.0
    outside_azimuth = np.maximum(search.azimuth_prior_deg[0] - wrapped, 0) + np.maximum(
        wrapped - search.azimuth_prior_deg[1], 0)
    outside_elevation = np.maximum(search.elevation_prior_deg[0] - elevation, 0) + np.maximum(
        elevation - search.elevation_prior_deg[1], 0)
    return search.prior_weight * (outside_azimuth + outside_elevation) / 90.0


def _grid(centre: tuple[float, float] | None, stage: SearchStage, search: CameraSearch) -> np.ndarray:
    """(K, 2) azimuth, elevation pairs of one stage around `centre` (None: the whole range)."""
    if centre is None:
        az_low, az_high = search.azimuth_range_deg
        azimuths = np.arange(az_low, az_high, stage.azimuth_step_deg)
        elevations = np.arange(*search.elevation_range_deg, stage.elevation_step_deg)
        elevations = np.append(elevations, search.elevation_range_deg[1])
    else:
        azimuths = centre[0] + np.arange(-stage.span_deg, stage.span_deg + 1e-9, stage.azimuth_step_deg)
        elevations = centre[1] + np.arange(-stage.span_deg, stage.span_deg + 1e-9, stage.elevation_step_deg)
    elevations = np.clip(elevations, -90.0, 90.0)
    grid = np.stack(np.meshgrid(azimuths, elevations, indexing="ij"), axis=-1).reshape(-1, 2)
    return np.unique(grid, axis=0)


def fit_camera(
    vertices: np.ndarray,
    faces: np.ndarray,
    mask: np.ndarray | SilhouetteTarget,
    search: CameraSearch = CameraSearch(),
) -> ImageCamera:
    """The view of the mesh (`vertices` (V, 3), `faces` (F, 3)) whose silhouette best matches `mask` ((H, H) float
    in [0, 1], the preprocessed image's foreground), searched coarse to fine (see the module docstring)."""
    target = mask if isinstance(mask, SilhouetteTarget) else SilhouetteTarget(mask)
    vertices = np.asarray(vertices, dtype=np.float64)
    try:
        outline = vertices[ConvexHull(vertices).vertices]  # the silhouette's box is the hull's
    except (QhullError, ValueError):  # flat or tiny meshes: every vertex
        outline = vertices
    # A round shape's hull has every vertex; a few thousand of them still give the box to well under a pixel.
    outline = outline[:: max(1, len(outline) // MAX_OUTLINE_POINTS)]
    outline = torch.from_numpy(outline.astype(np.float32))
    most_points = max(stage.num_points for stage in search.stages)
    surface = torch.from_numpy(sample_surface(vertices, np.asarray(faces), most_points, search.seed).astype(np.float32))

    def score(views: np.ndarray, stage: SearchStage) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """views (N, 3) azimuth, elevation, distance → (score, iou, scale, offset)."""
        rotations = np.stack([Camera(elevation_deg=el, azimuth_deg=az).rotation for az, el, _ in views])
        distances = views[:, 2]
        scale, offset = fit_similarity(project_views(outline, rotations, distances)[0], target.box)
        plane, _ = project_views(surface[: stage.num_points], rotations, distances)
        iou = silhouette_iou(scale, offset, plane, target.at(stage.resolution))
        return iou - _prior_penalty(views[:, 0], views[:, 1], search), iou, scale, offset

    distances = np.array([math.inf if d is None else d for d in search.distances])
    coarse = [math.inf if d is None else d for d in search.coarse_distances]
    best: list[np.ndarray] = []
    for index, stage in enumerate(search.stages):
        if index == 0:
            angles = _grid(None, stage, search)
            views = np.concatenate([np.concatenate([angles, np.full((len(angles), 1), d)], axis=1) for d in coarse])
        else:
            seeds = [np.concatenate([angles, np.full((len(angles), 1), view[2])], axis=1)
                     for view in best for angles in [_grid((view[0], view[1]), stage, search)]]
            views = np.unique(np.concatenate(seeds), axis=0)
            if stage.try_distances:
                views = np.unique(np.concatenate([np.concatenate([views[:, :2], np.full((len(views), 1), d)], axis=1)
                                                  for d in distances]), axis=0)
        scores, iou, scale, offset = score(views, stage)
        order = np.argsort(-scores, kind="stable")
        following = search.stages[index + 1] if index + 1 < len(search.stages) else None
        if following is not None:
            # Seeds closer than the next stage's span would search the same grid twice.
            separation = following.span_deg if following.separation_deg is None else following.separation_deg
            best = _distinct(views[order], following.keep, min_separation_deg=separation)
    top = int(order[0])
    azimuth = float((views[top, 0] + 180.0) % 360.0 - 180.0)
    distance = None if not np.isfinite(views[top, 2]) else float(views[top, 2])
    return ImageCamera(azimuth, float(views[top, 1]), distance, float(scale[top]),
                       (float(offset[top, 0]), float(offset[top, 1])), float(iou[top]))


def _distinct(ranked: np.ndarray, count: int, min_separation_deg: float) -> list[np.ndarray]:
    """The first `count` views of `ranked` (N, 3) whose azimuth or elevation differs by more than
    `min_separation_deg` from every view kept before them (so refinement explores separate basins)."""
    kept: list[np.ndarray] = []
    for view in ranked:
        if all(_angle_gap(view, other) > min_separation_deg for other in kept):
            kept.append(view)
            if len(kept) == count:
                break
    return kept


def _angle_gap(a: Sequence[float], b: Sequence[float]) -> float:
    azimuth = abs((a[0] - b[0] + 180.0) % 360.0 - 180.0)
    return max(azimuth, abs(a[1] - b[1]))


def view_angle_deg(a: ImageCamera | Camera, b: ImageCamera | Camera) -> float:
    """The angle in degrees between two cameras' viewing directions (from the origin towards each camera)."""
    directions = []
    for camera in (a, b):
        rotation = Camera(elevation_deg=camera.elevation_deg, azimuth_deg=camera.azimuth_deg).rotation
        directions.append(rotation[:, 2])
    return math.degrees(math.acos(float(np.clip(directions[0] @ directions[1], -1.0, 1.0))))
