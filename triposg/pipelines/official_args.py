"""The release pipeline's call arguments mapped onto this package's: bounds, octree depths, the flash decoder.

An official script passes `bounds` as a float or six numbers and chooses its extraction with
`use_flash_decoder` and three octree depths (cells per side = 2**depth). Here extraction is chosen with
`extraction` and `octree_resolution`. Both spellings are accepted; mixing them in one call is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# The release's defaults for its extraction arguments.
RELEASE_DENSE_OCTREE_DEPTH = 8
RELEASE_HIERARCHICAL_OCTREE_DEPTH = 9
RELEASE_FLASH_OCTREE_DEPTH = 9


@dataclass(frozen=True)
class ExtractionPlan:
    """How the field becomes a mesh: a volume decoder `method` (a name or a decoder instance), cells per side, and
    the decoder's options."""

    method: Any
    resolution: int
    volume_kwargs: dict = field(default_factory=dict)


def as_bounds(bounds: float | Sequence[float]) -> tuple[float, ...]:
    """A float b means the cube [-b, b]³ (as the release accepts); otherwise six numbers (min xyz, max xyz)."""
    if isinstance(bounds, (int, float)) and not isinstance(bounds, bool):
        if bounds <= 0:
            raise ValueError(f"bounds given as one number must be positive (the half side of the cube), got {bounds}")
        return (-float(bounds),) * 3 + (float(bounds),) * 3
    values = tuple(float(b) for b in bounds)
    if len(values) != 6:
        raise ValueError(f"bounds must be one number or six (xmin, ymin, zmin, xmax, ymax, zmax), got {len(values)}")
    return values


def _depth(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 12:
        raise ValueError(f"{name} must be an integer from 1 to 12 (2**depth cells per side), got {value!r}")
    return value


def plan_extraction(
    octree_resolution: int | None,
    extraction: Any,
    default_resolution: int,
    dense_octree_depth: int | None = None,
    hierarchical_octree_depth: int | None = None,
    flash_octree_depth: int | None = None,
    use_flash_decoder: bool | None = None,
) -> ExtractionPlan:
    """The extraction for one call.

    With none of the release's arguments: `extraction` (default "tracking") at `octree_resolution` (default
    `default_resolution`). With any of them, the release's meaning, unspecified ones at the release defaults:
    `use_flash_decoder=True` (its default) → the fastest path here, surface tracking, at 2**flash_octree_depth;
    `False` → hierarchical refinement from a dense 2**dense_octree_depth grid to 2**hierarchical_octree_depth.
    """
    official = {"dense_octree_depth": dense_octree_depth, "hierarchical_octree_depth": hierarchical_octree_depth,
                "flash_octree_depth": flash_octree_depth, "use_flash_decoder": use_flash_decoder}
    given = [name for name, value in official.items() if value is not None]
    if not given:
        return ExtractionPlan(extraction or "tracking", default_resolution if octree_resolution is None else octree_resolution)
    if octree_resolution is not None or extraction is not None:
        ours = [name for name, value in (("octree_resolution", octree_resolution), ("extraction", extraction))
                if value is not None]
        raise ValueError(
            f"pass either {' / '.join(ours)} (this package's) or the release's {' / '.join(given)}, not both: "
            "they choose the same thing"
        )
    if use_flash_decoder is None or use_flash_decoder:
        depth = _depth("flash_octree_depth", RELEASE_FLASH_OCTREE_DEPTH if flash_octree_depth is None else flash_octree_depth)
        return ExtractionPlan("tracking", 2**depth)
    dense = _depth("dense_octree_depth", RELEASE_DENSE_OCTREE_DEPTH if dense_octree_depth is None else dense_octree_depth)
    fine = _depth("hierarchical_octree_depth",
                  RELEASE_HIERARCHICAL_OCTREE_DEPTH if hierarchical_octree_depth is None else hierarchical_octree_depth)
    if dense > fine:
        raise ValueError(f"dense_octree_depth ({dense}) must not exceed hierarchical_octree_depth ({fine})")
    return ExtractionPlan("hierarchical", 2**fine, {"coarse_resolution": 2**dense})
