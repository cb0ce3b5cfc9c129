"""Normal-FID test sets (`load_test_set`): a corpus built by `python -m training.data build` and a split of it,
or a folder or zip of mesh files (OBJ/GLB/PLY/STL/OFF), each normalised into the same frame and rendered at the
evaluation view (its colours, or grey). Zips are extracted by `archives.safe_extract_zip`."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from triposg.io import write_bytes_atomic
from triposg.rendering import normalize_mesh

from ..fid import PathLike
from ..metrics import SurfaceLike
from .archives import ZipLimits, safe_extract_zip

# normalize_mesh margin giving a longest side of 2 * (1 - 0.1) = 1.8: the corpus frame (training.data.fields).
GT_FRAME_MARGIN = 0.1
DEFAULT_MESH_SET_RESOLUTION = 512  # renders of user meshes; above clean-fid's 299 px so it only downsamples
MESH_SET_RENDER_VERSION = 1  # bump when how user meshes are normalised or rendered changes


@dataclass
class TestObject:
    """One test object: its evaluation-view images and, when known, its ground-truth surface.

    `rgb_path`: RGBA PNG of the evaluation view, alpha = the render mask (the generation input).
    `normal_path`: RGB PNG normal map of the same view on white (`triposg.rendering` encoding).
    `reference_path`: the ground-truth surface in the 1.8 frame — a corpus `fields.npz` (its `surface`
    points with normals) or a normalised mesh file — or None.
    `metadata`: where the object came from (corpus family, seed and yaw, or the mesh file).
    `generated_turn_deg`: a turn about +y that brings a generated mesh into the reference's frame before it is
    measured: a corpus shape's yaw when the model was trained with its yaw undone (`corpus_test_set(undo_yaw=True)`).
    """

    __test__ = False  # not a pytest test class despite the name

    object_id: str
    rgb_path: Path
    normal_path: Path
    reference_path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    generated_turn_deg: float = 0.0

    def load_rgb(self) -> Image.Image:
        """The evaluation-view image, RGBA."""
        with Image.open(self.rgb_path) as image:
            return image.convert("RGBA")

    def load_normal(self) -> np.ndarray:
        """The ground-truth normal map, (H, W, 3) uint8."""
        with Image.open(self.normal_path) as image:
            return np.asarray(image.convert("RGB"))

    def load_reference(self) -> SurfaceLike | None:
        """The ground-truth surface for `reconstruction_metrics`: (N, 6) xyz + normals, a mesh, or None."""
        if self.reference_path is None:
            return None
        if self.reference_path.suffix == ".npz":
            from training.data.fields import FieldData

            return FieldData.load(self.reference_path).surface
        from training.data.fields import load_mesh

        return load_mesh(self.reference_path)


@dataclass
class TestSet:
    """The objects of a Normal-FID test set. `name` describes the source for reports; `skipped` lists
    `(source, reason)` for inputs left out (e.g. unreadable mesh files)."""

    __test__ = False

    name: str
    objects: list[TestObject]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[TestObject]:
        return iter(self.objects)


def load_test_set(
    source: PathLike,
    split: str = "test",
    work_dir: PathLike | None = None,
    resolution: int = DEFAULT_MESH_SET_RESOLUTION,
    limit: int | None = None,
    zip_limits: ZipLimits | None = None,
    progress: bool = True,
    per_family: int | None = None,
    undo_yaw: bool = False,
) -> TestSet:
    """A test set from a corpus folder (holding `manifest.csv`; `split` is used), a folder of meshes or a
    zip of meshes (rendered at `resolution` into `work_dir`, required for those). `limit`: first N objects.
    `per_family`: a corpus's first N objects of each family (before `limit`); mesh collections have no families.
    `undo_yaw`: a corpus measured for a model trained with the yaw undone (`corpus_test_set`)."""
    from training.data.manifest import MANIFEST_NAME

    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"test set {path} does not exist: pass a corpus folder (with {MANIFEST_NAME}), a folder of meshes "
            "or a .zip of meshes"
        )
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return corpus_test_set(path, split=split, limit=limit, per_family=per_family, undo_yaw=undo_yaw)
    if undo_yaw:
        raise ValueError(f"{path} is a mesh collection, whose shapes have no yaw to undo: undo_yaw (--undo-yaw) is "
                         "for corpus test sets")
    if per_family is not None:
        raise ValueError(f"{path} is a mesh collection, which has no families: per_family (--per-family) is for "
                         "corpus test sets; use limit (--limit) instead")
    if work_dir is None:
        raise ValueError(f"{path} is a mesh collection: pass work_dir, where its renders are stored")
    return mesh_test_set(path, work_dir, resolution=resolution, limit=limit, zip_limits=zip_limits,
                         progress=progress)


def corpus_test_set(
    root: PathLike, split: str | None = "test", limit: int | None = None, include_flagged: bool = False,
    per_family: int | None = None, undo_yaw: bool = False,
) -> TestSet:
    """The usable objects of a built corpus in `split` (None = all), with their stored evaluation views and
    field data (`fields.npz` surface points serve as the ground-truth surface). `per_family`: only the first
    N objects of each family (a family-balanced sample; manifests list families in blocks, so a plain `limit`
    takes one or two families), applied before `limit`. `undo_yaw`: for a model trained on the shapes with their
    yaw undone (`training.data.procedural.undo_yaw`), whose meshes are turned by each shape's yaw before they
    are measured (the corpus frame the references and normal maps are in)."""
    from training.data.manifest import read_manifest, select, select_rows

    root = Path(root)
    table = read_manifest(root)
    rows = select(table, split, include_flagged=include_flagged)
    if rows.empty:
        present = sorted(set(table.loc[table["status"] == "ok", "split"].dropna()))
        raise ValueError(
            f"the corpus {root} has no usable objects in split {split!r} (splits with objects: "
            f"{', '.join(present) or 'none'}); build more objects or choose another split with --split"
        )
    rows = select_rows(rows, per_family, None if limit is None else _check_limit(limit))
    objects = []
    for row in rows.itertuples(index=False):
        views = root / row.views_dir
        rgb, normal = views / "eval_rgb.png", views / "eval_normal.png"
        for required in (rgb, normal):
            if not required.is_file():
                raise FileNotFoundError(f"the corpus object {row.object_id} has no {required.name} in {views}; "
                                        "rebuild it (delete its folder and run the build again)")
        reference = root / row.field_path if isinstance(row.field_path, str) and row.field_path else None
        yaw_deg = float(row.params.get("yaw_deg", 0.0)) if isinstance(row.params, dict) else 0.0
        metadata = {"source": row.source, "family": row.family, "seed": row.seed, "source_path": row.source_path,
                    "yaw_deg": yaw_deg}
        metadata = {key: _plain(value) for key, value in metadata.items()}
        objects.append(TestObject(row.object_id, rgb, normal, reference, metadata, yaw_deg if undo_yaw else 0.0))
    balance = f", {per_family} per family" if per_family is not None else ""
    frame = ", yaw undone" if undo_yaw else ""
    return TestSet(f"corpus {root} (split {split or 'all'}{balance}{frame})", objects)


def mesh_test_set(
    source: PathLike,
    work_dir: PathLike,
    resolution: int = DEFAULT_MESH_SET_RESOLUTION,
    limit: int | None = None,
    zip_limits: ZipLimits | None = None,
    progress: bool = True,
) -> TestSet:
    """A test set from a folder or zip of mesh files: each mesh is normalised into the 1.8 frame and its
    evaluation view rendered (RGB with its own colours, or grey; normal map) into `work_dir/objects/<id>/`.

    A zip is extracted safely (`safe_extract_zip`) into `work_dir/extracted`. Meshes are taken as they are
    oriented (y-up, front towards +z). Renders are reused while the mesh bytes and `resolution` are
    unchanged. Unreadable meshes are skipped and listed in `TestSet.skipped`.
    """
    from training.data.build import mesh_object_id
    from training.data.fields import MESH_EXTENSIONS, load_mesh
    from training.data.views import render_object_views

    source, work_dir = Path(source).expanduser(), Path(work_dir)
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise ValueError(f"{source} is neither a folder nor a zip archive of meshes")
        root = work_dir / "extracted"
        if root.exists():
            shutil.rmtree(root)  # our own folder; stale files from another archive must not leak in
        safe_extract_zip(source, root, zip_limits)
    elif source.is_dir():
        root = source
    else:
        raise FileNotFoundError(f"mesh collection {source} does not exist")

    own_files = work_dir.resolve()  # renders written inside the mesh folder must not become test meshes
    paths = sorted(
        path for path in root.rglob("*")
        if path.suffix.lower() in MESH_EXTENSIONS and path.is_file()
        and not any(part.startswith(".") or part == "__MACOSX" for part in path.relative_to(root).parts)
        and (root == work_dir / "extracted" or not path.resolve().is_relative_to(own_files))
    )
    if not paths:
        raise ValueError(f"no mesh files ({', '.join(MESH_EXTENSIONS)}) found in {source}")
    if limit is not None:
        paths = paths[:_check_limit(limit)]

    objects, skipped = [], []
    for path in tqdm(paths, desc="rendering test meshes", unit="mesh", disable=not progress):
        object_id = mesh_object_id(path, root)
        folder = work_dir / "objects" / object_id
        rgb, normal, reference = folder / "eval_rgb.png", folder / "eval_normal.png", folder / "reference.ply"
        stamp = {"version": MESH_SET_RENDER_VERSION, "mesh_sha256": _sha256_file(path), "resolution": resolution}
        stamp_path = folder / "source.json"
        fresh = all(p.is_file() for p in (rgb, normal, reference, stamp_path))
        if not fresh or json.loads(stamp_path.read_text()) != stamp:
            try:
                mesh = normalize_mesh(load_mesh(path), margin=GT_FRAME_MARGIN)
            except ValueError as error:
                skipped.append((str(path.relative_to(root)), str(error)))
                continue
            render_object_views(mesh, folder, [], resolution)
            write_bytes_atomic(reference, mesh.export(file_type="ply"))
            write_bytes_atomic(stamp_path, json.dumps(stamp).encode())
        objects.append(TestObject(object_id, rgb, normal, reference,
                                  {"source": "meshes", "source_path": str(path.relative_to(root))}))
    if not objects:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped[:5])
        raise ValueError(f"none of the meshes in {source} could be used ({reasons})")
    return TestSet(f"meshes {source}", objects, skipped)


def _check_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return int(limit)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """A manifest cell as a JSON-friendly Python value (NaN → None, numpy scalars → Python)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value
