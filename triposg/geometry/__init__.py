"""Geometry decoding: field -> grid values (volume decoders) -> mesh (surface extraction) -> post-processing -> file."""

from triposg.geometry.decoding import (
    VOLUME_DECODERS,
    VolumeDecoder,
    decode_volume,
    default_coarse_resolution,
    default_probe_resolution,
)
from triposg.geometry.export import (
    SUPPORTED_FORMATS,
    export_mesh,
    linear_to_srgb,
    read_glb_metadata,
    read_mesh,
    srgb_to_linear,
)
from triposg.geometry.postprocess import PostProcessor, remove_floaters, simplify
from triposg.geometry.surface import EmptySurfaceError, extract_mesh, extract_surface
from triposg.geometry.tracking import SurfaceTrackingDecoder
from triposg.geometry.volume import DEFAULT_BOUNDS, DenseVolumeDecoder, HierarchicalVolumeDecoder, VolumeResult

__all__ = [
    "DEFAULT_BOUNDS",
    "SUPPORTED_FORMATS",
    "DenseVolumeDecoder",
    "EmptySurfaceError",
    "HierarchicalVolumeDecoder",
    "PostProcessor",
    "SurfaceTrackingDecoder",
    "VOLUME_DECODERS",
    "VolumeDecoder",
    "VolumeResult",
    "decode_volume",
    "default_coarse_resolution",
    "default_probe_resolution",
    "export_mesh",
    "extract_mesh",
    "extract_surface",
    "linear_to_srgb",
    "read_glb_metadata",
    "read_mesh",
    "remove_floaters",
    "simplify",
    "srgb_to_linear",
]
