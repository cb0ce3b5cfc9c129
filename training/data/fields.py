"""Field data for VAE training (paper §4.4, stage IV): surface points with normals and truncated SDF samples.

Two kinds of objects arrive here:

- **Procedural shapes** come with an analytic SDF and a mesh extracted from it; :func:`sample_field_data` samples
  them directly.
- **User meshes** (OBJ / GLB / PLY / STL; open, multi-part, badly scaled) are first made watertight by
  :func:`make_watertight`, the paper's UDF route, which also yields an SDF for the watertight result
  (:class:`GridSDF`). :func:`mesh_field_data` chains load → watertight → sample.

Conventions: world y-up; objects normalised so that their bounding box is centred at the origin with the longest
side spanning [-0.9, 0.9] (``margin`` 0.1 of the unit cube's half-size); SDF values **negative inside, positive
outside**, truncated to ±``truncation``. An SDF function maps (N, 3) float32 xyz to (N,) float32 distances.

How :func:`make_watertight` works
---------------------------------
The mesh is normalised so that the *offset* surface (not the input) ends up spanning [-0.9, 0.9]. On a grid of
``resolution`` cells per side over [-1, 1]^3 (``resolution + 1`` points per axis):

1. **Unsigned distance.** The surface is sampled area-uniformly at about half a voxel spacing. Every grid point
   that is the nearest grid point of some sample becomes a *seed* holding its closest sample; an exact Euclidean
   distance transform (scipy, C speed) then gives every grid point its nearest seed. Within ``τ +
   refine_distance`` of the surface the distance is measured to the *triangle* of that sample (exact when it is
   the nearest triangle, as on large flat faces; on a finely tessellated sphere the error is ~0.03 cell on
   average and at most ~0.5-0.8 cell); farther out the distance to the sample itself is used, which overestimates
   by about ``voxel² / distance``. A k-d tree over samples is avoided on purpose: its queries off a curved
   surface visit most samples (minutes at 128³), while the transform costs the same everywhere.
2. **Sign by flood fill.** Grid points with UDF > τ that connect to the grid boundary (6-connectivity) are
   *outside*; everything else (the τ-band and every region the band encloses) is *solid*. This is the paper's
   "resetting the UDF of invisible grids": closed interiors, inner shells and hidden parts become solid, so
   marching cubes cannot produce interior surfaces there.
3. **Components by area and visibility.** Solid regions that the outside still reaches (e.g. a part inside a
   box with a small hole) are separate solid components. Each gets an area (count of solid/outside voxel faces)
   and a visibility ratio, the complement of ambient occlusion: the fraction of rays, cast in Fibonacci-sphere
   directions from the outside voxels touching it, that leave the grid without hitting any solid voxel (about
   0.5 for a fully exposed convex part, ~0 for a hidden one). Components below ``min_visibility`` or below
   ``min_area_fraction`` of the total area are dropped (the largest is always kept); the UDF is then recomputed
   from the kept part of the surface.
4. **Signed field and surface.** ``φ = UDF − τ`` outside (exact: the distance to a τ-offset surface);
   inside, ``φ = −max(τ − UDF, |p − o| − φ(o))`` with ``o`` the nearest outside grid point (from a second
   distance transform). The first term is exact inside thin walls; the second is exact behind a flat shell and
   looks past inner walls, where the nearest input surface says nothing about the distance to the outer shell.
   Marching cubes at φ = 0 gives the outer shell of the τ-offset surface: closed by construction, since the grid
   boundary is outside. The shell is renormalised exactly (a scale of about 1) and :class:`GridSDF`
   interpolates φ trilinearly, so the SDF is that of the *offset* surface, accurate to about a voxel.

τ = ``tau_voxels`` × voxel size. The paper uses τ = 3/512 on a 512³ grid, i.e. three cells when the object is
normalised to a unit-sided cube; we keep three cells of our grid (side 2), so τ = 3 · 2 / resolution. The shell
is the input thickened by τ on both sides: a sheet becomes a slab 2τ thick, and a box with a missing side becomes
a closed cup-shaped solid with 2τ walls (holes wider than 2τ stay open; cracks narrower than that close).

Cost on 2 cores: about 1.6 s at 128³ for a 10k-face mesh, ~13 s and ~1.7 GB at 256³; 512³ (the paper's) takes
minutes and several GB.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import trimesh
from scipy import ndimage

from triposg.geometry import VolumeResult, extract_mesh
from triposg.io import write_bytes_atomic
from triposg.rendering import normalize_mesh

__all__ = [
    "FIELD_FORMAT_VERSION",
    "MESH_EXTENSIONS",
    "FieldConfig",
    "FieldData",
    "FieldDataError",
    "GridSDF",
    "SdfFunction",
    "WatertightResult",
    "load_mesh",
    "make_watertight",
    "mesh_field_data",
    "sample_field_data",
]

SdfFunction = Callable[[np.ndarray], np.ndarray]  # (N, 3) float32 xyz -> (N,) float32, negative inside

FIELD_FORMAT_VERSION = 1  # bump when the stored arrays change meaning; loaders reject other versions
NPZ_COMPRESS_LEVEL = 1  # zlib level of fields.npz (see FieldData.save)
MESH_EXTENSIONS = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
GRID_BOUNDS = 1.0  # the UDF grid spans [-1, 1]^3, the same cube the VAE decodes
SAMPLE_SPACING_VOXELS = 0.5  # surface samples per voxel side for the UDF; the distance error scales with its square
MAX_UDF_SAMPLES = 8_000_000  # memory cap for huge surface areas (dense inner structure at 512³)
DISTANCE_CHUNK = 1 << 21  # grid points per chunk of distance computations (bounds memory at 512³)
GRADIENT_STEP = 1e-3  # central-difference step for SDF normals: well above float32 noise, well below features


# ----------------------------------------------------------------------------------------------
# Configuration and the stored per-object arrays
# ----------------------------------------------------------------------------------------------


@dataclass
class FieldConfig:
    """How much field data to sample per object and how to make meshes watertight (paper §3.3, §4.4)."""

    num_surface: int = 20480  # VAE encoder input: surface points with normals (paper §3.3)
    num_near: int = 8192  # supervision near the surface, where the TSDF carries the detail
    num_volume: int = 8192  # supervision uniform in the cube, so the field is right (mostly ±truncation) far away
    num_on_surface: int = 8192  # supervision on the surface (sdf 0) with normals for the normal loss (eq. 18)
    near_sigmas: tuple[float, ...] = (0.005, 0.02)  # std of the Gaussian offsets of near points; split evenly
    volume_bounds: float = 1.0  # volume points are uniform in [-volume_bounds, volume_bounds]^3
    # TSDF clamp: bounds the regression target so far-away points cannot dominate the L1/L2 loss and the network
    # spends its capacity near the surface; 0.1 (5% of the cube side) still covers every near offset (5 sigma).
    truncation: float = 0.1
    udf_resolution: int = 128  # UDF grid cells per side for user meshes (512 in the paper; 128 takes seconds)
    margin: float = 0.1  # empty fraction of the half-size: the longest side spans [-0.9, 0.9]
    udf_tau_voxels: float = 3.0  # iso-level τ of the UDF in grid cells (paper: 3/512 on a unit cube)
    min_visibility: float = 0.02  # drop solid components whose rays almost never escape (hidden interior parts)
    min_area_fraction: float = 0.001  # drop solid components with less than this share of the area (specks)

    def __post_init__(self) -> None:
        counts = {"num_surface": self.num_surface, "num_near": self.num_near, "num_volume": self.num_volume,
                      "num_on_surface": self.num_on_surface}
        for name, value in counts.items():
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.near_sigmas = tuple(float(s) for s in self.near_sigmas)
        if not self.near_sigmas or min(self.near_sigmas) <= 0:
            raise ValueError(f"near_sigmas must be positive, got {self.near_sigmas}")
        if not self.volume_bounds > 0 or not self.truncation > 0:
            raise ValueError("volume_bounds and truncation must be positive")
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        _check_watertight_args(self.udf_resolution, self.margin, self.udf_tau_voxels)


class FieldDataError(ValueError):
    """A field-data file is missing, corrupt, of another format version, or holds arrays of the wrong shape."""


# name -> number of columns; every array is (count, columns) float32
_FIELD_COLUMNS = {"surface": 6, "near": 4, "volume": 4, "on_surface": 6}


@dataclass(eq=False)
class FieldData:
    """The training arrays of one object, all float32.

    ``surface``: (S, 6) xyz + unit outward normals (VAE encoder input);
    ``near``: (N, 4) xyz + truncated SDF, points near the surface;
    ``volume``: (V, 4) xyz + truncated SDF, points uniform in the cube;
    ``on_surface``: (O, 6) xyz + unit normals, points on the surface (SDF 0 by definition).
    """

    surface: np.ndarray
    near: np.ndarray
    volume: np.ndarray
    on_surface: np.ndarray

    def __post_init__(self) -> None:
        for name, columns in _FIELD_COLUMNS.items():
            array = np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            if array.ndim != 2 or array.shape[1] != columns or len(array) == 0:
                raise ValueError(f"{name} must have shape (count > 0, {columns}), got {array.shape}")
            if not np.isfinite(array).all():
                raise ValueError(f"{name} contains NaN or inf values")
            setattr(self, name, array)

    def save(self, path: str | os.PathLike) -> Path:
        """Write one compressed ``.npz`` atomically (temporary file beside ``path``, then rename)."""
        buffer = io.BytesIO()
        arrays = {"format_version": np.int64(FIELD_FORMAT_VERSION)}
        arrays.update((name, getattr(self, name)) for name in _FIELD_COLUMNS)
        # np.savez_compressed's zlib level 6 costs 2.4x the time of level 1 for 3 % fewer bytes (float data).
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=NPZ_COMPRESS_LEVEL) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w") as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        return write_bytes_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> FieldData:
        """Read a file written by :meth:`save`; raises :class:`FieldDataError` naming ``path`` if it is unusable."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as stored:
                version = int(stored["format_version"])
                if version != FIELD_FORMAT_VERSION:
                    raise FieldDataError(
                        f"field data {path} has format version {version}, this code reads version "
                        f"{FIELD_FORMAT_VERSION}; rebuild the object's field data"
                    )
                arrays = {name: stored[name] for name in _FIELD_COLUMNS}
            return cls(**arrays)
        except FieldDataError:
            raise
        except FileNotFoundError as error:
            raise FieldDataError(f"field data {path} does not exist") from error
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise FieldDataError(
                f"field data {path} is corrupt or incomplete ({type(error).__name__}: {error}); delete it and "
                f"rebuild the object"
            ) from error


