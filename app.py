"""Gradio demo: image in, 3D mesh out. The UI is built from a pipeline passed in; no model code here.

    python app.py [--model PATH_OR_HUB_ID] [--device cpu|cuda] [--host 127.0.0.1] [--port 7860] [--share]
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from triposg.geometry import SUPPORTED_FORMATS, export_mesh  # noqa: E402
from triposg.loading import GenerationDefaults, load_pipeline  # noqa: E402
from triposg.pipelines import PreviewEvent, TripoSGPipeline  # noqa: E402
from triposg.preprocessing import ImageError  # noqa: E402

EXAMPLES_DIR = Path(__file__).resolve().parent / "assets" / "examples"


def run_generation(pipe: TripoSGPipeline, image, settings: dict, preview_every: int):
    """Run the pipeline in a worker thread and yield ("preview", PreviewEvent) / ("done", output) / ("error", e)."""
    events: queue.Queue = queue.Queue()

    def work():
        try:
            output = pipe(image, preview_every=preview_every, preview_callback=lambda e: events.put(("preview", e)),
                          **settings)
            events.put(("done", output))
        except (ImageError, ValueError, RuntimeError) as error:
            events.put(("error", error))

    threading.Thread(target=work, daemon=True).start()
    while True:
        kind, payload = events.get()
        yield kind, payload
        if kind in ("done", "error"):
            return


def build_demo(pipe: TripoSGPipeline, defaults: GenerationDefaults) -> gr.Blocks:
    """The Blocks app for `pipe`; `defaults` are the model's sampling settings."""
    pipe.set_progress_bar_config(disable=True)

    def generate(image, seed, randomize, steps, guidance, num_tokens, resolution, faces, file_format, request: gr.Request):
        if image is None:
            raise gr.Error("Upload an image first.")
        seed = int(time.time_ns() % 2**31) if randomize else int(seed)
        session_dir = Path(tempfile.gettempdir()) / "triposg-sessions" / (request.session_hash or "local")
        session_dir.mkdir(parents=True, exist_ok=True)
        settings = dict(seed=seed, num_inference_steps=int(steps), guidance_scale=float(guidance),
                        num_tokens=int(num_tokens), octree_resolution=int(resolution),
                        faces=int(faces) if faces else None)
        start = time.perf_counter()
        for kind, payload in run_generation(pipe, image, settings, preview_every=max(1, int(steps) // 5)):
            if kind == "error":
                raise gr.Error(str(payload))
            if kind == "preview":
                event: PreviewEvent = payload
                elapsed = time.perf_counter() - start
                eta = elapsed / event.step * (event.num_steps - event.step)
                status = f"step {event.step}/{event.num_steps} · {elapsed:.1f} s elapsed · ETA {eta:.1f} s"
                preview_path = None
                if event.mesh is not None:
                    preview_path = export_mesh(event.mesh, session_dir / f"preview_{event.step}.glb")
                yield gr.update(), preview_path, gr.update(), status, seed
            else:
                output = payload
                mesh = output.meshes[0]
                metadata = {**settings, "timings": output.timings}
                path = export_mesh(mesh, session_dir / f"mesh_{seed}.{file_format}", metadata=metadata)
                viewer = path if file_format in ("glb", "obj") else export_mesh(mesh, session_dir / f"view_{seed}.glb")
                prep = output.preprocessed[0]
                stats = (f"{len(mesh.vertices)} vertices · {len(mesh.faces)} faces · watertight: {mesh.is_watertight}"
                         f" · background: {prep.method} · "
                         + " · ".join(f"{k} {v:.2f} s" for k, v in output.timings.items()))
                yield prep.image, viewer, str(path), stats, seed

    def cleanup(request: gr.Request):
        shutil.rmtree(Path(tempfile.gettempdir()) / "triposg-sessions" / (request.session_hash or "local"),
                      ignore_errors=True)

    with gr.Blocks(title="TripoSG") as demo:
        gr.Markdown("# TripoSG — image to 3D\nUpload an object image (alpha or a plain background works best).")
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="Input image", type="pil", image_mode="RGBA")
                with gr.Row():
                    seed = gr.Number(label="Seed", value=defaults.seed, precision=0)
                    randomize = gr.Checkbox(label="Randomize seed", value=False)
                steps = gr.Slider(1, 100, value=defaults.num_inference_steps, step=1, label="Inference steps")
                guidance = gr.Slider(1.0, 15.0, value=defaults.guidance_scale, step=0.5, label="Guidance scale")
                num_tokens = gr.Slider(16, 4096, value=defaults.num_tokens, step=16, label="Latent tokens")
                resolutions = sorted({32, 64, 128, 256, 512, defaults.octree_resolution})
                resolution = gr.Dropdown(resolutions, value=defaults.octree_resolution, label="Extraction resolution")
                faces = gr.Number(label="Target faces (0 = keep all)", value=0, precision=0)
                file_format = gr.Dropdown(list(SUPPORTED_FORMATS), value="glb", label="Download format")
                button = gr.Button("Generate", variant="primary")
                examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.png")) if EXAMPLES_DIR.is_dir() else []
                if examples:
                    gr.Examples(examples, inputs=image)
            with gr.Column():
                processed = gr.Image(label="Preprocessed", interactive=False)
                viewer = gr.Model3D(label="Mesh")
                download = gr.File(label="Download")
                status = gr.Markdown()
        button.click(
            generate, [image, seed, randomize, steps, guidance, num_tokens, resolution, faces, file_format],
            [processed, viewer, download, status, seed], api_name="generate",
        )
        demo.unload(cleanup)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description="TripoSG Gradio demo")
    parser.add_argument("--model", default=None, help="pipeline folder or hub id (default: the embedded model)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true")
    parser.add_argument("--max-concurrency", type=int, default=1)
    args = parser.parse_args()
    pipe, defaults = load_pipeline(args.model, args.device)
    demo = build_demo(pipe, defaults)
    demo.queue(default_concurrency_limit=args.max_concurrency)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
