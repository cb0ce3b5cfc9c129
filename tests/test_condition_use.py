"""evaluation.condition_use: the image's effect on a flow model's velocity, and its spread across images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from evaluation.condition_use import condition_use, main
from triposg.pipelines import make_random_pipeline


def images(count: int) -> list[PIL.Image.Image]:
    rng = np.random.default_rng(0)
    return [PIL.Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(count)]


def reading_pipeline():
    """A random pipeline whose transformer has no zero-initialised layers, so the image reaches its output."""
    pipe = make_random_pipeline(seed=0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in pipe.transformer.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return pipe


@pytest.fixture(scope="module")
def pipe():
    return reading_pipeline()


def test_a_model_reading_the_image_has_an_effect_and_a_spread(pipe):
    result = condition_use(pipe, images(3), num_tokens=32)
    assert result["condition_effect"] > 1e-3 and result["image_spread"] > 1e-3
    assert result["images"] == 3


def test_the_same_image_twice_has_no_spread(pipe):
    same = images(1) * 2
    result = condition_use(pipe, same, num_tokens=32)
    assert result["image_spread"] < 1e-6 < result["condition_effect"]


def test_a_model_blind_to_the_image_scores_zero(pipe):
    blind = reading_pipeline()
    with torch.no_grad():
        for block in blind.transformer.blocks:
            if block.attn2 is not None:
                block.attn2.to_out[0].weight.zero_()
                block.attn2.to_out[0].bias.zero_()
    result = condition_use(blind, images(3), num_tokens=32)
    assert result["condition_effect"] < 1e-6 and result["image_spread"] < 1e-6


def test_one_image_is_refused(pipe):
    with pytest.raises(ValueError, match="at least two images"):
        condition_use(pipe, images(1), num_tokens=32)


def test_cli_prints_the_ratios(pipe, tmp_path, capsys):
    pipe.save_pretrained(tmp_path / "model")
    examples = Path(__file__).resolve().parents[1] / "assets" / "examples"
    paths = [str(examples / "rocket.png"), str(examples / "torus_alpha.png")]
    main([*paths, "--model", str(tmp_path / "model"), "--num-tokens", "32"])
    assert '"condition_effect"' in capsys.readouterr().out
