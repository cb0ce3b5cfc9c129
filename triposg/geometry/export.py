"""Mesh export to GLB / OBJ / PLY / STL, with the generation parameters stored inside GLB files.

Vertex colours (texturing) are sRGB in memory, as images are, and so in PLY and OBJ (`v x y z r g b`, which
MeshLab and Blender read). glTF defines `COLOR_0` as linear, so GLB files get them linearised and `read_mesh`
undoes that: viewers (three.js, Babylon, Blender) then show the colours of the input image. STL has no colours.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from trimesh.exchange.gltf import export_glb

from ..io import write_bytes_atomic

SUPPORTED_FORMATS: tuple[str, ...] = ("glb", "obj", "ply", "stl")

# GLB container layout (glTF 2.0 spec, section "Binary glTF Layout"): a 12-byte header, then chunks that each
# start with (byte length, chunk type); the first chunk is the JSON document.
_GLB_MAGIC = b"glTF"
_GLB_HEADER = struct.Struct("<4sII")  # magic, version, total length
_GLB_CHUNK_HEADER = struct.Struct("<I4s")  # chunk length, chunk type
_GLB_JSON_CHUNK = b"JSON"


def export_mesh(
    mesh: trimesh.Trimesh,
    path: str | os.PathLike,
    file_format: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``mesh`` to ``path`` atomically and return the path.

    ``file_format`` is one of :data:`SUPPORTED_FORMATS`, taken from the suffix when None. ``metadata`` (a
    JSON-serialisable dict, e.g. the generation parameters) goes into the glTF ``extras`` of the default scene
    for GLB, readable with :func:`read_glb_metadata`; the other formats have no place for it and ignore it.
    """
    path = Path(path)
    file_format = (file_format or path.suffix.lstrip(".")).lower()
    if file_format not in SUPPORTED_FORMATS:
        raise ValueError(
            f"cannot export {path.name!r} as {file_format or 'an unknown format'!r}; supported formats are "
            f"{', '.join(SUPPORTED_FORMATS)} (pass file_format= or use one of those suffixes)"
        )
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise ValueError(
            f"refusing to write an empty mesh to {path}: it has {len(mesh.vertices)} vertices and "
            f"{len(mesh.faces)} faces (was the surface extraction or floater removal too aggressive?)"
        )

    if file_format == "glb":
        data = export_glb(_linear_vertex_colors(mesh), tree_postprocessor=_glb_extras_writer(metadata))
    else:
        data = mesh.export(file_type=file_format)
        if isinstance(data, str):
            data = data.encode("utf-8")
    write_bytes_atomic(path, data)
    return path


def srgb_to_linear(colors: np.ndarray) -> np.ndarray:
    """8-bit sRGB(A) colours (..., 3 or 4) → 8-bit linear (the sRGB transfer function; alpha is kept)."""
    colors = np.asarray(colors)
    values = colors[..., :3].astype(np.float64) / 255.0
    linear = np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)
    return np.concatenate([np.round(linear * 255.0), colors[..., 3:]], axis=-1).astype(np.uint8)


def linear_to_srgb(colors: np.ndarray) -> np.ndarray:
    """Inverse of `srgb_to_linear`, up to 8-bit rounding."""
    colors = np.asarray(colors)
    values = colors[..., :3].astype(np.float64) / 255.0
    encoded = np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1.0 / 2.4) - 0.055)
    return np.concatenate([np.round(encoded * 255.0), colors[..., 3:]], axis=-1).astype(np.uint8)


def _linear_vertex_colors(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """`mesh`, or a copy whose sRGB vertex colours are linearised for glTF's COLOR_0."""
    if mesh.visual.kind != "vertex":
        return mesh
    linear = mesh.copy()
    linear.visual.vertex_colors = srgb_to_linear(mesh.visual.vertex_colors)
    return linear


def read_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """One mesh from a file `export_mesh` wrote (any supported format; a GLB scene is merged), vertex colours in
    sRGB (a GLB's linear COLOR_0 converted back)."""
    path = Path(path)
    mesh = trimesh.load(path, force="mesh", process=False)
    if path.suffix.lower() == ".glb" and mesh.visual.kind == "vertex":
        mesh.visual.vertex_colors = linear_to_srgb(mesh.visual.vertex_colors)
    return mesh


def _glb_extras_writer(metadata: dict[str, Any] | None):
    """A trimesh tree post-processor that merges ``metadata`` into the default scene's ``extras``."""
    if metadata is not None:
        try:
            # Round trip now so a non-serialisable value fails here, with its name, not inside trimesh.
            metadata = json.loads(json.dumps(metadata))
        except (TypeError, ValueError) as error:
            raise ValueError(f"GLB metadata must be JSON-serialisable: {error}") from error

    def write_extras(tree: dict) -> None:
        if metadata is None:
            return
        scene = tree["scenes"][tree.get("scene", 0)]
        scene["extras"] = {**scene.get("extras", {}), **metadata}

    return write_extras


def read_glb_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``extras`` of the default scene of a GLB file, parsed from its JSON chunk ({} when there are none)."""
    data = Path(path).read_bytes()
    if len(data) < _GLB_HEADER.size + _GLB_CHUNK_HEADER.size:
        raise ValueError(f"{path} is too short to be a GLB file")
    magic, version, _ = _GLB_HEADER.unpack_from(data, 0)
    if magic != _GLB_MAGIC or version != 2:
        raise ValueError(f"{path} is not a glTF 2.0 binary (GLB) file")
    chunk_length, chunk_type = _GLB_CHUNK_HEADER.unpack_from(data, _GLB_HEADER.size)
    if chunk_type != _GLB_JSON_CHUNK:
        raise ValueError(f"{path}: the first GLB chunk must be JSON, found {chunk_type!r}")
    start = _GLB_HEADER.size + _GLB_CHUNK_HEADER.size
    tree = json.loads(data[start : start + chunk_length].decode("utf-8"))
    scenes = tree.get("scenes", [])
    if not scenes:
        return {}
    return dict(scenes[tree.get("scene", 0)].get("extras", {}))
