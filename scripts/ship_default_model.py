"""Copy a trained pipeline folder into the embedded default model (assets/default-model), weights in fp16.

    python scripts/ship_default_model.py runs/default-flow/pipeline [--out assets/default-model] \
        [--samples runs/default-eval/samples.png]

The weights are stored as float16 safetensors (half the size in git; `triposg.loading.load_pipeline` loads
them as float32 on CPU), `generation_config.json` is copied as it is, and the model card (`README.md`)
and its figure (`samples.png`) already in the destination are kept; nothing else of the old folder is. The new folder is
written beside the old one and swapped in at the end, so a failure leaves the old model untouched.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from triposg.io import swap_in  # noqa: E402
from triposg.loading import DEFAULT_MODEL_PATH, GenerationDefaults  # noqa: E402
from triposg.pipelines import TripoSGPipeline  # noqa: E402

KEPT_FILES = ("README.md", "samples.png")  # the model card and its figure live beside the weights


def ship(source: Path, out: Path, samples: Path | None = None) -> Path:
    if not (source / "model_index.json").is_file():
        raise FileNotFoundError(f"{source} is not a pipeline folder (no model_index.json); give the pipeline/ "
                                "folder a training run exported, e.g. runs/default-flow/pipeline")
    pipe = TripoSGPipeline.from_pretrained(str(source), dtype=torch.float32).to(dtype=torch.float16)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the model folder is an ordinary repo folder
        pipe.save_pretrained(staging)
        GenerationDefaults.from_folder(source).save(staging)
        for name in KEPT_FILES:
            if (out / name).is_file():
                shutil.copy2(out / name, staging / name)
        if samples is not None:
            shutil.copy2(samples, staging / "samples.png")
        swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the swap succeeded
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="pipeline folder exported by training.train_flow")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--samples", type=Path, default=None, help="samples.png of scripts/evaluate_default_model.py")
    args = parser.parse_args(argv)
    out = ship(args.source, args.out, args.samples)
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    print(f"wrote {out} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
