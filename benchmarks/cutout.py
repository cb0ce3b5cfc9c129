"""Background removal on the cut-out test set: IoU with the true mask per background and method, and time.

    python benchmarks/cutout.py [--size 384] [--backgrounds grass,brick,...] [--stress] [--methods auto,grabcut]

The set (`evaluation.cutout`): every demo example render composited onto each scikit-image background.
Methods are `preprocess_image`'s background choices, run offline (no download), mapped back to the input
frame through their bounding box: "auto" is the chain a user gets; "grabcut" the offline photo cut-out;
"uniform" the plain-background method (refused on a background that is not plain: counted as refused,
IoU 0). `--stress` adds the stress cases (photographs whose own content sits where the object goes).
Prints a table (mean and minimum IoU, refused, seconds per image) and the goal line: mean IoU ≥ 0.85 over the
backgrounds proper, none refused.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation.cutout import BACKGROUNDS, STRESS_CASES, cutout_cases, mask_iou
from triposg.preprocessing import ImageError, preprocess_image


def input_frame_mask(image: np.ndarray, method: str) -> np.ndarray:
    """The method's mask in the input's frame (the crop undone), thresholded at 0.5."""
    result = preprocess_image(image, background=method, allow_download=False)
    x0, y0, x1, y1 = result.bbox
    side = result.mask.width
    top, left = (side - (y1 - y0)) // 2, (side - (x1 - x0)) // 2
    crop = np.asarray(result.mask)[top:top + y1 - y0, left:left + x1 - x0] > 127
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[y0:y1, x0:x1] = crop
    return mask


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--backgrounds", default=None, help="comma-separated; default every background proper")
    parser.add_argument("--stress", action="store_true", help="add the stress cases")
    parser.add_argument("--methods", default="auto,grabcut,uniform")
    args = parser.parse_args(argv)
    names = args.backgrounds.split(",") if args.backgrounds else [n for n in BACKGROUNDS if n not in STRESS_CASES]
    if args.stress:
        names += [n for n in STRESS_CASES if n not in names]
    cases = list(cutout_cases(names, size=args.size))
    methods = args.methods.split(",")
    print(f"{len(cases)} images ({len(names)} backgrounds × {len(cases) // len(names)} objects, {args.size} px)\n")
    print(f"{'background':12s}" + "".join(f"{m + ' mean':>14s}{'min':>7s}{'refused':>9s}" for m in methods))
    scores = {m: {n: [] for n in names} for m in methods}
    refused = {m: {n: 0 for n in names} for m in methods}
    seconds = {m: [] for m in methods}
    for case in cases:
        for method in methods:
            start = time.perf_counter()
            try:
                iou = mask_iou(input_frame_mask(case.image, method), case.mask)
            except ImageError:
                iou, refused[method][case.background] = 0.0, refused[method][case.background] + 1
            seconds[method].append(time.perf_counter() - start)
            scores[method][case.background].append(iou)
    for name in names:
        row = f"{name + (' *' if name in STRESS_CASES else ''):12s}"
        for method in methods:
            values = scores[method][name]
            row += f"{statistics.mean(values):14.3f}{min(values):7.3f}{refused[method][name]:9d}"
        print(row)
    print(f"{'s / image':12s}" + "".join(f"{statistics.median(seconds[m]):14.2f}{'':16s}" for m in methods))
    proper = [n for n in names if n not in STRESS_CASES]
    for method in methods:
        values = [v for n in proper for v in scores[method][n]]
        count = sum(refused[method][n] for n in proper)
        verdict = "met" if values and statistics.mean(values) >= 0.85 and count == 0 else "not met"
        print(f"goal (mean IoU ≥ 0.85 over {len(proper)} backgrounds proper, none refused) with {method}: "
              f"mean {statistics.mean(values):.3f}, {count} refused → {verdict}")
    if args.stress:
        print("* stress case: the photograph's own content sits where the object goes; reported, not in the goal")


if __name__ == "__main__":
    main()
