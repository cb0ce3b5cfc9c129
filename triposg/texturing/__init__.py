"""Texturing: colour a mesh from the image it was generated from (offline, no second model).

`MeshTexturer` (or `texture_mesh`) takes a mesh and the preprocessed image with its mask and

1. finds the view under which the mesh's silhouette best matches the mask (`camera.fit_camera`: a coarse-to-fine
   search over azimuth, elevation and lens, the image-plane scale and offset fitted to the mask's box);
2. projects the image's colours onto the vertices that view sees (`projection`: visibility by a z-buffer, colours
   from the image blurred to the vertices' spacing, only inside the mask);
3. fills the rest (`fill`): where the shape has a vertical mirror plane, from the mirror image of a seen vertex;
   otherwise from the nearest seen vertex along the surface, smoothed where two colours meet.

Vertex colours, not a UV texture, by measurement: at 50k faces neighbouring vertices project ~2.2 input pixels apart
(median over `benchmarks/texturing.py`), so vertex colours keep the input view's detail down to about two pixels,
while an xatlas unwrap of the same mesh alone took 6.9 CPU-seconds, seven times this whole stage's 1 s budget. Vertex
colours also travel in GLB (COLOR_0), PLY and OBJ without extra files.

The colours are the image's, its lighting included; `TexturingConfig(remove_shading=True)` divides out a lighting
fitted to the normals (measured: whole-surface error 26.6 → 23.8, but albedo that varies with the normal is taken
for light, so it is off by default).

Works on any mesh with the image it came from (a released model's output included): only geometry and image are read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import PIL.Image
import torch
import trimesh

from ..preprocessing import PreprocessResult, composite_on_white, load_image, prepare_as_is
from ..preprocessing.background import has_usable_alpha
from .camera import CameraSearch, ImageCamera, SearchStage, fit_camera, sample_surface, view_angle_deg
from .fill import find_mirror_plane, mirror_colors, propagate_colors
from .projection import remove_shading, sample_vertex_colors, visible_vertices

__all__ = [
    "CameraSearch",
    "ImageCamera",
    "MeshTexturer",
    "SearchStage",
    "TexturingConfig",
    "TexturingResult",
    "fit_camera",
    "texture_mesh",
    "view_angle_deg",
]


@dataclass(frozen=True)
class TexturingConfig:
    """How a mesh is coloured from its image (defaults: ≤ 1 s for 50k faces on 2 CPU cores)."""

    search: CameraSearch = field(default_factory=CameraSearch)
    raster_resolution: int = 512  # depth-buffer side: finer than the projected vertex spacing at 50k faces
    min_facing: float = 0.2  # cos 78°: surfaces more grazing than this get smeared, uncertain colours
    mask_erosion: float = 0.006  # share of the image side kept off the mask's outline (fit and cut-out errors)
    occlusion_margin: float = 0.008  # share of the side within which a seen vertex must be the nearest surface
    remove_shading: bool = False  # divide out the image's lighting, fitted to the normals (see `remove_shading`)
    mirror: bool = True  # fill hidden surface from its mirror image when the shape has a vertical mirror plane
    mirror_tolerance: float = 0.01  # of the box diagonal: how exactly the plane must map the surface onto itself
    mirror_step_deg: float = 1.0  # finest step between the vertical mirror planes tried (through the centroid)
    smoothing_iterations: int = 10  # neighbour averaging of filled colours, softening seams between nearest colours
    # Torch threads while texturing (None: leave as set). The tensors are small: one thread took 0.25 CPU-s for 50k
    # faces where two took 0.6-1.3 on a busy 2-core machine (idle worker threads spin while others wait).
    torch_threads: int | None = 1


@dataclass
class TexturingResult:
    """`mesh`: a copy of the input with RGBA uint8 sRGB vertex colours (the geometry untouched). `camera`: the
    recovered view. `seen`: (V,) bool, vertices coloured from the image; `mirrored`: (V,) bool, from their mirror
    image. `mirror_normal`: the symmetry plane's normal, None when no plane was used. `seconds`: wall time."""

    mesh: trimesh.Trimesh
    camera: ImageCamera
    seen: np.ndarray
    mirrored: np.ndarray
    mirror_normal: tuple[float, float, float] | None
    seconds: float

    @property
    def seen_fraction(self) -> float:
        return float(self.seen.mean())

    def metadata(self) -> dict[str, Any]:
        """What to store beside the mesh (the GLB's extras): the camera and the share of surface seen."""
        return {"camera": self.camera.to_dict(), "seen_vertices": round(self.seen_fraction, 4),
                "mirrored_vertices": round(float(self.mirrored.mean()), 4),
                "mirror_normal": None if self.mirror_normal is None else [round(c, 4) for c in self.mirror_normal],
                "seconds": round(self.seconds, 3)}


