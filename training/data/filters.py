"""II Filtering (paper §4.2): flag large planar bases, multiple objects and degenerate meshes.

Nothing is dropped here: `run_filters` returns a `FilterReport` of named flags together with the measured
quantities behind them, and the manifest stores it so that a training run chooses what to exclude.

Large planar base
    The paper drops models standing on a ground plane or plinth ("surface patches classified as one plane
    from their centroid, normal and area"). Here faces whose normal is within `planar_normal_tolerance_deg`
    of the up axis (+y, either sign) are grouped into planar patches by plane height (gaps larger than
    `planar_offset_tolerance` start a new patch). The lowest patch, if it lies at the bottom of the mesh,
    is the base candidate. It is a *large* base when its area is much larger than the footprint of what
    stands on it: the convex hull (in xz) of the surface higher than `base_max_thickness` above the bottom,
    and when it covers a large part of the bounding-box footprint. A cylinder or box therefore has a base
    the size of its own footprint (ratio ~1, not flagged), a table top is planar but not at the bottom, a
    table's feet are tiny, and a figure on a wide slab or ground quad has a ratio of several.
Multiple objects
    From the rendered evaluation-view mask (paper: "the proportion of the largest connected component on the
    opaque mask, along with the solidity of both the largest connected component and the entire mask"):
    a second sizeable component lowers the largest component's share; small far-away pieces leave the share
    high but make the whole mask much less solid (area / convex-hull area) than the largest component.
Degenerate
    No faces, non-finite coordinates, too few faces, (near) zero extent, area or thickness, zero volume of a
    closed mesh, or an empty render.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import trimesh

__all__ = [
    "FilterConfig",
    "FilterReport",
    "PlanarPatch",
    "check_degenerate",
    "check_multiple_objects",
    "check_planar_base",
    "horizontal_planar_patches",
    "run_filters",
]


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds of the three filters. Lengths are fractions of the mesh's longest bounding-box side."""

    # --- large planar base
    planar_normal_tolerance_deg: float = 5.0  # a face is horizontal if its normal is this close to ±y
    planar_offset_tolerance: float = 0.005  # faces whose heights differ less belong to one plane
    base_max_thickness: float = 0.08  # a slab up to this thick counts as the base, not as the object on it
    # base area / footprint of what stands on it: above → flagged. Ground slabs measure 4-5; designed
    # object bases (a ring-on-post's foot, a lamp's base) measure up to ~2.7 and are part of the object.
    max_base_footprint_ratio: float = 3.5
    min_base_bbox_coverage: float = 0.3  # and the base must cover this share of the bounding-box footprint
    num_surface_samples: int = 4096  # area-uniform samples that measure the footprint above the base
    # --- multiple objects (evaluation-view mask)
    min_component_pixels: int = 4  # smaller components are anti-aliasing specks, not objects
    min_largest_component_share: float = 0.9  # largest component's share of the opaque area: below → flagged
    min_mask_solidity_ratio: float = 0.7  # mask solidity / largest-component solidity: below → pieces far apart
    # --- degenerate
    min_faces: int = 4  # fewer cannot enclose a volume
    min_extent: float = 1e-6  # longest side in mesh units: below → a point
    min_thickness_ratio: float = 1e-3  # thinnest / longest principal extent: below → flat (zero volume)
    min_area_ratio: float = 1e-6  # surface area / longest side²: below → no surface
    min_volume_ratio: float = 1e-6  # |volume| / longest side³ for closed meshes: below → zero volume
    min_mask_pixels: int = 16  # an evaluation render with fewer opaque pixels is empty


