"""Copy trained ablation variants into assets/ablation-variants/<group>/<variant> (fp16 pipelines), where
the app's Ablations tab lists them for side-by-side viewing, and rewrite that folder's README.

    python scripts/ship_ablation_variants.py table1-objective [ddpm edm ...] [--seed 0] \
        [--results results/ablations] [--out assets/ablation-variants]

Variants default to every finished variant of the group. A variant whose run reused another group's
identical run (`reused_from` in its result.json) ships that run's pipeline. VAE groups train no pipeline,
so they cannot be shipped for viewing. The README lists every shipped variant with its measured metrics
(from `<results>/<group>.csv`) and its size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ship_default_model import ship  # noqa: E402

from evaluation.results import markdown_rows  # noqa: E402
from evaluation.variants import SHIPPED_VARIANTS_DIR, shipped_variant_groups  # noqa: E402

DEFAULT_RESULTS = Path("results") / "ablations"
README_HEAD = """# Ablation variants for side-by-side viewing

Matched models from `python -m experiments.ablations` (the paper's ablations in miniature; the numbers, the
paper's tables beside ours and the discussion are in `results/ablations/REPORT.md`). Each folder is a complete
`TripoSGPipeline` in fp16. In the app's **Ablations** tab, pick a group under "Shipped ablation variants" and
press "Put them in the table" to compare them on one image and seed; or pass a folder as `--model`.

They carry the VAE and image encoder their runs were trained with (`assets/default-model-parts`; git stores
each file once); each adds its own transformer. Written by `scripts/ship_ablation_variants.py`: do not edit by hand.
"""


def variant_pipeline(results: Path, group: str, variant: str, seed: int = 0) -> Path:
    """The exported pipeline folder of a finished variant × seed (following `reused_from`)."""
    result_path = results / "runs" / group / f"{variant}-s{seed}" / "result.json"
    if not result_path.is_file():
        raise FileNotFoundError(f"{result_path} not found: run the group first (python -m experiments.ablations run "
                                f"experiments/ablations/groups/{group}.yaml --corpus CORPUS)")
    result = json.loads(result_path.read_text())
    if result.get("status") != "ok":
        raise ValueError(f"{group}/{variant} seed {seed} did not finish ({result.get('error')}); run it again")
    run = Path(result.get("reused_from") or result_path.parent)
    pipeline = run / "pipeline"
    if not (pipeline / "model_index.json").is_file():
        raise FileNotFoundError(f"{pipeline} holds no pipeline; only flow groups export one (VAE groups cannot be "
                                "shipped for viewing)")
    return pipeline


def finished_variants(results: Path, group: str, seed: int = 0) -> list[str]:
    """The group's variants, in the order of its results CSV, whose run for `seed` finished."""
    csv = results / f"{group}.csv"
    if not csv.is_file():
        raise FileNotFoundError(f"{csv} not found: run the group first")
    table = pd.read_csv(csv, dtype={"seed": str})
    rows = table[(table["seed"] == str(seed)) & (table["status"] == "ok")]
    return list(dict.fromkeys(rows["variant"]))


def write_readme(out: Path, results: Path) -> Path:
    """`<out>/README.md`: every shipped variant with its measured metrics and size."""
    rows = []
    for group, paths in shipped_variant_groups(out).items():
        csv = results / f"{group}.csv"
        table = pd.read_csv(csv, dtype={"seed": str}) if csv.is_file() else pd.DataFrame()
        for path in paths:
            measured = table[(table.get("variant") == path.name) & (table.get("seed") == "0")] if len(table) else table
            values = measured.iloc[0] if len(measured) else {}
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20

            def metric(name: str, digits: int = 3, values=values) -> str:
                value = values.get(name) if len(values) else None
                return "—" if value is None or pd.isna(value) else f"{value:.{digits}g}"

            rows.append([f"`{group}`", f"`{path.name}`", metric("fd_dinov2"), metric("fd_pixels16"), metric("chamfer"),
                         metric("f_score"), metric("normal_consistency"), f"{size:.1f}"])
    table_text = markdown_rows(["Group", "Variant", "FD-DINOv2 ↓", "FD-pixels16 ↓", "Chamfer ↓", "F-score@0.05 ↑",
                                "Normal consistency ↑", "MiB on disk"], rows, right_aligned=6)
    text = f"{README_HEAD}\nMeasured on the test split (seed 0; see the report for the protocol):\n\n{table_text}\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.md").write_text(text)
    return out / "README.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("group", help="ablation group name, e.g. table1-objective")
    parser.add_argument("variants", nargs="*", help="variants to ship (default: every finished one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--out", type=Path, default=SHIPPED_VARIANTS_DIR)
    parser.add_argument("--replace", action="store_true", help="remove the group's other shipped variants")
    args = parser.parse_args(argv)
    variants = args.variants or finished_variants(args.results, args.group, args.seed)
    sources = {variant: variant_pipeline(args.results, args.group, variant, args.seed) for variant in variants}
    if args.replace and (args.out / args.group).is_dir():
        for old in (args.out / args.group).iterdir():
            if old.is_dir() and old.name not in sources:
                shutil.rmtree(old)
    for variant, source in sources.items():
        target = ship(source, args.out / args.group / variant)
        print(f"wrote {target} from {source}")
    print(f"wrote {write_readme(args.out, args.results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
