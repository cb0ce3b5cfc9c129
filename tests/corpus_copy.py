"""A copy of a built test corpus with its manifest's families rewritten (for family-balancing tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from training.data.manifest import MANIFEST_NAME


def corpus_with_families(source: Path, dest: Path, families: list[str]) -> list[str]:
    """Copy the corpus `source` to `dest`, give its manifest rows `families` (in order); return the object ids."""
    shutil.copytree(source, dest)
    table = pd.read_csv(dest / MANIFEST_NAME)
    table["family"] = families
    table.to_csv(dest / MANIFEST_NAME, index=False)
    return table["object_id"].tolist()
