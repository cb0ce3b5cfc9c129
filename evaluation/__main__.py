"""`python -m evaluation COMMAND ...`: the evaluation lab's command line.

    python -m evaluation normal-fid --model PATH_OR_HUB --test-set CORPUS_OR_DIR_OR_ZIP --out DIR
        [--split test] [--steps N --guidance G --seed S --num-tokens M --octree-resolution R]
        [--inception-weights FILE] [--per-family N] [--limit N] [--cache-dir DIR | --no-cache]
    python -m evaluation recon PRED TARGET [--threshold 0.02 --num-points N --seed S]
    python -m evaluation vae-recon --vae PIPELINE_OR_VAE_DIR --corpus DIR [--split test --num-tokens M]
    python -m evaluation arena --methods NAME=DIR NAME=DIR ... --images DIR --judge openai|anthropic|offline
        [--base-url URL --model M] --out DIR
    python -m evaluation elo VOTES.csv [--mode tournament|new_method --anchor NAME --out ratings.csv]

Each command is added by its own `add_<command>_parser(commands)` function, which registers the function
that runs it (`run=`); `main` dispatches and turns user errors into a message and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .arena.cli import add_arena_parser, add_elo_parser

MESH_OR_POINTS_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off", ".npy", ".npz")
RECON_TABLE_COLUMNS = ("chamfer", "f_score", "precision", "recall", "normal_consistency")
FRAME_HALF_SIZE = 1.0  # `recon --normalize` maps into [-1, 1]^3, the frame evaluation.metrics assumes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_normal_fid_parser(commands)
    add_recon_parser(commands)
    add_vae_recon_parser(commands)
    add_arena_parser(commands)
    add_elo_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError, RuntimeError) as error:  # user-caused: bad paths, inputs, missing weights
        print(f"error: {error}", file=sys.stderr)
        return 2


# ----------------------------------------------------------------------------------------------
# normal-fid
# ----------------------------------------------------------------------------------------------


def add_normal_fid_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "normal-fid", help="Normal-FID of a model on a test set (paper §5.2.2)",
        description="Generate a shape from each test object's evaluation-view image, render its normal map from "
                    "the same view and compare the two sets: FID/KID (clean-fid Inception, local weights only), "
                    "FD-DINOv2 (labelled with its encoder) and per-object Chamfer / F-score / normal consistency.",
    )
    parser.add_argument("--model", default=None, help="pipeline folder or hub id (default: the embedded model)")
    parser.add_argument("--test-set", required=True, type=Path,
                        help="a corpus folder (manifest.csv), or a folder or .zip of meshes (OBJ/GLB/PLY/STL)")
    parser.add_argument("--split", default="test", help="corpus split to evaluate on (default: test)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (per_object.csv, summary.json, ...)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    parser.add_argument("--seed", type=int, default=None, help="generation seed, the same for every object")
    parser.add_argument("--num-tokens", type=int, default=None, help="latent tokens")
    parser.add_argument("--octree-resolution", type=int, default=None, help="extraction grid cells per side")
    parser.add_argument("--inception-weights", type=Path, default=None,
                        help="local inception-2015-12-05.pt for FID/KID (default: $TRIPOSG_INCEPTION_WEIGHTS); "
                             "giving it makes FID required")
    parser.add_argument("--fid", choices=("auto", "required", "off"), default=None,
                        help="auto: FID when weights are found, else reported unavailable (default; 'required' "
                             "with --inception-weights)")
    parser.add_argument("--fd-encoder", default=None,
                        help="pipeline folder or hub id whose DINOv2 encoder gives FD-DINOv2 (default: the "
                             "evaluated model's; use one encoder to compare several models)")
    parser.add_argument("--per-family", type=int, default=None,
                        help="a corpus's first N test objects of each family (a balanced sample; a plain --limit "
                             "takes the manifest's first one or two families), before --limit")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N test objects")
    parser.add_argument("--resolution", type=int, default=512, help="render size for mesh test sets (pixels)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="generation cache (default: $XDG_CACHE_HOME/triposg/normal_fid, ~/.cache if unset)")
    parser.add_argument("--no-cache", action="store_true", help="always generate, store nothing")
    parser.add_argument("--recon-threshold", type=float, default=0.05, help="F-score threshold (1.8 frame)")
    parser.add_argument("--recon-points", type=int, default=20_000, help="surface samples per shape")
    parser.add_argument("--yaw-aligned", action="store_true",
                        help="also score each mesh after its best turn about the up axis (columns *_yaw)")
    parser.add_argument("--undo-yaw", action="store_true",
                        help="the model was trained with data.undo_yaw: turn its meshes by each corpus shape's yaw")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: cuda when available); under accelerate launch each "
                             "process uses its own GPU unless this is cpu")
    parser.set_defaults(run=run_normal_fid_command)
    return parser


def run_normal_fid_command(args: argparse.Namespace) -> int:
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    from triposg.loading import load_pipeline

    from .fid import resolve_inception_weights
    from .normal_fid import (
        GenerationCache,
        NormalFidConfig,
        dinov2_named_extractor,
        format_summary,
        load_model_variant,
        load_test_set,
        model_identity,
        run_normal_fid,
    )

    # Under `accelerate launch` / torchrun each process takes its own device and a share of the objects.
    state = PartialState(cpu=args.device == "cpu")
    device = str(state.device) if state.num_processes > 1 else args.device
    fid_mode = args.fid or ("required" if args.inception_weights is not None else "auto")
    config = NormalFidConfig(fid=fid_mode, inception_weights=args.inception_weights,
                             recon_threshold=args.recon_threshold, recon_num_points=args.recon_points,
                             device=args.device, yaw_aligned=args.yaw_aligned)
    # Cheap checks first: a missing model or weights file fails before test meshes are rendered or a model loads.
    model_identity(args.model)
    if fid_mode == "required":
        resolve_inception_weights(args.inception_weights)
    test_set = None
    if state.is_main_process:  # one process renders a mesh collection's views; the others get its test set
        test_set = load_test_set(args.test_set, split=args.split, work_dir=args.out / "test_set",
                                 resolution=args.resolution, limit=args.limit, per_family=args.per_family,
                                 undo_yaw=args.undo_yaw)
    test_set = broadcast_object_list([test_set])[0]
    variant, pipe = load_model_variant(
        args.model, device, num_inference_steps=args.steps, guidance_scale=args.guidance, seed=args.seed,
        num_tokens=args.num_tokens, octree_resolution=args.octree_resolution,
    )
    if args.fd_encoder is None:
        extractor = dinov2_named_extractor(pipe, variant.name)
    else:
        encoder_pipe, _ = load_pipeline(args.fd_encoder, device)
        extractor = dinov2_named_extractor(encoder_pipe, args.fd_encoder)
    cache = None if args.no_cache else GenerationCache(args.cache_dir or _default_cache_dir())
    state.print(f"evaluating {variant.name} on {test_set.name}: {len(test_set)} objects; sampling "  # main only
                f"{variant.identity['sampling']}; cache: {cache.root if cache else 'off'}")
    result = run_normal_fid(test_set, variant, args.out, config, extractors=[extractor], cache=cache)
    state.print(format_summary(result.summary))
    state.print(f"results: {args.out / 'per_object.csv'}, {args.out / 'summary.json'}, {args.out / 'comparison.png'}")
    return 0


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "triposg" / "normal_fid"


# ----------------------------------------------------------------------------------------------
# recon
# ----------------------------------------------------------------------------------------------


def add_recon_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .metrics import DEFAULT_F_SCORE_THRESHOLD, DEFAULT_NUM_POINTS

    parser = commands.add_parser(
        "recon", help="Chamfer / F-score / normal consistency between meshes",
        description="Reconstruction metrics (definitions in evaluation.metrics) between a predicted and a target "
                    "surface, or between two folders matched by file stem. A surface is a mesh file (OBJ, GLB, "
                    "PLY, STL, OFF) or a point cloud with normals (.npy (N, 6), or a corpus fields.npz).",
    )
    parser.add_argument("pred", type=Path, help="predicted mesh / point cloud, or a folder of them")
    parser.add_argument("target", type=Path, help="target mesh / point cloud, or a folder matched by stem")
    parser.add_argument("--threshold", type=float, default=DEFAULT_F_SCORE_THRESHOLD, help="F-score threshold")
    parser.add_argument("--num-points", type=int, default=DEFAULT_NUM_POINTS, help="samples per surface")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--normalize", choices=("none", "target", "each"), default="none",
                        help="none: compare as stored (default); target: move both by the transform that puts the "
                             "target's bounding box into [-1, 1]^3; each: normalise each surface on its own")
    parser.add_argument("--csv", type=Path, default=None, help="also write the table to this CSV file")
    parser.set_defaults(run=run_recon_command)
    return parser


def run_recon_command(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm.auto import tqdm

    pairs, unmatched = match_surface_files(args.pred, args.target)
    if len(pairs) == 1:  # a single pair: its error is the command's error
        name, pred_path, target_path = pairs[0]
        rows, failures = [_recon_row(name, pred_path, target_path, args)], []
    else:
        rows, failures = [], []
        for name, pred_path, target_path in tqdm(pairs, desc="recon", unit="pair"):
            try:
                rows.append(_recon_row(name, pred_path, target_path, args))
            except (OSError, ValueError) as error:  # one unreadable file must not lose the other pairs
                failures.append(name)
                tqdm.write(f"error: {name}: {error}", file=sys.stderr)
    if not rows:
        raise ValueError(f"no pair could be measured ({len(failures)} failed)")
    table = pd.DataFrame(rows).set_index("name")
    if len(table) > 1:
        table.loc["mean"] = table.mean()
    print(table.to_string(float_format=lambda value: f"{value:.5f}"))
    print(f"{len(pairs)} pair(s); Chamfer = mean of both directions' mean Euclidean nearest-neighbour distance; "
          f"F-score at {args.threshold:g}; {args.num_points} points per surface, seed {args.seed}, "
          f"normalisation: {args.normalize}")
    if unmatched:
        print(f"unmatched (no file with the same stem on the other side): {', '.join(unmatched)}", file=sys.stderr)
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv)
    if failures:
        print(f"{len(failures)} of {len(pairs)} pairs failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def _recon_row(name: str, pred_path: Path, target_path: Path, args: argparse.Namespace) -> dict:
    from .metrics import reconstruction_metrics

    pred, target = _normalized(load_surface(pred_path), load_surface(target_path), args.normalize)
    metrics = reconstruction_metrics(pred, target, num_points=args.num_points, threshold=args.threshold,
                                     seed=args.seed)
    return {"name": name, **{key: metrics[key] for key in RECON_TABLE_COLUMNS}}


# ----------------------------------------------------------------------------------------------
# vae-recon
# ----------------------------------------------------------------------------------------------


def add_vae_recon_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "vae-recon", help="VAE reconstruction metrics on a corpus split (paper Table 3)",
        description="Encode each object's surface points, decode and mesh the SDF, and compare with the object's "
                    "on-surface points (protocol in evaluation.vae_recon; F-score@0.02 in the [-1, 1] frame).",
    )
    parser.add_argument("--vae", type=Path, default=None,
                        help="a VAE folder or a pipeline folder with a vae/ subfolder (default: the embedded model)")
    parser.add_argument("--local-plane-oracle", type=float, default=None, nargs="?", const=0.0, metavar="SIGMA",
                        help="instead of a VAE, the reference decoder of evaluation.token_oracle: the tangent plane "
                             "of the nearest of M surface tokens (no value), or planes averaged with a Gaussian of "
                             "width SIGMA; tells how much of the corpus M tokens can carry")
    parser.add_argument("--corpus", type=Path, required=True, help="corpus folder built by python -m training.data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num-tokens", type=int, default=256, help="latent tokens M")
    parser.add_argument("--num-surface", type=int, default=4096, help="encoder input points per object")
    parser.add_argument("--resolution", type=int, default=128, help="extraction grid cells per side")
    parser.add_argument("--per-family", type=int, default=None,
                        help="evaluate only the first N objects of each family (a family-balanced sample)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N objects")
    parser.add_argument("--csv", type=Path, default=None, help="write the per-object table here")
    parser.set_defaults(run=run_vae_recon_command)
    return parser


def load_vae(path: Path | None):
    """A `TripoSGVAEModel` from a VAE folder, a pipeline folder (its vae/), or None = the embedded model."""
    from triposg.loading import default_model_path
    from triposg.models import TripoSGVAEModel

    folder = default_model_path() if path is None else Path(path)
    if (folder / "model_index.json").is_file():
        return TripoSGVAEModel.from_pretrained(folder, subfolder="vae")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is neither a VAE folder (config.json) nor a pipeline folder "
                                "(model_index.json)")
    return TripoSGVAEModel.from_pretrained(folder)


def run_vae_recon_command(args: argparse.Namespace) -> int:
    from .vae_recon import run_vae_reconstruction, summarize_reconstruction

    if args.local_plane_oracle is not None:
        if args.vae is not None:
            raise ValueError("give either --vae or --local-plane-oracle, not both")
        from .token_oracle import LocalPlaneVAE

        vae = LocalPlaneVAE(sigma=args.local_plane_oracle or None)
    else:
        vae = load_vae(args.vae)
    table = run_vae_reconstruction(vae, args.corpus, args.split, num_tokens=args.num_tokens,
                                   num_surface=args.num_surface, resolution=args.resolution, limit=args.limit,
                                   per_family=args.per_family)
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
    print(table.groupby("family")[["chamfer", "f_score", "normal_consistency"]].mean().to_string(
        float_format=lambda value: f"{value:.4f}"))
    summary = summarize_reconstruction(table)
    print(", ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                    for key, value in summary.items()))
    return 0


def match_surface_files(pred: Path, target: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """(name, pred file, target file) pairs: the two files, or the files of two folders with equal stems;
    plus the stems found on one side only."""
    for path in (pred, target):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
    if pred.is_file() and target.is_file():
        return [(pred.stem, pred, target)], []
    if not (pred.is_dir() and target.is_dir()):
        raise ValueError("give two files or two folders (matched by file stem), not a file and a folder")
    pred_files, target_files = _surface_files(pred), _surface_files(target)
    common = sorted(pred_files.keys() & target_files.keys())
    if not common:
        raise ValueError(f"no file stems in common between {pred} and {target}")
    unmatched = sorted(pred_files.keys() ^ target_files.keys())
    return [(stem, pred_files[stem], target_files[stem]) for stem in common], unmatched


def _surface_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in MESH_OR_POINTS_SUFFIXES:
            if path.stem in files:
                raise ValueError(f"{folder} holds two surfaces named {path.stem!r} ({files[path.stem].name}, "
                                 f"{path.name}); keep one")
            files[path.stem] = path
    return files


def load_surface(path: Path):
    """A mesh file as a `trimesh.Trimesh`, or a point cloud with normals as an (N, 6) array: `.npy` (N, 6),
    or `.npz` with a `surface` array (a corpus `fields.npz`) or a single (N, 6) array."""
    from training.data.fields import load_mesh

    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as stored:
            if "surface" in stored:
                return stored["surface"]
            if len(stored.files) == 1:
                return stored[stored.files[0]]
        raise ValueError(f"{path} has no 'surface' array; store the point cloud as (N, 6) xyz + normals")
    return load_mesh(path)


def _normalized(pred, target, mode: str):
    """Apply `--normalize`: bounding-box centre to the origin, longest side to 2 (see the option's help)."""
    if mode == "none":
        return pred, target
    target_frame = _bbox_frame(target)
    pred_frame = target_frame if mode == "target" else _bbox_frame(pred)
    return _transformed(pred, *pred_frame), _transformed(target, *target_frame)


def _bbox_frame(surface) -> tuple[np.ndarray, float]:
    points = surface.vertices if hasattr(surface, "vertices") else np.asarray(surface)[:, :3]
    lower, upper = points.min(axis=0), points.max(axis=0)
    extent = float(np.max(upper - lower))
    if not extent > 0:
        raise ValueError("cannot normalise a surface with zero extent")
    return (lower + upper) / 2.0, 2.0 * FRAME_HALF_SIZE / extent


def _transformed(surface, center: np.ndarray, scale: float):
    if hasattr(surface, "vertices"):
        moved = surface.copy()
        moved.apply_translation(-center)
        moved.apply_scale(scale)
        return moved
    cloud = np.array(surface, dtype=np.float64)
    cloud[:, :3] = (cloud[:, :3] - center) * scale
    return cloud


if __name__ == "__main__":
    sys.exit(main())
