"""TripoSG: image-to-3D shape generation with a rectified-flow transformer over an SDF VAE.

The names exported here are also what diffusers resolves when a saved `model_index.json` names the
library `triposg` (e.g. `["triposg", "TripoSGDiTModel"]`).
"""

from .models import TripoSGDiTModel, TripoSGVAEModel
from .pipelines import TripoSGPipeline, TripoSGPipelineOutput
from .schedulers import RectifiedFlowScheduler, TripoSGDDPMScheduler, TripoSGEDMScheduler

__all__ = [
    "RectifiedFlowScheduler",
    "TripoSGDDPMScheduler",
    "TripoSGDiTModel",
    "TripoSGEDMScheduler",
    "TripoSGPipeline",
    "TripoSGPipelineOutput",
    "TripoSGVAEModel",
]
