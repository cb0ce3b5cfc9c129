"""The procedural corpus: shape families with analytic signed distance fields, deterministic by (family, seed).

Each family is one function ``(rng) -> (field, params)`` that draws its proportions and part counts from ``rng``
and builds the shape from :mod:`training.data.sdf` parts in its own units, standing on its base with +y up and
its front (a chair's seat edge, a mug's handle side, a snowman's nose) facing +z. :func:`sample_shape` then

1. turns it about +y by a random yaw in [-45, 45] degrees (:data:`MAX_YAW_DEG`): enough to vary the view, small
   enough that "front" stays meaningful for the families that have one (the renderer's front camera sits on +z);
2. normalises it: the tight bounding box (measured by :func:`~training.data.sdf.surface_bounds`) is centred at
   the origin and its longest side spans [-0.9, 0.9], by a uniform scale and a translation of the field
   (``s f((p - t) / s)`` is still a distance field);
3. draws a material (an sRGB base colour and a roughness), independent of the family so that colour is no cue.

Field sign: negative inside, positive outside, in world units.
"""

from __future__ import annotations

import colorsys
import dataclasses
import itertools
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import trimesh

from training.data.sdf import (
    SDF,
    Box,
    Capsule,
    Cone,
    Cylinder,
    Ellipsoid,
    HalfSpace,
    RoundedBox,
    Sphere,
    Torus,
    intersection,
    rotation_matrix,
    smooth_union,
    subtract,
    surface_bounds,
    union,
)
from triposg.geometry import decode_volume, default_coarse_resolution, extract_mesh

HALF_EXTENT = 0.9  # the longest side of every shape spans [-0.9, 0.9]: a 0.1 margin inside [-1, 1]^3
MAX_YAW_DEG = 45.0  # random turn about +y; keeps the front of a chair or mug facing the front camera
CORPUS_SEED_STRIDE = 1_000_000  # sample_corpus seeds: corpus seed * stride + index within the family

Params = dict[str, Any]


@dataclass(frozen=True)
class Material:
    """``base_color``: sRGB in [0, 1]; ``roughness`` in [0, 1] (glTF metallic-roughness, non-metallic)."""

    base_color: tuple[float, float, float]
    roughness: float

    @property
    def rgba8(self) -> tuple[int, int, int, int]:
        """The base colour as 8-bit sRGB with full alpha (vertex colours)."""
        return (*(round(255 * c) for c in self.base_color), 255)  # type: ignore[return-value]


@dataclass
class ProceduralShape:
    """One sampled shape. ``params`` holds everything drawn (JSON-serialisable); ``distance_field`` is the
    normalised field and ``bounds`` its tight box (min xyz, max xyz), both rebuilt by ``sample_shape``."""

    family: str
    seed: int
    params: Params
    material: Material
    distance_field: SDF = dataclasses.field(repr=False, compare=False)
    bounds: tuple[np.ndarray, np.ndarray] = dataclasses.field(repr=False, compare=False)

    @property
    def object_id(self) -> str:
        return procedural_object_id(self.family, self.seed)

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """``points``: (N, 3) xyz in the normalised world frame -> (N,) float32 distances, negative inside."""
        return self.distance_field(points)

    def to_mesh(self, resolution: int = 128) -> trimesh.Trimesh:
        """Marching cubes of the field on a ``resolution``^3 grid over [-1.005, 1.005]^3, coloured by the
        material. Hierarchical decoding from a 32^3 grid is safe here: the field is (close to) a true distance, so
        the band test refines every cell that a part, however thin, passes through."""

        def positive_inside(points: torch.Tensor) -> torch.Tensor:  # the sign triposg.geometry expects
            return torch.from_numpy(-self.sdf(points.cpu().numpy()))

        volume = decode_volume(
            positive_inside,
            resolution=resolution,
            method="hierarchical",
            coarse_resolution=default_coarse_resolution(resolution, max_coarse=32),
        )
        mesh = extract_mesh(volume)
        # A grid point that lies on a sharp edge (value ~0) makes marching cubes emit zero-area slivers.
        mesh.update_faces(mesh.nondegenerate_faces())
        mesh.remove_unreferenced_vertices()
        mesh.visual.vertex_colors = np.tile(np.array(self.material.rgba8, dtype=np.uint8), (len(mesh.vertices), 1))
        return mesh


