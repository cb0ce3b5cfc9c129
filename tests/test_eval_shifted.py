"""Shifted test sets: corpus test objects re-rendered under lighting, lens, distance and background shifts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evaluation import shifted
from evaluation.normal_fid import TestObject, corpus_test_set
from evaluation.shifted import SHIFTS, Shift, shifted_test_set, shifted_test_sets

BY_NAME = {shift.name: shift for shift in SHIFTS}


@pytest.fixture(scope="module")
def sets(training_corpus, tmp_path_factory):
    corpus = corpus_test_set(training_corpus, "train")
    out = tmp_path_factory.mktemp("shifted")
    shifts = [Shift("same", "the corpus conditions"), *(BY_NAME[n] for n in ("black", "dim", "far", "telephoto"))]
    return corpus, shifted_test_sets(corpus, out, shifts, mesh_resolution=32), out


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA")).astype(np.float64)


def test_the_unshifted_render_reproduces_the_corpus_view(sets):
    """The rebuilt mesh is the one the builder rendered: same conditions, same image."""
    corpus, by_shift, _ = sets
    for original, again in zip(corpus, by_shift["same"]):
        assert np.abs(pixels(original.rgb_path) - pixels(again.rgb_path)).mean() < 1.0
        assert again.normal_path == original.normal_path and again.reference_path == original.reference_path
        assert again.metadata == {**original.metadata, "shift": "same"}


def test_each_shift_changes_what_it_says(sets):
    corpus, by_shift, _ = sets
    for index, original in enumerate(corpus):
        base = pixels(original.rgb_path)
        mask = base[..., 3] > 127
        black = pixels(by_shift["black"].objects[index].rgb_path)
        border = np.concatenate([black[0], black[-1], black[:, 0], black[:, -1]])[:, :3]
        assert (black[..., 3] == 255).all() and border.max() < 10  # opaque, black around the object
        dim = pixels(by_shift["dim"].objects[index].rgb_path)
        assert dim[mask][:, :3].mean() < 0.8 * base[mask][:, :3].mean()  # darker where the object is
        far = pixels(by_shift["far"].objects[index].rgb_path)[..., 3] > 127
        assert 0.15 < far.sum() / mask.sum() < 0.35  # twice the distance: about a quarter of the area
        telephoto = pixels(by_shift["telephoto"].objects[index].rgb_path)
        assert np.abs(telephoto - base).mean() > 0.5  # other perspective, same framing


def test_renders_are_cached_and_failures_name_the_missing_metadata(sets, monkeypatch):
    corpus, _, out = sets
    monkeypatch.setattr(shifted, "render", lambda *a, **k: pytest.fail("rendered again"))
    again = shifted_test_set(corpus, BY_NAME["black"], out, mesh_resolution=32)
    assert [o.rgb_path for o in again] == [out / "black" / f"{o.object_id}.png" for o in corpus]
    orphan = TestObject("x", corpus.objects[0].rgb_path, corpus.objects[0].normal_path, None, {})
    with pytest.raises(ValueError, match="cannot be re-rendered"):
        shifted.object_mesh(orphan)


def test_the_evaluation_script_tables_each_shift_against_the_corpus_renders(sets, training_corpus, tmp_path,
                                                                            monkeypatch):
    import trimesh

    from evaluation.baselines import mean_shape_variant
    from script_loader import load_script

    script = load_script("evaluate_default_model")
    monkeypatch.setattr(script, "shifted_test_sets",  # the fixture corpus was built at mesh resolution 32
                        lambda corpus, out, chosen: shifted_test_sets(corpus, out, chosen, mesh_resolution=32))
    corpus, _, _ = sets
    variant = mean_shape_variant(trimesh.creation.icosphere(subdivisions=2, radius=0.8), {"shape": "sphere"})
    corpus_row = {"chamfer": 0.2, "f_score": 0.5, "normal_consistency": 0.7, "largest_piece": 1.0}
    table = script.shifted_table(corpus, variant, corpus_row, ["black", "far"], tmp_path)
    assert list(table.index) == ["corpus renders", "black", "far"]
    # The stand-in ignores its input, so every shift scores the same: a real measurement, not a copied value.
    assert table.loc["black", "f_score"] == pytest.approx(table.loc["far", "f_score"])
    assert table.loc["black", "f_score_drop"] == pytest.approx(0.5 - table.loc["black", "f_score"])
    assert table.loc["far", "largest_piece"] == pytest.approx(1.0)
    markdown = script.markdown([], None, pd_table(), None, table)
    assert "| black |" in markdown and "opaque black background" in markdown
    assert "Image-to-3D (test split" in markdown and "VAE reconstruction" not in markdown  # no VAE rows asked
    assert "Image-to-3D (val split" in script.markdown([], None, pd_table(), split="val")


def pd_table():
    import pandas as pd

    return pd.DataFrame.from_dict({"model": {"objects": 3, "failed": 0, "chamfer": 0.2, "f_score": 0.5,
                                             "normal_consistency": 0.7, "largest_piece": 1.0,
                                             "seconds_per_object": 1.0}}, orient="index")


def test_the_evaluation_script_tables_best_yaw_scores_and_the_perfect_models_ceiling(sets):
    import pandas as pd

    from evaluation.normal_fid import NormalFidConfig
    from script_loader import load_script

    script = load_script("evaluate_default_model")
    corpus, _, _ = sets
    ceiling = script.yaw_ceiling(corpus, NormalFidConfig(recon_num_points=4000), draws=3)
    assert list(ceiling.index) == [test_object.object_id for test_object in corpus.objects]
    assert ((ceiling["f_score"] > 0) & (ceiling["f_score"] <= 1)).all()
    table = pd_table().assign(chamfer_yaw=0.15, f_score_yaw=0.6, normal_consistency_yaw=0.75)
    markdown = script.markdown([], None, table, ceiling=ceiling)
    assert "| model | 0.2000 | 0.1500 | 0.500 | 0.600 | 0.700 | 0.750 |" in markdown
    assert f"| perfect shape, yaw unknown | {ceiling['chamfer'].mean():.4f} |" in markdown
    assert "best turn about the up axis" not in script.markdown([], None, pd_table())  # no yaw columns: no table
