"""Command line: `python -m triposg generate IMAGE [IMAGE ...] -o OUT_DIR [options]`."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from .geometry import SUPPORTED_FORMATS, VOLUME_DECODERS, export_mesh
from .loading import load_pipeline
from .preprocessing import BACKGROUND_METHODS, read_image_info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m triposg", description="TripoSG image-to-3D")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="generate one mesh per image")
    gen.add_argument("images", nargs="+", type=Path,
                     help="input photos or renders (JPEG, PNG, WebP, AVIF, ...; HEIC with pillow-heif installed)")
    gen.add_argument("-o", "--output-dir", type=Path, default=Path("outputs"), help="where meshes are written")
    gen.add_argument("--model", default=None, help="pipeline folder or hub id (default: the embedded model)")
    gen.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    gen.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    gen.add_argument("--seed", type=int, default=None, help="random seed (default: the model's, 42)")
    gen.add_argument("--num-tokens", type=int, default=None, help="latent tokens")
    gen.add_argument("--octree-resolution", type=int, default=None, help="extraction grid cells per side")
    gen.add_argument("--extraction", choices=tuple(VOLUME_DECODERS), default="tracking",
                     help="volume decoding: tracking (fastest, the dense surface), hierarchical or dense")
    gen.add_argument("--faces", type=int, default=None, help="reduce each mesh to at most this many faces")
    gen.add_argument("--background", choices=BACKGROUND_METHODS, default="auto",
                     help="how the object is cut out: auto (alpha, rembg, plain background, then the offline photo "
                          "cut-out), or force one method; none keeps the whole image")
    gen.add_argument("--format", choices=SUPPORTED_FORMATS, default="glb", help="output file format")
    gen.add_argument("--texture", action="store_true",
                     help="colour the mesh from the input image (vertex colours; GLB, PLY and OBJ keep them)")
    gen.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    return parser


def output_paths(images: list[Path], output_dir: Path, file_format: str) -> list[Path]:
    """One mesh file per image, named after it: `photo.glb`; `photo_jpg.glb` and `photo_png.glb` when two images
    share a stem, and a number after that when names still clash (the same name in two folders)."""
    stems = Counter(path.stem for path in images)
    taken: set[str] = set()
    targets = []
    for path in images:
        name = path.stem if stems[path.stem] == 1 else f"{path.stem}_{path.suffix.lstrip('.')}"
        candidate, number = name, 1
        while candidate in taken:
            number += 1
            candidate = f"{name}_{number}"
        taken.add(candidate)
        targets.append(output_dir / f"{candidate}.{file_format}")
    return targets


def generate(args: argparse.Namespace) -> int:
    """Run the pipeline on every image; a failure is reported and the others go on. Returns the exit code."""
    if args.texture and args.format == "stl":
        raise ValueError("STL files have no colours: use --format glb, ply or obj with --texture")
    pipe, defaults = load_pipeline(args.model, args.device)
    pipe.set_progress_bar_config(disable=True)
    settings = dict(
        num_inference_steps=args.steps or defaults.num_inference_steps,
        guidance_scale=args.guidance if args.guidance is not None else defaults.guidance_scale,
        num_tokens=args.num_tokens or defaults.num_tokens,
        octree_resolution=args.octree_resolution or defaults.octree_resolution,
        extraction=args.extraction,
        faces=args.faces,
        query_precision=defaults.query_precision,
        guidance_interval=list(defaults.guidance_interval),  # recorded in each mesh's metadata
        preprocess=True,  # photos and renders alike are framed the way the models were trained
        background=args.background,
        texture=args.texture,
    )
    seed = args.seed if args.seed is not None else defaults.seed
    args.output_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    targets = output_paths(args.images, args.output_dir, args.format)
    for image_path, target in zip(tqdm(args.images, desc="images", unit="image"), targets):
        try:
            start = time.perf_counter()
            notes = read_image_info(image_path).notes()
            output = pipe(str(image_path), seed=seed, **settings)
            metadata = {"source_image": image_path.name, "seed": seed, "model": str(args.model or "default"),
                        **settings, "timings": output.timings}
            cut = ""
            if output.preprocessed:  # what the cut-out did, so an uncertain one is seen before the mesh is used
                cutout = output.preprocessed[0]
                metadata["cutout"] = {"method": cutout.method, "confidence": float(cutout.confidence),
                                      "bbox": [int(v) for v in cutout.bbox]}
                cut = f", cut-out {cutout.method} at confidence {cutout.confidence:.2f}"
                notes += cutout.notes
            if output.texturing:
                metadata["texturing"] = output.texturing[0].metadata()
            export_mesh(output.meshes[0], target, args.format, metadata=metadata)
            tqdm.write(f"{image_path} -> {target} ({len(output.meshes[0].faces)} faces{cut}, "
                       f"{time.perf_counter() - start:.1f} s)")
            for note in notes:
                tqdm.write(f"  note: {note}")
        except Exception as error:  # one bad image must not lose the others
            failures.append(image_path)
            tqdm.write(f"error: {image_path}: {error}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(args.images)} images failed: {', '.join(map(str, failures))}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            return generate(args)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
