"""The normal-map encoding: the unlit pass that draws world normals, and its decoding into the output map.

`RenderResult.normal` encodes a unit normal n (camera space by default: x right, y up, z towards the
viewer; or world space) as `round((n + 1) / 2 * 255)`, so a surface facing the camera is
(128, 128, 255). Background pixels are `normal_background` (default white, which no unit normal
encodes, so it cannot be mistaken for a surface); silhouette pixels are blended with it by their
pixel coverage. With `smooth=True` (default) normals are vertex normals interpolated across faces
and re-normalised per pixel, with the mesh first split along creases sharper than
`CREASE_ANGLE_DEG` (`meshes.split_creases`), so curved surfaces look smooth and boxes keep
their edges; with `smooth=False` every face is flat. Both passes (colour and normals) use the same
shading. Back faces (open meshes, flipped normals) are rendered too and show normals pointing away
from the viewer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import trimesh

    from .cameras import Camera


def encoded_normal_mesh(pyrender, mesh: trimesh.Trimesh, smooth: bool):
    """A mesh whose unlit colours are world normals encoded as (n + 1) / 2, for the FLAT pass."""
    if smooth:
        positions, normals, indices = mesh.vertices, mesh.vertex_normals, mesh.faces
    else:
        positions = mesh.vertices[mesh.faces].reshape(-1, 3)
        normals = np.repeat(mesh.face_normals, 3, axis=0)
        indices = None
    primitive = pyrender.Primitive(
        positions=np.asarray(positions, dtype=np.float32),
        color_0=((np.asarray(normals, dtype=np.float32) + 1.0) / 2.0),
        indices=indices,
        material=pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], alphaMode="OPAQUE", doubleSided=True
        ),
    )
    return pyrender.Mesh(primitives=[primitive])


def decode_normals(
    encoded: np.ndarray,
    mask: np.ndarray,
    camera: Camera,
    normal_space: str,
    normal_background: tuple[int, int, int],
) -> np.ndarray:
    """Turn the FLAT pass (world normals, cleared to the zero normal) into the output normal map.

    Because the pass is cleared to the encoding of the zero vector, a multisampled edge pixel holds
    coverage * n: its direction is the surface normal and its length is the pixel coverage.
    """
    from scipy import ndimage

    scaled = encoded.astype(np.float32) / 255.0 * 2.0 - 1.0  # (H, W, 3) coverage * n
    length = np.linalg.norm(scaled, axis=-1)
    normals = scaled / np.maximum(length, 1e-6)[..., None]
    if normal_space == "camera":
        normals = normals @ camera.rotation  # row vectors: n_cam = R^T n_world
    # Inside the silhouette interpolated normals can be slightly shorter than 1; only edges are partial.
    coverage = np.clip(length, 0.0, 1.0)
    coverage[coverage < 0.02] = 0.0  # the cleared value 128/255 is not exactly zero
    coverage[ndimage.binary_erosion(mask, iterations=1, border_value=0)] = 1.0
    normal_colors = (normals + 1.0) / 2.0 * 255.0
    background = np.asarray(normal_background, dtype=np.float32)
    blended = coverage[..., None] * normal_colors + (1.0 - coverage[..., None]) * background
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
