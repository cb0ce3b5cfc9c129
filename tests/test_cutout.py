"""Photos in: the background-removal chain never refuses a photo for its background; the offline cut-out
(GrabCut) agrees with the true mask on the cut-out test set; hints correct it; downloads obey offline."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import skimage.data
from PIL import Image

from evaluation.cutout import STRESS_CASES, cutout_cases, cutout_iou, mask_iou
from triposg.preprocessing import LOW_CONFIDENCE, CutoutHints, ImageError, preprocess_image, segmentation
from triposg.preprocessing.grabcut import colour_separation, grabcut_cutout


def test_cut_out_cases_hold_the_object_and_its_true_mask():
    cases = list(cutout_cases(["brick", "table"], objects=["mug_alpha", "cone"], size=200))
    assert [(c.background, c.object) for c in cases] == [
        ("brick", "cone"), ("brick", "mug_alpha"), ("table", "cone"), ("table", "mug_alpha")]
    for case in cases:
        assert case.image.shape == (200, 200, 3) and case.mask.shape == (200, 200)
        share = case.mask.mean()
        assert 0.05 < share < 0.6  # the object, not the whole frame (the cone's plain square is not in it)
    # A subset of the set holds exactly the same cases as the whole set.
    again = next(iter(cutout_cases(["table"], objects=["cone"], size=200)))
    assert np.array_equal(again.image, cases[2].image)


def test_grabcut_agrees_with_the_truth_on_photographic_backgrounds():
    cases = list(cutout_cases(["grass", "brick", "table", "fur"], objects=["mug_alpha", "stool", "rocket"]))
    scores = cutout_iou(lambda image: grabcut_cutout(image).alpha, cases)
    assert set(scores) == {"grass", "brick", "table", "fur"}
    every = [iou for values in scores.values() for iou in values]
    assert np.mean(every) >= 0.85, scores
    assert min(every) >= 0.7, scores


def test_a_real_photo_is_accepted_and_cropped_around_the_cup_and_saucer():
    result = preprocess_image(skimage.data.coffee(), allow_download=False)
    assert result.method == "grabcut"
    x0, y0, x1, y1 = result.bbox  # the saucer spans about x 75-480, the cup's rim is at y ~15, the saucer ends ~390
    assert 55 <= x0 <= 100 and 455 <= x1 <= 505
    assert y0 <= 45 and 365 <= y1 <= 400
    mask = np.asarray(result.mask) > 127
    assert mask[mask.shape[0] // 2, mask.shape[1] // 2]  # the cup's middle is object
    assert not mask[2, 2] and not mask[-3, -3]


def test_noise_is_cut_but_flagged_as_uncertain():
    noise = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    result = preprocess_image(noise, allow_download=False)
    assert result.method == "grabcut" and result.confidence < LOW_CONFIDENCE
    assert any("uncertain" in note for note in result.notes)
    assert any("not plain" in note for note in result.notes)


def test_colour_separation_moves_with_how_well_colours_split():
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[:, 20:] = (200, 40, 40)
    truth = np.zeros((40, 40), bool)
    truth[:, 20:] = True
    assert colour_separation(rgb, truth) > 0.95
    shuffled = np.random.default_rng(0).permutation(truth.ravel()).reshape(truth.shape)
    assert colour_separation(rgb, shuffled) < 0.1


def test_hints_correct_a_cut_that_took_the_background_s_own_content():
    case = next(c for c in cutout_cases(["face"], objects=["dumbbell_alpha"]))
    assert "face" in STRESS_CASES
    plain = grabcut_cutout(case.image).alpha >= 0.5
    ys, xs = np.nonzero(case.mask)
    pad = 6
    box = (xs.min() - pad, ys.min() - pad, xs.max() + 1 + pad, ys.max() + 1 + pad)
    boxed = grabcut_cutout(case.image, CutoutHints(box=box)).alpha >= 0.5
    assert mask_iou(boxed, case.mask) > mask_iou(plain, case.mask) + 0.2
    assert mask_iou(boxed, case.mask) > 0.65
    assert not boxed[: box[1]].any() and not boxed[:, : box[0]].any()  # nothing outside the box

    keep = np.zeros_like(case.mask)
    remove = np.zeros_like(case.mask)
    keep[ys[0], xs[0]] = True
    remove[5:20, 5:60] = True
    stroked = grabcut_cutout(case.image, CutoutHints(keep=keep, remove=remove)).alpha
    assert stroked[keep].min() == 1.0 and stroked[remove].max() == 0.0


def test_hints_go_through_preprocess_image_and_are_checked():
    image = skimage.data.coffee()
    keep = np.zeros(image.shape[:2], bool)
    keep[5:15, 5:15] = True  # the dark corner of the table, declared part of the object
    result = preprocess_image(image, hints=CutoutHints(keep=keep), allow_download=False)
    assert result.method == "grabcut+hints"
    assert result.bbox[0] <= 5 and result.bbox[1] <= 5
    with pytest.raises(ImageError, match="draw the strokes on the image"):
        preprocess_image(image, hints=CutoutHints(keep=np.ones((10, 10), bool)), allow_download=False)
    with pytest.raises(ImageError, match="not inside"):
        preprocess_image(image, hints=CutoutHints(box=(0, 0, 9999, 10)), allow_download=False)


def test_none_keeps_the_whole_image():
    image = skimage.data.coffee()
    result = preprocess_image(image, background="none")
    assert result.method == "none" and result.bbox == (0, 0, 600, 400)


@pytest.fixture
def stand_in_rembg(monkeypatch, tmp_path):
    """rembg replaced by a stand-in whose download writes a model file into a temporary cache."""
    calls = {"download": 0}
    cache = tmp_path / "rembg-cache" / "u2net.onnx"

    class U2netSession:
        fail = False

        @staticmethod
        def resolve_existing(name):
            return str(cache) if cache.is_file() else None

        @classmethod
        def download_models(cls):
            calls["download"] += 1
            if cls.fail:
                raise ConnectionError("no route to host")
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(b"onnx")
            return str(cache)

    def remove(image, session, only_mask):
        mask = np.zeros((image.height, image.width), np.uint8)
        mask[image.height // 4: 3 * image.height // 4, image.width // 4: 3 * image.width // 4] = 255
        return Image.fromarray(mask, "L")

    u2net = types.ModuleType("rembg.sessions.u2net")
    u2net.U2netSession = U2netSession
    rembg = types.ModuleType("rembg")
    rembg.new_session = lambda name, **kwargs: object()
    rembg.remove = remove
    monkeypatch.setitem(sys.modules, "rembg", rembg)
    monkeypatch.setitem(sys.modules, "rembg.sessions", types.ModuleType("rembg.sessions"))
    monkeypatch.setitem(sys.modules, "rembg.sessions.u2net", u2net)
    monkeypatch.delenv("TRIPOSG_REMBG_MODEL", raising=False)
    monkeypatch.delenv("TRIPOSG_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(segmentation, "_download_failures", {})
    segmentation._rembg_session.cache_clear()
    yield U2netSession, calls
    segmentation._rembg_session.cache_clear()


def test_online_auto_downloads_the_segmentation_model_once(stand_in_rembg):
    _, calls = stand_in_rembg
    photo = skimage.data.coffee()
    first = preprocess_image(photo)
    second = preprocess_image(photo)
    assert first.method == second.method == "rembg"
    assert calls["download"] == 1  # the second finds it in the cache
    assert first.bbox == (150, 100, 450, 300)


@pytest.mark.parametrize("variable", ["TRIPOSG_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_never_downloads(stand_in_rembg, monkeypatch, variable):
    _, calls = stand_in_rembg
    monkeypatch.setenv(variable, "1")
    result = preprocess_image(skimage.data.coffee())
    assert result.method == "grabcut" and "no segmentation model offline" in result.notes
    with pytest.raises(ImageError, match="TRIPOSG_REMBG_MODEL.*unset TRIPOSG_OFFLINE"):
        preprocess_image(skimage.data.coffee(), background="rembg")
    assert calls["download"] == 0


def test_a_failed_download_falls_back_and_is_not_retried(stand_in_rembg):
    session, calls = stand_in_rembg
    session.fail = True
    photo = skimage.data.coffee()
    first = preprocess_image(photo)
    assert first.method == "grabcut"
    assert any("could not be downloaded" in note and "/" not in note.split("(")[0] for note in first.notes)
    preprocess_image(photo)
    with pytest.raises(ImageError, match="could not be downloaded"):
        preprocess_image(photo, background="rembg")
    assert calls["download"] == 1
