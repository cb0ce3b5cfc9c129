"""`python -m training.data build ...`: build a procedural corpus or convert a folder of meshes.

    python -m training.data build --source procedural --num 3000 --out data/procedural [--workers N]
    python -m training.data build --source meshes --input DIR --out data/meshes
    python -m training.data build ... --engine ray [--ray-address auto]   # Ray tasks, on a cluster or a local one
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import ENGINES, BuildConfig, run_build
from .fields import FieldConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build or resume a corpus")
    build.add_argument("--source", choices=("procedural", "meshes"), default="procedural")
    build.add_argument("--num", type=int, default=100, help="procedural objects (families cycle evenly)")
    build.add_argument("--input", type=Path, default=None, help="folder of OBJ/GLB/PLY/STL files (--source meshes)")
    build.add_argument("--out", type=Path, required=True, help="corpus folder (resumes if it exists)")
    build.add_argument("--engine", choices=ENGINES, default="local",
                       help="local: a process pool on this machine; ray: Ray tasks (see --ray-address)")
    build.add_argument("--ray-address", default=None,
                       help="--engine ray: a running cluster ('auto' or HOST:PORT); default: start a local one")
    build.add_argument("--workers", type=int, default=None,
                       help="worker processes, or the CPUs of the local Ray cluster (default: CPU cores + 1; "
                            "software GL leaves cores idle)")
    build.add_argument("--cpus-per-object", type=float, default=BuildConfig.cpus_per_object,
                       help="--engine ray: CPUs reserved by one object's task")
    build.add_argument("--gpus-per-object", type=float, default=BuildConfig.gpus_per_object,
                       help="--engine ray: GPU share of one object's task, for EGL rendering on GPU nodes")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--views", type=int, default=8, help="random views per object (plus the evaluation view)")
    build.add_argument("--relit-views", type=float, default=BuildConfig.relit_views,
                       help="share of training views lit by a random rig instead of the corpus lights (0 = none)")
    build.add_argument("--resolution", type=int, default=256, help="render size in pixels")
    build.add_argument("--msaa", type=int, default=0, choices=(0, 2, 4, 8),
                       help="multisamples for the training views (the evaluation view always uses 4)")
    build.add_argument("--udf-resolution", type=int, default=FieldConfig.udf_resolution,
                       help="grid for watertight conversion of meshes (paper: 512)")
    build.add_argument("--scorer", type=Path, default=None, help="a fitted quality scorer (stage I)")
    build.add_argument("--retry-failed", action="store_true", help="rebuild objects that failed before")
    args = parser.parse_args(argv)

    config = BuildConfig(
        out=args.out, source=args.source, num=args.num, input_dir=args.input, seed=args.seed,
        **({} if args.workers is None else {"workers": args.workers}),
        num_views=args.views, relit_views=args.relit_views, render_resolution=args.resolution, render_msaa=args.msaa,
        scorer_path=args.scorer, retry_failed=args.retry_failed, engine=args.engine, ray_address=args.ray_address,
        cpus_per_object=args.cpus_per_object, gpus_per_object=args.gpus_per_object,
        fields=FieldConfig(udf_resolution=args.udf_resolution),
    )
    try:
        summary = run_build(config)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{summary['built']} built, {summary['failed']} failed, {summary['skipped']} already done "
          f"of {summary['total']} in {summary['seconds']:.1f} s "
          f"({summary['objects_per_minute']:.1f} objects/min); manifest: {summary['manifest']}")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
