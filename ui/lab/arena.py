"""The lab's Arena tab: a GPTEval3D-style judge compares the variants' meshes pairwise, and the votes become
Elo ratings per criterion, each with its bootstrap interval; the tournament's anchor is a fixed reference."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from evaluation.arena import ArenaConfig, ViewConfig, make_judge, rating_cells, run_arena
from evaluation.variants import PipelineCache, generate_assets
from triposg.loading import GenerationDefaults

from ..generate import checked_setting, example_images
from ..widgets import SessionFolders, on_gpu, user_error
from .variants_table import MAX_VARIANTS, read_variants, variants_input

ARENA_VIEWS = ViewConfig(num_views=8, resolution=192)  # 4 of 8 turntable views per comparison: fast on CPU
ARENA_BOOTSTRAP = 100  # replicates for the Elo intervals; a demo run has few comparisons
ARENA_CONFIDENCE = 0.95
JUDGE_CHOICES = [("offline proxy (no network; measured quantities, not a visual judge)", "offline"),
                 ("OpenAI-compatible API (OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL)", "openai"),
                 ("Anthropic API (ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL / ANTHROPIC_MODEL)", "anthropic")]


@dataclass
class ArenaHandlers:
    pipelines: PipelineCache
    sessions: SessionFolders

    def arena(self, variants, images: list[str] | None, num_examples: float, judge_kind: str, seed: float,
              request: gr.Request, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - gradio's idiom
        """Generate each variant's mesh for each image, have the judge compare them pairwise, fit Elo →
        (Elo table, radar chart, status, comparison slider, run folder)."""
        specs = read_variants(variants)
        seed = checked_setting("seed", "seed", seed, int)
        paths = [str(p) for p in images or []]
        if not paths:
            paths = [str(p) for p in example_images()[:max(0, int(num_examples or 0))]]
        if not paths:
            raise gr.Error("Upload images or choose at least one example image to compare on.", print_exception=False)
        try:
            judge = make_judge(judge_kind)  # API judges read their settings from environment variables only
        except ValueError as error:
            raise user_error(error, "judge") from None
        folder = self.sessions.ensure(request) / "arena" / uuid.uuid4().hex[:8]
        config = ArenaConfig(views=ARENA_VIEWS, num_completions=1, n_bootstrap=ARENA_BOOTSTRAP,
                             confidence=ARENA_CONFIDENCE, seed=seed)
        try:
            methods, failures = generate_assets(self.pipelines, specs, paths, seed, folder / "meshes",
                                                lambda fraction, text: progress(fraction, desc=text))
            result = run_arena(methods, judge, folder, config=config, progress=True)  # tqdm → the progress bar
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            raise user_error(error, "Arena") from None
        table = rating_cells(result.ratings, list(result.table.columns))
        reference = result.ratings.loc[result.ratings["fixed"], "method"].unique()
        proxy = " (a PROXY: it decides from measured quantities, not by looking)" if result.judge.get("is_proxy") else ""
        counts = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in result.counts.items())
        status = (f"**Judge** {result.judge.get('name')}{proxy} · {counts}\n\n"
                  f"Ratings are relative: **{', '.join(reference)}** is the fixed reference at 1000; the others "
                  f"are rated against it, each with its {ARENA_CONFIDENCE:.0%} bootstrap interval in brackets "
                  "(wide with few comparisons: more images narrow it).") + "".join(
            f"\n\nNo mesh: {failure}" for failure in failures)
        # A slider needs maximum > minimum: with one comparison it spans 0–1 and `comparison` clamps to 0.
        slider = gr.update(minimum=0, maximum=max(1, len(result.records) - 1), value=0, visible=True)
        return table, str(result.files["radar.png"]), status, slider, str(folder)

    @staticmethod
    def comparison(run_folder: str | None, index: float) -> tuple[Any, str]:
        """One comparison of an arena run: (its image as the judge saw it, the pair, replies and votes)."""
        if not run_folder or not (Path(run_folder) / "comparisons.jsonl").is_file():
            return None, "Run an arena first."
        records = [json.loads(line) for line in (Path(run_folder) / "comparisons.jsonl").read_text().splitlines()]
        records.sort(key=lambda record: record["comparison_id"])
        record = records[min(max(int(index or 0), 0), len(records) - 1)]
        votes = " · ".join(f"{criterion}: {vote}" for parsed in record["parsed"] if parsed["votes"]
                           for criterion, vote in zip(record["criteria"], parsed["votes"]))
        replies = "\n\n".join(f"```\n{reply.strip()}\n```" for reply in record["replies"]) or "(no reply)"
        text = (f"**Comparison {record['comparison_id']}** on `{record['asset_id']}` · left: {record['left']} · "
                f"right: {record['right']}\n\n**Votes** (1 = {record['method_a']}, 2 = {record['method_b']}, "
                f"3 = draw): {votes or 'none valid'}" + (f"\n\n**Error** {record['error']}" if record["error"] else "")
                + f"\n\n**Judge replies**\n\n{replies}")
        return str(Path(run_folder) / record["image"]), text


def build_arena_tab(handlers: ArenaHandlers, defaults: GenerationDefaults) -> None:
    """GPTEval3D-style arena: a judge compares the variants' meshes pairwise; Elo per criterion."""
    with gr.Row():
        with gr.Column(scale=2):
            variants = variants_input(defaults, f"Variants (2–{MAX_VARIANTS} rows)")
        with gr.Column(scale=1):
            images = gr.File(label="Input images (none = the examples)", file_count="multiple", type="filepath",
                             file_types=["image"])
            num_examples = gr.Slider(1, max(1, len(example_images())), value=3, step=1,
                                     label="Example images to use when none are uploaded", elem_id="arena-examples")
            judge = gr.Radio(JUDGE_CHOICES, value="offline", label="Judge",
                             info="API settings come from environment variables only")
            seed = gr.Number(label="Seed", value=defaults.seed, precision=0, minimum=0)
            button = gr.Button("Run arena", variant="primary", elem_id="arena")
    status = gr.Markdown(elem_id="arena-status")
    with gr.Row():
        elo = gr.Dataframe(label="Elo ratings [95 % interval] (methods × criteria)", interactive=False, wrap=True,
                           elem_id="arena-elo")
        radar = gr.Image(label="Radar chart", interactive=False, height=380)
    run_folder = gr.State(None)
    with gr.Accordion("Browse comparisons", open=True):
        index = gr.Slider(0, 1, value=0, step=1, label="Comparison", visible=False)
        with gr.Row():
            comparison_image = gr.Image(label="As the judge saw it (left | right)", interactive=False)
            comparison_text = gr.Markdown()
    button.click(on_gpu(handlers.arena), [variants, images, num_examples, judge, seed],
                 [elo, radar, status, index, run_folder], api_name="arena", show_progress_on=[status]).then(
        handlers.comparison, [run_folder, index], [comparison_image, comparison_text], api_visibility="private")
    index.change(handlers.comparison, [run_folder, index], [comparison_image, comparison_text],
                 api_visibility="private")
