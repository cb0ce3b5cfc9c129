"""`python -m triposg generate` end to end on a tiny pipeline folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from triposg.geometry import read_glb_metadata
from triposg.loading import GenerationDefaults
from triposg.pipelines import make_random_pipeline

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    make_random_pipeline(seed=0).save_pretrained(folder)
    GenerationDefaults(num_inference_steps=3, guidance_scale=3.0, num_tokens=16, octree_resolution=32,
                       seed=7, guidance_interval=(0.0, 0.5)).save(folder)
    return folder


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "triposg", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_generate_writes_one_file_per_image_and_reports_failures(model_dir, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    rgb = np.full((80, 80, 3), 230, np.uint8)
    rgb[20:60, 25:55] = (30, 90, 200)  # a blue box on a plain light background
    Image.fromarray(rgb).save(images / "cone.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    out = tmp_path / "out"

    result = run_cli("generate", str(images / "cone.png"), str(images / "broken.png"), "-o", str(out),
                     "--model", str(model_dir), "--format", "glb")
    assert result.returncode == 1, result.stderr
    assert "broken.png" in result.stderr
    mesh = trimesh.load(out / "cone.glb", force="mesh")
    # The file holds the whole closed surface, in the pipeline's bounds (no lost faces, no change of frame).
    assert mesh.is_watertight and np.abs(mesh.vertices).max() <= 1.005 + 1e-4
    metadata = read_glb_metadata(out / "cone.glb")
    assert metadata["seed"] == 7 and metadata["num_inference_steps"] == 3
    assert metadata["guidance_interval"] == [0.0, 0.5]  # the model folder's, as used
    assert not (out / "broken.glb").exists()


def test_generate_other_format_and_options(model_dir, tmp_path):
    img = np.zeros((64, 64, 4), np.uint8)
    img[16:48, 16:48] = (250, 200, 0, 255)
    Image.fromarray(img).save(tmp_path / "b.png")
    result = run_cli("generate", str(tmp_path / "b.png"), "-o", str(tmp_path / "out"), "--model", str(model_dir),
                     "--format", "stl", "--steps", "2", "--seed", "1", "--faces", "200", "--extraction", "dense")
    assert result.returncode == 0, result.stderr
    mesh = trimesh.load(tmp_path / "out" / "b.stl")
    assert 180 <= len(mesh.faces) <= 200  # reduced to the requested count (thousands before)
    refused = run_cli("generate", str(tmp_path / "b.png"), "--model", str(model_dir), "--extraction", "octree")
    assert refused.returncode == 2 and "invalid choice: 'octree'" in refused.stderr


def test_background_method_is_chosen_on_the_command_line(model_dir, tmp_path):
    """A square on a plain grey background with no alpha: "alpha" has nothing to use and fails that image with the
    reason; "uniform" cuts the square out."""
    img = np.full((64, 64, 3), 128, np.uint8)
    img[20:44, 20:44] = (250, 200, 0)
    Image.fromarray(img).save(tmp_path / "grey.png")
    common = ["--model", str(model_dir), "--steps", "2", "--seed", "1"]
    forced = run_cli("generate", str(tmp_path / "grey.png"), "-o", str(tmp_path / "a"), "--background", "alpha", *common)
    assert forced.returncode != 0 and "alpha" in forced.stderr
    plain = run_cli("generate", str(tmp_path / "grey.png"), "-o", str(tmp_path / "u"), "--background", "uniform", *common)
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "u" / "grey.glb").is_file()


def test_missing_model_folder_is_a_clear_error(tmp_path):
    result = run_cli("generate", "x.png", "--model", str(tmp_path / "nope"), "-o", str(tmp_path))
    assert result.returncode == 2
    assert "nope" in result.stderr


def test_images_sharing_a_name_get_one_output_file_each(tmp_path):
    from triposg.cli import output_paths

    images = [Path("a/photo.jpg"), Path("a/photo.png"), Path("b/photo.jpg"), Path("cone.png")]
    names = [path.name for path in output_paths(images, tmp_path, "glb")]
    assert names == ["photo_jpg.glb", "photo_png.glb", "photo_jpg_2.glb", "cone.glb"]
