"""Corpus building end to end on tiny settings: manifest, resume, failures, datasets, CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import trimesh
from torch.utils.data import DataLoader

from training.data.__main__ import main as data_cli
from training.data.build import BuildConfig, run_build
from training.data.datasets import FieldDataset, ImageViewDataset, MultiResolutionCollate, collate_views, spread_indices
from training.data.fields import FieldConfig
from training.data.manifest import (
    SPLITS,
    assign_split,
    collect_manifest,
    read_manifest,
    select,
    write_manifest,
    write_record,
)

TINY_FIELDS = FieldConfig(num_surface=512, num_near=256, num_volume=256, num_on_surface=256, udf_resolution=48)


def tiny_config(out: Path, **overrides) -> BuildConfig:
    settings = dict(out=out, num=4, workers=1, num_views=2, render_resolution=64, mesh_resolution=48,
                    fields=TINY_FIELDS, split_fractions=(0.5, 0.25, 0.25))
    settings.update(overrides)
    return BuildConfig(**settings)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    summary = run_build(tiny_config(out))
    assert summary["built"] == 4 and summary["failed"] == 0, summary
    return out


def test_split_assignment_is_deterministic_and_follows_fractions():
    ids = [f"obj-{i}" for i in range(4000)]
    splits = [assign_split(i) for i in ids]
    assert splits == [assign_split(i) for i in ids]
    shares = pd.Series(splits).value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.03) and shares["test"] == pytest.approx(0.1, abs=0.03)
    with pytest.raises(ValueError, match="sum to 1"):
        assign_split("x", (0.5, 0.5, 0.5))


def test_manifest_round_trip(tmp_path):
    write_record(tmp_path, {"object_id": "a", "status": "ok", "split": "train", "params": {"r": 0.5},
                            "flagged": False, "field_path": "objects/a/fields.npz"})
    write_record(tmp_path, {"object_id": "b", "status": "failed", "split": "test", "error": "boom"})
    write_manifest(tmp_path)
    table = read_manifest(tmp_path)
    assert list(table["object_id"]) == ["a", "b"]
    assert table.loc[0, "params"] == {"r": 0.5} and table.loc[1, "error"] == "boom"
    assert list(select(table)["object_id"]) == ["a"]
    assert len(select(table, "test")) == 0
    with pytest.raises(FileNotFoundError, match="build the corpus"):
        read_manifest(tmp_path / "nowhere")


def test_built_corpus_has_files_flags_and_splits(corpus):
    table = read_manifest(corpus)
    assert len(table) == 4 and (table["status"] == "ok").all()
    assert set(table["split"]) <= set(SPLITS)
    assert table["family"].nunique() == 4  # families cycle evenly
    for _, row in table.iterrows():
        assert (corpus / row["field_path"]).is_file()
        views = corpus / row["views_dir"]
        assert len(list(views.glob("view_*_rgb.png"))) == 2 and (views / "eval_normal.png").is_file()
        assert isinstance(row["flags"], dict) and row["params"]


def test_resume_skips_finished_objects_and_rebuilds_missing_ones(corpus, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    assert run_build(tiny_config(copy))["built"] == 0
    victim = read_manifest(copy)["object_id"][0]
    (copy / "objects" / victim / "record.json").unlink()  # as if killed before the record was written
    summary = run_build(tiny_config(copy))
    assert summary["built"] == 1 and summary["skipped"] == 3
    assert len(collect_manifest(copy)) == 4


def test_a_broken_mesh_is_recorded_and_does_not_stop_the_build(tmp_path):
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    trimesh.creation.box(extents=(1.0, 2.0, 0.5)).export(meshes / "tall box.obj")
    (meshes / "broken.stl").write_bytes(b"solid nonsense")
    summary = run_build(tiny_config(tmp_path / "out", source="meshes", input_dir=meshes))
    assert summary["built"] == 1 and summary["failed"] == 1
    table = read_manifest(tmp_path / "out").set_index("source_path")
    assert table.loc[str(meshes / "broken.stl"), "status"] == "failed"
    assert table.loc[str(meshes / "broken.stl"), "error"]
    assert table.loc[str(meshes / "tall box.obj"), "status"] == "ok"


def test_field_dataset_and_multiresolution_batches(corpus):
    dataset = FieldDataset(corpus, split=None, num_surface=128, num_near=64, num_volume=64, num_on_surface=32)
    item = dataset[0]
    assert item["surface"].shape == (128, 6) and item["points"].shape == (128, 3) and item["sdf"].shape == (128,)
    assert item["on_surface"].shape == (32, 6)
    loader = DataLoader(dataset, batch_size=2, collate_fn=MultiResolutionCollate((16, 32), seed=0))
    counts = set()
    for batch in loader:
        assert batch["surface"].shape == (2, 128, 6)
        counts.add(batch["num_tokens"])
    assert counts <= {16, 32}
    with pytest.raises(ValueError, match="no usable objects"):
        FieldDataset(_empty_corpus(corpus.parent / "empty"))


def _empty_corpus(root: Path) -> Path:
    root.mkdir(exist_ok=True)
    write_manifest(root)
    return root


def test_image_view_dataset_applies_the_paper_augmentation(corpus):
    dataset = ImageViewDataset(corpus, split=None, image_size=64, rotation_prob=1.0, num_surface=100)
    item = dataset[0]
    image = np.asarray(item["image"])
    assert image.shape == (64, 64, 3) and (image[0, 0] == 255).all()  # white background
    assert item["surface"].shape == (100, 6) and item["view"].startswith("view_")
    batch = collate_views([dataset[0], dataset[1]])
    assert len(batch["image"]) == 2 and batch["surface"].shape == (2, 100, 6)
    fixed = ImageViewDataset(corpus, split=None, use_eval_view=True)
    assert fixed[0]["view"] == "eval_rgb.png"
    a, b = np.asarray(fixed[0]["image"]), np.asarray(fixed[0]["image"])
    assert np.array_equal(a, b)  # evaluation view: no random augmentation
    surface_only = ImageViewDataset(corpus, split=None, num_surface=100, load_image=False)[0]
    assert set(surface_only) == {"object_id", "surface"} and surface_only["surface"].shape == (100, 6)


def test_cli_builds_and_reports(tmp_path, capsys):
    code = data_cli(["build", "--source", "procedural", "--num", "2", "--out", str(tmp_path / "c"),
                     "--workers", "1", "--views", "1", "--resolution", "48"])
    assert code == 0
    assert "objects/min" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "c")) == 2
    assert data_cli(["build", "--source", "meshes", "--input", str(tmp_path / "none"), "--out",
                     str(tmp_path / "m")]) == 2


def test_spread_indices_cover_the_split_not_its_head():
    assert spread_indices(100, 4) == [0, 25, 50, 75]
    assert spread_indices(3, 8) == [0, 1, 2]  # fewer items than asked: all of them
    assert spread_indices(10, 3) == [0, 3, 6]
