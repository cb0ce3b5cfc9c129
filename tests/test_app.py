"""The Gradio demo: handlers stream progress, previews and a mesh; bad images get clear messages; the
`generate` API works over gradio_client and the server keeps serving after a bad request."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pandas as pd
import pytest
import trimesh
from PIL import Image, ImageDraw

import app
from ui import generate as gen
from ui import widgets
from triposg.geometry import read_glb_metadata, read_mesh
from triposg.loading import GenerationDefaults
from triposg.pipelines import make_random_pipeline

FAST = {"seed": 5, "randomize_seed": False, "steps": 2, "guidance_scale": 3.0, "num_tokens": 16,
        "octree_resolution": 32, "foreground_ratio": 0.9, "simplify": False, "target_faces": 1000,
        "file_format": "glb"}
REQUEST = SimpleNamespace(session_hash="handler-test")


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    sessions = widgets.SessionFolders(tmp_path_factory.mktemp("sessions"))
    return gen.GenerateHandlers(make_random_pipeline(seed=0), sessions)


def generate(handlers, image_path, **settings):
    """All the updates the handler streams, as a list of output tuples."""
    return list(handlers.generate(str(image_path) if image_path else None, **{**FAST, **settings}, request=REQUEST))


def object_on_plain_background(size=64, mode="RGB"):
    image = Image.new("RGB", (size, size), (240, 240, 240))
    ImageDraw.Draw(image).rectangle((size // 4, size // 5, 3 * size // 4, 4 * size // 5), fill=(20, 60, 180))
    if mode == "P":  # an exact two-colour palette: the default web palette would dither the background
        return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
    return image.convert(mode)


def box_with_alpha(path: Path) -> Path:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 20:44] = (20, 180, 90, 255)
    Image.fromarray(rgba).save(path)
    return path


def test_sampling_eta_prices_guided_and_unguided_steps_apart():
    # 20 steps, guidance on the first 14 (the embedded default): guided steps take 1.0 s, unguided 0.5 s.
    guided = range(14)
    durations = [1.0 if i in guided else 0.5 for i in range(20)]
    ends = np.cumsum(durations).tolist()
    truth = lambda done: sum(durations[done:])  # noqa: E731
    # half way, no unguided step timed yet: priced at UNGUIDED_STEP_COST of a guided one (0.58 here, truly 0.5)
    eta = gen.sampling_eta(ends[:10], 20, guided)
    assert eta == pytest.approx(4 + 6 * gen.UNGUIDED_STEP_COST)
    assert abs(eta - truth(10)) < 0.1 * truth(10)  # 7.5 against 7.0, where extrapolating the 10 steps says 10.0
    # once unguided steps have been timed, their own mean is used
    assert gen.sampling_eta(ends[:16], 20, guided) == pytest.approx(truth(16))
    # every step guided or none: the plain mean step time
    assert gen.sampling_eta([0.5, 1.0, 1.5], 5, range(5)) == pytest.approx(1.0)
    assert gen.sampling_eta([0.5, 1.0, 1.5], 5, range(0)) == pytest.approx(1.0)
    # guidance only late: the guided steps are priced from the unguided ones
    assert gen.sampling_eta([0.5, 1.0], 4, range(2, 4)) == pytest.approx(2 * 0.5 / gen.UNGUIDED_STEP_COST)
    assert re.fullmatch(r"\*\*Sampling\*\* step 10 of 20 · 10\.0 s elapsed · about 7\.5 s left",
                        gen.format_progress(ends[:10], 20, guided))


def test_generate_streams_progress_and_previews_then_a_mesh_with_its_settings(handlers, tmp_path):
    updates = generate(handlers, box_with_alpha(tmp_path / "box.png"), steps=4)
    statuses = [u[3] for u in updates if isinstance(u[3], str)]
    assert any(re.search(r"step 1 of 4 · [\d.]+ s elapsed · about [\d.]+ s left", s) for s in statuses)
    previews = [u[1] for u in updates[1:-1] if isinstance(u[1], str)]
    assert previews and all(Path(p).suffix == ".glb" for p in previews)  # the viewer updates while sampling
    download, viewer, processed, stats, seed, last_glb = updates[-1]
    assert download == viewer == last_glb and seed == 5
    mesh = read_mesh(download)
    assert mesh.is_watertight and np.abs(mesh.vertices).max() <= 1.01  # a closed surface inside the bounds
    assert f"{len(mesh.faces):,} faces" in stats  # the statistics describe the mesh that was written
    assert read_glb_metadata(download)["seed"] == 5 and "sample" in read_glb_metadata(download)["timings"]
    assert updates[0][2]["label"] == "Preprocessed · alpha"  # shown before sampling starts
    assert processed.size[0] == processed.size[1]
    for expected in ("vertices", "faces", "watertight", "preprocess", "sample", "extract", "background: alpha"):
        assert expected in stats


def test_a_models_guidance_interval_is_used_and_reported(tmp_path):
    pipe = make_random_pipeline(seed=0)
    pipe.generation_defaults = GenerationDefaults(guidance_interval=(0.0, 0.5))
    handlers = gen.GenerateHandlers(pipe, widgets.SessionFolders(tmp_path / "sessions"))
    batches = []
    forward = pipe.transformer.forward
    pipe.transformer.forward = lambda x, *args, **kwargs: batches.append(x.shape[0]) or forward(x, *args, **kwargs)
    download, _, _, stats, _, _ = generate(handlers, box_with_alpha(tmp_path / "box.png"), steps=4)[-1]
    assert batches == [2, 2, 1, 1]  # guided, guided, then the conditional half alone
    assert "guidance 3 on steps 1-2 of 4" in stats
    assert read_glb_metadata(download)["guidance_interval"] == [0.0, 0.5]


def test_download_formats_and_conversion_after_generation(handlers, tmp_path):
    image = box_with_alpha(tmp_path / "box.png")
    download, *_, last_glb = generate(handlers, image, file_format="stl", simplify=True, target_faces=200)[-1]
    assert download.endswith(".stl") and last_glb.endswith(".glb")
    assert 150 <= len(trimesh.load(download, force="mesh").faces) <= 200  # simplified to about the target
    source_faces = len(read_mesh(last_glb).faces)
    for file_format in ("obj", "ply", "stl"):
        converted = handlers.convert(last_glb, file_format, REQUEST)
        assert converted.endswith(f".{file_format}") and len(read_mesh(converted).faces) == source_faces
    assert handlers.convert(last_glb, "glb", REQUEST) == last_glb


def test_randomize_seed_and_settings_are_checked():
    seeds = {gen.parse_settings(0, True, 2, 3.0, 16, 32, 0.9, False, 0).seed for _ in range(5)}
    assert len(seeds) > 1
    assert gen.parse_settings(7, False, 2, 3.0, 16, 32, 0.9, True, 500).faces == 500
    assert gen.parse_settings(7, False, 2, 3.0, 16, 96, 0.9, False, 0).octree_resolution == 96  # geometry takes it
    for bad, message in [({"steps": 0}, "inference steps must be between 1 and 200"),
                         ({"octree_resolution": 101}, "resolution"), ({"octree_resolution": 4096}, "between 8"),
                         ({"num_tokens": "many"}, "latent tokens must be a number"),
                         ({"foreground_ratio": 1.5}, "foreground ratio")]:
        values = {**FAST, **bad}
        values.pop("file_format")
        with pytest.raises(gr.Error, match=message):
            gen.parse_settings(*values.values())


def write_corrupt(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)


def write_text(path):
    path.write_text("these are notes, not pixels\n")


def write_tiny(path):
    Image.new("RGB", (1, 1), (255, 0, 0)).save(path)


def write_huge(path):
    image = Image.new("L", (10_000, 10_000), 255)
    ImageDraw.Draw(image).rectangle((3000, 2000, 7000, 8000), fill=40)
    image.save(path, compress_level=1)


def write_transparent(path):
    Image.new("RGBA", (64, 64), (200, 30, 30, 0)).save(path)


@pytest.mark.parametrize("name, write, message", [
    ("corrupt.png", write_corrupt, "corrupt"),
    ("notes.png", write_text, "not an image"),
    ("tiny.png", write_tiny, "1×1 pixels, too small"),
    ("scan.png", write_huge, "10000×10000 pixels.*resize it"),
    ("clear.png", write_transparent, "fully transparent"),
])
def test_unusable_images_get_a_clear_message(handlers, tmp_path, name, write, message):
    write(tmp_path / name)
    with pytest.raises(gr.Error, match=message):
        generate(handlers, tmp_path / name)


def test_no_image_asks_for_one(handlers):
    with pytest.raises(gr.Error, match="Upload an image"):
        generate(handlers, None)


@pytest.mark.parametrize("mode, suffix", [("L", "png"), ("P", "png"), ("CMYK", "jpg")])
def test_grayscale_palette_and_cmyk_images_are_converted(handlers, tmp_path, mode, suffix):
    object_on_plain_background(mode=mode).save(tmp_path / f"object.{suffix}")
    *_, stats, _, glb = generate(handlers, tmp_path / f"object.{suffix}")[-1]
    assert f" {mode} · foreground ratio" in stats and "background: uniform-background" in stats
    assert read_mesh(glb).is_watertight


def test_animated_gif_uses_its_first_frame_with_a_warning(handlers, tmp_path):
    frames = [object_on_plain_background(), Image.new("RGB", (64, 64), (240, 240, 240))]
    frames[0].save(tmp_path / "spin.gif", save_all=True, append_images=frames[1:], duration=100)
    with pytest.warns(UserWarning, match="animated \\(2 frames\\); only the first frame"):
        *_, stats, _, glb = generate(handlers, tmp_path / "spin.gif")[-1]
    assert "GIF 64×64" in stats and Path(glb).is_file()


def test_pipeline_failures_and_cancellation_become_clear_errors(handlers):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    kind, error = list(gen.run_generation(broken, None, {}, 1, threading.Event()))[-1]
    assert kind == "error"
    message = widgets.user_error(error, "Generation failed", "Try fewer tokens.").message
    assert message == "Generation failed: RuntimeError: out of memory. Try fewer tokens."
    cancelled = threading.Event()
    cancelled.set()
    image = Image.new("RGB", (64, 64), "white")
    settings = {"num_inference_steps": 3, "num_tokens": 16, "octree_resolution": 32}
    kind, error = list(gen.run_generation(gen.pipeline_for_run(handlers.pipe), image, settings, 0, cancelled))[-1]
    assert kind == "error" and isinstance(error, widgets.GenerationCancelled)


def test_each_run_gets_its_own_scheduler_but_shares_the_weights(handlers):
    run = gen.pipeline_for_run(handlers.pipe)
    assert run.scheduler is not handlers.pipe.scheduler
    assert run.transformer is handlers.pipe.transformer and run.vae is handlers.pipe.vae


def test_the_demo_says_what_the_loaded_model_is():
    pipe = make_random_pipeline(seed=0)
    default = gen.describe_model(pipe, GenerationDefaults(num_tokens=256, num_inference_steps=20), None)
    assert "embedded default" in default and "20 procedural shape families" in default and "256 latent tokens" in default
    millions = sum(p.numel() for p in pipe.transformer.parameters()) / 1e6
    assert f"{millions:.1f}M-parameter" in default
    other = gen.describe_model(pipe, GenerationDefaults(), "/models/my-finetune")
    assert other.startswith("**Model: my-finetune**") and "/models" not in other and "procedural" not in other


def test_building_the_demo_writes_nothing_beside_app_py(handlers, tmp_path):
    app.build_demo(handlers.pipe, GenerationDefaults(), tmp_path)
    assert not Path(app.__file__).with_suffix(".pyi").exists()  # gradio stubs every Component subclass


def test_zero_gpu_decorator_only_when_spaces_is_installed(monkeypatch):
    def generate():
        return "mesh"

    assert widgets.on_gpu(generate) is generate  # `spaces` is not installed here
    calls = []
    fake_spaces = SimpleNamespace(GPU=lambda duration: lambda fn: calls.append(duration) or fn)
    monkeypatch.setattr(widgets, "spaces", fake_spaces)
    assert widgets.on_gpu(generate, gen.gpu_duration)() == "mesh" and calls == [gen.gpu_duration]


def test_zero_gpu_duration_follows_the_requested_settings():
    release = gen.gpu_duration("x.png", 0, False, 50, 7.0, 2048, 256)
    assert release == gen.GPU_DURATION_S
    assert gen.gpu_duration("x.png", 0, False, 100, 7.0, 2048, 256) > release  # more steps
    assert gen.gpu_duration("x.png", 0, False, 50, 1.0, 2048, 256) < release  # no guidance: one pass per step
    assert gen.gpu_duration("x.png", 0, False, 50, 7.0, 2048, 512) == gen.MAX_GPU_DURATION_S  # capped
    assert gen.gpu_duration("x.png", 0, False, 20, 3.0, 256, 128) < 60
    assert gen.gpu_duration("x.png", 0, False, "many", 7.0, 2048, 256) == gen.GPU_DURATION_S  # handler names it


def test_a_space_builds_with_the_decorator_and_lazily_cached_examples(monkeypatch, tmp_path):
    """What a ZeroGPU Space runs: `spaces.GPU` around generation (a stand-in here), examples cached lazily."""
    durations = []
    monkeypatch.setattr(widgets, "spaces", SimpleNamespace(GPU=lambda duration: lambda fn: durations.append(duration) or fn))
    ran = []
    monkeypatch.setattr(gen.GenerateHandlers, "generate_example", lambda self, image, request=None: ran.append(image))
    made = []
    original = gr.Examples

    def recording(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(gr, "Examples", recording)
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples-cache"))
    defaults = GenerationDefaults(num_inference_steps=2, guidance_scale=3.0, num_tokens=16, octree_resolution=32)
    app.build_demo(make_random_pipeline(seed=0), defaults, tmp_path, cache_examples=True)
    assert gen.gpu_duration in durations and gen.GPU_DURATION_S in durations  # generate, and the example cache
    (examples,) = made
    assert examples.cache_examples == "lazy"
    assert ran == []  # lazy: nothing is generated before an example is clicked
    app.build_demo(make_random_pipeline(seed=0), defaults, tmp_path)
    assert not made[-1].cache_examples  # locally: examples only fill the input


def test_the_example_cache_runs_one_generation_with_the_tab_defaults(handlers, tmp_path):
    handlers.example_settings = {**FAST, "steps": 2}
    example = gen.EXAMPLES_DIR / "cone.png"
    download, viewer, processed, status = handlers.generate_example(str(example), request=REQUEST)
    assert Path(download).suffix == ".glb" and download == viewer
    assert "faces" in status and "background: uniform-background" in status


def test_session_folders_are_created_deleted_and_swept(tmp_path):
    sessions = widgets.SessionFolders(tmp_path / "sessions")
    alice, bob = SimpleNamespace(session_hash="alice"), SimpleNamespace(session_hash="bob")
    sessions.create(alice)
    sessions.create(bob)
    (sessions.path(alice) / "mesh.glb").write_bytes(b"x")
    sessions.delete(alice)
    assert not sessions.path(alice).exists() and sessions.path(bob).is_dir()
    sessions.sweep(max_age_s=-1)  # everything counts as stale
    assert not sessions.path(bob).exists()


def test_command_line_defaults_and_spaces_environment(monkeypatch):
    args = app.parse_args([])
    assert (args.host, args.port, args.share, args.max_concurrency, args.model) == ("127.0.0.1", 7860, False, 1, None)
    assert not args.cache_examples
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    args = app.parse_args(["--max-concurrency", "3", "--model", "VAST-AI/TripoSG"])
    assert (args.host, args.port, args.max_concurrency, args.model) == ("0.0.0.0", 7861, 3, "VAST-AI/TripoSG")
    # A Space picks the model, device and example caching by variables; a flag still wins.
    monkeypatch.setenv("TRIPOSG_MODEL", "VAST-AI/TripoSG")
    monkeypatch.setenv("TRIPOSG_DEVICE", "cuda")
    monkeypatch.setenv("TRIPOSG_CACHE_EXAMPLES", "1")
    args = app.parse_args([])
    assert (args.model, args.device, args.cache_examples) == ("VAST-AI/TripoSG", "cuda", True)
    assert app.parse_args(["--model", "my-folder", "--no-cache-examples"]).model == "my-folder"
    assert not app.parse_args(["--no-cache-examples"]).cache_examples


def test_spaces_front_matter_pins_the_installed_gradio():
    root = Path(app.__file__).parent
    front_matter = root.joinpath("README.md").read_text().split("---")[1]
    pinned = re.search(r"^gradio==(\S+)$", root.joinpath("requirements.txt").read_text(), re.MULTILINE).group(1)
    assert f"sdk_version: {pinned}" in front_matter and "app_file: app.py" in front_matter
    assert "sdk: gradio" in front_matter and gr.__version__ == pinned


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from gradio_client import Client

    defaults = GenerationDefaults(num_inference_steps=2, guidance_scale=3.0, num_tokens=16, octree_resolution=32)
    demo = app.build_demo(make_random_pipeline(seed=0), defaults, tmp_path_factory.mktemp("api-sessions"))
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield Client(url, verbose=False)
    demo.close()


def test_generate_api_returns_a_mesh(client, tmp_path):
    from gradio_client import handle_file

    download, viewer, processed, stats, seed = client.predict(
        handle_file(str(box_with_alpha(tmp_path / "box.png"))), seed=5, steps=2, num_tokens=16,
        octree_resolution=32, file_format="obj", api_name="/generate",
    )
    mesh = trimesh.load(download, force="mesh")
    assert len(mesh.faces) == len(read_mesh(viewer).faces) and download.endswith(".obj") and viewer.endswith(".glb")
    assert "faces" in stats and "background: alpha" in stats and Path(processed).is_file()
    assert seed == 5
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert list(endpoints) == ["/generate", "/cutout", "/compare", "/normal_fid", "/arena"]  # bookkeeping private


def test_cutout_api_takes_a_photo_and_the_method(client, tmp_path):
    import skimage.data
    from gradio_client import handle_file

    photo = tmp_path / "coffee.jpg"
    Image.fromarray(skimage.data.coffee()).save(photo)
    processed, status = client.predict(handle_file(str(photo)), background="auto", api_name="/cutout")
    assert "background: grabcut" in status and "no segmentation model offline" in status
    assert Image.open(processed).size[0] == Image.open(processed).size[1]
    _, status = client.predict(handle_file(str(photo)), background="none", api_name="/cutout")
    assert "background: none" in status
    with pytest.raises(Exception, match="not plain"):
        client.predict(handle_file(str(photo)), background="uniform", api_name="/cutout")


def test_concurrent_api_requests_match_sequential_ones(client, tmp_path):
    """Runs of different lengths at once must not disturb each other (each has its own scheduler state)."""
    from gradio_client import handle_file

    image = handle_file(str(box_with_alpha(tmp_path / "box.png")))
    runs = [(1, 2), (2, 4)]  # (seed, steps)
    alone = [client.predict(image, seed=seed, steps=steps, api_name="/generate") for seed, steps in runs]
    jobs = [client.submit(image, seed=seed, steps=steps, api_name="/generate") for seed, steps in runs]
    together = [job.result(timeout=60) for job in jobs]
    for first, second in zip(alone, together):
        first_mesh, second_mesh = (trimesh.load(result[0], force="mesh") for result in (first, second))
        assert second[4] == first[4] and len(second_mesh.faces) == len(first_mesh.faces) > 0
        np.testing.assert_allclose(second_mesh.vertices, first_mesh.vertices, atol=1e-5)


def test_api_errors_are_clean_and_the_server_keeps_serving(client, tmp_path):
    from gradio_client import handle_file

    write_corrupt(tmp_path / "corrupt.png")
    write_text(tmp_path / "notes.txt")
    with pytest.raises(Exception, match="cannot be used: cannot read corrupt.png"):
        client.predict(handle_file(str(tmp_path / "corrupt.png")), api_name="/generate")
    with pytest.raises(Exception, match="not an image"):
        client.predict(handle_file(str(tmp_path / "notes.txt")), api_name="/generate")
    with pytest.raises(Exception, match="Upload an image"):
        client.predict(None, api_name="/generate")
    download, *_ = client.predict(handle_file(str(box_with_alpha(tmp_path / "box.png"))), api_name="/generate")
    assert read_mesh(download).is_watertight  # a whole mesh after the failed requests


def test_the_demo_alone_needs_only_triposg_and_the_lab_alone_has_no_generate_tab(tmp_path):
    script = ("import sys, app; from triposg.pipelines import make_random_pipeline; "
              "from triposg.loading import GenerationDefaults; "
              "demo = app.build_demo(make_random_pipeline(seed=0), GenerationDefaults(), "
              f"{str(tmp_path)!r}, tabs='demo'); "
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'evaluation', 'training', 'ui'})); "
              "print(sorted(fn.api_name for fn in demo.fns.values() if fn.api_visibility == 'public'))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=Path(app.__file__).parent, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert result.returncode == 0, result.stderr
    modules, apis = result.stdout.strip().splitlines()[-2:]
    assert modules == "['ui']" and apis == "['cutout', 'generate']"
    lab = app.build_demo(make_random_pipeline(seed=0), GenerationDefaults(), tmp_path, tabs="lab")
    public = sorted(fn.api_name for fn in lab.fns.values() if fn.api_visibility == "public")
    assert public == ["arena", "compare", "normal_fid"]
    with pytest.raises(ValueError, match="tabs must be one of all, demo, lab"):
        app.build_demo(make_random_pipeline(seed=0), GenerationDefaults(), tmp_path, tabs="everything")


def test_a_run_locks_its_controls_until_it_ends():
    (button, cutout), released = gen.busy(), gen.idle()
    assert button["value"] == gen.BUSY_LABEL and not button["interactive"] and not cutout["interactive"]
    assert released[0]["value"] == gen.GENERATE_LABEL and all(update["interactive"] for update in released)


def test_messages_never_show_server_paths_and_tables_are_rounded():
    error = FileNotFoundError("/tmp/gradio/3f2a/upload/chair photo.png: no such file; see /srv/app/README.md")
    message = widgets.user_error(error, "This image cannot be used").message
    assert "/tmp" not in message and "/srv" not in message and "README.md" in message
    frame = pd.DataFrame({"variant": ["a", "b"], "fid": [61.716422671987424, 7.5], "chamfer": [0.0123456, 0.004],
                          "fd": [12.345, 3.0], "fd_std": [2.71828, 0.5], "steps": [20, 10]})
    shown = widgets.with_spread(widgets.rounded(frame))
    assert shown["fid"].tolist() == [61.7, 7.5] and shown["chamfer"].tolist() == [0.0123, 0.004]
    assert shown["fd"].tolist() == ["12.3 ± 2.7", "3.00 ± 0.50"] and "fd_std" not in shown
    assert shown["steps"].tolist() == [20, 10]


def test_colour_from_the_image_paints_the_mesh_and_keeps_it_through_conversion(handlers, tmp_path):
    image = box_with_alpha(tmp_path / "box.png")  # green (20, 180, 90)
    download, viewer, processed, stats, seed, last_glb = generate(handlers, image, texture=True, file_format="ply")[-1]
    assert "**Colour** from the image" in stats and read_glb_metadata(last_glb)["texturing"]["seen_vertices"] > 0
    for path in (last_glb, download, handlers.convert(last_glb, "obj", REQUEST)):
        colours = read_mesh(path).visual.vertex_colors[:, :3].astype(float)
        assert np.abs(np.median(colours, axis=0) - (20, 180, 90)).max() < 25, path  # the box's green, not grey
    with pytest.raises(gr.Error, match="STL cannot hold"):
        handlers.convert(last_glb, "stl", REQUEST)
    with pytest.raises(gr.Error, match="STL cannot hold colours"):
        generate(handlers, image, texture=True, file_format="stl")
