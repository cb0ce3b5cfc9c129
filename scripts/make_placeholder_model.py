"""Write the placeholder default model to assets/default-model (random weights, until the trained one ships).

    python scripts/make_placeholder_model.py [--output assets/default-model]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from triposg.loading import DEFAULT_MODEL_PATH, GenerationDefaults
from triposg.pipelines import make_random_pipeline

CARD = """# Placeholder TripoSG model (random weights)

This folder is a complete `TripoSGPipeline` in the released layout, but its weights are **random**: it
exists so the demo and the command line run offline out of the box until the trained default model
ships. Its VAE decoder is rewired (`triposg.pipelines.random_init.add_sphere_prior`) so every output is a
bumpy sphere; the shape does not depend meaningfully on the input image.

Made by `python scripts/make_placeholder_model.py` (seed 0).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args()
    if args.output.exists():
        shutil.rmtree(args.output)
    pipe = make_random_pipeline(seed=0, width=64, num_layers=3, latent_channels=8, vae_width=32, image_size=112)
    pipe.save_pretrained(args.output)
    GenerationDefaults(num_inference_steps=10, guidance_scale=3.0, num_tokens=256, octree_resolution=128,
                       seed=42).save(args.output)
    (args.output / "README.md").write_text(CARD)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