# ----------------------------------------------------------------------------------------------
# Sampling (shared by procedural shapes and watertight meshes)
# ----------------------------------------------------------------------------------------------


def _sample_surface(mesh: trimesh.Trimesh, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` area-uniform points on ``mesh``: (count, 3) float64 xyz and (count,) face indices."""
    areas = np.asarray(mesh.area_faces, dtype=np.float64)
    cumulative = np.cumsum(areas)
    if not cumulative[-1] > 0:
        raise ValueError("the mesh has zero surface area, so no surface points can be sampled")
    faces = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
    faces = np.minimum(faces, len(areas) - 1)
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1.0  # reflect into the triangle, keeping the distribution uniform
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    triangles = np.asarray(mesh.triangles, dtype=np.float64)[faces]
    points = triangles[:, 0] + u[:, None] * (triangles[:, 1] - triangles[:, 0]) + v[:, None] * (
        triangles[:, 2] - triangles[:, 0]
    )
    return points, faces


def _evaluate_sdf(sdf_fn: SdfFunction, points: np.ndarray) -> np.ndarray:
    """Call ``sdf_fn`` on (N, 3) points and check it returns (N,) finite values."""
    values = np.asarray(sdf_fn(np.ascontiguousarray(points, dtype=np.float32)), dtype=np.float32).reshape(-1)
    if values.shape != (len(points),):
        raise ValueError(f"sdf_fn must map (N, 3) points to (N,) values; got {values.shape} for N = {len(points)}")
    if not np.isfinite(values).all():
        raise ValueError("sdf_fn returned NaN or inf values")
    return values


def _sdf_gradient(sdf_fn: SdfFunction, points: np.ndarray) -> np.ndarray:
    """(N, 3) central-difference gradient of ``sdf_fn`` at (N, 3) points, one batched call."""
    offsets = np.eye(3) * GRADIENT_STEP
    probes = np.concatenate([points[None] + offsets[:, None], points[None] - offsets[:, None]])  # (6, N, 3)
    values = _evaluate_sdf(sdf_fn, probes.reshape(-1, 3)).reshape(2, 3, len(points)).astype(np.float64)
    return ((values[0] - values[1]) / (2.0 * GRADIENT_STEP)).T


def sample_field_data(
    mesh: trimesh.Trimesh,
    sdf_fn: SdfFunction,
    config: FieldConfig | None = None,
    seed: int = 0,
    normals: Literal["auto", "sdf", "mesh"] = "auto",
) -> FieldData:
    """Sample one object's training arrays (paper §3.3 counts), deterministic in ``seed``.

    ``mesh`` is the object's watertight surface (already normalised); ``sdf_fn`` its SDF (negative inside).
    Surface and on-surface points are drawn area-uniformly on ``mesh``; near points are further surface samples
    plus isotropic Gaussian offsets (``config.near_sigmas``, split evenly, then shuffled); volume points are uniform
    in the cube. SDF values come from ``sdf_fn``, clamped to ±``config.truncation``.

    ``normals`` chooses where surface normals come from:

    - ``"sdf"``: the normalised central-difference gradient of ``sdf_fn``; the points are also moved onto its zero
      level with one Newton step. Right for analytic SDFs, which are more accurate than the mesh extracted from
      them (faceted normals, points a fraction of a cell off the surface).
    - ``"mesh"``: the face normals of ``mesh`` (must be wound outward) at the sampled points, which stay on the
      mesh. Right when ``mesh`` *is* the surface and ``sdf_fn`` only approximates it, as for :class:`GridSDF`.
    - ``"auto"``: ``"mesh"`` if ``sdf_fn`` declares itself approximate (an ``is_approximate`` attribute, set by
      :class:`GridSDF`), else ``"sdf"``.

    Returns a :class:`FieldData`.
    """
    config = config or FieldConfig()
    if normals == "auto":
        normals = "mesh" if getattr(sdf_fn, "is_approximate", False) else "sdf"
    if normals not in ("sdf", "mesh"):
        raise ValueError(f"normals must be 'auto', 'sdf' or 'mesh', got {normals!r}")
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError("sample_field_data needs a non-empty trimesh.Trimesh")
    rng = np.random.default_rng(seed)

    # 1. Area-uniform surface samples, one draw split into the surface, on-surface and near-point bases.
    num_oriented = config.num_surface + config.num_on_surface
    points, faces = _sample_surface(mesh, num_oriented + config.num_near, rng)
    oriented, near_base = points[:num_oriented], points[num_oriented:]

    # 2. Normals for the surface and on-surface points.
    face_normals = np.asarray(mesh.face_normals, dtype=np.float64)[faces[:num_oriented]]
    if normals == "sdf":
        gradient = _sdf_gradient(sdf_fn, oriented)
        norm = np.linalg.norm(gradient, axis=1, keepdims=True)
        valid = norm[:, 0] > 1e-6  # a vanishing gradient (a medial point on the surface) keeps the face normal
        unit = np.where(valid[:, None], gradient / np.maximum(norm, 1e-12), face_normals)
        distance = _evaluate_sdf(sdf_fn, oriented).astype(np.float64)
        # One Newton step onto the zero level: p - f(p) ∇f / |∇f|² (exact for a true distance field near a plane).
        step = np.where(valid, distance / np.maximum(norm[:, 0], 1e-12), 0.0)
        oriented = oriented - step[:, None] * unit
        oriented_normals = unit
    else:
        oriented_normals = face_normals
    oriented_normals = oriented_normals / np.linalg.norm(oriented_normals, axis=1, keepdims=True)
    oriented = np.concatenate([oriented, oriented_normals], axis=1)

    # 3. Near-surface points: Gaussian offsets, one sigma per equal share of the points.
    sigmas = np.asarray(config.near_sigmas)[np.arange(config.num_near) * len(config.near_sigmas) // config.num_near]
    near_points = (near_base + rng.normal(size=near_base.shape) * sigmas[:, None])[rng.permutation(config.num_near)]

    # 4. Volume points: uniform in the cube.
    volume_points = rng.uniform(-config.volume_bounds, config.volume_bounds, size=(config.num_volume, 3))

    # 5. Truncated SDF values.
    supervision = np.concatenate([near_points, volume_points]).astype(np.float32)
    sdf = np.clip(_evaluate_sdf(sdf_fn, supervision), -config.truncation, config.truncation)
    supervision = np.concatenate([supervision, sdf[:, None]], axis=1)
    return FieldData(
        surface=oriented[: config.num_surface],
        near=supervision[: config.num_near],
        volume=supervision[config.num_near:],
        on_surface=oriented[config.num_surface:],
    )


# ----------------------------------------------------------------------------------------------
# Meshes from users
# ----------------------------------------------------------------------------------------------


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Load an OBJ / GLB / glTF / PLY / STL / OFF file as one triangle mesh.

    Scenes are flattened with their node transforms applied. Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` naming the file if it cannot be parsed, holds no triangles, or is degenerate (non-finite
    vertices, zero extent or zero area).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file {path} does not exist")
    if path.suffix.lower() not in MESH_EXTENSIONS:
        raise ValueError(f"mesh file {path} has an unsupported extension; use one of {', '.join(MESH_EXTENSIONS)}")
    if path.stat().st_size == 0:
        raise ValueError(f"mesh file {path} is empty (0 bytes)")
    try:
        scene = trimesh.load_scene(path)
        meshes = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]
    except Exception as error:  # parsers raise anything from KeyError to struct.error on bad files
        raise ValueError(f"could not read mesh file {path}: {type(error).__name__}: {error}") from error
    if not meshes:
        raise ValueError(f"mesh file {path} contains no triangles (empty, or only points/lines)")
    mesh = meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)
    if not np.isfinite(mesh.vertices).all():
        raise ValueError(f"mesh file {path} has NaN or infinite vertex coordinates")
    if not np.ptp(mesh.vertices, axis=0).max() > 0 or not mesh.area > 0:
        raise ValueError(f"mesh file {path} is degenerate (zero extent or zero surface area)")
    return mesh


