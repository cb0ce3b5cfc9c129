"""Mesh extraction on a model's own latents: the previous default path against the fast default, and the surface
each gives against a dense decode of the same latents.

    python benchmarks/extraction_model.py [--model PATH_OR_HUB_ID] [--images assets/examples] [--limit N]
        [--resolution R] [--threads 2] [--repeats 2]

For every image the pipeline samples latents once with the model's defaults (not timed). Then, on those latents:

- **previous**: what the pipeline did before surface tracking — a dense 65³-style coarse grid refined near the
  surface (`HierarchicalVolumeDecoder`, coarse R/2 capped at 64, band 2, dilation 1, 50k-point chunks), the
  decoder's full `decode_tokens` + `query` per chunk at the "auto" precision (bf16 autocast on CPUs where bf16 is fast);
- **fast**: the default now — `SurfaceTrackingDecoder` (interpolating the grid points that are safe to interpolate)
  on an `SDFField` (per-shape work once; bf16 weights where "auto" picks them);
- **exact**: the same tracking with every corner queried (`interpolation_tolerance=None`), the dense surface exactly;
- **dense**: every grid point through the same `SDFField`, the reference surface.

Times are the best of ``--repeats`` and include marching cubes. Surface agreement of fast vs dense: symmetric
Chamfer (mean) and Hausdorff (max) between the two meshes' vertices in voxels, face counts and connected pieces
(a lost thin part shows up as a missing piece).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from triposg.geometry import DEFAULT_BOUNDS, HierarchicalVolumeDecoder, decode_volume, extract_mesh
from triposg.loading import load_pipeline
from triposg.pipelines.vae_mesh import field_function, query_autocast

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def previous_field(vae, latent: torch.Tensor, chunk_size: int = 50_000):
    """The query path the pipeline used before `SDFField`: decoder stack + keys/values recomputed per chunk."""
    tokens = vae.decode_tokens(latent[None])
    precision = query_autocast(tokens.device, tokens.dtype, "auto")

    def sdf_fn(points: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), precision:
            return vae.query(tokens, points[None].to(tokens.dtype), chunk_size)[0, :, 0].float()

    return sdf_fn


def best_time(run, repeats: int):
    """(best seconds, last result) of ``repeats`` calls."""
    best, result = float("inf"), None
    for _ in range(repeats):
        result = None
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def pieces(mesh: trimesh.Trimesh) -> int:
    return len(trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(mesh.faces))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="pipeline folder or hub id (default: the embedded model)")
    parser.add_argument("--images", type=Path, default=Path(__file__).resolve().parent.parent / "assets" / "examples")
    parser.add_argument("--limit", type=int, default=None, help="use the first N images only")
    parser.add_argument("--resolution", type=int, default=None, help="octree resolution (default: the model's)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=2, help="time each extraction this many times, keep the best")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
    if not images:
        print(f"error: no images in {args.images}", file=sys.stderr)
        return 2
    pipe, defaults = load_pipeline(args.model, "cpu")
    pipe.set_progress_bar_config(disable=True)
    settings = {**dataclasses.asdict(defaults), "preprocess": True}
    resolution = args.resolution or defaults.octree_resolution
    coarse = min(64, resolution // 2)
    print(f"model: {args.model or 'embedded default'}; resolution {resolution}; {args.threads} threads; "
          f"best of {args.repeats}")
    header = (f"{'image':22s} | {'previous s':>10} {'queries':>9} | {'exact s':>7} {'fast s':>7} {'queries':>8} | "
              f"{'speed-up':>8} {'fewer q':>7} | {'chamfer vox':>11} {'hausdorff':>9} {'faces fast/dense':>17} {'pieces':>7}")
    print(header)
    print("-" * len(header))
    rows = []
    for path in images:
        settings["octree_resolution"] = 32  # only the latents are used: skip the full-resolution extraction
        latent = pipe(str(path), **settings).latents[0]
        vae = pipe.vae

        def previous():
            volume = HierarchicalVolumeDecoder(coarse_resolution=coarse, chunk_size=50_000)(
                previous_field(vae, latent), DEFAULT_BOUNDS, resolution)
            return volume, extract_mesh(volume)

        def tracking(**options):
            volume = decode_volume(field_function(vae, latent), DEFAULT_BOUNDS, resolution, method="tracking", **options)
            return volume, extract_mesh(volume)

        previous_s, (previous_volume, _) = best_time(previous, args.repeats)
        exact_s, _ = best_time(lambda: tracking(interpolation_tolerance=None), args.repeats)
        fast_s, (fast_volume, fast_mesh) = best_time(tracking, args.repeats)
        dense_volume = decode_volume(field_function(vae, latent), DEFAULT_BOUNDS, resolution, method="dense")
        dense_mesh = extract_mesh(dense_volume)
        voxel = float(dense_volume.voxel_size.max())
        a_to_b = cKDTree(dense_mesh.vertices).query(fast_mesh.vertices)[0]
        b_to_a = cKDTree(fast_mesh.vertices).query(dense_mesh.vertices)[0]
        chamfer = 0.5 * (a_to_b.mean() + b_to_a.mean()) / voxel
        hausdorff = max(a_to_b.max(), b_to_a.max()) / voxel
        row = {
            "speedup": previous_s / fast_s, "exact_speedup": previous_s / exact_s,
            "fewer": previous_volume.num_queries / fast_volume.num_queries,
            "fast_s": fast_s, "chamfer": chamfer, "lost_pieces": pieces(dense_mesh) - pieces(fast_mesh),
        }
        rows.append(row)
        print(f"{path.stem:22s} | {previous_s:10.2f} {previous_volume.num_queries:9,} | {exact_s:7.2f} {fast_s:7.2f} "
              f"{fast_volume.num_queries:8,} | {row['speedup']:7.1f}x {row['fewer']:6.1f}x | {chamfer:11.4f} "
              f"{hausdorff:9.3f} {len(fast_mesh.faces):>8}/{len(dense_mesh.faces):<8} "
              f"{pieces(fast_mesh):>3}/{pieces(dense_mesh):<3}", flush=True)
        del previous_volume, fast_volume, dense_volume
    speedups = [r["speedup"] for r in rows]
    print(f"speed-up of the fast path over the previous one: median {statistics.median(speedups):.1f}x "
          f"(min {min(speedups):.1f}x, max {max(speedups):.1f}x; exact tracking "
          f"{statistics.median(r['exact_speedup'] for r in rows):.1f}x); fast extraction median "
          f"{statistics.median(r['fast_s'] for r in rows):.2f} s; worst Chamfer to dense "
          f"{max(r['chamfer'] for r in rows):.4f} voxels (goal < 0.5); pieces lost: "
          f"{sum(max(r['lost_pieces'], 0) for r in rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
