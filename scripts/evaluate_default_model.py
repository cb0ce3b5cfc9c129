"""Measure a pipeline the way the default model's card reports it, and write the tables and figures.

    python scripts/evaluate_default_model.py --model runs/default-flow/pipeline --corpus data/procedural \
        --out runs/default-eval [--per-family 4] [--vae-per-family 4] [--vae-limit 200]

For comparing candidates before one is shipped, the validation split and the model alone (no baselines, no VAE)
with one shift:

    python scripts/evaluate_default_model.py --model runs/v2-decay/pipeline --corpus data/procedural \
        --out runs/val-candidate --split val --per-family 2 --skip-vae --skip-baselines --shifted side-light

On the held-out test split by default (never trained on; quality-flagged objects excluded):

1. VAE reconstruction (`evaluation.vae_recon`): Chamfer, F-score@0.02 and normal consistency in the
   [-1, 1] frame, at the model's token count and at twice it → `vae_recon_<M>.csv`.
2. Image-to-3D with the Normal-FID protocol (`evaluation.normal_fid`) on a family-balanced subset
   (`--per-family` objects of each family): the model, the same model with the image condition zeroed
   (`evaluation.baselines.unconditional_variant`) and a fixed mean shape of the training split
   (`evaluation.baselines.mean_occupancy_shape`). Chamfer / F-score@0.05 / normal consistency against
   the ground-truth surface in the 1.8 frame, and Fréchet distances of the normal maps: over the maps
   themselves downsampled to 16×16 (FD-pixels16, no weights needed) and in the feature space of the
   model's own DINOv2 encoder (FD-DINOv2; the same encoder for every variant). FID with
   Inception features is added when local Inception weights are configured (`TRIPOSG_INCEPTION_WEIGHTS`).
   → `normal_fid/<variant>/...`, `image_to_3d.csv`.
   Per object also the area share of the largest connected piece of the mesh as generated, before floater
   removal (whole shapes: a broken-off part lowers it), by family for the model →
   `whole_shapes_by_family.csv`.
3. `samples.png`: input image, ground-truth normals and generated normals for one object per family.
   The same three metrics again after each mesh's best turn about the up axis (`evaluation.yaw`: the corpus's
   random yaw cannot be told from an image), and what a perfect shape at a yaw drawn from the corpus's prior
   scores (`unknown_yaw_ceiling`) → the yaw table of `results.md`, `yaw_ceiling.csv`.
4. With `--shifted [NAME ...]`: the model on the same objects re-rendered under other lighting, lenses, camera
   distances and backgrounds (`evaluation.shifted`), against its corpus-render score → `shifted.csv`.
5. `results.md`: the tables in Markdown, ready for the model card.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation.baselines import mean_occupancy_shape, mean_shape_variant, unconditional_variant
from evaluation.normal_fid import (
    NormalFidConfig,
    corpus_test_set,
    dinov2_named_extractor,
    model_identity,
    pipeline_variant,
    pixel_named_extractor,
    run_normal_fid,
)
from evaluation.results import markdown_rows
from evaluation.shifted import SHIFTS, shifted_test_sets
from evaluation.vae_recon import run_vae_reconstruction, summarize_by_family, summarize_reconstruction
from evaluation.yaw import unknown_yaw_ceiling
from triposg.loading import load_pipeline
from triposg.preprocessing import composite_on_white
from triposg.rendering import make_image_grid


def vae_tables(pipe, corpus: Path, num_tokens: int, limit: int | None, per_family: int | None,
               out: Path, split: str = "test") -> tuple[list[dict], pd.DataFrame | None]:
    """Summary rows at the model's token count and twice it, and the per-family table at the model's."""
    rows, by_family = [], None
    for tokens in (num_tokens, 2 * num_tokens):
        table = run_vae_reconstruction(pipe.vae, corpus, split, num_tokens=tokens, limit=limit,
                                       per_family=per_family)
        table.to_csv(out / f"vae_recon_{tokens}.csv", index=False)
        rows.append({"tokens": tokens, **summarize_reconstruction(table)})
        print(f"VAE reconstruction, M={tokens}: {rows[-1]}")
        if by_family is None:
            by_family = summarize_by_family(table)
    return rows, by_family


def samples_figure(test_set, run_dirs: dict[str, Path], path: Path) -> None:
    """Per family one row: input RGB | ground-truth normals | generated normals (the model)."""
    seen, tiles = set(), []
    model_dir = run_dirs["model"]
    for test_object in test_set.objects:
        family = test_object.metadata.get("family")
        if family in seen:
            continue
        seen.add(family)
        name = f"{test_object.object_id}.png"
        tiles += [composite_on_white(Image.open(test_object.rgb_path).convert("RGBA")), Image.open(model_dir / "normals" / "ground_truth" / name),
                  Image.open(model_dir / "normals" / "generated" / name)]
    make_image_grid(tiles, ncols=6).save(path)  # two objects per row


def shifted_table(test_set, model_variant, corpus_row: dict, names: list[str], out: Path) -> pd.DataFrame:
    """The model on each shifted re-render of the test objects, against its score on the corpus renders."""
    chosen = [shift for shift in SHIFTS if not names or shift.name in names]
    rows = {"corpus renders": {"what": "the corpus's own evaluation view", **_geometry(corpus_row)}}
    for name, shifted_set in shifted_test_sets(test_set, out / "shifted_inputs", chosen).items():
        result = run_normal_fid(shifted_set, model_variant, out / "normal_fid_shifted" / name, NormalFidConfig())
        description = next(shift.description for shift in chosen if shift.name == name)
        rows[name] = {"what": description, **_geometry(result.summary["metrics"])}
        print(f"shifted {name}: {json.dumps(rows[name])}")
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["f_score_drop"] = table.loc["corpus renders", "f_score"] - table["f_score"]
    return table


def yaw_ceiling(test_set, config: NormalFidConfig, draws: int = 8, seed: int = 0) -> pd.DataFrame:
    """Per object: the plain metrics of its own true surface turned by `draws` differences of two yaws drawn from
    the procedural corpus's prior (U(±MAX_YAW_DEG) each) — a perfect shape model that samples the yaw."""
    import numpy as np

    from training.data.procedural import MAX_YAW_DEG

    rng = np.random.default_rng(seed)
    rows = {}
    for test_object in test_set.objects:
        turns = rng.uniform(-MAX_YAW_DEG, MAX_YAW_DEG, draws) - rng.uniform(-MAX_YAW_DEG, MAX_YAW_DEG, draws)
        rows[test_object.object_id] = {"family": test_object.metadata.get("family"), **unknown_yaw_ceiling(
            test_object.load_reference(), turns, config.recon_num_points, config.recon_threshold, seed=config.seed)}
    return pd.DataFrame.from_dict(rows, orient="index")


