"""The evaluation lab: side-by-side variants (Ablations), Normal-FID and the Arena, each tab in its own
module over `evaluation`, reusing the demo's widgets. `build_lab_tabs` adds them to an open `gr.Blocks`."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from evaluation.variants import PipelineCache
from triposg.loading import GenerationDefaults
from triposg.pipelines import TripoSGPipeline

from ..widgets import SessionFolders
from .arena import ArenaHandlers, build_arena_tab
from .compare import CompareHandlers, build_compare_tab
from .normal_fid import NormalFidHandlers, build_normal_fid_tab

__all__ = ["LAB_TABS", "build_lab_tabs"]

LAB_TABS = ("ablations", "normal_fid", "arena")  # tab ids, in order
MAX_OTHER_MODELS = 2  # models the lab keeps loaded besides the app's own (least recently used dropped first)


def build_lab_tabs(pipe: TripoSGPipeline, defaults: GenerationDefaults, sessions: SessionFolders, results_dir: Path,
                   model: str, device: str | None = None) -> PipelineCache:
    """The lab's three tabs inside the current `gr.Tabs`; `model` names where `pipe` came from (a folder,
    hub id or "default"), so variants asking for it reuse `pipe`. Returns the lab's model cache."""
    pipelines = PipelineCache(pipe, defaults, device=device or pipe.device.type, loaded_source=model,
                              max_models=MAX_OTHER_MODELS)
    with gr.Tab("Ablations", id="ablations"):
        build_compare_tab(CompareHandlers(pipelines, sessions, Path(results_dir)), defaults)
    with gr.Tab("Normal-FID", id="normal_fid"):
        build_normal_fid_tab(NormalFidHandlers(pipelines, sessions), defaults)
    with gr.Tab("Arena", id="arena"):
        build_arena_tab(ArenaHandlers(pipelines, sessions), defaults)
    return pipelines
