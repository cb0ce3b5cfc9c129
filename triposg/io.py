"""Small file helpers shared across the project."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temporary file beside `path` and rename it over `path`: readers never see a partial file,
    and a crash mid-write leaves the previous version intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; the result should read like any written file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def swap_in(staging: Path, out: Path) -> None:
    """Replace the folder `out` by the finished folder `staging` (same parent); if the final rename fails, the old
    folder is put back."""
    if not out.exists():
        staging.rename(out)
        return
    retired = out.with_name(f".{out.name}-old")
    shutil.rmtree(retired, ignore_errors=True)
    out.rename(retired)
    try:
        staging.rename(out)
    except OSError:
        retired.rename(out)
        raise
    shutil.rmtree(retired)
