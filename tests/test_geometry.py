"""Geometry decoding: volume decoders, surface extraction, post-processing and export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from triposg.geometry import (
    DEFAULT_BOUNDS,
    SUPPORTED_FORMATS,
    DenseVolumeDecoder,
    EmptySurfaceError,
    HierarchicalVolumeDecoder,
    PostProcessor,
    VolumeResult,
    decode_volume,
    export_mesh,
    extract_mesh,
    extract_surface,
    read_glb_metadata,
    remove_floaters,
    simplify,
)

RESOLUTION, COARSE_RESOLUTION = 128, 32
BOX_HALF_SIZE = (0.5, 0.4, 0.3)  # off the grid, so no grid point lies exactly on a face


# Analytic fields, positive inside (the TripoSG VAE's convention): (Q, 3) xyz -> (Q,).
def sphere(points: torch.Tensor, radius: float = 0.5, center=(0.0, 0.0, 0.0)) -> torch.Tensor:
    return radius - torch.linalg.vector_norm(points - points.new_tensor(center), dim=-1)


def torus(points: torch.Tensor, major: float = 0.5, minor: float = 0.2) -> torch.Tensor:
    x, y, z = points.unbind(-1)
    return minor - torch.hypot(torch.hypot(x, y) - major, z)


def box(points: torch.Tensor) -> torch.Tensor:
    q = points.abs() - points.new_tensor(BOX_HALF_SIZE)
    outside = torch.linalg.vector_norm(q.clamp(min=0), dim=-1)
    inside = q.max(dim=-1).values.clamp(max=0)
    return -(outside + inside)


ANALYTIC_VOLUMES = {
    "sphere": 4 / 3 * math.pi * 0.5**3,
    "torus": 2 * math.pi**2 * 0.5 * 0.2**2,
    "box": 8 * math.prod(BOX_HALF_SIZE),
}
FIELDS = {"sphere": sphere, "torus": torus, "box": box}


def chamfer(vertices_a: np.ndarray, vertices_b: np.ndarray) -> float:
    """Symmetric Chamfer distance: mean nearest-neighbour distance, averaged over both directions."""
    a_to_b, _ = cKDTree(vertices_b).query(vertices_a)
    b_to_a, _ = cKDTree(vertices_a).query(vertices_b)
    return 0.5 * (a_to_b.mean() + b_to_a.mean())


@pytest.fixture(scope="module", params=sorted(FIELDS))
def decoded(request):
    """Dense and hierarchical volumes and meshes of one analytic field."""
    field = FIELDS[request.param]
    dense = DenseVolumeDecoder()(field, DEFAULT_BOUNDS, RESOLUTION)
    hierarchical = HierarchicalVolumeDecoder(coarse_resolution=COARSE_RESOLUTION)(field, DEFAULT_BOUNDS, RESOLUTION)
    return {
        "name": request.param,
        "dense": dense,
        "hierarchical": hierarchical,
        "dense_mesh": extract_mesh(dense),
        "hierarchical_mesh": extract_mesh(hierarchical),
    }


@pytest.fixture(scope="module")
def sphere_mesh() -> trimesh.Trimesh:
    return extract_mesh(decode_volume(sphere, DEFAULT_BOUNDS, 64, method="dense"))


def test_hierarchical_surface_matches_dense(decoded):
    voxel = float(decoded["dense"].voxel_size.max())
    distance = chamfer(decoded["dense_mesh"].vertices, decoded["hierarchical_mesh"].vertices)
    assert distance < voxel


def test_hierarchical_values_equal_dense_near_surface(decoded):
    # Every corner of a cell the surface crosses is within one cell diagonal (< 2 voxels) of it, so these are all
    # the values marching cubes reads; interpolating them instead of querying would change them.
    dense, hierarchical = decoded["dense"].values, decoded["hierarchical"].values
    near_surface = np.abs(dense) < 2 * float(decoded["dense"].voxel_size.max())
    np.testing.assert_array_equal(hierarchical[near_surface], dense[near_surface])
    np.testing.assert_array_equal(decoded["hierarchical_mesh"].vertices, decoded["dense_mesh"].vertices)


def test_meshes_are_watertight(decoded):
    assert decoded["dense_mesh"].is_watertight
    assert decoded["hierarchical_mesh"].is_watertight


@pytest.mark.parametrize("radius", [10.0, 10.3])  # 10: grid points exactly on the surface; 10.3: none
def test_extracted_mesh_has_one_vertex_per_position(radius):
    """Marching cubes puts several vertices where a grid value is exactly zero, and `extract_mesh` merges them then;
    otherwise it skips the merge, which would find nothing: the faces already share their vertices (watertight)."""
    axis = np.arange(-16, 17, dtype=np.float32)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    values = radius - np.sqrt(x * x + y * y + z * z)  # positive inside
    assert np.any(values == 0) == (radius == 10.0)
    mesh = extract_mesh(VolumeResult(values=values.astype(np.float32), bounds=(-16, -16, -16, 16, 16, 16),
                                     resolution=32, num_queries=values.size))
    assert len(np.unique(mesh.vertices, axis=0)) == len(mesh.vertices)
    if radius != 10.0:
        assert mesh.is_watertight


def test_mesh_volume_matches_analytic(decoded):
    expected = ANALYTIC_VOLUMES[decoded["name"]]
    for mesh in (decoded["dense_mesh"], decoded["hierarchical_mesh"]):
        assert mesh.volume == pytest.approx(expected, rel=0.01)


def test_hierarchical_uses_far_fewer_queries(decoded):
    assert decoded["dense"].num_queries == (RESOLUTION + 1) ** 3
    assert decoded["hierarchical"].num_queries * 5 < decoded["dense"].num_queries


def test_hierarchical_counts_every_query():
    asked = []

    def counting_sphere(points: torch.Tensor) -> torch.Tensor:
        asked.append(points.shape[0])
        return sphere(points)

    volume = HierarchicalVolumeDecoder(coarse_resolution=16, chunk_size=4096)(counting_sphere, DEFAULT_BOUNDS, 64)
    assert volume.num_queries == sum(asked)
    assert max(asked) <= 4096


def test_hierarchical_finds_feature_smaller_than_a_coarse_cell():
    # A sphere 0.6 coarse cells across, centred in a coarse cell: no coarse grid point is inside it, so only the
    # near-surface band (not the sign-change test) can send this cell for refinement.
    coarse_cell = 2.01 / 16
    center = (-1.005 + 8.5 * coarse_cell,) * 3
    tiny = lambda p: sphere(p, radius=0.3 * coarse_cell, center=center)  # noqa: E731
    hierarchical = decode_volume(tiny, DEFAULT_BOUNDS, 64, method="hierarchical", coarse_resolution=16)
    dense = decode_volume(tiny, DEFAULT_BOUNDS, 64, method="dense")
    assert len(extract_mesh(hierarchical).faces) == len(extract_mesh(dense).faces) > 0


def test_far_cells_stay_outside():
    volume = decode_volume(sphere, DEFAULT_BOUNDS, 64, method="hierarchical", coarse_resolution=16)
    assert volume.values.shape == (65, 65, 65)
    corners = volume.values[[0, 0, -1, -1], [0, -1, 0, -1], [0, 0, -1, -1]]
    assert (corners < 0).all()
    assert volume.values[32, 32, 32] > 0


def test_wrong_resolution_raises():
    with pytest.raises(ValueError, match="coarse_resolution"):
        HierarchicalVolumeDecoder(coarse_resolution=32)(sphere, DEFAULT_BOUNDS, 96)
    with pytest.raises(ValueError, match="coarse_resolution"):
        HierarchicalVolumeDecoder(coarse_resolution=32)(sphere, DEFAULT_BOUNDS, 16)


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="dense"):
        decode_volume(sphere, DEFAULT_BOUNDS, 32, method="octree")


@pytest.mark.parametrize("field", [lambda p: -torch.ones(p.shape[0]), lambda p: torch.ones(p.shape[0])])
def test_empty_field_raises(field):
    volume = decode_volume(field, DEFAULT_BOUNDS, 16, method="dense")
    with pytest.raises(EmptySurfaceError, match="bounds"):
        extract_surface(volume)


def test_non_finite_field_raises():
    volume = decode_volume(sphere, DEFAULT_BOUNDS, 16, method="dense")
    volume.values[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        extract_surface(volume)


def test_surface_is_inside_bounds_and_outward(sphere_mesh):
    assert np.abs(sphere_mesh.vertices).max() <= 0.5 + 1e-3
    assert sphere_mesh.volume > 0  # signed volume: positive only when the normals point outward
    outward = np.einsum("ij,ij->i", sphere_mesh.face_normals, sphere_mesh.triangles_center)
    assert (outward > 0).all()


def test_extract_surface_types(sphere_mesh):
    vertices, faces = extract_surface(decode_volume(sphere, DEFAULT_BOUNDS, 32, method="dense"))
    assert vertices.dtype == np.float32 and vertices.shape[1] == 3
    assert faces.dtype == np.int64 and faces.shape[1] == 3


def with_floater(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """``mesh`` plus a small separate sphere (80 faces) at x = 0.8."""
    floater = trimesh.creation.icosphere(subdivisions=1, radius=0.05)
    floater.apply_translation([0.8, 0.0, 0.0])
    return trimesh.util.concatenate([mesh, floater])


def test_remove_floaters_drops_small_component(sphere_mesh):
    combined = with_floater(sphere_mesh)
    cleaned = remove_floaters(combined, min_face_fraction=0.05)
    assert len(cleaned.faces) == len(sphere_mesh.faces)
    assert cleaned.vertices[:, 0].max() < 0.6
    assert len(remove_floaters(combined, min_face_fraction=0.0).faces) == len(combined.faces)


def test_simplify_reaches_target(sphere_mesh):
    simplified = simplify(sphere_mesh, 1000)
    assert 0 < len(simplified.faces) <= 1000
    assert simplified.volume == pytest.approx(sphere_mesh.volume, rel=0.05)
    assert len(simplify(sphere_mesh, 10**9).faces) == len(sphere_mesh.faces)


def test_post_processor_applies_steps(sphere_mesh):
    combined = with_floater(sphere_mesh)
    processed = PostProcessor(target_faces=500)(combined)
    assert len(processed.faces) <= 500
    assert processed.vertices[:, 0].max() < 0.6
    assert len(PostProcessor(remove_floaters=False)(combined).faces) == len(combined.faces)


@pytest.mark.parametrize("file_format", SUPPORTED_FORMATS)
def test_export_round_trip(sphere_mesh, tmp_path, file_format):
    path = export_mesh(sphere_mesh, tmp_path / f"sphere.{file_format}")
    assert path.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the temporary file was renamed
    reloaded = trimesh.load(path, force="mesh")
    assert len(reloaded.faces) == len(sphere_mesh.faces)
    assert reloaded.volume == pytest.approx(sphere_mesh.volume, rel=1e-4)


def test_export_format_overrides_suffix(sphere_mesh, tmp_path):
    path = export_mesh(sphere_mesh, tmp_path / "mesh.bin", file_format="ply")
    assert len(trimesh.load(path, file_type="ply", force="mesh").faces) == len(sphere_mesh.faces)


def test_glb_metadata_round_trip(sphere_mesh, tmp_path):
    metadata = {"seed": 42, "num_inference_steps": 50, "guidance_scale": 7.0, "image": "cat.png"}
    path = export_mesh(sphere_mesh, tmp_path / "sphere.glb", metadata=metadata)
    assert read_glb_metadata(path) == metadata
    assert read_glb_metadata(export_mesh(sphere_mesh, tmp_path / "plain.glb")) == {}


def test_glb_metadata_must_be_json(sphere_mesh, tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        export_mesh(sphere_mesh, tmp_path / "sphere.glb", metadata={"latents": object()})
    assert not list(tmp_path.iterdir())


def test_unknown_format_raises(sphere_mesh, tmp_path):
    with pytest.raises(ValueError, match="glb, obj, ply, stl"):
        export_mesh(sphere_mesh, tmp_path / "sphere.fbx")


def test_empty_mesh_export_raises(tmp_path):
    with pytest.raises(ValueError, match="empty mesh"):
        export_mesh(trimesh.Trimesh(), tmp_path / "empty.glb")


def test_simplify_keeps_vertex_colours():
    mesh = trimesh.creation.icosphere(subdivisions=4)
    colours = np.where(mesh.vertices[:, :1] > 0, [[255, 0, 0, 255]], [[0, 0, 255, 255]]).astype(np.uint8)
    mesh.visual.vertex_colors = colours
    reduced = simplify(mesh, 500)
    reduced_colours = np.asarray(reduced.visual.vertex_colors)
    right = reduced.vertices[:, 0] > 0.1
    left = reduced.vertices[:, 0] < -0.1
    assert (reduced_colours[right, 0] == 255).all() and (reduced_colours[left, 2] == 255).all()
