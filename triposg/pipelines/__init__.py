"""Inference pipelines."""

from .pipeline_triposg import PreviewEvent, TripoSGPipeline, TripoSGPipelineOutput
from .random_init import make_random_pipeline

__all__ = ["PreviewEvent", "TripoSGPipeline", "TripoSGPipelineOutput", "make_random_pipeline"]
