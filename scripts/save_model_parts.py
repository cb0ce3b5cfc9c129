"""Copy trained parts of the default model (VAE, image encoder, flow transformer) into the repo as fp16, so a
fresh checkout can train the next stage from them without redoing the earlier ones.

    python scripts/save_model_parts.py --vae runs/default-vae/vae-standardized \
        --encoder runs/default-encoder/encoder [--transformer runs/default-flow/pipeline/transformer] \
        [--out assets/default-model-parts]

Writes `<out>/vae` (a `TripoSGVAEModel` folder), `<out>/encoder` (`image_encoder_dinov2` +
`feature_extractor_dinov2`, loadable with `model.condition.from_pipeline`, and the pretraining's
`metrics.json`) and `<out>/transformer` (a `TripoSGDiTModel` folder, for `model.pretrained` to continue
training). The flow trainer reads them back as float32 (`training.train_flow.build_vae`,
`build_condition_encoder`, `build_transformer`); the weights it trains on are then exactly the fp16 ones that ship.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from training.conditioning import ConditionEncoder
from triposg.io import swap_in
from triposg.models import TripoSGDiTModel, TripoSGVAEModel

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "assets" / "default-model-parts"


def save_diffusers_model(model_class, source: Path, folder: Path) -> None:
    """A diffusers model folder (`TripoSGVAEModel`, `TripoSGDiTModel`) re-saved in fp16."""
    model = model_class.from_pretrained(source, torch_dtype=torch.float32)
    replace_folder(folder, lambda staging: model.to(torch.float16).save_pretrained(staging))


def save_encoder(source: Path, folder: Path) -> None:
    encoder = ConditionEncoder.from_pretrained(source, subfolders=True, dtype=torch.float32)

    def write(staging: Path) -> None:
        encoder.to(torch.float16).save_pretrained(staging)
        if (source / "metrics.json").is_file():
            shutil.copy2(source / "metrics.json", staging / "metrics.json")

    replace_folder(folder, write)


def replace_folder(folder: Path, write) -> None:
    """Write into a staging folder beside `folder`, then swap it in (`triposg.io.swap_in`): a failed write or
    rename leaves the old copy."""
    staging = folder.with_name(folder.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write(staging)
        swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the swap succeeded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", type=Path, help="a trained (standardised) VAE folder")
    parser.add_argument("--encoder", type=Path, help="an encoder folder exported by training.pretrain_encoder")
    parser.add_argument("--transformer", type=Path, help="a trained flow transformer folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.vae is None and args.encoder is None and args.transformer is None:
        parser.error("give --vae, --encoder and/or --transformer")
    for source in (args.vae, args.encoder, args.transformer):
        if source is not None and not source.is_dir():
            parser.error(f"{source} is not a folder")
    for name, model_class, source in (("vae", TripoSGVAEModel, args.vae),
                                      ("transformer", TripoSGDiTModel, args.transformer)):
        if source is not None:
            save_diffusers_model(model_class, source, args.out / name)
            print(f"wrote {args.out / name}")
    if args.encoder is not None:
        save_encoder(args.encoder, args.out / "encoder")
        print(f"wrote {args.out / 'encoder'}")


if __name__ == "__main__":
    main()
