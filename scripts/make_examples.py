"""Write the demo's example inputs to assets/examples: evaluation-view renders of procedural shapes that no
corpus built with the default seed contains, half with an alpha channel and half on plain backgrounds.

    python scripts/make_examples.py [--out assets/examples] [--resolution 320]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from training.data.procedural import sample_shape
from triposg.rendering import EVALUATION_CAMERA, render

EXAMPLE_FAMILIES = ("chair", "table", "mug", "bottle", "lamp", "rocket", "snowman", "mushroom", "dumbbell",
                    "stool", "torus", "arch", "ring_on_post", "cone")
EXAMPLE_SEED = 990_000  # far above the seeds of default corpora (object i of corpus 0 has seed i // 20)
BACKGROUNDS = ((255, 255, 255), (236, 240, 245), (40, 44, 52), (222, 232, 214))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "assets" / "examples")
    parser.add_argument("--resolution", type=int, default=320)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for index, family in enumerate(EXAMPLE_FAMILIES):
        mesh = sample_shape(family, EXAMPLE_SEED + index).to_mesh(128)
        view = render(mesh, EVALUATION_CAMERA, resolution=args.resolution)[0]
        if index % 2 == 0:  # with alpha: the render mask
            image = Image.fromarray(np.dstack([view.rgb, view.mask.astype(np.uint8) * 255]), "RGBA")
            name = f"{family}_alpha.png"
        else:  # no alpha: the object composited on a plain background
            background = np.array(BACKGROUNDS[index // 2 % len(BACKGROUNDS)], np.uint8)
            rgb = np.where(view.mask[..., None], view.rgb, background)
            image = Image.fromarray(rgb.astype(np.uint8), "RGB")
            name = f"{family}.png"
        image.save(args.out / name, optimize=True)
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
