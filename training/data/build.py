"""Corpus builder: shapes or mesh files → field data, renders, quality flags, a manifest (paper §4).

One object is built by `build_object` (in a worker process): mesh → [III orientation fix for user
meshes] → IV field data → renders (8 random views + the evaluation view) → II filters → I score (when a
scorer is given) → `record.json`. `run_build` runs the jobs on an engine — a local process pool, or Ray
tasks on a cluster (`ray_engine.py`) — skips objects that already have a record (resumable), records
failures instead of aborting, and writes `manifest.csv`. Both engines call the same `build_object` on the
same `list_jobs`, so a corpus does not depend on where it was built.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from triposg.geometry import simplify

from .fields import FieldConfig, load_mesh, make_watertight, sample_field_data
from .filters import FilterConfig, run_filters
from .manifest import assign_split, object_dir, read_record, write_manifest, write_record
from .orientation import canonicalize_orientation
from .procedural import corpus_seeds, procedural_object_id, sample_shape
from .scoring import QualityScorer, image_features
from .views import read_view_mask, render_object_views, sample_view_cameras, sample_view_lightings

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
ENGINES = ("local", "ray")


@dataclass
class BuildConfig:
    """How a corpus is built. Defaults follow the paper, scaled for a 2-core CPU."""

    out: Path
    source: str = "procedural"  # "procedural" or "meshes"
    num: int = 100  # procedural objects to build
    input_dir: Path | None = None  # folder of mesh files for source="meshes"
    seed: int = 0  # corpus seed: object i is sample i of `sample_corpus(num, seed)`
    # Processes. One more than the cores: software GL leaves a core idle while its rasteriser threads sync
    # (2 cores, 300 objects: 97 objects/min with 2 workers, 124 with 3).
    workers: int = field(default_factory=lambda: (os.cpu_count() or 1) + 1)
    num_views: int = 8  # paper §5.1: 8 random views per object
    relit_views: float = 0.5  # share of training views under a random lighting rig (views.sample_view_lightings)
    render_resolution: int = 256
    render_msaa: int = 0  # training views without anti-aliasing: ~2x faster on llvmpipe (eval view keeps 4x)
    # Renders use a reduced copy: software GL cost grows with faces (8 views at 256²: 0.40 s at 20k faces,
    # 0.68 s at 50k). At 20k the mug handle's normal map shows facets; 30k is clean.
    render_faces: int | None = 30_000
    mesh_resolution: int = 128  # marching-cubes grid for procedural shapes (analytic SDF)
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    scorer_path: Path | None = None  # a fitted QualityScorer (stage I); None leaves scores empty
    retry_failed: bool = False  # rebuild objects whose record says "failed"
    manifest_every: int = 50  # rewrite manifest.csv after this many finished objects
    # Where the objects are built: "local" (a process pool of `workers`) or "ray" (Ray tasks; `ray_engine.py`).
    engine: str = "local"
    ray_address: str | None = None  # a running Ray cluster ("auto", "HOST:PORT"); None starts a local one
    cpus_per_object: float = 1.0  # Ray resources of one object's task: 1 CPU, as one pool process
    gpus_per_object: float = 0.0  # a GPU share for rendering where nodes have one (0.25: four objects per GPU)
    fields: FieldConfig = field(default_factory=FieldConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)


@dataclass(frozen=True)
class Job:
    """One object to build: a procedural (family, seed) or a mesh file."""

    object_id: str
    source: str
    family: str | None = None
    seed: int = 0
    path: str | None = None


def mesh_object_id(path: Path, input_dir: Path) -> str:
    """A readable, unique, filesystem-safe id for a mesh file: its stem plus a hash of its relative path."""
    relative = str(path.relative_to(input_dir))
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem)[:40] or "mesh"
    return f"{stem}-{hashlib.sha1(relative.encode()).hexdigest()[:8]}"


def list_jobs(config: BuildConfig) -> list[Job]:
    """Every object the corpus should hold, in a deterministic order."""
    if config.source == "procedural":
        return [Job(procedural_object_id(family, seed), "procedural", family, seed)
                for family, seed in corpus_seeds(config.num, config.seed)]
    if config.source == "meshes":
        if config.input_dir is None or not Path(config.input_dir).is_dir():
            raise ValueError(f"--source meshes needs --input DIR with mesh files; got {config.input_dir}")
        root = Path(config.input_dir)
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file())
        if not paths:
            raise ValueError(f"no mesh files ({', '.join(MESH_SUFFIXES)}) under {root}")
        return [Job(mesh_object_id(p, root), "meshes", path=str(p)) for p in paths]
    raise ValueError(f"source must be 'procedural' or 'meshes', got {config.source!r}")


def pending_jobs(config: BuildConfig, jobs: list[Job]) -> list[Job]:
    """Jobs without a finished record (failed ones too when `retry_failed`)."""
    pending = []
    for job in jobs:
        record = read_record(config.out, job.object_id)
        if record is None or (config.retry_failed and record.get("status") != "ok"):
            pending.append(job)
    return pending


_worker_scorer: QualityScorer | None = None


def prepare_worker(scorer_path: str | None) -> None:
    """Set up a worker process once, before its first object: one torch thread, the scorer loaded."""
    import torch

    # One process per core for torch. Mesa's llvmpipe keeps its own threads: limiting it to one
    # (LP_NUM_THREADS=1) measured slower here, not faster.
    torch.set_num_threads(1)
    global _worker_scorer
    _worker_scorer = QualityScorer.load(scorer_path) if scorer_path else None


def job_record(job: Job, config: BuildConfig) -> dict[str, Any]:
    """The manifest fields an object has before it is built (id, source, family, seed, path, split)."""
    return {
        "object_id": job.object_id, "source": job.source, "family": job.family, "seed": job.seed,
        "source_path": job.path, "split": assign_split(job.object_id, config.split_fractions),
    }


def failed_record(job: Job, config: BuildConfig, error: str, details: str = "") -> dict[str, Any]:
    """Record `job` as failed (written atomically like a built object's record) and return the record."""
    record = {**job_record(job, config), "status": "failed", "error": error, "traceback": details}
    write_record(config.out, record)
    return record


def build_object(job: Job, config: BuildConfig) -> dict[str, Any]:
    """Build one object and write its record; never raises (a failure becomes a "failed" record)."""
    start = time.perf_counter()
    folder = object_dir(config.out, job.object_id)
    record = job_record(job, config)
    try:
        object_seed = [config.seed, int(hashlib.sha1(job.object_id.encode()).hexdigest()[:8], 16)]
        rng = np.random.default_rng(object_seed)
        if job.source == "procedural":
            shape = sample_shape(job.family, job.seed)
            mesh = shape.to_mesh(config.mesh_resolution)
            sdf_fn = shape.sdf
            record.update(params=shape.params, material=asdict(shape.material), canonicalization={"canonical": True})
        else:
            mesh, rotation, info = canonicalize_orientation(load_mesh(job.path))
            record["canonicalization"] = {"rotation": np.asarray(rotation).tolist(), **info}
            watertight = make_watertight(mesh, config.fields.udf_resolution)
            mesh, sdf_fn = watertight.mesh, watertight.sdf
        field_data = sample_field_data(mesh, sdf_fn, config.fields, seed=int(rng.integers(2**31)))
        field_data.save(folder / "fields.npz")

        views_dir = folder / "views"
        cameras = sample_view_cameras(rng, config.num_views)
        # Lights from a stream of their own: cameras and fields stay those of a corpus built without them.
        lightings = sample_view_lightings(np.random.default_rng([*object_seed, 1]), config.num_views,
                                          config.relit_views)
        render_mesh = simplify(mesh, config.render_faces) if config.render_faces else mesh
        render_object_views(render_mesh, views_dir, cameras, config.render_resolution, config.render_msaa,
                            lightings)
        eval_mask = read_view_mask(views_dir / "eval_rgb.png")
        report = run_filters(render_mesh, eval_mask, config.filters)  # the reduced copy: same geometry, cheaper
        record.update(flags=report.as_dict(), flagged=report.flagged)
        if _worker_scorer is not None:
            normals = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(views_dir.glob("*_normal.png"))]
            record["score"] = float(_worker_scorer.predict(image_features(normals)[None])[0])
        record.update(status="ok", field_path=str((folder / "fields.npz").relative_to(config.out)),
                      views_dir=str(views_dir.relative_to(config.out)))
    except Exception as error:  # one bad object must never abort the build: record it and go on
        record.update(status="failed", error=f"{type(error).__name__}: {error}",
                      traceback=traceback.format_exc(limit=5))
    record["build_seconds"] = round(time.perf_counter() - start, 3)
    write_record(config.out, record)
    return record


