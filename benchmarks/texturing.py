"""Texturing from the input image on held-out renders whose colours are known.

    python benchmarks/texturing.py [--objects 20] [--faces 50000] [--resolution 512] [--no-mirror]

Objects: procedural shapes of every family with seeds outside the training corpus (corpus seed 7), each part of
the shape (the top-level parts of its union; a one-part shape is split into its upper and lower half) painted one
colour of a fixed palette. Each is rendered once by the project's renderer from a camera drawn from the training
views' distribution (`training.data.views`, lit as the corpus is), cut out and cropped as the pipeline does, and
textured from that image alone (the mesh and the image; the camera is not given).

Prints per object and in total: the mean colour error (mean absolute difference per channel, 0-255 sRGB) of the
surface the true camera sees and of the whole surface, beside a baseline that paints the whole mesh the image's
mean foreground colour; the recovered camera's angle error (and whether its silhouette fits the mask at least as
well as the true camera's: then the error is the silhouette's ambiguity, not the search's); the median projected
edge length in input pixels (how much of the image's detail vertex colours can hold); and seconds per mesh (wall,
and CPU time of this process, which other work on the machine does not inflate).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.data.procedural import CORPUS_SEED_STRIDE, FAMILIES, sample_shape
from training.data.sdf import SDF, SmoothUnion, Union
from training.data.views import sample_view_cameras
from triposg.geometry import simplify
from triposg.preprocessing import preprocess_image
from triposg.rendering import Camera, render
from triposg.texturing import MeshTexturer, TexturingConfig, view_angle_deg
from triposg.texturing.camera import SilhouetteTarget, fit_similarity, project_views, silhouette_iou

HELD_OUT_CORPUS_SEED = 7  # the training corpus uses corpus seed 0
PALETTE = np.array([(220, 50, 47), (38, 139, 210), (133, 153, 0), (181, 137, 0), (211, 54, 130), (42, 161, 152),
                    (108, 113, 196), (203, 75, 22)], dtype=np.float64)
VISIBLE_DEPTH_TOLERANCE = 0.01  # mesh units between a vertex and the render's depth at its pixel
VISIBLE_MIN_FACING = 0.2


def part_fields(field: SDF) -> list[SDF]:
    """The top-level parts of the shape's union, each wrapped in the shape's own transforms (normalisation, yaw)."""
    wrappers = []
    node = field
    while hasattr(node, "child"):
        wrappers.append(node)
        node = node.child
    if not isinstance(node, (Union, SmoothUnion)):
        return [field]
    parts = []
    for part in node.parts:
        for wrapper in reversed(wrappers):
            part = dataclasses.replace(wrapper, child=part)
        parts.append(part)
    return parts


def true_colors(shape, vertices: np.ndarray, palette_offset: int) -> np.ndarray:
    """(V, 3) sRGB colours: each vertex takes its nearest part's palette colour (halves for one-part shapes)."""
    parts = part_fields(shape.distance_field)
    if len(parts) > 1:
        labels = np.argmin(np.stack([np.abs(part(vertices)) for part in parts]), axis=0)
    else:
        labels = (vertices[:, 1] < np.median(vertices[:, 1])).astype(int)
    return PALETTE[(labels + palette_offset) % len(PALETTE)]


def srgb_to_linear(colors: np.ndarray) -> np.ndarray:
    """The renderer treats vertex colours as linear (its shader gamma-encodes with 2.2): give it linear values."""
    return 255.0 * (colors / 255.0) ** 2.2


def visible_under(camera: Camera, vertices: np.ndarray, normals: np.ndarray, depth_map: np.ndarray) -> np.ndarray:
    """Vertices the rendered camera sees, by the renderer's own depth map (independent of the texturing code)."""
    rotation, position = camera.rotation, camera.position
    local = (vertices - position) @ rotation  # camera space: x right, y up, z back
    depth = -local[:, 2]
    resolution = depth_map.shape[0]
    if camera.is_orthographic:
        ndc = local[:, :2] / (camera.ortho_scale / 2.0)
    else:
        ndc = local[:, :2] / depth[:, None] / math.tan(camera.fov_rad / 2.0)
    column = np.clip(((ndc[:, 0] + 1) / 2 * resolution).astype(int), 0, resolution - 1)
    row = np.clip(((1 - ndc[:, 1]) / 2 * resolution).astype(int), 0, resolution - 1)
    surface = depth_map[row, column]
    towards = -(vertices - position) / np.linalg.norm(vertices - position, axis=1, keepdims=True)
    facing = (normals * towards).sum(axis=1)
    return (surface > 0) & (np.abs(depth - surface) < VISIBLE_DEPTH_TOLERANCE) & (facing > VISIBLE_MIN_FACING)


