"""What a judge sees: turntable renders of each asset, tiled as in GPTEval3D, and the conditioning image.

Layout (GPTEval3D, Wu et al. 2024): an asset is rendered from N evenly spaced turntable views (RGB and
normal map per view; the reference renders 120 views at 512², the default here is 36 at 256² so CPU
rendering stays cheap). A comparison shows n ∈ {1, 4, 9} of them, views `range(0, N, N // n)`: the
√n×√n grid of RGB renders stacked above the √n×√n grid of normal maps of the same views (same grid
positions). The two assets' tiles are placed side by side; which one goes left is decided per comparison
by the caller (`evaluation.arena.run`), which also undoes the swap when reading the votes.

View 0 is the front (azimuth 0, see `triposg.rendering`), the side the conditioning image shows, at the
paper's evaluation elevation and focal length, so view 0 is also what the offline proxy judge compares
with the conditioning image's silhouette.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import trimesh
from PIL import Image

from triposg.preprocessing import preprocess_image
from triposg.rendering import RenderResult, make_image_grid, normalize_mesh, render, turntable_cameras

VIEWS_PER_COMPARISON_CHOICES = (1, 4, 9)  # square grids, as in the reference
CONDITION_IMAGE_SIZE = 512  # side of the conditioning image sent to a judge (the object fills 90% of it)

MeshLike = str | os.PathLike | trimesh.Trimesh | trimesh.Scene
# One asset's renders: turntable view index (0 .. N-1) -> its RGB, normal map and mask.
TurntableViews = Mapping[int, RenderResult]


@dataclass(frozen=True)
class ViewConfig:
    """How assets are rendered for the arena."""

    num_views: int = 36  # N evenly spaced azimuths; the reference uses 120 (rendered on GPU)
    resolution: int = 256  # side of one view in pixels; the reference uses 512
    elevation_deg: float = 10.0  # the paper's evaluation view (§5.2.2), so view 0 matches the input image
    focal_length_mm: float = 50.0  # likewise
    # Bounding-sphere radius after normalisation, in world units: a sphere of radius 1.3 around the origin
    # stays inside the frame from every direction at focal lengths from 35 mm up and orthographic, so no view
    # clips, and compact objects fill more of the frame than a fit of the bounding box into it would allow.
    fill_radius: float = 1.3

    def __post_init__(self) -> None:
        if self.num_views < 1:
            raise ValueError(f"num_views must be at least 1, got {self.num_views}")
        if not self.fill_radius > 0.0:
            raise ValueError(f"fill_radius must be positive, got {self.fill_radius}")


def view_indices(num_views: int, views_per_comparison: int) -> list[int]:
    """The views a comparison shows: `range(0, N, N // n)` as in the reference, the first n of them.

    When N is a multiple of n this is exactly the reference's range; otherwise the range holds a few more
    than n views and only the first n fit the √n×√n grid.
    """
    if views_per_comparison not in VIEWS_PER_COMPARISON_CHOICES:
        raise ValueError(
            f"views_per_comparison must be one of {VIEWS_PER_COMPARISON_CHOICES}, got {views_per_comparison}"
        )
    if num_views < views_per_comparison:
        raise ValueError(f"cannot show {views_per_comparison} views of a turntable of {num_views}; raise num_views")
    return list(range(0, num_views, num_views // views_per_comparison))[:views_per_comparison]


def load_mesh(mesh: MeshLike) -> trimesh.Trimesh:
    """A mesh file (anything trimesh reads; scenes are flattened) or a Trimesh/Scene → one Trimesh."""
    if isinstance(mesh, (str, os.PathLike)):
        if not os.path.isfile(mesh):
            raise FileNotFoundError(f"mesh file not found: {mesh}")
        try:
            mesh = trimesh.load(mesh, force="mesh")
        except Exception as error:  # trimesh raises many kinds for unreadable files
            raise ValueError(
                f"cannot read {mesh} as a mesh ({type(error).__name__}: {error}); export it as GLB, OBJ or PLY"
            ) from error
    if isinstance(mesh, trimesh.Scene):
        mesh = mesh.to_mesh() if mesh.geometry else trimesh.Trimesh()
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError("the asset is not a non-empty triangle mesh")
    return mesh


def is_textured(mesh: trimesh.Trimesh) -> bool:
    """True when the mesh carries colour (a texture, vertex or face colours); untextured meshes render grey."""
    return bool(mesh.visual.defined)


def render_turntable(mesh: MeshLike, config: ViewConfig, indices: Sequence[int]) -> dict[int, RenderResult]:
    """Render the turntable views `indices` (of `config.num_views`) of a mesh, centred on its bounding box
    and scaled to a bounding sphere of radius `config.fill_radius`.

    Returns view index -> `RenderResult` (rgb (R, R, 3) uint8, normal (R, R, 3) uint8, mask (R, R) bool).
    Only the requested views are rendered; they are the ones the reference would pick from all N.
    """
    if any(not 0 <= index < config.num_views for index in indices):
        raise ValueError(f"view indices must lie in [0, {config.num_views}), got {list(indices)}")
    cameras = turntable_cameras(config.num_views, config.elevation_deg, config.focal_length_mm)
    normalized = normalize_mesh(load_mesh(mesh))
    normalized.apply_scale(config.fill_radius / np.linalg.norm(normalized.vertices, axis=1).max())
    wanted = sorted(set(indices))
    results = render(normalized, [cameras[index] for index in wanted], resolution=config.resolution)
    return dict(zip(wanted, results))


def tile_asset(views: TurntableViews, indices: Sequence[int]) -> Image.Image:
    """One asset's half of a comparison: the √n×√n RGB grid above the √n×√n normal grid.

    `indices` are n ∈ {1, 4, 9} view indices, placed row-major. Returns an RGB image of width √n·R and
    height 2·√n·R for views of side R.
    """
    side = math.isqrt(len(indices))
    if side * side != len(indices) or len(indices) not in VIEWS_PER_COMPARISON_CHOICES:
        raise ValueError(f"a tile shows 1, 4 or 9 views, got {len(indices)}")
    rgb_grid = make_image_grid([views[index].rgb for index in indices], ncols=side)
    normal_grid = make_image_grid([views[index].normal for index in indices], ncols=side)
    tile = Image.new("RGB", (rgb_grid.width, rgb_grid.height + normal_grid.height), (255, 255, 255))
    tile.paste(rgb_grid, (0, 0))
    tile.paste(normal_grid, (0, rgb_grid.height))
    return tile


def tile_comparison(left: Image.Image, right: Image.Image) -> Image.Image:
    """The two assets' tiles side by side, `left` on the left; both must have the same size."""
    if left.size != right.size:
        raise ValueError(f"both tiles must have the same size, got {left.size} and {right.size}")
    comparison = Image.new("RGB", (left.width + right.width, left.height), (255, 255, 255))
    comparison.paste(left, (0, 0))
    comparison.paste(right, (left.width, 0))
    return comparison


@dataclass(frozen=True)
class Condition:
    """The conditioning image as a judge sees it: `image` the foreground centred on white (RGB, square, 90%
    foreground ratio as the pipeline's preprocessing makes it) and `mask` (S, S) bool its foreground."""

    image: Image.Image
    mask: np.ndarray


def load_condition(image: str | os.PathLike | Image.Image | np.ndarray, size: int = CONDITION_IMAGE_SIZE) -> Condition:
    """Find the foreground of a conditioning image (alpha channel, local rembg model, or plain background;
    see `triposg.preprocessing`) and return it as the judge sees it, `size` pixels square."""
    prepared = preprocess_image(image, output_size=size)
    return Condition(image=prepared.image, mask=np.asarray(prepared.mask) >= 128)
