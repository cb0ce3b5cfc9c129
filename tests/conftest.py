"""Test-wide settings: no network, no telemetry, few threads (the CI machine has 2 cores)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def build_tiny_training_corpus(out):
    """Three procedural objects, all in the train split, with tiny fields and one 64² view: enough for a few
    training steps of the tiny VAE/flow presets (flow training, ablation runs)."""
    from training.data.build import BuildConfig, run_build
    from training.data.fields import FieldConfig

    fields = FieldConfig(num_surface=256, num_near=64, num_volume=64, num_on_surface=64, udf_resolution=32)
    summary = run_build(BuildConfig(out=out, num=3, workers=1, num_views=1, render_resolution=64,
                                    mesh_resolution=32, fields=fields, split_fractions=(1.0, 0.0, 0.0)))
    assert summary["built"] == 3, summary
    return out