def true_view_iou(mesh: trimesh.Trimesh, camera: Camera, target: SilhouetteTarget) -> float:
    """IoU of the true camera's silhouette with the mask, scored as the search scores (128 px)."""
    import torch

    from triposg.texturing.camera import sample_surface

    distance = math.inf if camera.is_orthographic else camera.resolved_distance
    points = torch.from_numpy(sample_surface(mesh.vertices, mesh.faces, 12000).astype(np.float32))
    outline = torch.from_numpy(np.asarray(mesh.vertices, dtype=np.float32))
    rotation, distances = camera.rotation[None], np.array([distance])
    scale, offset = fit_similarity(project_views(outline, rotation, distances)[0], target.box)
    return float(silhouette_iou(scale, offset, project_views(points, rotation, distances)[0], target.at(128))[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=20, help="one per family, cycling")
    parser.add_argument("--faces", type=int, default=50000, help="meshes are reduced to this many faces")
    parser.add_argument("--mesh-resolution", type=int, default=160, help="marching-cubes grid of the shapes")
    parser.add_argument("--resolution", type=int, default=512, help="render side in pixels")
    parser.add_argument("--no-mirror", action="store_true", help="fill hidden surface without mirror planes")
    parser.add_argument("--remove-shading", action="store_true", help="divide the image's lighting out")
    args = parser.parse_args(argv)
    texturer = MeshTexturer(TexturingConfig(mirror=not args.no_mirror, remove_shading=args.remove_shading))
    rng = np.random.default_rng(HELD_OUT_CORPUS_SEED)
    rows = []
    print(f"{'object':22s}{'faces':>7s}{'view az/el':>12s}{'found':>12s}{'angle':>7s}{'ambig':>6s}{'seen err':>9s}"
          f"{'all err':>8s}{'baseline':>9s}{'edge px':>8s}{'wall s':>7s}{'cpu s':>6s}")
    for index in range(args.objects):
        family = FAMILIES[index % len(FAMILIES)]
        shape = sample_shape(family, HELD_OUT_CORPUS_SEED * CORPUS_SEED_STRIDE + index // len(FAMILIES))
        mesh = shape.to_mesh(args.mesh_resolution)
        mesh = simplify(mesh, args.faces)
        plain = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        colors = true_colors(shape, plain.vertices, index)
        painted = plain.copy()
        painted.visual.vertex_colors = np.concatenate(
            [np.round(srgb_to_linear(colors)), np.full((len(colors), 1), 255)], axis=1).astype(np.uint8)
        (camera,) = sample_view_cameras(rng, 1)
        (view,) = render(painted, camera, resolution=args.resolution)
        rgba = np.concatenate([view.rgb, (view.mask * np.uint8(255))[..., None]], axis=-1)
        prepared = preprocess_image(PIL.Image.fromarray(rgba), background="alpha")

        wall, cpu = time.perf_counter(), time.process_time()
        result = texturer(plain, prepared)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

        found = np.asarray(result.mesh.visual.vertex_colors[:, :3], dtype=np.float64)
        visible = visible_under(camera, plain.vertices, plain.vertex_normals, view.depth)
        image = np.asarray(prepared.image, dtype=np.float64)
        foreground = np.asarray(prepared.mask) > 127
        baseline = np.abs(image[foreground].mean(axis=0) - colors).mean()
        error = np.abs(found - colors).mean(axis=1)
        angle = view_angle_deg(result.camera, camera)
        ambiguous = result.camera.iou >= true_view_iou(plain, camera, SilhouetteTarget(
            np.asarray(prepared.mask, dtype=np.float32) / 255.0)) - 0.01
        positions = result.camera.project(plain.vertices)[0] * prepared.image.width
        edges = plain.edges_unique
        edge_px = float(np.median(np.linalg.norm(positions[edges[:, 0]] - positions[edges[:, 1]], axis=1)))
        row = dict(seen=error[visible].mean(), all=error.mean(), baseline=baseline, angle=angle,
                   ambiguous=ambiguous and angle > 15, edge=edge_px, wall=wall, cpu=cpu)
        rows.append(row)
        print(f"{shape.object_id:22s}{len(plain.faces):7d}{camera.azimuth_deg:6.0f}/{camera.elevation_deg:<5.0f}"
              f"{result.camera.azimuth_deg:6.0f}/{result.camera.elevation_deg:<5.0f}{angle:7.1f}"
              f"{'yes' if row['ambiguous'] else '':>6s}{row['seen']:9.1f}{row['all']:8.1f}{baseline:9.1f}"
              f"{edge_px:8.2f}{wall:7.2f}{cpu:6.2f}")

    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in rows)

    angles = [r["angle"] for r in rows]
    print(f"\n{len(rows)} objects, ≤{args.faces} faces, {args.resolution} px renders, mirror "
          f"{'off' if args.no_mirror else 'on'}, shading {'removed' if args.remove_shading else 'kept'}")
    print(f"colour error (mean abs. per channel, 0-255): seen surface {mean('seen'):.1f}, whole surface "
          f"{mean('all'):.1f}; one-colour baseline {mean('baseline'):.1f}")
    print(f"camera angle error: median {statistics.median(angles):.1f}°, within 5° {np.mean(np.array(angles) <= 5):.0%},"
          f" within 15° {np.mean(np.array(angles) <= 15):.0%}; beyond 15° with an equally good silhouette "
          f"(ambiguous) {sum(r['ambiguous'] for r in rows)}")
    print(f"seconds per mesh: wall median {statistics.median(r['wall'] for r in rows):.2f} "
          f"(max {max(r['wall'] for r in rows):.2f}), CPU median {statistics.median(r['cpu'] for r in rows):.2f}; "
          f"median edge {statistics.median(r['edge'] for r in rows):.2f} input px")


if __name__ == "__main__":
    main()
