"""Encoder pretraining (training/pretrain_encoder.py): targets, a tiny run that learns them, the export."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from training.conditioning import ConditionEncoder
from training.data.datasets import ImageViewDataset
from training.engine.config import TrainConfig
from training.pretrain_encoder import (
    EncoderTrainingConfig,
    ShapeTargetDataset,
    pretrain_encoder,
    surface_grid,
)
from training.train_flow import ConditionConfig, build_condition_encoder

TINY_DINOV2 = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=56,
                   patch_size=14)


def test_surface_grid_marks_the_cells_holding_points():
    points = torch.tensor([[-1.0, -1.0, -1.0], [0.99, 0.99, 0.99], [0.1, -0.6, 0.4], [0.2, -0.7, 0.45]])
    grid = surface_grid(points, 4)
    assert grid.shape == (64,) and grid.sum() == 3
    # cells (0,0,0), (3,3,3) and (2,0,2) (the last two points share a cell)
    assert grid[0] == 1 and grid[63] == 1 and grid[(2 * 4 + 0) * 4 + 2] == 1
    assert surface_grid(torch.tensor([[5.0, -5.0, 0.0]]), 4)[(3 * 4 + 0) * 4 + 2] == 1  # clamped to the cube


def test_unknown_family_is_a_clear_error(training_corpus):
    views = ImageViewDataset(training_corpus, "train")
    with pytest.raises(ValueError, match="not among the training families"):
        ShapeTargetDataset(views, ["only-this-one"], 4)


def tiny_config(corpus, output_dir, max_steps: int) -> EncoderTrainingConfig:
    config = EncoderTrainingConfig(train=TrainConfig(
        output_dir=str(output_dir), max_steps=max_steps, batch_size=3, learning_rate=3e-3, warmup_steps=5,
        log_every=5, checkpoint_every=1000, sample_every=0, progress_bar=False, tensorboard=False, ema_decay=None))
    config.model.dinov2_args = dict(TINY_DINOV2)
    config.data = replace(config.data, corpus=str(corpus), val_split="train", image_size=56, grid=4,
                          rotation_prob=0.0)
    return config


def test_tiny_run_learns_the_targets_and_exports_an_encoder_the_flow_can_start_from(training_corpus, tmp_path):
    torch.manual_seed(0)
    trainer, metrics = pretrain_encoder(tiny_config(training_corpus, tmp_path / "run", max_steps=60))
    first, last = trainer.history[0], trainer.history[-1]
    assert last["family"] < 0.25 * first["family"] and last["shape"] < first["shape"], (first, last)
    assert last["accuracy"] == 1.0  # on the training views
    # The evaluation view is a camera the run never trained on: only the range and the count are known.
    assert 0.0 <= metrics["family_accuracy"] <= 1.0 and metrics["objects"] == 3
    assert 0.0 < metrics["grid_iou"] <= 1.0

    folder = tmp_path / "run" / "encoder"
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["family_accuracy"] == metrics["family_accuracy"] and len(saved["families"]) == 3
    assert (folder / "heads.safetensors").is_file()
    encoder = build_condition_encoder(ConditionConfig(from_pipeline=str(folder)))
    assert not encoder.trainable  # reused encoders are frozen unless the config says otherwise
    image = ImageViewDataset(training_corpus, "train", image_size=56, use_eval_view=True)[0]["image"]
    trained = trainer.unwrapped_model.encoder.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder.encode([image])[0], trained.encode([image])[0])
    assert isinstance(encoder, ConditionEncoder) and encoder.local_dim == TINY_DINOV2["hidden_size"]


def test_empty_encoder_config_is_refused(training_corpus, tmp_path):
    config = tiny_config(training_corpus, tmp_path, max_steps=1)
    config.model.dinov2_args = {}
    with pytest.raises(ValueError, match="dinov2_args"):
        pretrain_encoder(config)