class GridSDF:
    """SDF interpolated trilinearly from values on a regular grid over [-1, 1]^3, then scaled and shifted.

    ``values``: (R + 1, R + 1, R + 1) float32 signed distances (negative inside), indexed ``[x, y, z]``, in grid
    units; a query point ``p`` is looked up at ``q = (p - offset) / scale`` and the value multiplied by ``scale``.
    Outside the grid the value at the nearest grid point plus the distance to the grid is returned.
    Approximate by nature (about a voxel), hence ``is_approximate`` for :func:`sample_field_data`.
    """

    is_approximate = True

    def __init__(self, values: np.ndarray, scale: float = 1.0, offset: np.ndarray | None = None):
        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.ndim != 3 or len(set(values.shape)) != 1 or values.shape[0] < 2:
            raise ValueError(f"values must be a cubic grid (R + 1, R + 1, R + 1), got {values.shape}")
        self.values = values
        self.resolution = values.shape[0] - 1
        self.scale = float(scale)
        self.offset = np.zeros(3) if offset is None else np.asarray(offset, dtype=np.float64).reshape(3)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """``points``: (N, 3) xyz -> (N,) float32 signed distances."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {points.shape}")
        grid_points = (points - self.offset) / self.scale
        clamped = np.clip(grid_points, -GRID_BOUNDS, GRID_BOUNDS)
        coordinates = (clamped.T + GRID_BOUNDS) * (self.resolution / (2.0 * GRID_BOUNDS))  # (3, N) in cells
        values = ndimage.map_coordinates(self.values, coordinates, order=1, mode="nearest", output=np.float64)
        beyond = np.linalg.norm(grid_points - clamped, axis=1)
        return ((values + beyond) * self.scale).astype(np.float32)


@dataclass(eq=False)
class WatertightResult:
    """What :func:`make_watertight` produces.

    ``mesh``: the watertight outer shell, normalised (bbox centred, longest side ``2 * (1 - margin)``);
    ``sdf``: its SDF in the same frame; ``transform``: (4, 4) map from the input mesh's frame to that frame;
    ``tau``: the offset τ in that frame; ``resolution``: grid cells per side; ``component_areas`` /
    ``component_visibility``: per solid component (grid frame); ``num_dropped``: components removed as hidden or
    tiny.
    """

    mesh: trimesh.Trimesh
    sdf: GridSDF
    transform: np.ndarray
    tau: float
    resolution: int
    component_areas: np.ndarray
    component_visibility: np.ndarray
    num_dropped: int


def _check_watertight_args(resolution: int, margin: float, tau_voxels: float) -> None:
    if int(resolution) != resolution or resolution < 16:
        raise ValueError(f"the UDF resolution must be an integer >= 16, got {resolution!r}")
    if tau_voxels < 1.0:
        raise ValueError(f"tau_voxels must be at least 1 grid cell (the seeds are up to 0.87 cells off), "
                         f"got {tau_voxels}")
    tau = tau_voxels * 2.0 * GRID_BOUNDS / resolution
    if not margin + tau < 0.5:
        raise ValueError(f"margin ({margin}) + tau ({tau:.3g}) leaves no room for the object; raise the resolution "
                         f"or lower margin / tau_voxels")


def _normalize(mesh: trimesh.Trimesh, margin: float) -> tuple[trimesh.Trimesh, np.ndarray]:
    """:func:`normalize_mesh` plus the (4, 4) transform it applied (read back from the bounding boxes)."""
    normalized = normalize_mesh(mesh, margin)
    (lower, upper), (new_lower, new_upper) = mesh.bounds, normalized.bounds
    scale = float(np.max(new_upper - new_lower) / np.max(upper - lower))
    transform = np.eye(4)
    transform[:3, :3] *= scale
    transform[:3, 3] = (new_lower + new_upper) / 2.0 - scale * (lower + upper) / 2.0
    return normalized, transform


def _grid_points(flat_indices: np.ndarray, resolution: int) -> np.ndarray:
    """(K, 3) float64 world positions of grid points given by flat indices into an (R + 1)^3 grid."""
    ijk = np.stack(np.unravel_index(flat_indices, (resolution + 1,) * 3), axis=1)
    return ijk * (2.0 * GRID_BOUNDS / resolution) - GRID_BOUNDS


def _unsigned_distance(
    samples: np.ndarray, triangles: np.ndarray, resolution: int, refine_distance: float
) -> np.ndarray:
    """UDF on the grid from surface ``samples`` (P, 3) and their ``triangles`` (P, 3, 3); see the module docstring.

    Returns (R + 1,)*3 float32 distances; exact to the triangle within ``refine_distance`` of the surface.
    """
    shape = (resolution + 1,) * 3
    voxel = 2.0 * GRID_BOUNDS / resolution
    # 1. Seeds: each grid point nearest to some sample keeps the closest such sample.
    ijk = np.clip(np.rint((samples + GRID_BOUNDS) / voxel).astype(np.int64), 0, resolution)
    flat = np.ravel_multi_index(ijk.T, shape)
    offset = np.linalg.norm(samples - (ijk * voxel - GRID_BOUNDS), axis=1)
    order = np.lexsort((offset, flat))
    _, first = np.unique(flat[order], return_index=True)
    seed_flat, seed_sample = flat[order][first], order[first]
    seed_of_grid = np.full(np.prod(shape), -1, dtype=np.int32)
    seed_of_grid[seed_flat] = seed_sample
    # 2. Nearest seed of every grid point (exact Euclidean distance transform with feature indices).
    not_seed = np.ones(shape, dtype=bool)
    not_seed.flat[seed_flat] = False
    nearest = ndimage.distance_transform_edt(not_seed, return_distances=False, return_indices=True)
    sample_of_grid = seed_of_grid[np.ravel_multi_index(nearest.reshape(3, -1), shape)]
    del nearest
    # 3. Distance to that sample, made exact to its triangle near the surface; in chunks to bound memory.
    udf = np.empty(len(sample_of_grid), dtype=np.float32)
    for start in range(0, len(udf), DISTANCE_CHUNK):
        chunk = np.arange(start, min(start + DISTANCE_CHUNK, len(udf)))
        positions, nearest_samples = _grid_points(chunk, resolution), sample_of_grid[chunk]
        distance = np.linalg.norm(positions - samples[nearest_samples], axis=1)
        band = np.flatnonzero(distance <= refine_distance)
        closest = trimesh.triangles.closest_point(triangles[nearest_samples[band]], positions[band])
        distance[band] = np.minimum(distance[band], np.linalg.norm(positions[band] - closest, axis=1))
        udf[chunk] = distance
    return udf.reshape(shape)


def _outside_region(udf: np.ndarray, tau: float) -> np.ndarray:
    """Grid points with UDF > τ that are connected (6-neighbourhood) to the grid boundary."""
    labels, _ = ndimage.label(udf > tau)
    boundary = np.concatenate([
        labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(), labels[:, -1].ravel(),
        labels[:, :, 0].ravel(), labels[:, :, -1].ravel(),
    ])
    boundary_labels = np.unique(boundary[boundary > 0])
    return np.isin(labels, boundary_labels)


def _fibonacci_directions(count: int) -> np.ndarray:
    """(count, 3) unit vectors spread evenly over the sphere (deterministic)."""
    index = np.arange(count) + 0.5
    y = 1.0 - 2.0 * index / count
    radius = np.sqrt(1.0 - y * y)
    angle = math.pi * (3.0 - math.sqrt(5.0)) * index
    return np.stack([radius * np.cos(angle), y, radius * np.sin(angle)], axis=1)


def _component_visibility(
    solid_labels: np.ndarray, num_components: int, outside: np.ndarray, num_starts: int, num_directions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per solid component: (C,) face counts (solid/outside voxel faces) and (C,) visibility ratios in [0, 1].

    The visibility of a component is the fraction of rays, from up to ``num_starts`` outside grid points touching
    it in ``num_directions`` directions, that leave the grid without entering any solid grid point.
    """
    resolution = solid_labels.shape[0] - 1
    air_points, air_labels = [], []
    for axis in range(3):
        for air_side, solid_side in ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))):
            air_index = [slice(None)] * 3
            solid_index = [slice(None)] * 3
            air_index[axis], solid_index[axis] = air_side, solid_side
            touching = outside[tuple(air_index)] & (solid_labels[tuple(solid_index)] > 0)
            ijk = np.argwhere(touching)
            air_labels.append(solid_labels[tuple(solid_index)][touching])
            if air_side.start == 1:
                ijk[:, axis] += 1
            air_points.append(ijk)
    air_points, air_labels = np.concatenate(air_points), np.concatenate(air_labels)
    face_counts = np.bincount(air_labels, minlength=num_components + 1)[1:]

    # Rays from a spread-out subset of each component's outside neighbours.
    starts, ray_labels = [], []
    for label in range(1, num_components + 1):
        candidates = np.unique(air_points[air_labels == label], axis=0)
        chosen = candidates[np.linspace(0, len(candidates) - 1, min(num_starts, len(candidates))).astype(int)]
        starts.append(chosen)
        ray_labels.append(np.full(len(chosen), label))
    starts, ray_labels = np.concatenate(starts), np.concatenate(ray_labels)
    directions = _fibonacci_directions(num_directions)
    origins = np.repeat(starts.astype(np.float32), num_directions, axis=0)
    steps = np.tile(directions.astype(np.float32), (len(starts), 1))
    owners = np.repeat(ray_labels, num_directions)
    escaped = np.zeros(len(origins), dtype=bool)
    active = np.arange(len(origins))
    solid = solid_labels > 0
    for step in range(1, math.ceil(resolution * math.sqrt(3.0)) + 2):  # one cell per step: walls are >= 2 cells
        ijk = np.rint(origins[active] + step * steps[active]).astype(np.int64)
        left = ((ijk < 0) | (ijk > resolution)).any(axis=1)
        escaped[active[left]] = True
        inside = ~left
        blocked = np.zeros(len(active), dtype=bool)
        blocked[inside] = solid[ijk[inside, 0], ijk[inside, 1], ijk[inside, 2]]
        active = active[inside & ~blocked]
        if len(active) == 0:
            break
    visibility = np.bincount(owners, weights=escaped, minlength=num_components + 1)[1:] / np.maximum(
        np.bincount(owners, minlength=num_components + 1)[1:], 1
    )
    return face_counts, visibility


