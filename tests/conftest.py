"""Test-wide settings: no network, no telemetry, few threads (the CI machine has 2 cores)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def training_corpus(tmp_path_factory):
    """Three procedural objects, all in the train split, with tiny fields and one 64² view: enough for a few
    training steps of the tiny VAE/flow presets (flow training, ablation runs). Shared; tests only read it."""
    from training.data.build import BuildConfig, run_build
    from training.data.fields import FieldConfig

    out = tmp_path_factory.mktemp("training-corpus")
    fields = FieldConfig(num_surface=256, num_near=64, num_volume=64, num_on_surface=64, udf_resolution=32)
    summary = run_build(BuildConfig(out=out, num=3, workers=1, num_views=1, render_resolution=64,
                                    mesh_resolution=32, fields=fields, split_fractions=(1.0, 0.0, 0.0)))
    assert summary["built"] == 3, summary
    return out


@pytest.fixture(scope="session")
def vae_folder(tmp_path_factory):
    """A saved random VAE with the sphere prior of `make_random_pipeline`: every decode has a surface."""
    from triposg.pipelines import make_random_pipeline

    folder = tmp_path_factory.mktemp("vae") / "vae"
    make_random_pipeline(latent_channels=8).vae.save_pretrained(folder)
    return folder
