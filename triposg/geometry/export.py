"""Mesh export to GLB / OBJ / PLY / STL, with the generation parameters stored inside GLB files."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

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
        data = export_glb(mesh, tree_postprocessor=_glb_extras_writer(metadata))
    else:
        data = mesh.export(file_type=file_format)
        if isinstance(data, str):
            data = data.encode("utf-8")
    write_bytes_atomic(path, data)
    return path


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