def _json_float(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class FilterReport:
    """Flags and the measurements behind them. None = not measured (e.g. no mask, or a degenerate mesh)."""

    degenerate: bool = False
    large_planar_base: bool = False
    multiple_objects: bool = False
    reasons: list[str] = field(default_factory=list)  # one line per raised flag
    # degenerate
    num_faces: int = 0
    extent: float | None = None  # longest bounding-box side, mesh units
    thickness_ratio: float | None = None  # thinnest / longest principal extent
    area_ratio: float | None = None  # surface area / extent²
    volume_ratio: float | None = None  # |volume| / extent³, closed meshes only
    # large planar base
    base_area_share: float | None = None  # base patch area / total surface area
    base_bbox_coverage: float | None = None  # base patch area / bounding-box footprint (xz)
    base_footprint_ratio: float | None = None  # base patch area / footprint of the surface above it
    # multiple objects
    num_components: int | None = None
    largest_component_share: float | None = None
    largest_component_solidity: float | None = None
    mask_solidity: float | None = None

    @property
    def flagged(self) -> bool:
        return self.degenerate or self.large_planar_base or self.multiple_objects

    def as_dict(self) -> dict:
        """Flat JSON-serialisable dict (reasons joined with "; ", non-finite floats as None)."""
        values = asdict(self)
        values["reasons"] = "; ".join(self.reasons)
        values["flagged"] = self.flagged
        return {key: _json_float(value) if isinstance(value, float) else value for key, value in values.items()}


# ----------------------------------------------------------------------------------------------
# Degenerate meshes
# ----------------------------------------------------------------------------------------------


def check_degenerate(mesh: trimesh.Trimesh, report: FilterReport, config: FilterConfig) -> None:
    """Fill the degenerate-mesh fields of `report` in place."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces)
    report.num_faces = len(faces)
    reasons = []
    if len(faces) == 0 or len(vertices) == 0:
        reasons.append("empty mesh: no faces")
    elif not np.all(np.isfinite(vertices)):
        reasons.append("non-finite (NaN or inf) vertex coordinates")
    else:
        used = vertices[np.unique(faces)]
        extent = float(np.max(used.max(axis=0) - used.min(axis=0)))
        report.extent = extent
        if len(faces) < config.min_faces:
            reasons.append(f"only {len(faces)} faces (< {config.min_faces})")
        if extent < config.min_extent:
            reasons.append(f"extent {extent:.3g} below {config.min_extent:g}: a point")
        else:
            # Principal extents catch flat meshes in any orientation (a tilted plane has a full bounding box).
            centred = used - used.mean(axis=0)
            singular_values = np.linalg.svd(centred, compute_uv=False) if len(used) >= 3 else np.zeros(1)
            report.thickness_ratio = float(singular_values[-1] / max(singular_values[0], 1e-300))
            report.area_ratio = float(mesh.area / extent**2)
            if report.thickness_ratio < config.min_thickness_ratio:
                reasons.append(f"flat: thickness ratio {report.thickness_ratio:.2g} (zero volume)")
            if report.area_ratio < config.min_area_ratio:
                reasons.append(f"zero surface area (area ratio {report.area_ratio:.2g})")
            if mesh.is_watertight:
                report.volume_ratio = float(abs(mesh.volume) / extent**3)
                if report.volume_ratio < config.min_volume_ratio:
                    reasons.append(f"closed mesh with zero volume (volume ratio {report.volume_ratio:.2g})")
    if reasons:
        report.degenerate = True
        report.reasons.extend(f"degenerate: {reason}" for reason in reasons)


# ----------------------------------------------------------------------------------------------
# Large planar base
# ----------------------------------------------------------------------------------------------


@dataclass
class PlanarPatch:
    """Horizontal faces sharing one plane height."""

    height: float  # area-weighted mean y of the faces
    area: float
    centroid: np.ndarray  # (3,) area-weighted face centroid
    face_indices: np.ndarray  # (K,) indices into mesh.faces


def horizontal_planar_patches(
    mesh: trimesh.Trimesh, normal_tolerance_deg: float, offset_tolerance: float
) -> list[PlanarPatch]:
    """Group the faces whose normal is within `normal_tolerance_deg` of ±y into planes by height.

    `offset_tolerance` is absolute (mesh units). Patches are returned from the lowest to the highest.
    """
    normals = np.asarray(mesh.face_normals)
    areas = np.asarray(mesh.area_faces)
    horizontal = np.nonzero((np.abs(normals[:, 1]) >= math.cos(math.radians(normal_tolerance_deg))) & (areas > 0))[0]
    if len(horizontal) == 0:
        return []
    centroids = np.asarray(mesh.triangles_center)[horizontal]
    order = np.argsort(centroids[:, 1], kind="stable")
    heights = centroids[order, 1]
    breaks = np.nonzero(np.diff(heights) > offset_tolerance)[0] + 1
    patches = []
    for group in np.split(np.arange(len(order)), breaks):
        face_indices = horizontal[order[group]]
        weights = areas[face_indices]
        centroid = (centroids[order[group]] * weights[:, None]).sum(axis=0) / weights.sum()
        patches.append(PlanarPatch(float(centroid[1]), float(weights.sum()), centroid, face_indices))
    return patches


def _convex_hull_area_2d(points: np.ndarray) -> float:
    """Area of the convex hull of (N, 2) points; 0 for fewer than three or collinear points."""
    from scipy.spatial import ConvexHull, QhullError

    if len(points) < 3:
        return 0.0
    try:
        return float(ConvexHull(points).volume)  # a 2-D hull's "volume" is its area
    except QhullError:
        return 0.0


def check_planar_base(mesh: trimesh.Trimesh, report: FilterReport, config: FilterConfig) -> None:
    """Fill the planar-base fields of `report` in place (the mesh must not be degenerate)."""
    lower, upper = mesh.bounds
    extent = float(np.max(upper - lower))
    bottom = float(lower[1])
    patches = horizontal_planar_patches(
        mesh, config.planar_normal_tolerance_deg, config.planar_offset_tolerance * extent
    )
    report.base_area_share = report.base_bbox_coverage = report.base_footprint_ratio = 0.0
    if not patches or patches[0].height - bottom > config.planar_offset_tolerance * extent:
        return  # nothing flat at the bottom: the object touches the ground with curves, edges or points
    base = patches[0]
    bbox_footprint = float((upper[0] - lower[0]) * (upper[2] - lower[2]))
    report.base_area_share = base.area / float(mesh.area)
    report.base_bbox_coverage = base.area / max(bbox_footprint, 1e-300)

    # The footprint of what stands on the base, from area-uniform samples so that long faces crossing
    # the cut height (a cone's sides) still contribute points above it.
    samples, _ = _sample_surface(mesh, config.num_surface_samples)
    above = samples[samples[:, 1] > bottom + config.base_max_thickness * extent]
    if len(above) < 3:
        report.base_footprint_ratio = 1.0  # the whole object is a flat slab: it is the object, not its base
        return
    footprint_above = _convex_hull_area_2d(above[:, [0, 2]])
    report.base_footprint_ratio = base.area / max(footprint_above, 1e-12 * extent**2)
    if (
        report.base_footprint_ratio > config.max_base_footprint_ratio
        and report.base_bbox_coverage >= config.min_base_bbox_coverage
    ):
        report.large_planar_base = True
        report.reasons.append(
            f"large planar base: bottom plane {report.base_footprint_ratio:.1f}x the footprint of the object on it,"
            f" covering {report.base_bbox_coverage:.0%} of the bounding-box footprint"
        )


def _sample_surface(mesh: trimesh.Trimesh, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic area-uniform surface samples: (count, 3) points and their (count,) face indices."""
    import trimesh

    points, face_indices = trimesh.sample.sample_surface(mesh, count, seed=0)
    return np.asarray(points), np.asarray(face_indices)


# ----------------------------------------------------------------------------------------------
# Multiple objects
# ----------------------------------------------------------------------------------------------


def _solidity(mask: np.ndarray) -> float:
    """Area / convex-hull area of a (H, W) bool mask, both counted in pixels."""
    from skimage.morphology import convex_hull_image

    hull_pixels = int(convex_hull_image(mask).sum())
    return float(mask.sum()) / hull_pixels if hull_pixels else 0.0


def check_multiple_objects(mask: np.ndarray, report: FilterReport, config: FilterConfig) -> None:
    """Fill the multiple-object fields of `report` in place from a (H, W) bool render mask."""
    from scipy import ndimage

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be a (H, W) array, got shape {mask.shape}")
    mask = mask.astype(bool)
    if int(mask.sum()) < config.min_mask_pixels:
        report.degenerate = True
        report.reasons.append(f"degenerate: empty evaluation render ({int(mask.sum())} opaque pixels)")
        return
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))  # 8-connectivity
    sizes = np.bincount(labels.ravel())[1:]
    kept = np.nonzero(sizes >= config.min_component_pixels)[0]
    if len(kept) == 0:  # only specks: judge the mask as one piece
        kept = np.array([int(np.argmax(sizes))])
    object_mask = np.isin(labels, kept + 1)
    largest = labels == int(kept[np.argmax(sizes[kept])]) + 1
    report.num_components = len(kept)
    report.largest_component_share = float(largest.sum() / object_mask.sum())
    report.largest_component_solidity = _solidity(largest)
    report.mask_solidity = _solidity(object_mask)

    reasons = []
    if report.largest_component_share < config.min_largest_component_share:
        reasons.append(f"largest component holds only {report.largest_component_share:.0%} of the mask")
    solidity_ratio = report.mask_solidity / max(report.largest_component_solidity, 1e-12)
    if report.num_components > 1 and solidity_ratio < config.min_mask_solidity_ratio:
        reasons.append(
            f"mask solidity {report.mask_solidity:.2f} vs {report.largest_component_solidity:.2f} for the largest"
            " component: pieces far apart"
        )
    if reasons:
        report.multiple_objects = True
        report.reasons.extend(f"multiple objects: {reason}" for reason in reasons)


def run_filters(
    mesh: trimesh.Trimesh, mask: np.ndarray | None = None, config: FilterConfig = FilterConfig()
) -> FilterReport:
    """Run all filters on a y-up mesh and, if given, its (H, W) bool evaluation-view mask.

    Never raises on a bad mesh: degenerate meshes are reported (and the geometric checks skipped).
    Without a mask the multiple-object fields stay None and that flag False.
    """
    report = FilterReport()
    check_degenerate(mesh, report, config)
    if not report.degenerate:
        check_planar_base(mesh, report, config)
    if mask is not None:
        check_multiple_objects(mask, report, config)
    return report
