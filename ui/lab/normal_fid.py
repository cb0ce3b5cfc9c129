"""The lab's Normal-FID tab (paper §5.2.2): variants generate the test objects' meshes from their renders;
the normal maps of what they made are compared with the true ones (FID / FD-DINOv2, each with its spread)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from evaluation.normal_fid import (
    GenerationCache,
    NormalFidConfig,
    dinov2_named_extractor,
    load_test_set,
    run_normal_fid,
)
from evaluation.results import append_history, bar_chart
from evaluation.variants import LOADED_MODEL, PipelineCache, spec_model_variant
from triposg.loading import GenerationDefaults

from ..generate import checked_setting
from ..widgets import SessionFolders, on_gpu, rounded, user_error, with_spread
from .variants_table import MAX_VARIANTS, read_variants, variants_input

# The procedural corpus the training recipe builds; its test split is the built-in Normal-FID test set.
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "data" / "procedural"


@dataclass
class NormalFidHandlers:
    pipelines: PipelineCache
    sessions: SessionFolders

    def normal_fid(self, variants, test_set_path: str, split: str, test_zip: str | None, limit: float, seed: float,
                   request: gr.Request, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - gradio's idiom
        """Normal-FID of 1–4 variants on a test set → (results table, bar chart, history, status)."""
        specs = read_variants(variants, min_count=1)
        seed = checked_setting("seed", "seed", seed, int)
        folder = self.sessions.ensure(request) / "normal_fid"
        limit = int(limit) if limit else None
        source = test_zip or (test_set_path or "").strip()
        if not source:
            raise gr.Error("Choose a test set: a corpus folder (built by `python -m training.data build`), a folder "
                           "of meshes, or upload a .zip of meshes.", print_exception=False)
        try:
            progress(0.0, desc="loading the test set")
            test_set = load_test_set(source, split=split, work_dir=folder / "test_set", limit=limit, progress=False)
            extractor = dinov2_named_extractor(self.pipelines.get(LOADED_MODEL)[0], "the app's loaded model")
            rows = []
            for number, spec in enumerate(specs, start=1):
                progress((number - 1) / len(specs), desc=f"variant {number} of {len(specs)}")
                variant = spec_model_variant(self.pipelines, spec, seed)
                result = run_normal_fid(test_set, variant, folder / "runs" / uuid.uuid4().hex[:8],
                                        NormalFidConfig(seed=seed), [extractor], GenerationCache(folder / "cache"))
                summary = result.summary
                rows.append({"variant": f"{number}: {spec.label}", **summary["metrics"],
                             "objects": summary["counts"]["total"], "failed": summary["counts"]["failed"],
                             "seconds": summary["seconds"]})
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            raise user_error(error, "Normal-FID") from None
        results = pd.DataFrame(rows)
        metric = next((m for m in ("fid", "fd_dinov2", "chamfer") if m in results and results[m].notna().any()), None)
        chart = bar_chart(results, metric=metric, label="variant", title=f"Normal-FID run on {test_set.name}")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        history = append_history(folder / "history.csv", [{"time": stamp, "test_set": test_set.name, "seed": seed,
                                                            **row} for row in rows])
        fid_note = "" if results["fid"].notna().any() else (
            " FID is unavailable (no local Inception weights, see `TRIPOSG_INCEPTION_WEIGHTS`); FD-DINOv2 is a "
            "Fréchet distance over DINOv2 features, not FID.")
        status = (f"**{len(test_set)} objects** from {test_set.name} · seed {seed}.{fid_note} "
                  "± is the spread over bootstrap resamples of the objects (FD) or over subsets (KD).")
        return with_spread(rounded(results)), chart, with_spread(rounded(history)), status


def build_normal_fid_tab(handlers: NormalFidHandlers, defaults: GenerationDefaults) -> None:
    """Normal-FID of variants on a corpus split or an uploaded zip of meshes."""
    with gr.Row():
        with gr.Column(scale=2):
            variants = variants_input(defaults, f"Variants (1–{MAX_VARIANTS} rows)")
        with gr.Column(scale=1):
            test_set = gr.Textbox(label="Test set folder", placeholder="a corpus (python -m training.data build) "
                                  "or a folder of meshes",
                                  value=str(DEFAULT_CORPUS) if (DEFAULT_CORPUS / "manifest.csv").is_file() else "",
                                  elem_id="normal-fid-test-set")
            split = gr.Dropdown(["test", "val", "train"], value="test", label="Corpus split")
            test_zip = gr.File(label="…or a .zip of meshes", file_types=[".zip"], type="filepath")
            limit = gr.Number(label="Objects (0 = all)", value=0, precision=0, minimum=0)
            seed = gr.Number(label="Seed", value=defaults.seed, precision=0, minimum=0)
            button = gr.Button("Run Normal-FID", variant="primary", elem_id="normal-fid")
    status = gr.Markdown()
    with gr.Row():
        results = gr.Dataframe(label="Results", interactive=False, wrap=True)
        chart = gr.Plot(label="Bar chart")
    history = gr.Dataframe(label="History of runs (this session)", interactive=False, wrap=True)
    button.click(on_gpu(handlers.normal_fid), [variants, test_set, split, test_zip, limit, seed],
                 [results, chart, history, status], api_name="normal_fid", show_progress_on=[status])