def yaw_rows(table: pd.DataFrame, ceiling: pd.DataFrame | None) -> list[list[str]]:
    """The yaw table's rows: each variant's plain and best-yaw metrics, then the perfect model's ceiling."""
    rows = [[variant, f"{row['chamfer']:.4f}", f"{row['chamfer_yaw']:.4f}", f"{row['f_score']:.3f}",
             f"{row['f_score_yaw']:.3f}", f"{row['normal_consistency']:.3f}", f"{row['normal_consistency_yaw']:.3f}"]
            for variant, row in table.iterrows() if "f_score_yaw" in row and pd.notna(row["f_score_yaw"])]
    if ceiling is not None:
        mean = ceiling.mean(numeric_only=True)
        rows.append(["perfect shape, yaw unknown", f"{mean['chamfer']:.4f}", "–", f"{mean['f_score']:.3f}", "–",
                     f"{mean['normal_consistency']:.3f}", "–"])
    return rows


def _geometry(metrics: dict) -> dict:
    return {key: metrics.get(key) for key in ("chamfer", "f_score", "normal_consistency", "largest_piece")}


def whole_shapes_by_family(per_object: pd.DataFrame) -> pd.DataFrame:
    """Per family: objects, mean and lowest share of surface area in the largest connected piece (worst first)."""
    measured = per_object.dropna(subset=["largest_piece"])
    table = measured.groupby("family")["largest_piece"].agg(objects="count", mean="mean", lowest="min")
    return table.sort_values("mean")