class MeshTexturer:
    """The texturing stage: `MeshTexturer(config)(mesh, image, mask)` → `TexturingResult` (see the module docs)."""

    def __init__(self, config: TexturingConfig | None = None):
        self.config = config or TexturingConfig()

    def __call__(
        self,
        mesh: trimesh.Trimesh,
        image: PreprocessResult | PIL.Image.Image | np.ndarray | str,
        mask: PIL.Image.Image | np.ndarray | None = None,
    ) -> TexturingResult:
        """Colour `mesh` from `image`.

        Args:
            mesh: a non-empty triangle mesh (any frame; y up is assumed only by the mirror plane and the view prior).
            image: the preprocessed square image the mesh was generated from: a `PreprocessResult` (its mask is
                used), or an image (path, PIL, (S, S, 3|4) array) framed the same way.
            mask: (S, S) foreground in [0, 1] (or 0-255 / PIL "L"); default: the `PreprocessResult`'s, the image's
                alpha, else the non-white pixels.
        """
        start = time.perf_counter()
        config = self.config
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            raise ValueError("texturing needs a non-empty trimesh.Trimesh (the pipeline's output mesh)")
        rgb, alpha = _image_and_mask(image, mask)
        with _torch_threads(config.torch_threads):
            return self._texture(mesh, rgb, alpha, start)

    def _texture(self, mesh: trimesh.Trimesh, rgb: np.ndarray, alpha: np.ndarray, start: float) -> TexturingResult:
        config = self.config
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)

        # 1. The view
        camera = fit_camera(vertices, faces, alpha, config.search)

        # 2. Colours of the seen surface
        normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
        seen = visible_vertices(vertices, normals, faces, camera, config.raster_resolution, config.min_facing,
                                config.occlusion_margin)
        colors, inside = sample_vertex_colors(vertices, faces, camera, rgb, alpha, config.mask_erosion)
        seen &= inside
        if config.remove_shading and seen.sum() >= 4:
            colors = remove_shading(colors, normals, camera, seen)
        if not seen.any():
            raise ValueError(
                "no vertex of the mesh falls inside the image's foreground under the best view found: is this the "
                "image the mesh was generated from, and its preprocessed (cropped) version?"
            )

        # 3. The hidden surface: mirror images, then the nearest seen colour along the surface
        known = seen.copy()
        mirrored = np.zeros(len(vertices), dtype=bool)
        mirror_normal = None
        if config.mirror:
            diagonal = float(np.linalg.norm(np.ptp(vertices, axis=0)))
            surface = sample_surface(vertices, faces, 20000, config.search.seed)
            plane = find_mirror_plane(surface, config.mirror_tolerance * diagonal, config.mirror_step_deg)
            if plane is not None:
                mirrored = mirror_colors(vertices, colors, known, plane, 2.0 * config.mirror_tolerance * diagonal)
                known |= mirrored
                mirror_normal = tuple(float(c) for c in plane[0])
        colors = propagate_colors(vertices, np.asarray(mesh.edges_unique), colors, known, config.smoothing_iterations)

        textured = mesh.copy()
        rgba = np.concatenate([np.round(colors), np.full((len(colors), 1), 255.0)], axis=1).astype(np.uint8)
        textured.visual = trimesh.visual.ColorVisuals(textured, vertex_colors=rgba)
        return TexturingResult(textured, camera, seen, mirrored, mirror_normal, time.perf_counter() - start)


def texture_mesh(
    mesh: trimesh.Trimesh,
    image: PreprocessResult | PIL.Image.Image | np.ndarray | str,
    mask: PIL.Image.Image | np.ndarray | None = None,
    config: TexturingConfig | None = None,
) -> TexturingResult:
    """`MeshTexturer(config)(mesh, image, mask)`: colour `mesh` from its preprocessed input image."""
    return MeshTexturer(config)(mesh, image, mask)


@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` torch threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _image_and_mask(image, mask) -> tuple[np.ndarray, np.ndarray]:
    """The image as (S, S, 3) float RGB on white and its mask (S, S) float in [0, 1]."""
    if isinstance(image, PreprocessResult):
        mask = image.mask if mask is None else mask
        image = image.image
    loaded = load_image(image)
    if abs(loaded.width - loaded.height) > 2:
        raise ValueError(
            f"the image is {loaded.width}×{loaded.height}: texture from the preprocessed (square, cropped) image the "
            "mesh was generated from, e.g. the pipeline output's `preprocessed[i]` or `preprocess_image(image)`"
        )
    if mask is None:
        mask = loaded.getchannel("A") if has_usable_alpha(loaded) else prepare_as_is(loaded).mask
    if isinstance(mask, PIL.Image.Image):
        mask = mask.convert("L")
        mask = np.asarray(mask.resize(loaded.size, PIL.Image.Resampling.BILINEAR)
                          if mask.size != loaded.size else mask, dtype=np.float32) / 255.0
    else:
        mask = np.asarray(mask, dtype=np.float32)
        if mask.max() > 1.0:
            mask = mask / 255.0
        if mask.shape != (loaded.height, loaded.width):
            raise ValueError(f"the mask is {mask.shape[::-1]} but the image {loaded.size}: pass the image's own mask")
    side = min(loaded.size)
    rgb = np.asarray(composite_on_white(loaded), dtype=np.float32)[:side, :side]
    return rgb, np.clip(mask[:side, :side], 0.0, 1.0)
