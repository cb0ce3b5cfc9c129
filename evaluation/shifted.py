"""Shifted test sets: the corpus test objects rendered under conditions the corpus renders never use.

A model that only works on its own renders fails users' images. Each `Shift` re-renders the evaluation view of
every test object with one thing changed — the lighting, the lens and camera distance, or the background (opaque
white or black instead of an alpha mask) — and keeps everything the score compares against: the ground-truth
normal map of the evaluation camera and the ground-truth surface. Scoring a model on a shifted set and on the
corpus set (`normal_fid.run_normal_fid`) shows how much each shift costs it; the default model's goal is to stay
within 0.05 F-score of the corpus renders.

The object's mesh is rebuilt as the data builder made it (procedural shapes from family and seed; mesh files
loaded and canonicalised again), reduced to the builder's render face budget, and rendered at the resolution of
the corpus's own evaluation view. Images are cached in the output folder (an existing file is kept), so a second
run renders nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from triposg.rendering import CAMERA_SPACE_LIGHTS, EVALUATION_CAMERA, Camera, Lighting, render

from .normal_fid import TestObject, TestSet

__all__ = ["SHIFTS", "Shift", "object_mesh", "shifted_test_set", "shifted_test_sets"]


@dataclass(frozen=True)
class Shift:
    """One change to the corpus's evaluation-view render.

    `camera`: the camera (the corpus uses `EVALUATION_CAMERA`: 50 mm, elevation 10°, azimuth 0°); `lighting`:
    None for the corpus lighting; `background`: None keeps the corpus convention (transparent: alpha = the render
    mask), an sRGB colour makes the image opaque on that colour, so preprocessing has to find the object.
    """

    name: str
    description: str
    camera: Camera = EVALUATION_CAMERA
    lighting: Lighting | None = None
    background: tuple[int, int, int] | None = None


def _scaled_lights(factor: float) -> tuple:
    return tuple((position, intensity * factor) for position, intensity in CAMERA_SPACE_LIGHTS)


SHIFTS: tuple[Shift, ...] = (
    Shift("white", "opaque white background, no alpha mask", background=(255, 255, 255)),
    Shift("black", "opaque black background, no alpha mask", background=(0, 0, 0)),
    Shift("dim", "half the light, darker ambient", lighting=Lighting(ambient=0.12, lights=_scaled_lights(0.5))),
    Shift("side-light", "one hard light from the right, little ambient",
          lighting=Lighting(ambient=0.05, lights=(((3.0, 0.3, 0.2), 4.0),))),
    # 24 mm: the camera as close as keeps the 1.8 box's bounding sphere (radius 0.9 * sqrt(3)) in the frame:
    # distance = radius / sin(half the field of view) = 1.559 / 0.6.
    Shift("wide-close", "24 mm lens, camera close (strong perspective)",
          camera=replace(EVALUATION_CAMERA, focal_length_mm=24.0, distance=2.6)),
    Shift("telephoto", "200 mm lens, same framing (almost orthographic)",
          camera=replace(EVALUATION_CAMERA, focal_length_mm=200.0)),
    Shift("far", "camera twice as far (the object fills a quarter of the frame's area)",
          camera=replace(EVALUATION_CAMERA, distance=2.0 * EVALUATION_CAMERA.resolved_distance)),
)


def object_mesh(test_object: TestObject, mesh_resolution: int | None = None, render_faces: int | None = -1
                ) -> trimesh.Trimesh:
    """The test object's mesh as the builder rendered it (metadata `source`, `family`, `seed`, `source_path`).

    `mesh_resolution` / `render_faces`: the builder's settings (None / -1 = `BuildConfig`'s defaults)."""
    from training.data.build import BuildConfig
    from training.data.fields import load_mesh
    from training.data.orientation import canonicalize_orientation
    from training.data.procedural import sample_shape

    from triposg.geometry import simplify

    defaults = BuildConfig(out=Path("."))
    resolution = mesh_resolution or defaults.mesh_resolution
    faces = defaults.render_faces if render_faces == -1 else render_faces
    meta = test_object.metadata
    if meta.get("source") == "procedural":
        mesh = sample_shape(str(meta["family"]), int(meta["seed"])).to_mesh(resolution)
    elif meta.get("source_path"):
        mesh, _, _ = canonicalize_orientation(load_mesh(Path(meta["source_path"])))
    else:
        raise ValueError(f"test object {test_object.object_id} has no procedural family/seed or source mesh path "
                         "in its metadata, so it cannot be re-rendered")
    return simplify(mesh, faces) if faces else mesh


def _render_shift(mesh: trimesh.Trimesh, shift: Shift, resolution: int) -> Image.Image:
    """The shifted evaluation view as the generation input: RGBA (alpha = mask) or opaque RGB on a colour."""
    background = shift.background or (255, 255, 255)
    result = render(mesh, shift.camera, resolution=resolution, background=background, lighting=shift.lighting)[0]
    if shift.background is not None:
        return Image.fromarray(result.rgb, "RGB")
    return Image.fromarray(np.concatenate([result.rgb, (result.mask * np.uint8(255))[..., None]], axis=-1), "RGBA")


def shifted_test_set(corpus_set: TestSet, shift: Shift, out_dir: str | Path,
                     meshes: dict[str, trimesh.Trimesh] | None = None, mesh_resolution: int | None = None,
                     render_faces: int | None = -1) -> TestSet:
    """`corpus_set` with every input image re-rendered under `shift` into `out_dir / shift.name`.

    Normal maps, ground-truth surfaces and metadata stay the corpus's. `meshes`: object id -> mesh, filled and
    reused across shifts (each mesh is rebuilt once). `mesh_resolution`, `render_faces`: the settings the corpus
    was built with, when not the builder's defaults (see `object_mesh`)."""
    meshes = {} if meshes is None else meshes
    folder = Path(out_dir) / shift.name
    folder.mkdir(parents=True, exist_ok=True)
    objects = []
    for test_object in corpus_set:
        path = folder / f"{test_object.object_id}.png"
        if not path.is_file():
            if test_object.object_id not in meshes:
                meshes[test_object.object_id] = object_mesh(test_object, mesh_resolution, render_faces)
            with Image.open(test_object.rgb_path) as corpus_view:
                resolution = corpus_view.size[0]
            image = _render_shift(meshes[test_object.object_id], shift, resolution)
            partial = path.with_suffix(".part.png")
            image.save(partial)
            partial.replace(path)  # atomic: an interrupted run never leaves a half-written input
        objects.append(replace(test_object, rgb_path=path,
                               metadata={**test_object.metadata, "shift": shift.name}))
    return TestSet(f"{corpus_set.name}, shifted: {shift.description}", objects, list(corpus_set.skipped))


def shifted_test_sets(corpus_set: TestSet, out_dir: str | Path, shifts: Iterable[Shift] = SHIFTS,
                      mesh_resolution: int | None = None, render_faces: int | None = -1) -> dict[str, TestSet]:
    """`shifted_test_set` for each shift, by name (meshes rebuilt once per object for all shifts)."""
    meshes: dict[str, trimesh.Trimesh] = {}
    return {shift.name: shifted_test_set(corpus_set, shift, out_dir, meshes, mesh_resolution, render_faces)
            for shift in shifts}

