"""The Gradio demo starts on a pipeline passed in and its `generate` API returns a mesh file."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from triposg.loading import GenerationDefaults
from triposg.pipelines import make_random_pipeline


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from gradio_client import Client

    import app

    defaults = GenerationDefaults(num_inference_steps=3, guidance_scale=3.0, num_tokens=16, octree_resolution=32)
    demo = app.build_demo(make_random_pipeline(seed=0), defaults)
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield Client(url, verbose=False)
    demo.close()


def test_generate_api_returns_a_mesh(client, tmp_path):
    from gradio_client import handle_file

    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 20:44] = (20, 180, 90, 255)
    Image.fromarray(rgba).save(tmp_path / "box.png")
    processed, viewer, download, stats, seed = client.predict(
        handle_file(str(tmp_path / "box.png")), 5, False, 3, 3.0, 16, 32, 0, "obj", api_name="/generate"
    )
    mesh = trimesh.load(download, force="mesh")
    assert len(mesh.faces) > 0 and download.endswith(".obj")
    assert "faces" in stats and "background: alpha" in stats
    assert seed == 5


def test_generate_without_image_is_a_clear_error(client):
    with pytest.raises(Exception, match="Upload an image"):
        client.predict(None, 5, False, 3, 3.0, 16, 32, 0, "glb", api_name="/generate")
