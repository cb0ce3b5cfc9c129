"""Image colours onto the surface the camera sees: visibility by a depth buffer, colours sampled at the vertices."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .camera import ImageCamera
from .raster import rasterize_depth


def visible_vertices(
    vertices: np.ndarray,
    vertex_normals: np.ndarray,
    faces: np.ndarray,
    camera: ImageCamera,
    resolution: int,
    min_facing: float,
    occlusion_margin: float = 0.008,
) -> np.ndarray:
    """(V,) bool: vertices facing the camera and nearer than every other surface within `occlusion_margin` (a share
    of the image side) of their pixel, so that neither the colour blur nor a slightly wrong camera hands them a
    nearer part's colour.

    `vertices` (V, 3), `vertex_normals` (V, 3) unit, `faces` (F, 3); `resolution`: the depth buffer's side.
    `min_facing`: the least cosine between a vertex's normal and the direction to the camera (grazing surface
    gets smeared colours and uncertain depth)."""
    margin = max(1, round(occlusion_margin * resolution))  # pixels
    image, depth = camera.project(vertices)
    pixels = image * resolution
    buffer = rasterize_depth(pixels, depth, np.asarray(faces), resolution)
    # A vertex lies on its own faces, but the buffer is read up to the margin plus 0.71 px away from it: allow its
    # own surface's depth change over that distance at its slope, plus a pixel (mesh units per pixel).
    if camera.distance is None:
        towards_camera = np.broadcast_to(camera.view_direction, vertices.shape)
    else:
        position = camera.distance * camera.view_direction
        towards_camera = position - vertices
        towards_camera = towards_camera / np.linalg.norm(towards_camera, axis=1, keepdims=True)
    facing = (vertex_normals * towards_camera).sum(axis=1)
    slope = np.sqrt(np.clip(1.0 - facing**2, 0.0, 1.0)) / np.maximum(facing, 1e-3)
    pixel_size = 1.0 / (camera.scale * resolution)
    tolerance = pixel_size * (1.0 + (margin + 0.75) * slope)
    column, row = np.floor(pixels).astype(np.int64).T
    on_image = (column >= 0) & (column < resolution) & (row >= 0) & (row < resolution)
    # The nearest surface around each pixel (this also covers silhouette vertices whose own pixel centre no face
    # covers).
    around = ndimage.minimum_filter(buffer, size=2 * margin + 1, mode="nearest")
    nearest = np.full(len(vertices), np.inf)
    nearest[on_image] = around[row[on_image], column[on_image]]
    return on_image & (facing >= min_facing) & (depth <= nearest + tolerance)


def sample_vertex_colors(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: ImageCamera,
    image: np.ndarray,
    mask: np.ndarray,
    mask_erosion: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Colours (V, 3) float in [0, 255] of the image at each vertex, and (V,) bool where the (eroded) mask holds.

    `image` (S, S, 3) RGB, `mask` (S, S) in [0, 1]. The image is first blurred to about the spacing of the projected
    vertices, within the mask only (normalised convolution), so a vertex gets the mean colour of the patch it stands
    for and no background. `mask_erosion`: share of the image side kept off the mask's outline, where the camera
    fit and the cut-out are least certain."""
    side = image.shape[0]
    positions = camera.project(vertices)[0] * side  # (V, 2) pixels
    edges = np.asarray(faces)[:, [0, 1]]
    spacing = float(np.median(np.linalg.norm(positions[edges[:, 0]] - positions[edges[:, 1]], axis=1)))
    sigma = float(np.clip(0.25 * spacing, 0.0, 1.5))
    weight = (mask >= 0.5).astype(np.float32)
    if sigma > 0.3:
        blurred = ndimage.gaussian_filter(image.astype(np.float32) * weight[..., None], (sigma, sigma, 0))
        norm = ndimage.gaussian_filter(weight, sigma)
        image = blurred / np.maximum(norm, 1e-6)[..., None]
    radius = int(round(mask_erosion * side))
    inner = ndimage.binary_erosion(weight > 0, iterations=radius) if radius > 0 else weight > 0
    coords = [positions[:, 1] - 0.5, positions[:, 0] - 0.5]  # (row, column) of pixel centres
    colors = np.stack([ndimage.map_coordinates(image[..., c].astype(np.float32), coords, order=1, mode="nearest")
                       for c in range(3)], axis=1)
    inside = ndimage.map_coordinates(inner.astype(np.float32), coords, order=0, mode="constant", cval=0.0) > 0.5
    return np.clip(colors, 0.0, 255.0), inside


def remove_shading(colors: np.ndarray, normals: np.ndarray, camera: ImageCamera, seen: np.ndarray) -> np.ndarray:
    """Colours (V, 3) with the image's lighting divided out, approximately: the seen vertices' linear luminance is
    fitted as an affine function of their camera-space normal (first-order spherical harmonics: ambient plus one
    directional term), and every colour is divided by that fit relative to its median, so a side that faces away
    from the light is not painted darker than the side that faces it. Albedo that changes with the normal is partly
    taken for light: an option, measured in `benchmarks/texturing.py`."""
    linear = (np.clip(colors, 0.0, 255.0) / 255.0) ** 2.2
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
    camera_normals = normals @ camera.rotation  # (V, 3): right, up, towards the camera
    design = np.concatenate([np.ones((len(colors), 1)), camera_normals], axis=1)
    coefficients, *_ = np.linalg.lstsq(design[seen], luminance[seen], rcond=None)
    shading = design @ coefficients
    reference = float(np.median(shading[seen]))
    shading = np.clip(shading, 0.25 * reference, None)
    return 255.0 * np.clip(linear * (reference / shading)[:, None], 0.0, 1.0) ** (1.0 / 2.2)
