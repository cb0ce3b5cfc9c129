"""The lab's Ablations tab: 2–4 variants on one image and seed, side by side (meshes and the evaluation
view's normals), and the paper's ablation tables beside the measured ones."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from evaluation.paper_tables import paper_ablation_tables
from evaluation.results import bar_chart, describe_results_folder, read_results_folder
from evaluation.variants import PipelineCache, run_variant, shipped_variant_groups, timings_table
from triposg.geometry import export_mesh
from triposg.loading import GenerationDefaults
from triposg.preprocessing import ImageError, preprocess_image

from ..generate import DEFAULT_FOREGROUND_RATIO, checked_setting
from ..widgets import VIEWER_BACKDROP, SessionFolders, image_input, on_gpu, open_input_image, rounded, user_error
from .variants_table import MAX_VARIANTS, read_variants, shipped_variants_table, variants_input


@dataclass
class CompareHandlers:
    """The Ablations tab's handlers: variants come from `pipelines` (each model loaded once), files go to the
    session folders, measured ablation CSVs are read from `results_dir`."""

    pipelines: PipelineCache
    sessions: SessionFolders
    results_dir: Path

    def compare(self, image: str | None, seed: float, variants, request: gr.Request, progress=gr.Progress()):  # noqa: B008 - gradio's idiom
        """Run 2–4 variants on one image and seed → 4 meshes, 4 normal renders, a summary and timings."""
        specs = read_variants(variants)
        seed = checked_setting("seed", "seed", seed, int)
        loaded, _ = open_input_image(image)
        try:
            prepared = preprocess_image(loaded, foreground_ratio=DEFAULT_FOREGROUND_RATIO)
        except ImageError as error:
            raise user_error(error, "This image cannot be used") from None
        folder = self.sessions.ensure(request) / "compare" / uuid.uuid4().hex[:8]
        runs = []
        for number, spec in enumerate(specs, start=1):
            progress((number - 1) / len(specs), desc=f"variant {number} of {len(specs)}: {spec.label}")
            try:
                runs.append(run_variant(self.pipelines, prepared.image, spec, seed))
            except Exception as error:  # noqa: BLE001 - name the variant in the message
                raise user_error(error, f"variant {number} ({spec.model})") from None
        meshes, normals = [None] * MAX_VARIANTS, [None] * MAX_VARIANTS
        for index, run in enumerate(runs):
            if run.mesh is not None:
                meshes[index] = str(export_mesh(run.mesh, folder / f"variant_{index + 1}.glb",
                                                metadata={**dataclasses.asdict(run.spec), "seed": seed}))
                normals[index] = run.normal
        lines = [f"**Variant {i}** {run.spec.label} · " + (f"failed: {run.error}" if run.error else
                 f"{len(run.mesh.faces):,} faces · {sum(run.timings.values()):.2f} s")
                 for i, run in enumerate(runs, start=1)]
        summary = f"Seed {seed} · background: {prepared.method}\n\n" + "\n\n".join(lines)
        return (*meshes, *normals, summary, rounded(timings_table(runs)))

    def measured(self) -> tuple[str, Any]:
        """Reload the measured-results folder: (status, dropdown update)."""
        status, names = describe_results_folder(self.results_dir)
        return status, gr.update(choices=names, value=names[0] if names else None)

    def show_measured(self, name: str | None) -> tuple[Any, Any]:
        """One measured CSV as (table, bar chart)."""
        table = next((t for t in read_results_folder(self.results_dir) if t.name == name and t.frame is not None), None)
        if table is None:
            return None, None
        return rounded(table.frame), bar_chart(table.frame, title=f"measured: {name}")


def build_compare_tab(handlers: CompareHandlers, defaults: GenerationDefaults) -> None:
    """Side-by-side variants on one image and seed, and the paper's ablation tables beside measured ones."""
    with gr.Row():
        with gr.Column(scale=1):
            image = image_input(elem_id="compare-image")
            seed = gr.Number(label="Seed (the same for every variant)", value=defaults.seed, precision=0, minimum=0)
        with gr.Column(scale=2):
            variants = variants_input(defaults, f"Variants (2–{MAX_VARIANTS} rows)")
            shipped = shipped_variant_groups()
            if shipped:  # trained ablation variants that ship with the repo (experiments.ablations)
                with gr.Row():
                    group = gr.Dropdown(
                        [(f"{name} ({', '.join(p.name for p in paths)})", name) for name, paths in shipped.items()],
                        value=next(iter(shipped)), label="Shipped ablation variants", scale=3)
                    fill = gr.Button("Put them in the table", scale=1)
                fill.click(shipped_variants_table, [group], [variants], api_visibility="private")
            button = gr.Button("Compare", variant="primary", elem_id="compare")
    meshes, normals = [], []
    with gr.Row():
        for number in range(1, MAX_VARIANTS + 1):
            with gr.Column(min_width=160):
                meshes.append(gr.Model3D(label=f"Variant {number}", height=260, clear_color=VIEWER_BACKDROP))
                normals.append(gr.Image(label=f"Normals {number} (evaluation view)", interactive=False, height=200))
    summary = gr.Markdown(elem_id="compare-summary")
    timings = gr.Dataframe(label="Timings (seconds per stage)", interactive=False, wrap=True)
    button.click(on_gpu(handlers.compare), [image, seed, variants], [*meshes, *normals, summary, timings],
                 api_name="compare", show_progress_on=[summary])

    with gr.Accordion("Ablation tables: the paper (§7) and our measurements", open=False), gr.Row():
        with gr.Column():
            gr.Markdown("### The paper's Tables 1–4")
            for table in paper_ablation_tables():
                gr.Markdown(f"**Table {table.number}.** {table.title}" + (f" _{table.note}_" if table.note else ""))
                gr.Dataframe(rounded(table.frame), interactive=False, wrap=True)
                gr.Plot(bar_chart(table.frame, table.metric, "label", f"Table {table.number}",
                                  table.lower_is_better))
        with gr.Column():
            gr.Markdown("### Measured")
            status, names = describe_results_folder(handlers.results_dir)
            measured_status = gr.Markdown(status)
            choice = gr.Dropdown(names, value=names[0] if names else None, label="Result file")
            reload = gr.Button("Reload results folder")
            first = handlers.show_measured(names[0]) if names else (None, None)
            measured_table = gr.Dataframe(first[0], interactive=False, wrap=True)
            measured_plot = gr.Plot(first[1])
    reload.click(handlers.measured, None, [measured_status, choice], api_visibility="private")
    choice.change(handlers.show_measured, [choice], [measured_table, measured_plot], api_visibility="private")
