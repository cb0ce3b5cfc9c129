"""The corpus manifest: one row per object, built from per-object `record.json` files.

Each finished object writes its own record atomically as the last step of its build, so a build killed
at any moment loses at most the objects in flight; the manifest table (`manifest.csv`) is derived from
the records and can always be rebuilt with `collect_manifest`.

Columns: `object_id, source, family, seed, source_path, params, material, split, status, error,
field_path, views_dir, score, flagged, flags, canonicalization, build_seconds` (JSON text for the
nested ones; paths relative to the corpus root).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from triposg.io import write_bytes_atomic

MANIFEST_NAME = "manifest.csv"
RECORD_NAME = "record.json"
OBJECTS_DIR = "objects"
SPLITS = ("train", "val", "test")
JSON_COLUMNS = ("params", "material", "flags", "canonicalization")
COLUMNS = (
    "object_id", "source", "family", "seed", "source_path", "params", "material", "split", "status", "error",
    "field_path", "views_dir", "score", "flagged", "flags", "canonicalization", "build_seconds",
)


def assign_split(object_id: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """Deterministic train/val/test split from a stable hash of the id (independent of build order)."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    digest = hashlib.sha1(object_id.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def object_dir(root: Path, object_id: str) -> Path:
    return Path(root) / OBJECTS_DIR / object_id


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (readers never see half a file)."""
    write_bytes_atomic(path, json.dumps(data, indent=1, default=_json_default).encode("utf-8"))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_record(root: Path, record: dict[str, Any]) -> None:
    """Store one object's manifest row (the last step of building it)."""
    missing = [c for c in ("object_id", "status") if c not in record]
    if missing:
        raise ValueError(f"a record needs {missing}")
    write_json_atomic(object_dir(root, record["object_id"]) / RECORD_NAME, record)


def read_record(root: Path, object_id: str) -> dict[str, Any] | None:
    """The stored record of an object, or None when it was never finished (or its record is unreadable)."""
    path = object_dir(root, object_id) / RECORD_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def collect_manifest(root: Path) -> pd.DataFrame:
    """Gather every object's record under `root` into a table with the manifest columns."""
    rows = []
    for record_path in sorted((Path(root) / OBJECTS_DIR).glob(f"*/{RECORD_NAME}")):
        try:
            record = json.loads(record_path.read_text())
        except json.JSONDecodeError:
            continue  # a record is written atomically; an unreadable one is foreign and is rebuilt on resume
        rows.append({c: _to_cell(record.get(c), c) for c in COLUMNS})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _to_cell(value: Any, column: str) -> Any:
    if column in JSON_COLUMNS:
        return json.dumps(value if value is not None else {}, sort_keys=True, default=_json_default)
    return value


def write_manifest(root: Path, table: pd.DataFrame | None = None) -> Path:
    """Write `manifest.csv` atomically (collecting the records when no table is given)."""
    table = collect_manifest(root) if table is None else table
    path = Path(root) / MANIFEST_NAME
    write_bytes_atomic(path, table.to_csv(index=False).encode("utf-8"))
    return path


def read_manifest(root_or_file: str | os.PathLike) -> pd.DataFrame:
    """Load a manifest (a corpus folder or its CSV); JSON columns are decoded to dicts."""
    path = Path(root_or_file)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no manifest at {path}: build the corpus first (python -m training.data build ...)")
    table = pd.read_csv(path, keep_default_na=True)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} is not a corpus manifest: missing columns {missing}")
    for column in JSON_COLUMNS:
        table[column] = table[column].map(lambda text: json.loads(text) if isinstance(text, str) and text else {})
    table.attrs["root"] = str(path.parent)
    return table


def select(table: pd.DataFrame, split: str | None = None, include_flagged: bool = False) -> pd.DataFrame:
    """Usable rows: built successfully, in `split` (all when None), unflagged unless asked."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rows = table[table["status"] == "ok"]
    if split is not None:
        rows = rows[rows["split"] == split]
    if not include_flagged:
        rows = rows[~rows["flagged"].fillna(False).astype(bool)]
    return rows.reset_index(drop=True)


def select_rows(rows: pd.DataFrame, per_family: int | None = None, limit: int | None = None) -> pd.DataFrame:
    """The first `per_family` rows of each family (a family-balanced sample: manifests list the families in
    blocks, so a plain `limit` would take one or two families), then the first `limit`."""
    if per_family is not None:
        if per_family < 1:
            raise ValueError(f"per_family must be a positive number of objects, got {per_family}")
        rows = rows.groupby("family", sort=False).head(per_family)
    return (rows if limit is None else rows.head(limit)).reset_index(drop=True)
