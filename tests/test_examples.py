"""The demo's shipped example inputs: at least 12, of different families, all usable by preprocessing."""

from pathlib import Path

from triposg.preprocessing import preprocess_image

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def test_examples_cover_families_with_and_without_alpha():
    files = sorted(EXAMPLES.glob("*.png"))
    assert len(files) >= 12
    families = {f.stem.removesuffix("_alpha") for f in files}
    assert len(families) == len(files)
    methods = {preprocess_image(f).method for f in files}
    assert methods == {"alpha", "uniform-background"}
