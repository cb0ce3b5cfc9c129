"""TripoSG: image-to-3D shape generation with a rectified-flow transformer over an SDF VAE.

The model, pipeline and scheduler classes are exported lazily (PEP 562), so light modules such as
`triposg.geometry`, `triposg.rendering` and `triposg.preprocessing` import without torch-heavy
dependencies like diffusers. `getattr(triposg, "TripoSGDiTModel")` (what diffusers does when a
`model_index.json` names the library `triposg`) imports them on demand.
"""

from importlib import import_module

_EXPORTS = {
    "RectifiedFlowScheduler": "triposg.schedulers",
    "TripoSGDDPMScheduler": "triposg.schedulers",
    "TripoSGEDMScheduler": "triposg.schedulers",
    "TripoSGDiTModel": "triposg.models",
    "TripoSGVAEModel": "triposg.models",
    "TripoSGPipeline": "triposg.pipelines",
    "TripoSGPipelineOutput": "triposg.pipelines",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'triposg' has no attribute {name!r}")