def make_watertight(
    mesh: trimesh.Trimesh,
    resolution: int = FieldConfig.udf_resolution,
    *,
    margin: float = FieldConfig.margin,
    tau_voxels: float = FieldConfig.udf_tau_voxels,
    min_visibility: float = FieldConfig.min_visibility,
    min_area_fraction: float = FieldConfig.min_area_fraction,
    refine_distance: float = 0.15,
    num_visibility_starts: int = 64,
    num_visibility_directions: int = 48,
) -> WatertightResult:
    """Convert any triangle mesh into a watertight outer shell and its SDF (paper §4.4; module docstring).

    ``mesh``: open, multi-part or badly scaled triangles in any frame. ``resolution``: UDF grid cells per side
    (memory and time grow with its cube: 128 takes seconds, 512 minutes and a few GB). τ = ``tau_voxels`` cells.
    ``refine_distance``: distances within τ + this of the input are exact to the triangle (keep it >= the TSDF
    truncation). The visibility test casts ``num_visibility_starts`` × ``num_visibility_directions`` rays per
    solid component when there is more than one.
    """
    _check_watertight_args(resolution, margin, tau_voxels)
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError("make_watertight needs a non-empty trimesh.Trimesh")
    if not np.isfinite(mesh.vertices).all():
        raise ValueError("the mesh has NaN or infinite vertex coordinates")
    voxel = 2.0 * GRID_BOUNDS / resolution
    tau = tau_voxels * voxel

    # 1. Normalise so that the τ-offset shell, not the input, spans [-(1 - margin), 1 - margin].
    normalized, input_to_grid = _normalize(mesh, margin + tau)
    area = float(normalized.area)
    if not area > 0:
        raise ValueError("the mesh has zero surface area (every face is degenerate)")
    num_samples = int(min(MAX_UDF_SAMPLES, max(10_000, math.ceil(area / (SAMPLE_SPACING_VOXELS * voxel) ** 2))))
    samples, faces = _sample_surface(normalized, num_samples, np.random.default_rng(0))
    triangles = np.asarray(normalized.triangles, dtype=np.float64)

    # 2. Unsigned distance, then the outside by flood fill from the grid boundary.
    udf = _unsigned_distance(samples, triangles[faces], resolution, tau + refine_distance)
    outside = _outside_region(udf, tau)

    # 3. Solid components: drop hidden (low visibility) and tiny ones, keep the largest.
    solid_labels, num_components = ndimage.label(~outside)
    if num_components > 1:
        face_counts, visibility = _component_visibility(
            solid_labels, num_components, outside, num_visibility_starts, num_visibility_directions
        )
    else:
        face_counts, visibility = np.array([np.count_nonzero(~outside)]), np.ones(1)
    keep = (visibility >= min_visibility) & (face_counts >= min_area_fraction * face_counts.sum())
    keep[np.argmax(face_counts)] = True
    if not keep.all():
        sample_ijk = np.clip(np.rint((samples + GRID_BOUNDS) / voxel).astype(np.int64), 0, resolution)
        sample_labels = solid_labels[tuple(sample_ijk.T)]
        kept_samples = (sample_labels > 0) & keep[np.maximum(sample_labels - 1, 0)]
        samples, faces = samples[kept_samples], faces[kept_samples]
        udf = _unsigned_distance(samples, triangles[faces], resolution, tau + refine_distance)
        outside = _outside_region(udf, tau)

    # 4. Signed field (negative inside) and the outer shell at its zero level.
    outside_distance = udf - tau  # exact: the distance to a τ-offset surface (positive outside)
    to_outside, nearest_outside = ndimage.distance_transform_edt(~outside, sampling=voxel, return_indices=True)
    nearest_outside = np.ravel_multi_index(nearest_outside.reshape(3, -1), outside.shape)
    # Through the nearest outside point o: |p - o| - φ(o) is exact behind a flat shell and sees past inner walls.
    through_outside = to_outside - outside_distance.reshape(-1)[nearest_outside].reshape(outside.shape)
    del nearest_outside
    inside_distance = np.maximum(tau - udf, through_outside)
    # Keep every value at least 1/1000 of a cell from zero: near-zero values (an offset plane that falls on a
    # grid plane) put marching-cubes vertices of different edges on the same grid point, and merging them then
    # leaves degenerate, non-manifold faces. The surface moves by at most that much.
    min_magnitude = 1e-3 * voxel
    signed = np.where(outside, np.maximum(outside_distance, min_magnitude),
                      -np.maximum(inside_distance, min_magnitude)).astype(np.float32)
    volume = VolumeResult(values=-signed, bounds=(-GRID_BOUNDS,) * 3 + (GRID_BOUNDS,) * 3,
                          resolution=resolution, num_queries=0)
    shell = extract_mesh(volume, level=0.0)  # extract_mesh takes positive-inside values

    # 5. Exact final normalisation (the shell overshoots by up to a voxel); the SDF follows the same map.
    shell, grid_to_output = _normalize(shell, margin)
    scale = float(grid_to_output[0, 0])
    return WatertightResult(
        mesh=shell,
        sdf=GridSDF(signed, scale=scale, offset=grid_to_output[:3, 3]),
        transform=grid_to_output @ input_to_grid,
        tau=tau * scale,
        resolution=int(resolution),
        component_areas=face_counts * voxel**2,
        component_visibility=visibility,
        num_dropped=int(np.count_nonzero(~keep)),
    )


def mesh_field_data(
    path_or_mesh: str | os.PathLike | trimesh.Trimesh, config: FieldConfig | None = None, seed: int = 0
) -> tuple[FieldData, trimesh.Trimesh]:
    """Load (if a path), make watertight at ``config.udf_resolution`` and sample: (field data, watertight mesh)."""
    config = config or FieldConfig()
    mesh = path_or_mesh if isinstance(path_or_mesh, trimesh.Trimesh) else load_mesh(path_or_mesh)
    watertight = make_watertight(
        mesh,
        config.udf_resolution,
        margin=config.margin,
        tau_voxels=config.udf_tau_voxels,
        min_visibility=config.min_visibility,
        min_area_fraction=config.min_area_fraction,
        refine_distance=max(0.15, config.truncation + 0.05),
    )
    return sample_field_data(watertight.mesh, watertight.sdf, config, seed, normals="mesh"), watertight.mesh
