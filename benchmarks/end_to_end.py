"""Image in, mesh out: wall time of the whole pipeline with a model's default settings.

    python benchmarks/end_to_end.py [--model PATH_OR_HUB_ID] [--images assets/examples] [--repeats 1]
        [--threads 2] [--target 10]

Loads the pipeline once (not timed), warms it up on the first image (not timed), then times
`pipe(image)` on every image: preprocessing (background removal, crop), image encoding, sampling (with
classifier-free guidance) and mesh extraction (surface-tracking decoding, marching cubes, floater removal).
Prints a per-stage table, the median and the worst total, and whether the target is met.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from triposg.loading import load_pipeline

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="pipeline folder or hub id (default: the embedded model)")
    parser.add_argument("--images", type=Path, default=Path(__file__).resolve().parent.parent / "assets" / "examples")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per image")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--target", type=float, default=10.0, help="seconds per image the benchmark checks")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        print(f"error: no images in {args.images}", file=sys.stderr)
        return 2
    pipe, defaults = load_pipeline(args.model, "cpu")
    pipe.set_progress_bar_config(disable=True)
    settings = dataclasses.asdict(defaults)  # steps, guidance, tokens, resolution, seed: all pipeline arguments
    print(f"model: {args.model or 'embedded default'}; settings: {settings}; {args.threads} threads")
    pipe(str(images[0]), **settings)  # warm-up: first-call allocations, lazy imports

    rows = []
    for path in images:
        for _ in range(args.repeats):
            start = time.perf_counter()
            output = pipe(str(path), **settings)
            total = time.perf_counter() - start
            mesh = output.meshes[0]
            rows.append({"image": path.name, **output.timings, "total": total, "faces": len(mesh.faces)})
    stages = [key for key in rows[0] if key not in ("image", "total", "faces")]
    print(f"{'image':28s}" + "".join(f"{stage:>11s}" for stage in stages) + f"{'total':>9s}{'faces':>9s}")
    for row in rows:
        print(f"{row['image']:28s}" + "".join(f"{row[stage]:11.2f}" for stage in stages)
              + f"{row['total']:9.2f}{row['faces']:9d}")
    totals = [row["total"] for row in rows]
    median, worst = statistics.median(totals), max(totals)
    print(f"median {median:.2f} s, worst {worst:.2f} s over {len(rows)} runs; target ≤ {args.target:g} s: "
          f"{'met' if worst <= args.target else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
