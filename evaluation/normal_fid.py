"""Normal-FID (paper §5.2.2): generate a shape from each test object's image, compare normal maps.

The protocol, as `run_normal_fid` runs it:

1. For each test object take its ground-truth RGB image and normal map from the evaluation view
   (`triposg.rendering.EVALUATION_CAMERA`: front, 50 mm, 10° elevation).
2. Generate a shape from the RGB image with the model/variant under test (a pipeline and its sampling
   settings, or any injected generator), or take it from the generation cache.
3. Normalise the generated mesh into the ground truth's frame: bounding box centred at the origin,
   longest side 1.8 (`normalize_mesh(mesh, margin=0.1)`, the frame `training.data` builds objects in).
   Why: the conditioning image fixes neither absolute size nor position (preprocessing crops the
   foreground and pads it to a fixed ratio), so a generated shape is only determined up to scale and
   translation; the ground truth was put into its frame by exactly this bounding-box rule, so applying
   the same rule to the generated mesh removes the unobservable part and nothing else. Rotation is not
   normalised: the model must produce the front-facing, y-up orientation, and getting it wrong counts.
4. Render its normal map from the same camera at the ground truth's resolution, with the same renderer
   settings (`triposg.rendering.render` defaults) the ground truth was rendered with.
5. Over the two sets of normal maps compute FID and KID with clean-fid's Inception features
   (`evaluation.fid.compute_fid`, only with a local weights file) and Fréchet distances over other named
   encoders (e.g. "FD-DINOv2"), always labelled with the encoder, never called FID.
6. Per object, reconstruction metrics against the ground-truth surface when the test set has one
   (`evaluation.metrics.reconstruction_metrics`: Chamfer, F-score at `recon_threshold`, normal
   consistency), measured in the 1.8 frame: the default threshold 0.05 is 2.8 % of the longest side.

A generation that fails (e.g. no surface found) counts as an all-background normal map in the
distances, so a model cannot improve its score by failing; its reconstruction metrics are left empty
and the failure is counted in the summary.

Several GPUs: under `accelerate launch --num_processes N` each process generates and renders every N-th
object on its own device; the main process computes the distances once all are done (same files, same numbers).

Outputs in `out_dir`: `per_object.csv`, `summary.json`, `normals/ground_truth/<id>.png`,
`normals/generated/<id>.png` (the two image sets the distances are computed on) and `comparison.png`
(ground truth above generated for the first objects).

Test sets (`load_test_set`): a corpus built by `python -m training.data build` and a split of it, or a
folder or zip of mesh files (OBJ/GLB/PLY/STL/OFF), each normalised into the same frame and rendered at
the evaluation view (its colours, or grey). Zips are extracted by `safe_extract_zip`, which refuses
absolute paths, `..` traversal, links, too many members, too much uncompressed data and members that
decompress suspiciously well (zip bombs).

Generation cache (`GenerationCache`): one entry per (model identity, sampling settings, runtime
device/dtype, object id, input image bytes), the SHA-256 of those as canonical JSON. The model identity
(`model_identity`) of a local folder is its resolved path, a hash of the contents of its config files and
a hash of its weight files' names, sizes and modification times (cheap, and a retrained checkpoint saved
over the old one changes it); of a hub id, the id and the commit of the locally cached snapshot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import trimesh
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object
from PIL import Image
from tqdm.auto import tqdm

from triposg.geometry import EmptySurfaceError
from triposg.io import write_bytes_atomic
from triposg.loading import GenerationDefaults, default_model_path, load_pipeline
from triposg.rendering import EVALUATION_CAMERA, normalize_mesh, render, save_image_grid

from .fid import (
    BatchFeatureExtractor,
    MissingInceptionWeightsError,
    compute_feature_fd,
    compute_fid,
    dinov2_extractor,
    pixel_extractor,
    resolve_inception_weights,
)
from .metrics import SurfaceLike, largest_piece_share, reconstruction_metrics

if TYPE_CHECKING:
    from triposg.pipelines import TripoSGPipeline

__all__ = [
    "GT_FRAME_MARGIN",
    "GenerationCache",
    "ModelVariant",
    "NamedExtractor",
    "NormalFidConfig",
    "NormalFidResult",
    "TestObject",
    "TestSet",
    "UnsafeArchiveError",
    "ZipLimits",
    "corpus_test_set",
    "dinov2_named_extractor",
    "format_summary",
    "load_model_variant",
    "load_test_set",
    "mesh_test_set",
    "model_identity",
    "pipeline_variant",
    "pixel_named_extractor",
    "run_normal_fid",
    "safe_extract_zip",
]

PathLike = str | os.PathLike
# normalize_mesh margin giving a longest side of 2 * (1 - 0.1) = 1.8: the corpus frame (training.data.fields).
GT_FRAME_MARGIN = 0.1
DEFAULT_MESH_SET_RESOLUTION = 512  # renders of user meshes; above clean-fid's 299 px so it only downsamples
CACHE_FORMAT_VERSION = 1  # bump when what a cache entry holds changes meaning
COMPARISON_GRID_OBJECTS = 8  # objects shown in comparison.png
MESH_SET_RENDER_VERSION = 1  # bump when how user meshes are normalised or rendered changes
GT_DIR = Path("normals") / "ground_truth"
GENERATED_DIR = Path("normals") / "generated"
HUB_ID_PATTERN = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".txt")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx")

# The evaluation image (RGBA, alpha = object mask) and its test object → a mesh in any frame.
ShapeGenerator = Callable[[Image.Image, "TestObject"], trimesh.Trimesh]


# ----------------------------------------------------------------------------------------------
# Test sets
# ----------------------------------------------------------------------------------------------


@dataclass
class TestObject:
    """One test object: its evaluation-view images and, when known, its ground-truth surface.

    `rgb_path`: RGBA PNG of the evaluation view, alpha = the render mask (the generation input).
    `normal_path`: RGB PNG normal map of the same view on white (`triposg.rendering` encoding).
    `reference_path`: the ground-truth surface in the 1.8 frame — a corpus `fields.npz` (its `surface`
    points with normals) or a normalised mesh file — or None.
    `metadata`: where the object came from (corpus family and seed, or the mesh file).
    """

    __test__ = False  # not a pytest test class despite the name

    object_id: str
    rgb_path: Path
    normal_path: Path
    reference_path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

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
) -> TestSet:
    """A test set from a corpus folder (holding `manifest.csv`; `split` is used), a folder of meshes or a
    zip of meshes (rendered at `resolution` into `work_dir`, required for those). `limit`: first N objects."""
    from training.data.manifest import MANIFEST_NAME

    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"test set {path} does not exist: pass a corpus folder (with {MANIFEST_NAME}), a folder of meshes "
            "or a .zip of meshes"
        )
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return corpus_test_set(path, split=split, limit=limit)
    if work_dir is None:
        raise ValueError(f"{path} is a mesh collection: pass work_dir, where its renders are stored")
    return mesh_test_set(path, work_dir, resolution=resolution, limit=limit, zip_limits=zip_limits,
                         progress=progress)


def corpus_test_set(
    root: PathLike, split: str | None = "test", limit: int | None = None, include_flagged: bool = False,
    per_family: int | None = None,
) -> TestSet:
    """The usable objects of a built corpus in `split` (None = all), with their stored evaluation views and
    field data (`fields.npz` surface points serve as the ground-truth surface). `per_family`: only the first
    N objects of each family (a family-balanced sample; manifests list families in blocks, so a plain `limit`
    takes one or two families), applied before `limit`."""
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
        metadata = {"source": row.source, "family": row.family, "seed": row.seed, "source_path": row.source_path}
        metadata = {key: _plain(value) for key, value in metadata.items()}
        objects.append(TestObject(row.object_id, rgb, normal, reference, metadata))
    balance = f", {per_family} per family" if per_family is not None else ""
    return TestSet(f"corpus {root} (split {split or 'all'}{balance})", objects)


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


# ----------------------------------------------------------------------------------------------
# Safe zip extraction
# ----------------------------------------------------------------------------------------------


class UnsafeArchiveError(ValueError):
    """A zip archive was refused: a member would land outside the target folder, is a link, or the archive
    is too large, has too many members, or decompresses like a zip bomb."""


@dataclass(frozen=True)
class ZipLimits:
    """What `safe_extract_zip` accepts."""

    max_members: int = 10_000  # entries incl. folders; meshes plus their textures stay far below
    max_total_bytes: int = 8 * 2**30  # uncompressed sum; a large mesh test set is a few GB
    max_ratio: float = 200.0  # uncompressed / compressed per member: meshes compress 2-20x, bombs 1000x+
    ratio_min_bytes: int = 2**20  # members smaller than this skip the ratio test (tiny files compress oddly)


def safe_extract_zip(archive_path: PathLike, dest: PathLike, limits: ZipLimits | None = None) -> list[Path]:
    """Extract the regular files of a zip into `dest` after checking every member; returns their paths.

    Refused (`UnsafeArchiveError`, before anything is written): absolute names or drive letters, `..`
    components, duplicate names, symbolic links, more than `limits.max_members` members, a declared
    uncompressed total above `limits.max_total_bytes`, or a member over `limits.ratio_min_bytes` whose
    size is more than `limits.max_ratio` times its compressed size. While extracting, a member that
    yields more bytes than it declares is refused too (the header lied) and the partial file removed.
    """
    limits = limits or ZipLimits()
    archive_path, dest = Path(archive_path), Path(dest)
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{archive_path} is not a readable zip archive: {error}") from error
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise UnsafeArchiveError(f"{archive_path} has {len(members)} members, more than the limit of "
                                     f"{limits.max_members}; split the test set or raise ZipLimits.max_members")
        plan, seen, total = [], set(), 0
        for info in members:
            relative = _safe_member_name(info.filename, archive_path)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(f"{archive_path}: member {info.filename!r} is a symbolic link; "
                                         "links are refused, store the files themselves")
            if relative in seen:
                raise UnsafeArchiveError(f"{archive_path}: member {info.filename!r} appears twice")
            seen.add(relative)
            if info.is_dir():
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
                raise UnsafeArchiveError(
                    f"{archive_path}: member {info.filename!r} expands {ratio:.0f}x ({info.file_size} bytes), above "
                    f"the limit of {limits.max_ratio:.0f}x; this looks like a zip bomb"
                )
            total += info.file_size
            if total > limits.max_total_bytes:
                raise UnsafeArchiveError(
                    f"{archive_path} holds more than {limits.max_total_bytes} bytes uncompressed (limit "
                    "ZipLimits.max_total_bytes); extract it yourself if you trust it and pass the folder"
                )
            plan.append((info, dest.joinpath(*relative.parts)))

        written = []
        dest.mkdir(parents=True, exist_ok=True)
        for info, target in plan:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                _copy_member(archive, info, target)
            except RuntimeError as error:  # encrypted members
                raise ValueError(f"{archive_path}: cannot extract {info.filename!r}: {error}") from error
            written.append(target)
    return written


def _safe_member_name(name: str, archive_path: Path) -> PurePosixPath:
    """The member's relative path, or `UnsafeArchiveError` if it could escape the target folder."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"[A-Za-z]:", normalised):
        raise UnsafeArchiveError(f"{archive_path}: member {name!r} has an absolute path; refused")
    path = PurePosixPath(normalised)
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive_path}: member {name!r} climbs out of the folder with '..'; refused")
    if "\0" in normalised or not path.parts:
        raise UnsafeArchiveError(f"{archive_path}: member {name!r} has an invalid name")
    return path


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    chunk_size = 1 << 20
    copied = 0
    with archive.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(chunk_size):
            copied += len(chunk)
            if copied > info.file_size:
                sink.close()
                target.unlink(missing_ok=True)
                raise UnsafeArchiveError(f"member {info.filename!r} decompresses to more than the {info.file_size} "
                                         "bytes its header declares; refused")
            sink.write(chunk)


