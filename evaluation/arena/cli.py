"""`python -m evaluation arena ...` and `python -m evaluation elo VOTES.csv`.

Arena inputs are folders: `--images DIR` holds the conditioning images and each `--methods NAME=DIR`
holds that method's meshes named after them (`chair.png` → `chair.glb|obj|ply|stl`); `--gt DIR`
optionally holds ground-truth meshes by the same stems (used by the offline proxy judge).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from .elo import elo_from_csv, markdown_table
from .judges import make_judge
from .run import DEFAULT_CRITERIA, ArenaConfig, Asset, run_arena

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MESH_SUFFIXES = (".glb", ".obj", ".ply", ".stl")


def _by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes}


def collect_assets(images: Path, methods: dict[str, Path], gt: Path | None = None) -> dict[str, list[Asset]]:
    """Pair every method's meshes with the conditioning images by file stem; a method missing an image's
    mesh simply has no asset for it (pairs are compared only on assets both methods have)."""
    conditions = _by_stem(images, IMAGE_SUFFIXES)
    if not conditions:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images}")
    gt_meshes = _by_stem(gt, MESH_SUFFIXES) if gt is not None else {}
    assets = {}
    for name, folder in methods.items():
        meshes = _by_stem(folder, MESH_SUFFIXES)
        assets[name] = [Asset(meshes[stem], image, gt_meshes.get(stem), stem)
                        for stem, image in conditions.items() if stem in meshes]
        if not assets[name]:
            raise ValueError(f"method {name!r}: no meshes in {folder} match the image names in {images}")
    return assets


def parse_methods(entries: list[str]) -> dict[str, Path]:
    methods = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--methods takes NAME=FOLDER, got {entry!r}")
        methods[name] = Path(path)
    if len(methods) < 2:
        raise ValueError("an arena needs at least two methods")
    return methods


def add_arena_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("arena", help="GPTEval3D-style pairwise comparisons → Elo ratings")
    parser.add_argument("--methods", nargs="+", required=True, metavar="NAME=DIR", help="mesh folder per method")
    parser.add_argument("--images", type=Path, required=True, help="conditioning images (stems name the assets)")
    parser.add_argument("--gt", type=Path, default=None, help="ground-truth meshes by the same stems (optional)")
    parser.add_argument("--judge", choices=("openai", "anthropic", "offline"), default="offline")
    parser.add_argument("--base-url", default=None, help="API base URL (default from OPENAI_BASE_URL/ANTHROPIC_BASE_URL)")
    parser.add_argument("--model", default=None, help="judge model name")
    parser.add_argument("--criteria", nargs="+", default=list(DEFAULT_CRITERIA))
    parser.add_argument("--views-per-comparison", type=int, choices=(1, 4, 9), default=4)
    parser.add_argument("--completions", type=int, default=3, help="votes asked per comparison")
    parser.add_argument("--mode", choices=("tournament", "new_method"), default="tournament")
    parser.add_argument("--anchor", default=None, help="tournament method fixed at 1000")
    parser.add_argument("--frozen", type=Path, default=None, help="ratings.csv of a previous run (new_method mode)")
    parser.add_argument("--out", type=Path, required=True)
    parser.set_defaults(run=run_arena_command)


def run_arena_command(args: argparse.Namespace) -> int:
    judge_kwargs = {}
    if args.judge != "offline":
        judge_kwargs = {k: v for k, v in (("base_url", args.base_url), ("model", args.model)) if v is not None}
    judge = make_judge(args.judge, **judge_kwargs)
    assets = collect_assets(args.images, parse_methods(args.methods), args.gt)
    config = ArenaConfig(views_per_comparison=args.views_per_comparison, num_completions=args.completions,
                         mode=args.mode, anchor=args.anchor)
    frozen = pd.read_csv(args.frozen) if args.frozen is not None else None
    result = run_arena(assets, judge, args.out, criteria=args.criteria, config=config, frozen=frozen, progress=True)
    print(markdown_table(result.ratings, args.criteria))
    print(f"{len(result.votes)} votes from {len(result.records)} comparisons; results in {args.out}")
    return 0


def add_elo_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("elo", help="fit Elo ratings to a votes CSV")
    parser.add_argument("votes", type=Path, help="votes.csv (method_a, method_b, criterion, vote or winner)")
    parser.add_argument("--mode", choices=("tournament", "new_method"), default="tournament")
    parser.add_argument("--anchor", default=None)
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates for intervals")
    parser.add_argument("--out", type=Path, default=None, help="write the ratings (with intervals) here as CSV")
    parser.set_defaults(run=run_elo_command)


def run_elo_command(args: argparse.Namespace) -> int:
    ratings = elo_from_csv(args.votes, mode=args.mode, anchor=args.anchor, n_bootstrap=args.bootstrap)
    criteria = list(dict.fromkeys(ratings["criterion"]))
    print(markdown_table(ratings, criteria))
    if args.out is not None:
        ratings.to_csv(args.out, index=False)
        print(f"ratings written to {args.out}")
    return 0