def markdown(vae_rows: list[dict], by_family: pd.DataFrame | None, table: pd.DataFrame,
             whole: pd.DataFrame | None = None, generalisation: pd.DataFrame | None = None, split: str = "test",
             ceiling: pd.DataFrame | None = None) -> str:
    def vae_table(first_column: str, rows) -> str:  # rows: (first cell, summary) pairs
        return markdown_rows(
            [first_column, "objects", "Chamfer ↓", "F-score@0.02 ↑", "normal consistency ↑"],
            [[key, int(row["objects"]), f"{row['chamfer']:.4f}", f"{row['f_score']:.3f}",
              f"{row['normal_consistency']:.3f}"] for key, row in rows], right_aligned=4)

    vae_sections = [] if not vae_rows else [f"### VAE reconstruction ({split} split, [-1, 1] frame)", "",
                                            vae_table("tokens", [(row["tokens"], row) for row in vae_rows]), ""]
    if by_family is not None:
        vae_sections += [f"### VAE reconstruction by family ({vae_rows[0]['tokens']} tokens, worst first)", "",
                         vae_table("family", by_family.iterrows()), ""]
    fd_columns = [column for column in table.columns if column.startswith("fd_")]
    image_table = markdown_rows(
        ["variant", "objects", "failed", "Chamfer ↓", "F-score@0.05 ↑", "normal consistency ↑", "largest piece ↑"]
        + [f"{c.removeprefix('fd_').replace('_', '-')} FD ↓" for c in fd_columns] + ["s/object"],
        [[variant, int(row["objects"]), int(row["failed"]), f"{row['chamfer']:.4f}", f"{row['f_score']:.3f}",
          f"{row['normal_consistency']:.3f}", f"{row.get('largest_piece', float('nan')):.3f}",
          *(f"{row[c]:.4g}" for c in fd_columns), f"{row['seconds_per_object']:.2f}"]
         for variant, row in table.iterrows()],
        right_aligned=7 + len(fd_columns))
    sections = vae_sections + [f"### Image-to-3D ({split} split, 1.8 frame)", "", image_table]
    yaw_table = yaw_rows(table, ceiling)
    if yaw_table:
        sections += ["", "### Image-to-3D as scored and after the best turn about the up axis (the corpus's yaw "
                     "cannot be told from an image; `evaluation.yaw`)", "",
                     markdown_rows(["variant", "Chamfer ↓", "best yaw", "F-score@0.05 ↑", "best yaw",
                                    "normal consistency ↑", "best yaw"], yaw_table, right_aligned=6)]
    if whole is not None and len(whole):
        sections += ["", "### Whole shapes: area share of the largest connected piece, before floater removal, by "
                     "family (the model, worst first; goal ≥ 0.9 everywhere)", "",
                     markdown_rows(["family", "objects", "mean ↑", "lowest ↑"],
                                   [[family, int(row["objects"]), f"{row['mean']:.3f}", f"{row['lowest']:.3f}"]
                                    for family, row in whole.iterrows()], right_aligned=3)]
    if generalisation is not None:
        sections += ["", "### Beyond the corpus renders: the same test objects under shifted conditions (the "
                     "model; goal: F-score within 0.05 of the corpus renders)", "",
                     markdown_rows(["input", "what changed", "Chamfer ↓", "F-score@0.05 ↑", "drop", "largest piece ↑"],
                                   [[name, row["what"], f"{row['chamfer']:.4f}", f"{row['f_score']:.3f}",
                                     f"{row['f_score_drop']:+.3f}", f"{row['largest_piece']:.3f}"]
                                    for name, row in generalisation.iterrows()], right_aligned=4)]
    return "\n".join(sections) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="pipeline folder (default: the embedded model)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-family", type=int, default=4, help="test objects per family for image-to-3D")
    parser.add_argument("--vae-limit", type=int, default=None, help="test objects for VAE reconstruction")
    parser.add_argument("--vae-per-family", type=int, default=None,
                        help="VAE reconstruction on the first N test objects of each family (before --vae-limit)")
    parser.add_argument("--skip-vae", action="store_true")
    parser.add_argument("--undo-yaw", action="store_true",
                        help="the model was trained with data.undo_yaw: its meshes are turned by each shape's yaw "
                             "before they are measured")
    parser.add_argument("--split", default="test", help="corpus split (the card reports test; compare candidates on val)")
    parser.add_argument("--skip-baselines", action="store_true",
                        help="the model only: no unconditional or mean-shape rows (comparing candidates)")
    parser.add_argument("--shifted", nargs="*", default=None, metavar="SHIFT",
                        help="also score the model on shifted renders of the same objects (evaluation.shifted; "
                             "no names = all shifts)")
    args = parser.parse_args(argv)
    unknown = set(args.shifted or ()) - {shift.name for shift in SHIFTS}
    if unknown:  # before hours of evaluation
        parser.error(f"unknown shift(s) {sorted(unknown)}; choose from {[shift.name for shift in SHIFTS]}")
    args.out.mkdir(parents=True, exist_ok=True)

    pipe, defaults = load_pipeline(args.model, "cpu")
    pipe.set_progress_bar_config(disable=True)
    vae_rows, by_family = ([], None) if args.skip_vae else vae_tables(
        pipe, args.corpus, defaults.num_tokens, args.vae_limit, args.vae_per_family, args.out, args.split)

    test_set = corpus_test_set(args.corpus, args.split, per_family=args.per_family, undo_yaw=args.undo_yaw)
    identity = model_identity(args.model)
    variants = {"model": pipeline_variant(pipe, defaults, identity, "model")}
    if not args.skip_baselines:
        mean_mesh = mean_occupancy_shape(args.corpus, split="train", resolution=64, limit=400)
        mean_mesh.export(args.out / "mean_shape.ply")
        variants["unconditional"] = unconditional_variant(pipe, defaults, identity)
        variants["mean shape"] = mean_shape_variant(mean_mesh, {"corpus": str(args.corpus), "split": "train"})
    extractors = [pixel_named_extractor(16), dinov2_named_extractor(pipe, "the evaluated model")]
    rows, run_dirs, whole = {}, {}, None
    config = NormalFidConfig(yaw_aligned=True)
    for name, variant in variants.items():
        run_dir = args.out / "normal_fid" / name.replace(" ", "_")
        result = run_normal_fid(test_set, variant, run_dir, config, extractors=extractors)
        run_dirs[name] = run_dir
        metrics = result.summary["metrics"]
        per_object = result.per_object
        rows[name] = {"objects": len(per_object), "failed": int((per_object["status"] != "ok").sum()),
                      **{key: value for key, value in metrics.items() if value is not None},
                      "seconds_per_object": float(per_object["generation_seconds"].mean())}
        if name == "model":
            whole = whole_shapes_by_family(per_object)
            whole.to_csv(args.out / "whole_shapes_by_family.csv")
        print(name, json.dumps(rows[name]))
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.to_csv(args.out / "image_to_3d.csv", index_label="variant")
    generalisation = None
    if args.shifted is not None:
        generalisation = shifted_table(test_set, variants["model"], rows["model"], args.shifted, args.out)
        generalisation.to_csv(args.out / "shifted.csv", index_label="shift")
    ceiling = None if args.undo_yaw else yaw_ceiling(test_set, config)  # with the yaw undone it is not unknown
    if ceiling is not None:
        ceiling.to_csv(args.out / "yaw_ceiling.csv", index_label="object_id")
    samples_figure(test_set, run_dirs, args.out / "samples.png")
    (args.out / "results.md").write_text(markdown(vae_rows, by_family, table, whole, generalisation, args.split,
                                                  ceiling))
    print((args.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