def _build_job(args: tuple[Job, BuildConfig]) -> dict[str, Any]:
    return build_object(*args)


def _results(config: BuildConfig, jobs: list[Job]) -> Iterator[dict[str, Any]]:
    if config.engine == "ray":
        from .ray_engine import ray_results  # Ray is imported only by builds that use it

        yield from ray_results(config, jobs)
        return
    scorer_path = str(config.scorer_path) if config.scorer_path else None
    if config.workers <= 1:
        prepare_worker(scorer_path)
        yield from (build_object(job, config) for job in jobs)
        return
    # spawn: workers must not inherit an OpenGL context or torch thread pools from the parent.
    context = multiprocessing.get_context("spawn")
    with context.Pool(config.workers, prepare_worker, (scorer_path,)) as pool:
        yield from pool.imap_unordered(_build_job, [(job, config) for job in jobs])


def run_build(config: BuildConfig) -> dict[str, Any]:
    """Build (or resume) the corpus; returns a summary with counts and the measured rate."""
    if config.engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {config.engine!r}")
    # Absolute paths (links kept: nodes mount the same paths): a Ray task may run in another folder or node.
    config.out = Path(config.out).absolute()
    if config.input_dir is not None:
        config.input_dir = Path(config.input_dir).absolute()
    config.out.mkdir(parents=True, exist_ok=True)
    jobs = list_jobs(config)
    todo = pending_jobs(config, jobs)
    built = failed = 0
    start = time.perf_counter()
    with tqdm(total=len(todo), desc=f"building {config.source}", unit="obj") as progress:
        for record in _results(config, todo):
            built += record["status"] == "ok"
            failed += record["status"] != "ok"
            if record["status"] != "ok":
                tqdm.write(f"failed: {record['object_id']}: {record.get('error')}")
            progress.update()
            progress.set_postfix(ok=built, failed=failed)
            if (built + failed) % config.manifest_every == 0:
                write_manifest(config.out)
    elapsed = time.perf_counter() - start
    manifest = write_manifest(config.out)
    return {
        "total": len(jobs), "skipped": len(jobs) - len(todo), "built": built, "failed": failed,
        "seconds": elapsed, "objects_per_minute": 60.0 * len(todo) / elapsed if todo and elapsed > 0 else 0.0,
        "manifest": str(manifest),
    }