# ----------------------------------------------------------------------------------------------
# Models under test and the generation cache
# ----------------------------------------------------------------------------------------------


@dataclass
class ModelVariant:
    """A model/variant under evaluation: `generate(image, test_object) -> mesh` and the JSON-serialisable
    `identity` (model identity, sampling settings, runtime) that keys its outputs in the cache."""

    name: str
    generate: ShapeGenerator
    identity: dict[str, Any]


@dataclass(frozen=True)
class NamedExtractor:
    """An image encoder for a Fréchet distance: `name` labels the metric ("FD-DINOv2" → `fd_dinov2`),
    `extract` maps uint8 (B, H, W, 3) images to (B, D) features, `source` says whose weights it uses."""

    name: str
    extract: BatchFeatureExtractor
    source: str


def model_identity(model: PathLike | None) -> dict[str, Any]:
    """What identifies a model's outputs (see the module docstring): for a local pipeline folder
    {"kind": "local", "path", "config_sha256", "weights_stat_sha256"}; for a hub id {"kind": "hub", "id",
    "revision"} (the locally cached commit, or None). None = the embedded default model.
    Raises `FileNotFoundError` when `model` is neither an existing pipeline folder nor a hub id."""
    path = default_model_path() if model is None else Path(model).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(f"{path} is not a pipeline folder: it has no model_index.json")
        configs, weights = hashlib.sha256(), hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            relative = file.relative_to(path).as_posix()
            if file.suffix.lower() in CONFIG_SUFFIXES:
                configs.update(relative.encode() + b"\0" + file.read_bytes() + b"\0")
            elif file.suffix.lower() in WEIGHT_SUFFIXES:
                info = file.stat()
                weights.update(f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
        return {"kind": "local", "path": str(path.resolve()), "config_sha256": configs.hexdigest(),
                "weights_stat_sha256": weights.hexdigest()}
    if HUB_ID_PATTERN.fullmatch(str(model)):
        return {"kind": "hub", "id": str(model), "revision": _cached_hub_revision(str(model))}
    raise FileNotFoundError(f"model {str(model)!r} not found: it is neither an existing pipeline folder "
                            "(with model_index.json) nor a hub id like owner/name")


def pipeline_variant(
    pipe: TripoSGPipeline, settings: GenerationDefaults, identity: dict[str, Any], name: str = "model",
    **call_kwargs: Any,
) -> ModelVariant:
    """A `ModelVariant` generating with a `TripoSGPipeline` and `settings` (the same seed for every object).
    `identity` is the model's (`model_identity`); settings, the extra pipeline arguments `call_kwargs` (e.g. an
    `extraction` method), device and dtype are added to it. The one place a pipeline becomes a variant: the
    app's variant tables (`evaluation.variants.spec_model_variant`) and the baselines build on it."""

    def generate(image: Image.Image, test_object: TestObject) -> trimesh.Trimesh:
        output = pipe(
            image, num_inference_steps=settings.num_inference_steps, guidance_scale=settings.guidance_scale,
            num_tokens=settings.num_tokens, octree_resolution=settings.octree_resolution, seed=settings.seed,
            query_precision=settings.query_precision, preprocess=True, **call_kwargs,
        )
        return output.meshes[0]

    runtime = {"device": pipe.device.type, "dtype": str(pipe.dtype).removeprefix("torch.")}
    full_identity = {"model": identity, "sampling": {**dataclasses.asdict(settings), **call_kwargs}, "runtime": runtime}
    return ModelVariant(name, generate, full_identity)


def load_model_variant(
    model: PathLike | None, device: str | None = None, **overrides: Any
) -> tuple[ModelVariant, TripoSGPipeline]:
    """Load a pipeline (folder, hub id, or None = the embedded default) as a `ModelVariant`.

    `overrides`: `GenerationDefaults` fields (num_inference_steps, guidance_scale, num_tokens,
    octree_resolution, seed); None values keep the model's own defaults. Returns (variant, pipeline).
    """
    identity = model_identity(model)  # before loading: a missing path fails with a clear message
    pipe, defaults = load_pipeline(model, device)
    pipe.set_progress_bar_config(disable=True)
    settings = dataclasses.replace(defaults, **{key: value for key, value in overrides.items() if value is not None})
    return pipeline_variant(pipe, settings, identity, name=str(model) if model is not None else "default"), pipe


def dinov2_named_extractor(pipe: TripoSGPipeline, source: str) -> NamedExtractor:
    """FD-DINOv2 over the DINOv2 encoder of a loaded pipeline (`evaluation.fid.dinov2_extractor`)."""
    return NamedExtractor("FD-DINOv2", dinov2_extractor(pipe), f"DINOv2 encoder of {source}")


def pixel_named_extractor(size: int = 16) -> NamedExtractor:
    """FD-pixels<size> over the normal maps themselves, downsampled (`evaluation.fid.pixel_extractor`)."""
    return NamedExtractor(f"FD-pixels{size}", pixel_extractor(size), f"no encoder: {size}x{size} RGB pixels")


@dataclass
class CachedGeneration:
    """A cache entry: the generated mesh, or the error of a deterministic failure (then `mesh` is None)."""

    mesh: trimesh.Trimesh | None
    error: str | None
    seconds: float


class GenerationCache:
    """Generated meshes on disk under `root/<key[:2]>/<key>.npz` (+ `.json` with what the key was made of).

    Meshes are stored exactly (float vertices, int faces), before normalisation. Failures that repeat
    deterministically (no surface found) are stored too, so a re-run does not retry them.
    """

    def __init__(self, root: PathLike):
        self.root = Path(root)

    @staticmethod
    def key(identity: dict[str, Any], object_id: str, image_bytes: bytes) -> str:
        """SHA-256 of canonical JSON of (cache format, variant identity, object id, SHA-256 of the image bytes)."""
        material = {"format": CACHE_FORMAT_VERSION, "variant": identity, "object_id": object_id,
                    "image_sha256": hashlib.sha256(image_bytes).hexdigest()}
        return hashlib.sha256(_canonical_json(material).encode()).hexdigest()

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / f"{key}{suffix}"

    def load(self, key: str) -> CachedGeneration | None:
        """The stored entry, or None when missing or unreadable (then it is regenerated)."""
        try:
            record = json.loads(self._path(key, ".json").read_text())
            if record.get("error") is not None:
                return CachedGeneration(None, record["error"], record.get("seconds", 0.0))
            with np.load(self._path(key, ".npz"), allow_pickle=False) as stored:
                mesh = trimesh.Trimesh(vertices=stored["vertices"], faces=stored["faces"], process=False)
            return CachedGeneration(mesh, None, record.get("seconds", 0.0))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None

    def store(self, key: str, entry: CachedGeneration, description: dict[str, Any]) -> None:
        """Write the mesh first and the record last, so a record always points at a complete mesh."""
        if entry.mesh is not None:
            buffer = io.BytesIO()
            np.savez(buffer, vertices=np.asarray(entry.mesh.vertices), faces=np.asarray(entry.mesh.faces))
            write_bytes_atomic(self._path(key, ".npz"), buffer.getvalue())
        record = {**description, "error": entry.error, "seconds": entry.seconds}
        write_bytes_atomic(self._path(key, ".json"), json.dumps(record, indent=1, default=str).encode())


# ----------------------------------------------------------------------------------------------
# The runner
# ----------------------------------------------------------------------------------------------


@dataclass
class NormalFidConfig:
    """How the distances and reconstruction metrics are computed."""

    # "auto": FID/KID when Inception weights are found, else reported unavailable; "required": fail without
    # them (checked before any generation); "off": skip.
    fid: Literal["auto", "required", "off"] = "auto"
    inception_weights: PathLike | None = None  # local inception-2015-12-05.pt; default $TRIPOSG_INCEPTION_WEIGHTS
    recon_threshold: float = 0.05  # F-score threshold in the 1.8 frame (2.8 % of the longest side)
    recon_num_points: int = 20_000  # samples per surface; the corpus stores 20480 ground-truth points
    seed: int = 0  # surface sampling and KID subsets
    kid_subsets: int = 100  # clean-fid's default
    device: str | None = None  # for Inception features; None = CUDA when available

    def __post_init__(self) -> None:
        if self.fid not in ("auto", "required", "off"):
            raise ValueError(f"fid must be 'auto', 'required' or 'off', got {self.fid!r}")
        if not self.recon_threshold > 0 or self.recon_num_points < 1:
            raise ValueError("recon_threshold and recon_num_points must be positive")


@dataclass
class NormalFidResult:
    """`summary`: everything in `summary.json` (flat `summary["metrics"]` for tables and model cards);
    `per_object`: one row per test object (as `per_object.csv`); `out_dir`: where the files are."""

    summary: dict[str, Any]
    per_object: pd.DataFrame
    out_dir: Path


RECON_COLUMNS = ("chamfer", "f_score", "precision", "recall", "normal_consistency")


def run_normal_fid(
    test_set: TestSet,
    variant: ModelVariant,
    out_dir: PathLike,
    config: NormalFidConfig | None = None,
    extractors: Sequence[NamedExtractor] = (),
    cache: GenerationCache | None = None,
    progress: bool = True,
) -> NormalFidResult:
    """Run the Normal-FID protocol (module docstring) of `variant` on `test_set`; write the outputs.

    `extractors`: encoders for labelled Fréchet distances besides FID (e.g. FD-DINOv2); `cache`: where
    generated meshes are reused from and stored (None = always generate). Raises `ValueError` for a test
    set with fewer than 2 objects, `MissingInceptionWeightsError` when `config.fid == "required"` and no
    weights are found, and `RuntimeError` when every generation fails.

    Under `accelerate launch` (or torchrun) with N processes, each evaluates every N-th object with its own
    `variant` (loaded on its own device) and writes into the shared `out_dir`; the main process computes the
    distances and writes the summary, and every process returns the whole result.
    """
    config = config or NormalFidConfig()
    start = time.perf_counter()
    if len(test_set) < 2:
        raise ValueError(f"Normal-FID needs at least 2 test objects, {test_set.name} has {len(test_set)}")
    try:
        _canonical_json(variant.identity)
    except TypeError as error:
        raise ValueError(f"the identity of {variant.name!r} must be JSON-serialisable: {error}") from error
    if config.fid == "required":
        resolve_inception_weights(config.inception_weights)  # fail before hours of generation
    state = PartialState()  # one process, or several under accelerate launch (docstring)
    out_dir = Path(out_dir)
    if state.is_main_process:
        for folder in (GT_DIR, GENERATED_DIR):  # only our own folders: stale images would enter the distances
            if (out_dir / folder).exists():
                shutil.rmtree(out_dir / folder)
            (out_dir / folder).mkdir(parents=True)
    state.wait_for_everyone()
    share = range(state.process_index, len(test_set), state.num_processes)
    rows = _evaluate_objects([test_set.objects[i] for i in share], variant, out_dir, config, cache,
                             progress=progress and state.is_main_process)
    indexed_rows = sorted(gather_object(list(zip(share, rows))), key=lambda pair: pair[0])  # test-set order
    rows = [row for _, row in indexed_rows]

    counts = {"generated": sum(not row["cached"] for row in rows), "cached": sum(row["cached"] for row in rows),
              "failed": sum(row["status"] == "failed" for row in rows)}
    per_object = pd.DataFrame(rows)
    if state.is_main_process:
        per_object.to_csv(out_dir / "per_object.csv", index=False)
    if counts["failed"] == len(rows):
        raise RuntimeError(f"every generation failed for {variant.name!r} (errors in {out_dir / 'per_object.csv'}); "
                           f"first error: {rows[0]['error']}")

    summary = None
    if state.is_main_process:
        distances = _distances(out_dir, config, extractors)
        summary = _summary(test_set, variant, config, per_object, distances, counts, time.perf_counter() - start)
        write_bytes_atomic(out_dir / "summary.json", json.dumps(summary, indent=1, default=_json_default).encode())
        grid_images = _comparison_images(out_dir, rows[:COMPARISON_GRID_OBJECTS])
        _save_comparison_grid(grid_images, out_dir / "comparison.png")
    summary = broadcast_object_list([summary])[0]  # every process returns the whole result
    return NormalFidResult(summary, per_object, out_dir)


def _evaluate_objects(
    objects: Sequence[TestObject], variant: ModelVariant, out_dir: Path, config: NormalFidConfig,
    cache: GenerationCache | None, progress: bool,
) -> list[dict[str, Any]]:
    """`_evaluate_object` over `objects` with a progress bar; returns their rows in order."""
    rows, cached, failed = [], 0, 0
    bar = tqdm(objects, desc=f"Normal-FID {variant.name}", unit="obj", disable=not progress)
    for test_object in bar:
        row = _evaluate_object(test_object, variant, out_dir, config, cache)
        rows.append(row)
        cached += row["cached"]
        failed += row["status"] == "failed"
        if row["status"] == "failed":
            tqdm.write(f"generation failed for {test_object.object_id}: {row['error']}")
        bar.set_postfix(cached=cached, failed=failed)
    return rows


def _evaluate_object(
    test_object: TestObject, variant: ModelVariant, out_dir: Path, config: NormalFidConfig,
    cache: GenerationCache | None,
) -> dict[str, Any]:
    """Generate (or reuse), normalise, render and measure one object; returns its row (the two normal maps
    are written to `out_dir`)."""
    image_bytes = test_object.rgb_path.read_bytes()
    gt_normal = test_object.load_normal()
    key = GenerationCache.key(variant.identity, test_object.object_id, image_bytes)
    entry = cache.load(key) if cache is not None else None
    cached = entry is not None
    if entry is None:
        entry, repeatable = _generate(variant, test_object, image_bytes)
        if cache is not None and repeatable:
            cache.store(key, entry, {"variant": variant.identity, "object_id": test_object.object_id})

    row: dict[str, Any] = {"object_id": test_object.object_id, "family": test_object.metadata.get("family"),
                           "status": "ok", "error": None, "cached": cached, "generation_seconds": entry.seconds,
                           "cache_key": key}
    row.update({column: math.nan for column in (*RECON_COLUMNS, "largest_piece")})
    if entry.mesh is not None:
        mesh = normalize_mesh(entry.mesh, margin=GT_FRAME_MARGIN)
        row["largest_piece"] = largest_piece_share(mesh)
        generated_normal = render(mesh, EVALUATION_CAMERA, resolution=gt_normal.shape[0])[0].normal
        reference = test_object.load_reference()
        if reference is not None:
            metrics = reconstruction_metrics(mesh, reference, num_points=config.recon_num_points,
                                             threshold=config.recon_threshold, seed=config.seed)
            row.update({column: metrics[column] for column in RECON_COLUMNS})
    else:  # a failure counts as an empty (all-background) normal map
        generated_normal = np.full_like(gt_normal, 255)
        row.update(status="failed", error=entry.error)

    name = f"{test_object.object_id}.png"
    shutil.copyfile(test_object.normal_path, out_dir / GT_DIR / name)
    Image.fromarray(generated_normal).save(out_dir / GENERATED_DIR / name)
    row.update(gt_normal=(GT_DIR / name).as_posix(), generated_normal=(GENERATED_DIR / name).as_posix())
    return row


def _generate(
    variant: ModelVariant, test_object: TestObject, image_bytes: bytes
) -> tuple[CachedGeneration, bool]:
    """Run the generator; returns the entry and whether it may be cached (a mesh, or a failure that the same
    inputs reproduce: no surface found). Other failures (out of memory, a bug) are retried next run."""
    start = time.perf_counter()
    with Image.open(io.BytesIO(image_bytes)) as image:
        image = image.convert("RGBA")
    try:
        mesh = variant.generate(image, test_object)
        if isinstance(mesh, trimesh.Scene):
            mesh = mesh.to_mesh()
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            raise ValueError(f"the generator returned {type(mesh).__name__} without faces, not a mesh")
        if not np.isfinite(mesh.vertices).all() or not np.ptp(mesh.vertices, axis=0).max() > 0:
            raise ValueError("the generated mesh is degenerate (non-finite vertices or zero extent)")
    except Exception as error:  # one object's failure is part of the result, not the end of the run
        entry = CachedGeneration(None, f"{type(error).__name__}: {error}", time.perf_counter() - start)
        return entry, isinstance(error, EmptySurfaceError)
    return CachedGeneration(mesh, None, time.perf_counter() - start), True


def _distances(out_dir: Path, config: NormalFidConfig, extractors: Sequence[NamedExtractor]) -> dict[str, Any]:
    """FID/KID (or why not) and each extractor's labelled Fréchet/kernel distance, ground truth vs generated."""
    gt_dir, generated_dir = out_dir / GT_DIR, out_dir / GENERATED_DIR
    result: dict[str, Any] = {}
    if config.fid == "off":
        result["fid"] = {"available": False, "reason": "not requested (fid='off')"}
    else:
        try:
            fid = compute_fid(gt_dir, generated_dir, config.inception_weights, device=config.device,
                              kid_subsets=config.kid_subsets, seed=config.seed)
            result["fid"] = {"available": True, **fid}
        except MissingInceptionWeightsError as error:
            if config.fid == "required":
                raise
            result["fid"] = {"available": False, "reason": str(error)}
    result["feature_distances"] = {}
    for extractor in extractors:
        distance = compute_feature_fd(gt_dir, generated_dir, extractor.extract, extractor.name,
                                      kid_subsets=config.kid_subsets, seed=config.seed)
        result["feature_distances"][extractor.name] = {**distance, "encoder": extractor.source}
    return result


def _summary(
    test_set: TestSet, variant: ModelVariant, config: NormalFidConfig, per_object: pd.DataFrame,
    distances: dict[str, Any], counts: dict[str, int], seconds: float,
) -> dict[str, Any]:
    from training.data.views import camera_record

    succeeded = per_object[per_object["status"] == "ok"]
    measured = succeeded.dropna(subset=["chamfer"])
    reconstruction = {f"{column}_mean": float(measured[column].mean()) if len(measured) else None
                      for column in RECON_COLUMNS}
    reconstruction.update(threshold=config.recon_threshold, num_points=config.recon_num_points,
                          num_objects=len(measured), frame="bbox centred, longest side 1.8")
    metrics: dict[str, Any] = {
        "fid": distances["fid"].get("fid"), "kid": distances["fid"].get("kid"),
        "kid_std": distances["fid"].get("kid_std"),
        **{key: value for entry in distances["feature_distances"].values()
           for key, value in entry.items() if key.startswith(("fd_", "kd_"))},
        "chamfer": reconstruction["chamfer_mean"], "f_score": reconstruction["f_score_mean"],
        "normal_consistency": reconstruction["normal_consistency_mean"],
        "largest_piece": float(succeeded["largest_piece"].mean()) if len(succeeded) else None,
    }
    return {
        "model": variant.name,
        "identity": variant.identity,
        "test_set": {"name": test_set.name, "num_objects": len(test_set), "skipped": test_set.skipped},
        "camera": camera_record(EVALUATION_CAMERA),
        "counts": {**counts, "total": len(per_object)},
        "metrics": metrics,
        "fid": distances["fid"],
        "feature_distances": distances["feature_distances"],
        "reconstruction": reconstruction,
        "seconds": round(seconds, 3),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable end-of-run summary of a `run_normal_fid` summary."""
    counts = summary["counts"]
    header = (f"Normal-FID of {summary['model']} on {summary['test_set']['name']}: {counts['total']} objects "
              f"({counts['generated']} generated, {counts['cached']} from cache, {counts['failed']} failed) "
              f"in {summary['seconds']:.1f} s")
    lines = [header]
    fid = summary["fid"]
    if fid["available"]:
        lines.append(f"  FID ({fid['extractor']}): {fid['fid']:.4f}   KID: {fid['kid']:.5f} ± {fid['kid_std']:.5f}")
    else:
        lines.append(f"  FID: unavailable. {fid['reason']}")
    for name, distance in summary["feature_distances"].items():
        fd_key = next(key for key in distance if key.startswith("fd_"))
        kd_key = fd_key.replace("fd_", "kd_", 1)
        lines.append(f"  {name} ({distance['encoder']}; not FID): {distance[fd_key]:.4f}   "
                     f"KD: {distance[kd_key]:.5f} ± {distance[f'{kd_key}_std']:.5f}")
    recon = summary["reconstruction"]
    if recon["num_objects"]:
        lines.append(f"  vs ground truth ({recon['num_objects']} objects, {recon['frame']}): "
                     f"Chamfer {recon['chamfer_mean']:.4f}   F-score@{recon['threshold']:g} "
                     f"{recon['f_score_mean']:.4f}   normal consistency {recon['normal_consistency_mean']:.4f}")
    else:
        lines.append("  vs ground truth: no ground-truth surfaces in this test set")
    for name, reason in summary["test_set"]["skipped"]:
        lines.append(f"  skipped test input {name}: {reason}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _comparison_images(out_dir: Path, rows: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    """The (ground truth, generated) normal-map pairs of `rows`, read back from `out_dir`, flattened."""
    images = []
    for row in rows:
        for column in ("gt_normal", "generated_normal"):
            with Image.open(out_dir / row[column]) as image:
                images.append(np.asarray(image.convert("RGB")))
    return images


def _save_comparison_grid(images: list[np.ndarray], path: Path) -> None:
    """Ground truth in the top row, generated below, for the first objects (pairs in `images`)."""
    truths, generated = images[0::2], images[1::2]
    save_image_grid(truths + generated, path, ncols=len(truths))


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


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _cached_hub_revision(repo_id: str) -> str | None:
    """The commit of the locally cached snapshot of a hub model, or None (no network access is made)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "model_index.json")
    except (ImportError, ValueError, OSError):  # an invalid id or unreadable cache: no revision in the identity
        return None
    return Path(cached).parent.name if isinstance(cached, str) else None


def _plain(value: Any) -> Any:
    """A manifest cell as a JSON-friendly Python value (NaN → None, numpy scalars → Python)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
