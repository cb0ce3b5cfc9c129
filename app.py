"""TripoSG in the browser: the demo (Generate: image in, mesh out, streamed while sampling) and the evaluation
lab (Ablations, Normal-FID, Arena). The UI is built from a pipeline passed in (`build_demo(pipe, defaults)`);
its pieces live in `ui/` (`ui.generate`, `ui.lab`); no model code and no global model here.

    python app.py [--model PATH_OR_HUB_ID] [--device cpu|cuda] [--tabs all|demo|lab] [--host 127.0.0.1]
                  [--port 7860] [--share] [--max-concurrency N] [--cache-examples]

API (gradio_client): `Client(url).predict(handle_file("cone.png"), seed=42, ..., api_name="/generate")`
returns (mesh file, viewer GLB, preprocessed image, statistics, seed); `/cutout` only cuts the object out.
The lab's actions: `/compare` (image, seed, variants table → 4 meshes, 4 normal renders, summary, timings),
`/normal_fid` (variants, test-set folder, split, zip, limit, seed → results, chart, history, status) and
`/arena` (variants, images, number of examples, judge, seed → Elo table, radar chart, status, slider).
A variants table is {"headers": VARIANT_COLUMNS, "data": rows} (see `evaluation.variants`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from ui.widgets import SessionFolders, SESSION_MAX_AGE_S  # noqa: I001 - first: imports `spaces` before CUDA starts
import gradio as gr

from triposg.loading import DEFAULT_MODEL, GenerationDefaults, load_pipeline
from triposg.pipelines import TripoSGPipeline
from ui.generate import GenerateHandlers, build_generate_tab, describe_model

MODEL_ENV = "TRIPOSG_MODEL"  # the model a hosted Space runs, as --model (folder or hub id)
DEVICE_ENV = "TRIPOSG_DEVICE"
CACHE_EXAMPLES_ENV = "TRIPOSG_CACHE_EXAMPLES"  # 1: examples are generated once, on first click, and cached
TABS_ENV = "TRIPOSG_TABS"  # all, demo or lab, as --tabs
TAB_CHOICES = ("all", "demo", "lab")


def build_demo(pipe: TripoSGPipeline, defaults: GenerationDefaults, sessions_root: str | os.PathLike | None = None,
               results_dir: str | os.PathLike | None = None, model: str | None = None,
               cache_examples: bool = False, tabs: str = "all") -> gr.Blocks:
    """The Blocks app for `pipe`; `defaults` are the model's sampling settings; per-session files go under
    `sessions_root` (default: a `triposg-sessions` folder in the system temp folder). `model` names where
    `pipe` came from (a folder or hub id; None or "default" for the embedded model). `tabs`: "demo" (the
    Generate tab alone: needs only `triposg`), "lab" (the evaluation lab's tabs alone) or "all". The lab
    reads measured ablation CSVs from `results_dir` (default `results/ablations`) and reuses `pipe` for
    variants that name `model`."""
    if tabs not in TAB_CHOICES:
        raise ValueError(f"tabs must be one of {', '.join(TAB_CHOICES)}, got {tabs!r}")
    pipe.set_progress_bar_config(disable=True)
    root = Path(sessions_root) if sessions_root is not None else Path(tempfile.gettempdir()) / "triposg-sessions"
    sessions = SessionFolders(root)
    source = None if model in (None, DEFAULT_MODEL) else model
    # Gradio keeps its own copies of served files; drop those a day old, checked hourly.
    with gr.Blocks(title="TripoSG", delete_cache=(3600, SESSION_MAX_AGE_S)) as demo:
        gr.Markdown("# TripoSG — image to 3D\nUpload a photo or render of one object; check its cut-out "
                    "(*Cut out only*) and correct it with strokes when the background fooled it.")
        gr.Markdown(describe_model(pipe, defaults, source), elem_id="model-summary")
        with gr.Tabs():
            if tabs in ("all", "demo"):
                with gr.Tab("Generate", id="generate"):
                    build_generate_tab(GenerateHandlers(pipe, sessions), defaults, cache_examples)
            if tabs in ("all", "lab"):
                from ui.lab import build_lab_tabs  # the lab alone needs `evaluation`

                from evaluation.results import DEFAULT_RESULTS_DIR

                build_lab_tabs(pipe, defaults, sessions, Path(results_dir or DEFAULT_RESULTS_DIR),
                               model=source or DEFAULT_MODEL)
        demo.load(sessions.create, api_visibility="private")
        demo.unload(sessions.delete)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="TripoSG Gradio demo and evaluation lab")
    parser.add_argument("--model", default=os.environ.get(MODEL_ENV) or None,
                        help=f"pipeline folder or hub id (default: ${MODEL_ENV}, else the embedded model)")
    parser.add_argument("--device", default=os.environ.get(DEVICE_ENV) or None,
                        help=f"cpu, cuda (default: ${DEVICE_ENV}, else cuda when available)")
    parser.add_argument("--tabs", choices=TAB_CHOICES, default=os.environ.get(TABS_ENV) or "all",
                        help=f"demo: the Generate tab alone; lab: the evaluation lab alone; all (default: ${TABS_ENV})")
    parser.add_argument("--cache-examples", action=argparse.BooleanOptionalAction,
                        default=os.environ.get(CACHE_EXAMPLES_ENV, "").lower() in ("1", "true", "yes"),
                        help=f"generate each example once, on first click, and cache it (default: ${CACHE_EXAMPLES_ENV})")
    # Hugging Face Spaces sets GRADIO_SERVER_NAME/PORT; locally the demo stays on this machine.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--max-concurrency", type=int, default=1,
                        help="generations run at once; the others wait in the queue")
    args = parser.parse_args(argv)
    if args.max_concurrency < 1:
        parser.error("--max-concurrency must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the demo works offline: no telemetry calls
    pipe, defaults = load_pipeline(args.model, args.device)  # None or "default": the embedded model
    demo = build_demo(pipe, defaults, model=args.model, cache_examples=args.cache_examples, tabs=args.tabs)
    demo.queue(default_concurrency_limit=args.max_concurrency)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