# ----------------------------------------------------------------------------------------------
# Drawing numbers (as plain Python types, so params are JSON-serialisable)
# ----------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _integer(rng: np.random.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high], both ends included."""
    return int(rng.integers(low, high + 1))


def _choice(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _ring(count: int, radius: float, start_deg: float = 0.0) -> list[tuple[float, float]]:
    """(x, z) of ``count`` points evenly spaced on a circle about the y axis."""
    angles = [math.radians(start_deg + 360.0 * i / count) for i in range(count)]
    return [(radius * math.sin(a), radius * math.cos(a)) for a in angles]


# ----------------------------------------------------------------------------------------------
# Primitive families
# ----------------------------------------------------------------------------------------------


def _sphere(rng: np.random.Generator) -> tuple[SDF, Params]:
    return Sphere(1.0), {}  # normalisation fixes the size: only the material varies


def _ellipsoid(rng: np.random.Generator) -> tuple[SDF, Params]:
    # y clearly flattened or stretched, so it never reads as a sphere.
    height = _uniform(rng, 0.35, 0.65) if rng.random() < 0.5 else _uniform(rng, 1.5, 2.2)
    radii = (1.0, height, _uniform(rng, 0.45, 0.85))
    return Ellipsoid(radii), {"radii": list(radii)}


def _box(rng: np.random.Generator) -> tuple[SDF, Params]:
    half_size = tuple(_uniform(rng, 0.3, 1.0) for _ in range(3))
    return Box(half_size), {"half_size": list(half_size)}


def _rounded_box(rng: np.random.Generator) -> tuple[SDF, Params]:
    half_size = tuple(_uniform(rng, 0.4, 1.0) for _ in range(3))
    radius = _uniform(rng, 0.25, 0.5) * min(half_size)
    return RoundedBox(half_size, radius), {"half_size": list(half_size), "radius": radius}


def _cylinder(rng: np.random.Generator) -> tuple[SDF, Params]:
    half_height = _uniform(rng, 0.3, 1.8)  # from a thick disc to a column, radius 1
    return Cylinder(1.0, half_height), {"half_height": half_height}


def _cone(rng: np.random.Generator) -> tuple[SDF, Params]:
    top_radius = 0.0 if rng.random() < 0.5 else _uniform(rng, 0.1, 0.35)  # pointed or truncated
    half_height = _uniform(rng, 0.5, 1.5)
    return Cone(1.0, top_radius, half_height), {"top_radius": top_radius, "half_height": half_height}


def _capsule(rng: np.random.Generator) -> tuple[SDF, Params]:
    radius, half_length = _uniform(rng, 0.3, 0.55), _uniform(rng, 0.4, 1.0)
    pose = _choice(rng, ("upright", "lying"))
    axis = (0.0, half_length, 0.0) if pose == "upright" else (half_length, 0.0, 0.0)
    field = Capsule(tuple(-a for a in axis), axis, radius)
    return field, {"radius": radius, "half_length": half_length, "pose": pose}


def _torus(rng: np.random.Generator) -> tuple[SDF, Params]:
    # Tilted between 50 degrees and upright (facing +z): a flat torus seen from the front hides its hole.
    minor_radius, tilt_deg = _uniform(rng, 0.18, 0.4), _uniform(rng, 50.0, 90.0)
    field = Torus(1.0, minor_radius).rotate_x(tilt_deg)
    return field, {"minor_radius": minor_radius, "tilt_deg": tilt_deg}


# ----------------------------------------------------------------------------------------------
# Composite families (CSG); y = 0 is the floor
# ----------------------------------------------------------------------------------------------


def _leg(kind: str, x: float, z: float, radius: float, height: float) -> SDF:
    """A vertical leg from the floor to ``height``, round or square in section."""
    part = Cylinder(radius, height / 2) if kind == "round" else Box((radius, height / 2, radius))
    return part.translate((x, height / 2, z))


def _table(rng: np.random.Generator) -> tuple[SDF, Params]:
    top_shape = _choice(rng, ("rectangular", "round"))
    height, thickness = _uniform(rng, 0.6, 0.85), _uniform(rng, 0.04, 0.08)
    leg_kind, leg_radius = _choice(rng, ("round", "square")), _uniform(rng, 0.035, 0.06)
    top_y = height - thickness / 2
    if top_shape == "rectangular":
        width = _uniform(rng, 1.1, 1.8)
        depth = width * _uniform(rng, 0.5, 0.9)
        top = Box((width / 2, thickness / 2, depth / 2)).translate((0, top_y, 0))
        num_legs, inset = 4, _uniform(rng, 0.05, 0.15)
        corner_x, corner_z = width / 2 - inset - leg_radius, depth / 2 - inset - leg_radius
        feet = [(sx * corner_x, sz * corner_z) for sx in (-1, 1) for sz in (-1, 1)]
        size = {"width": width, "depth": depth}
    else:
        radius = _uniform(rng, 0.5, 0.8)
        top = Cylinder(radius, thickness / 2).translate((0, top_y, 0))
        num_legs = _integer(rng, 3, 4)
        feet = _ring(num_legs, radius * _uniform(rng, 0.6, 0.8), start_deg=180.0 / num_legs)
        size = {"radius": radius}
    legs = [_leg(leg_kind, x, z, leg_radius, height - thickness) for x, z in feet]
    params = {"top_shape": top_shape, **size, "height": height, "top_thickness": thickness, "num_legs": num_legs,
              "leg_kind": leg_kind, "leg_radius": leg_radius}
    return union(top, *legs), params


def _chair(rng: np.random.Generator) -> tuple[SDF, Params]:
    width, depth = _uniform(rng, 0.45, 0.6), _uniform(rng, 0.42, 0.55)
    seat_height, seat_thickness = _uniform(rng, 0.42, 0.5), _uniform(rng, 0.04, 0.07)
    back_height, back_tilt_deg = _uniform(rng, 0.4, 0.65), _uniform(rng, 0.0, 12.0)
    back_style, num_slats = _choice(rng, ("panel", "slats")), _integer(rng, 2, 4)
    leg_kind, leg_radius = _choice(rng, ("round", "square")), _uniform(rng, 0.022, 0.032)
    has_arms = bool(rng.random() < 0.3)

    seat_bottom = seat_height - seat_thickness
    seat = Box((width / 2, seat_thickness / 2, depth / 2)).translate((0, seat_height - seat_thickness / 2, 0))
    leg_x, leg_z = width / 2 - leg_radius, depth / 2 - leg_radius
    legs = [_leg(leg_kind, sx * leg_x, sz * leg_z, leg_radius, seat_bottom) for sx in (-1, 1) for sz in (-1, 1)]

    # The back is built upright from y = 0 at the rear edge of the seat, tilted backwards (towards -z), then placed.
    rail = 0.06 * back_height + 0.03
    if back_style == "panel":
        back = Box((width / 2, back_height / 2, 0.02)).translate((0, back_height / 2, 0))
    else:
        posts = [Box((leg_radius, back_height / 2, leg_radius)).translate((sx * leg_x, back_height / 2, 0))
                 for sx in (-1, 1)]
        top_rail = Box((width / 2, rail / 2, 0.02)).translate((0, back_height - rail / 2, 0))
        slat_x = np.linspace(-leg_x, leg_x, num_slats + 2)[1:-1]
        slats = [Box((0.35 * width / (num_slats + 1), back_height / 2, 0.015)).translate((float(x), back_height / 2, 0))
                 for x in slat_x]
        back = union(*posts, top_rail, *slats)
    back = back.rotate_x(-back_tilt_deg).translate((0, seat_height - 0.01, -depth / 2 + 0.02))
    parts = [seat, *legs, back]
    if has_arms:
        arm_height = seat_height + 0.2
        for sx in (-1, 1):
            parts.append(Box((0.02, 0.02, depth / 2)).translate((sx * (width / 2 - 0.02), arm_height, 0)))
            parts.append(_leg("square", sx * (width / 2 - 0.02), depth / 2 - 0.04, 0.02, arm_height))
    params = {"width": width, "depth": depth, "seat_height": seat_height, "seat_thickness": seat_thickness,
              "back_height": back_height, "back_tilt_deg": back_tilt_deg, "back_style": back_style,
              "num_slats": num_slats if back_style == "slats" else 0, "leg_kind": leg_kind, "leg_radius": leg_radius,
              "has_arms": has_arms}
    return union(*parts), params


def _stool(rng: np.random.Generator) -> tuple[SDF, Params]:
    seat_radius, seat_thickness = _uniform(rng, 0.2, 0.3), _uniform(rng, 0.05, 0.08)
    height, num_legs = _uniform(rng, 0.65, 0.9), _integer(rng, 3, 4)
    leg_radius, splay = _uniform(rng, 0.022, 0.032), _uniform(rng, 1.0, 1.35)
    has_ring = bool(rng.random() < 0.6)
    seat = Cylinder(seat_radius, seat_thickness / 2).translate((0, height - seat_thickness / 2, 0))
    top_radius, foot_radius = 0.7 * seat_radius, splay * seat_radius
    top_y, foot_y = height - seat_thickness, leg_radius
    tops, feet = _ring(num_legs, top_radius), _ring(num_legs, foot_radius)
    legs = [Capsule((tx, top_y, tz), (fx, foot_y, fz), leg_radius) for (tx, tz), (fx, fz) in zip(tops, feet)]
    parts = [seat, *legs]
    if has_ring:  # a foot ring through the legs' axes
        ring_y = height * _uniform(rng, 0.25, 0.4)
        ring_radius = foot_radius + (top_radius - foot_radius) * (ring_y - foot_y) / (top_y - foot_y)
        parts.append(Torus(ring_radius, 0.7 * leg_radius).translate((0, ring_y, 0)))
    params = {"seat_radius": seat_radius, "seat_thickness": seat_thickness, "height": height, "num_legs": num_legs,
              "leg_radius": leg_radius, "splay": splay, "has_ring": has_ring}
    return union(*parts), params


def _mug(rng: np.random.Generator) -> tuple[SDF, Params]:
    height, radius, taper = 1.0, _uniform(rng, 0.3, 0.45), _uniform(rng, 0.8, 1.0)
    wall, bottom = _uniform(rng, 0.04, 0.055), _uniform(rng, 0.05, 0.08)
    handle_radius, handle_thickness = _uniform(rng, 0.22, 0.32), _uniform(rng, 0.04, 0.055)
    body = Cone(radius * taper, radius, height / 2).translate((0, height / 2, 0))

    def radius_at(y: float) -> float:
        return radius * (taper + (1 - taper) * y / height)

    # The cavity follows the body's slope at `wall` inside it and reaches past the rim, so the top is open.
    cavity_top = height + 0.1
    cavity = Cone(radius_at(bottom) - wall, radius_at(cavity_top) - wall, (cavity_top - bottom) / 2).translate(
        (0, (bottom + cavity_top) / 2, 0))
    # Handle: an upright ring on the +x side (seen on the right from the front camera), half buried in the wall.
    handle_y = 0.5 * height
    handle = Torus(handle_radius, handle_thickness).rotate_x(90).translate((radius_at(handle_y), handle_y, 0))
    params = {"radius": radius, "taper": taper, "wall": wall, "bottom": bottom, "handle_radius": handle_radius,
              "handle_thickness": handle_thickness}
    return subtract(union(body, handle), cavity), params


def _bottle(rng: np.random.Generator) -> tuple[SDF, Params]:
    body_radius, body_height = _uniform(rng, 0.25, 0.4), _uniform(rng, 0.5, 0.95)
    shoulder_height = _uniform(rng, 0.12, 0.3)
    neck_radius, neck_height = body_radius * _uniform(rng, 0.3, 0.45), _uniform(rng, 0.15, 0.4)
    has_cap = bool(rng.random() < 0.6)
    body = Cylinder(body_radius, body_height / 2).translate((0, body_height / 2, 0))
    shoulder = Cone(body_radius, neck_radius, shoulder_height / 2).translate(
        (0, body_height + shoulder_height / 2, 0))
    neck_bottom = body_height + shoulder_height
    neck = Cylinder(neck_radius, neck_height / 2 + 0.02).translate((0, neck_bottom + neck_height / 2 - 0.02, 0))
    parts = [smooth_union(body, shoulder, neck, k=0.06)]
    if has_cap:
        cap_height = 0.5 * neck_radius + 0.03
        parts.append(Cylinder(1.2 * neck_radius, cap_height / 2).translate(
            (0, neck_bottom + neck_height + cap_height / 2 - 0.01, 0)))
    params = {"body_radius": body_radius, "body_height": body_height, "shoulder_height": shoulder_height,
              "neck_radius": neck_radius, "neck_height": neck_height, "has_cap": has_cap}
    return union(*parts), params


def _lamp(rng: np.random.Generator) -> tuple[SDF, Params]:
    base_shape = _choice(rng, ("round", "square"))
    base_radius, base_height = _uniform(rng, 0.22, 0.35), _uniform(rng, 0.04, 0.08)
    pole_radius, pole_height = _uniform(rng, 0.03, 0.045), _uniform(rng, 0.6, 1.2)
    shade_bottom, shade_height = _uniform(rng, 0.3, 0.5), _uniform(rng, 0.3, 0.5)
    shade_top = shade_bottom * _uniform(rng, 0.4, 0.75)
    shade_wall = _uniform(rng, 0.04, 0.06)
    if base_shape == "round":
        base = Cylinder(base_radius, base_height / 2)
    else:
        base = Box((base_radius, base_height / 2, base_radius))
    base = base.translate((0, base_height / 2, 0))
    # The shade is a hollow truncated cone, open underneath, hung on the pole by its closed top.
    shade_center = pole_height - shade_height / 2 + shade_wall
    outer = Cone(shade_bottom, shade_top, shade_height / 2)
    inner = Cone(shade_bottom - shade_wall, shade_top - shade_wall, shade_height / 2).translate((0, -shade_wall, 0))
    shade = subtract(outer, inner).translate((0, shade_center, 0))
    pole = Cylinder(pole_radius, pole_height / 2).translate((0, pole_height / 2, 0))
    params = {"base_shape": base_shape, "base_radius": base_radius, "base_height": base_height,
              "pole_radius": pole_radius, "pole_height": pole_height, "shade_bottom_radius": shade_bottom,
              "shade_top_radius": shade_top, "shade_height": shade_height, "shade_wall": shade_wall}
    return union(base, pole, shade), params


def _dumbbell(rng: np.random.Generator) -> tuple[SDF, Params]:
    weight_style = _choice(rng, ("balls", "plates"))
    handle_half, bar_radius = _uniform(rng, 0.3, 0.55), _uniform(rng, 0.045, 0.07)
    if weight_style == "balls":
        ball_radius = _uniform(rng, 0.18, 0.3)
        weights = [Sphere(ball_radius).translate((s * (handle_half + 0.8 * ball_radius), 0, 0)) for s in (-1, 1)]
        reach, lift = handle_half + 0.8 * ball_radius, ball_radius
        sizes = {"ball_radius": ball_radius}
    else:
        num_plates, plate_radius = _integer(rng, 1, 3), _uniform(rng, 0.2, 0.32)
        plate_thickness = _uniform(rng, 0.05, 0.09)
        weights, x = [], handle_half
        for i in range(num_plates):  # plates shrink outwards
            plate = Cylinder(plate_radius * 0.85**i, plate_thickness / 2).rotate_z(90)
            weights += [plate.translate((s * (x + plate_thickness / 2), 0, 0)) for s in (-1, 1)]
            x += 0.98 * plate_thickness
        reach, lift = x + 0.04, plate_radius
        sizes = {"num_plates": num_plates, "plate_radius": plate_radius, "plate_thickness": plate_thickness}
    bar = Capsule((-reach, 0, 0), (reach, 0, 0), bar_radius)
    params = {"weight_style": weight_style, "handle_half_length": handle_half, "bar_radius": bar_radius, **sizes}
    return union(bar, *weights).translate((0, lift, 0)), params


def _mushroom(rng: np.random.Generator) -> tuple[SDF, Params]:
    stem_height, stem_radius = _uniform(rng, 0.35, 0.7), _uniform(rng, 0.1, 0.18)
    stem_top_radius = stem_radius * _uniform(rng, 0.6, 0.9)
    cap_radius = _uniform(rng, 0.35, 0.6)
    cap_height = cap_radius * _uniform(rng, 0.4, 0.9)  # from a flat cap to a dome
    underside = _uniform(rng, 0.0, 0.25)  # how much of the lower half-ellipsoid is kept: a thicker rim
    stem = Cone(stem_radius, stem_top_radius, stem_height / 2).translate((0, stem_height / 2, 0))
    cap = intersection(Ellipsoid((cap_radius, cap_height, cap_radius)), HalfSpace((0, -1, 0), underside * cap_height))
    cap = cap.translate((0, stem_height, 0))
    params = {"stem_height": stem_height, "stem_radius": stem_radius, "stem_top_radius": stem_top_radius,
              "cap_radius": cap_radius, "cap_height": cap_height, "cap_underside": underside}
    return smooth_union(stem, cap, k=0.05), params


def _rocket(rng: np.random.Generator) -> tuple[SDF, Params]:
    body_radius, body_height = _uniform(rng, 0.14, 0.22), _uniform(rng, 0.8, 1.3)
    nose_height = body_radius * _uniform(rng, 1.5, 3.0)
    num_fins, fin_span = _integer(rng, 3, 4), body_radius * _uniform(rng, 0.8, 1.5)
    fin_height, fin_thickness = _uniform(rng, 0.25, 0.45), _uniform(rng, 0.03, 0.045)
    fin_sweep, lift = _uniform(rng, 0.3, 0.7), _uniform(rng, 0.05, 0.15)  # fins reach below the body
    has_nozzle = bool(rng.random() < 0.5)
    body = Cylinder(body_radius, body_height / 2).translate((0, lift + body_height / 2, 0))
    nose = Cone(body_radius, 0.0, nose_height / 2).translate((0, lift + body_height + nose_height / 2, 0))
    # One fin along +x, its top outer corner cut by a plane through (r, fin_height) and (r + span, lower).
    inner_x = body_radius - 0.02
    slab = Box(((fin_span + 0.02) / 2, fin_height / 2, fin_thickness / 2)).translate(
        (inner_x + (fin_span + 0.02) / 2, fin_height / 2, 0))
    normal = np.array([fin_height * fin_sweep, fin_span, 0.0])
    normal /= np.linalg.norm(normal)
    cut = HalfSpace(tuple(normal), float(normal @ np.array([body_radius, fin_height, 0.0])))
    fin = intersection(slab, cut)
    fins = [fin.rotate_y(360.0 * i / num_fins) for i in range(num_fins)]
    parts = [body, nose, *fins]
    if has_nozzle:
        parts.append(Cone(0.8 * body_radius, 0.6 * body_radius, lift / 2 + 0.01).translate((0, lift / 2, 0)))
    params = {"body_radius": body_radius, "body_height": body_height, "nose_height": nose_height,
              "num_fins": num_fins, "fin_span": fin_span, "fin_height": fin_height, "fin_thickness": fin_thickness,
              "fin_sweep": fin_sweep, "has_nozzle": has_nozzle}
    return union(*parts), params


def _snowman(rng: np.random.Generator) -> tuple[SDF, Params]:
    num_balls = _integer(rng, 2, 3)
    radii = [1.0]
    for _ in range(num_balls - 1):
        radii.append(radii[-1] * _uniform(rng, 0.6, 0.8))
    overlap = _uniform(rng, 0.75, 0.85)  # centre distance as a fraction of the two radii
    centers = [radii[0]]
    for lower, upper in itertools.pairwise(radii):
        centers.append(centers[-1] + overlap * (lower + upper))
    balls = [Sphere(r).translate((0, y, 0)) for r, y in zip(radii, centers)]
    head_radius, head_y = radii[-1], centers[-1]
    nose_length = head_radius * _uniform(rng, 0.35, 0.7)
    # A carrot pointing to the front (+z): a cone along y turned to +z, blunt so that its tip stays thicker than
    # a voxel of a 128^3 grid (a sub-voxel tip breaks off as a floater in marching cubes).
    nose = Cone(0.22 * head_radius, 0.1 * head_radius, nose_length / 2).rotate_x(90).translate(
        (0, head_y, 0.9 * head_radius + nose_length / 2))
    parts = [smooth_union(*balls, k=0.15), nose]
    has_hat = bool(rng.random() < 0.5)
    if has_hat:
        hat_top = head_y + 0.85 * head_radius
        brim = Cylinder(0.85 * head_radius, 0.05 * head_radius).translate((0, hat_top, 0))
        crown_height = head_radius * _uniform(rng, 0.5, 0.9)
        crown = Cylinder(0.55 * head_radius, crown_height / 2).translate((0, hat_top + crown_height / 2, 0))
        parts += [brim, crown]
    params = {"num_balls": num_balls, "radii": radii, "overlap": overlap, "nose_length": nose_length,
              "has_hat": has_hat}
    return union(*parts), params


def _arch(rng: np.random.Generator) -> tuple[SDF, Params]:
    top_shape = _choice(rng, ("flat", "round"))
    width, depth = _uniform(rng, 1.0, 1.5), _uniform(rng, 0.25, 0.6)
    height = width * _uniform(rng, 0.9, 1.4)
    opening_half = width / 2 * _uniform(rng, 0.45, 0.65)
    crown = _uniform(rng, 0.15, 0.3)  # material above the opening
    if top_shape == "flat":
        outer = Box((width / 2, height / 2, depth / 2)).translate((0, height / 2, 0))
        spring = height - crown - opening_half  # where the round top of the opening starts
    else:
        spring = height - width / 2
        outer = union(Box((width / 2, spring / 2, depth / 2)).translate((0, spring / 2, 0)),
                      Cylinder(width / 2, depth / 2).rotate_x(90).translate((0, spring, 0)))
        opening_half = min(opening_half, width / 2 - crown)
    opening = union(Box((opening_half, spring / 2 + 0.05, depth)).translate((0, spring / 2 - 0.05, 0)),
                    Cylinder(opening_half, depth).rotate_x(90).translate((0, spring, 0)))
    params = {"top_shape": top_shape, "width": width, "height": height, "depth": depth,
              "opening_half_width": opening_half, "crown": crown}
    return subtract(outer, opening), params


def _ring_on_post(rng: np.random.Generator) -> tuple[SDF, Params]:
    base_shape = _choice(rng, ("round", "square"))
    base_radius, base_height = _uniform(rng, 0.25, 0.4), _uniform(rng, 0.06, 0.12)
    post_radius, post_height = _uniform(rng, 0.035, 0.06), _uniform(rng, 0.3, 0.8)
    ring_radius, ring_thickness = _uniform(rng, 0.25, 0.45), _uniform(rng, 0.045, 0.08)
    if base_shape == "round":
        base = Cylinder(base_radius, base_height / 2)
    else:
        base = Box((base_radius, base_height / 2, base_radius))
    base = base.translate((0, base_height / 2, 0))
    post = Cylinder(post_radius, post_height / 2).translate((0, post_height / 2, 0))
    # An upright ring facing the front camera, its lowest point sunk into the top of the post.
    ring = Torus(ring_radius, ring_thickness).rotate_x(90).translate((0, post_height + ring_radius, 0))
    params = {"base_shape": base_shape, "base_radius": base_radius, "base_height": base_height,
              "post_radius": post_radius, "post_height": post_height, "ring_radius": ring_radius,
              "ring_thickness": ring_thickness}
    return union(base, post, ring), params


FamilyBuilder = Callable[[np.random.Generator], tuple[SDF, Params]]
_FAMILY_BUILDERS: dict[str, FamilyBuilder] = {
    "sphere": _sphere,
    "ellipsoid": _ellipsoid,
    "box": _box,
    "rounded_box": _rounded_box,
    "cylinder": _cylinder,
    "cone": _cone,
    "capsule": _capsule,
    "torus": _torus,
    "table": _table,
    "chair": _chair,
    "stool": _stool,
    "mug": _mug,
    "bottle": _bottle,
    "lamp": _lamp,
    "dumbbell": _dumbbell,
    "mushroom": _mushroom,
    "rocket": _rocket,
    "snowman": _snowman,
    "arch": _arch,
    "ring_on_post": _ring_on_post,
}
FAMILIES: tuple[str, ...] = tuple(_FAMILY_BUILDERS)


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------


def _sample_material(rng: np.random.Generator) -> Material:
    hue, saturation, value = rng.random(), _uniform(rng, 0.35, 0.85), _uniform(rng, 0.55, 0.95)
    base_color = tuple(float(c) for c in colorsys.hsv_to_rgb(hue, saturation, value))
    return Material(base_color=base_color, roughness=_uniform(rng, 0.25, 0.9))  # type: ignore[arg-type]


def sample_shape(family: str, seed: int) -> ProceduralShape:
    """The shape of ``family`` drawn with ``seed`` (a non-negative integer); the same inputs always give the same
    params, material and field values, in any process (the family name is hashed with CRC32, not ``hash``)."""
    if family not in _FAMILY_BUILDERS:
        raise ValueError(f"unknown shape family {family!r}; choose one of {', '.join(FAMILIES)}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([zlib.crc32(family.encode()), int(seed)])

    # 1. Geometry in the family's own units, then a turn about +y.
    field, params = _FAMILY_BUILDERS[family](rng)
    yaw_deg = _uniform(rng, -MAX_YAW_DEG, MAX_YAW_DEG)
    field = field.rotate_y(yaw_deg)

    # 2. Normalise: tight box centred at the origin, longest side spanning [-HALF_EXTENT, HALF_EXTENT].
    lower, upper = surface_bounds(field)
    center, scale = (lower + upper) / 2, 2 * HALF_EXTENT / float(np.max(upper - lower))
    field = field.translate(-center).scale(scale)
    bounds = ((lower - center) * scale, (upper - center) * scale)

    # 3. Material.
    material = _sample_material(rng)
    params = {**params, "yaw_deg": yaw_deg, "center": [float(c) for c in center], "scale": scale}
    return ProceduralShape(family, int(seed), params, material, field, bounds)


def undo_yaw(surface: np.ndarray, yaw_deg: float) -> np.ndarray:
    """The (N, 6) surface points + normals of a shape that :func:`sample_shape` turned by ``yaw_deg``, turned back
    to yaw 0 and renormalised as it normalises (the points' bounding box centred, longest side 2 * HALF_EXTENT).

    Why: the corpus renders each view from a random azimuth, so no image tells the yaw (``evaluation.yaw``);
    with the yaw undone a view of the turned shape from azimuth a is a view of the result from azimuth a - yaw
    (the lights move with the camera), so every view stays a valid image of it and the yaw is no longer asked for.
    """
    surface = np.asarray(surface)
    if surface.ndim != 2 or surface.shape[1] != 6:
        raise ValueError(f"surface must be (N, 6) points + normals, got shape {surface.shape}")
    back = rotation_matrix("y", -float(yaw_deg))
    points, normals = surface[:, :3] @ back.T, surface[:, 3:] @ back.T
    lower, upper = points.min(axis=0), points.max(axis=0)
    points = (points - (lower + upper) / 2) * (2 * HALF_EXTENT / float(np.max(upper - lower)))
    return np.concatenate([points, normals], axis=1).astype(surface.dtype, copy=False)


def procedural_object_id(family: str, seed: int) -> str:
    """The corpus id of a procedural shape, e.g. "chair-000012"."""
    return f"{family}-{seed:06d}"


def corpus_seeds(num: int, seed: int = 0) -> Iterator[tuple[str, int]]:
    """(family, shape seed) of the ``num`` objects of a corpus, without building them: object ``i`` is family
    ``FAMILIES[i % F]`` with seed ``seed * CORPUS_SEED_STRIDE + i // F``, so any prefix is balanced, seeds are
    distinct within a family while it has fewer than a million objects, and corpus seeds never share shapes."""
    if num < 0 or seed < 0:
        raise ValueError(f"num and seed must be non-negative, got num={num}, seed={seed}")
    for i in range(num):
        yield FAMILIES[i % len(FAMILIES)], seed * CORPUS_SEED_STRIDE + i // len(FAMILIES)


def sample_corpus(num: int, seed: int = 0) -> Iterator[ProceduralShape]:
    """The ``num`` shapes of :func:`corpus_seeds`, cycling through :data:`FAMILIES`, built one at a time."""
    for family, shape_seed in corpus_seeds(num, seed):
        yield sample_shape(family, shape_seed)
