"""Appearance jitter of conditioning views (training.data.augment)."""

from __future__ import annotations

import random

import numpy as np
import PIL.Image
import pytest

from training.data.augment import AppearanceJitter


def object_on_white(size: int = 64) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    rgb = np.full((size, size, 3), 255, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[16:48, 16:48] = 255
    rgb[16:48, 16:48] = (180, 60, 40)
    rgb[16:48, 32:48] = (60, 90, 200)
    return PIL.Image.fromarray(rgb), PIL.Image.fromarray(mask)


def test_jitter_changes_the_foreground_and_keeps_the_background_white():
    image, mask = object_on_white()
    jitter = AppearanceJitter(probability=1.0, blur_probability=0.0)
    outputs = [np.asarray(jitter(image, mask, random.Random(seed))) for seed in range(8)]
    inside = np.asarray(mask) == 255
    for out in outputs:
        assert (out[~inside] == 255).all()  # the preprocessing's white background is what inference sees
    changes = [np.abs(out[inside].astype(int) - np.asarray(image)[inside]).mean() for out in outputs]
    assert min(changes) > 1.0 and len({round(c, 3) for c in changes}) == len(changes)
    again = np.asarray(jitter(image, mask, random.Random(3)))
    assert (again == outputs[3]).all()  # the draw is the generator's


def test_jitter_probability_zero_returns_the_image_and_blur_softens_edges():
    image, mask = object_on_white()
    assert AppearanceJitter(probability=0.0)(image, mask, random.Random(0)) is image
    blurred = np.asarray(AppearanceJitter(probability=1.0, brightness=0.0, contrast=0.0, saturation=0.0,
                                          gamma=0.0, tint=0.0, blur_probability=1.0)(image, mask, random.Random(0)))
    assert (blurred[10:54, 10:54] != np.asarray(image)[10:54, 10:54]).any()
    assert blurred[15, 30].min() < 255  # the object's colour bleeds over its edge


@pytest.mark.parametrize("field, value", [("probability", 1.5), ("brightness", 1.0), ("gamma", -0.1)])
def test_jitter_refuses_out_of_range_settings(field, value):
    with pytest.raises(ValueError, match=field):
        AppearanceJitter(**{field: value})
