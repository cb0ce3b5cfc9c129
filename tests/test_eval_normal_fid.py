"""Normal-FID protocol: end to end on a tiny corpus, generation cache, FID with a test-local Inception
stand-in, a ground-truth generator as the best case, safe zip extraction of mesh test sets, and the CLI."""

from __future__ import annotations

import dataclasses
import json
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import trimesh
from corpus_copy import corpus_with_families
from PIL import Image

from evaluation import fid
from evaluation.__main__ import main as evaluation_cli
from evaluation.fid import INCEPTION_FILENAME, INCEPTION_WEIGHTS_ENV, MissingInceptionWeightsError
from evaluation.normal_fid import (
    GenerationCache,
    ModelVariant,
    NormalFidConfig,
    UnsafeArchiveError,
    ZipLimits,
    corpus_test_set,
    dinov2_named_extractor,
    load_test_set,
    model_identity,
    pipeline_variant,
    run_normal_fid,
    safe_extract_zip,
)
from training.data.build import BuildConfig, run_build
from training.data.fields import FieldConfig
from training.data.procedural import sample_shape
from triposg.geometry import EmptySurfaceError
from triposg.loading import GenerationDefaults
from triposg.pipelines import make_random_pipeline

MESH_RESOLUTION = 48
# 8192 ground-truth surface points: dense enough that a perfect shape scores F-score@0.05 ≈ 1.
TEST_FIELDS = FieldConfig(num_surface=8192, num_near=256, num_volume=256, num_on_surface=256, udf_resolution=48)
TINY_SAMPLING = GenerationDefaults(num_inference_steps=1, guidance_scale=2.0, num_tokens=16, octree_resolution=32,
                                   seed=0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    config = BuildConfig(out=out, num=3, workers=1, num_views=1, render_resolution=64,
                         mesh_resolution=MESH_RESOLUTION, fields=TEST_FIELDS, split_fractions=(0.0, 0.0, 1.0))
    summary = run_build(config)
    assert summary["built"] == 3, summary
    return out


@pytest.fixture(scope="module")
def no_inception_env():
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
        yield


@pytest.fixture(scope="module")
def random_pipe():
    pipe = make_random_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def counting(variant: ModelVariant) -> tuple[ModelVariant, list[str]]:
    """The same variant, recording the id of every object it is asked to generate."""
    calls: list[str] = []

    def generate(image, test_object):
        calls.append(test_object.object_id)
        return variant.generate(image, test_object)

    return dataclasses.replace(variant, generate=generate), calls


def random_variant(pipe) -> ModelVariant:
    return pipeline_variant(pipe, TINY_SAMPLING, {"kind": "test"}, "random")


def ground_truth_variant() -> ModelVariant:
    """A 'model' that returns the procedural object's own mesh: the best possible generator."""

    def generate(image, test_object):
        return sample_shape(test_object.metadata["family"], test_object.metadata["seed"]).to_mesh(MESH_RESOLUTION)

    return ModelVariant("ground-truth", generate, {"model": "ground-truth mesh"})


@pytest.fixture(scope="module")
def random_runs(corpus, random_pipe, no_inception_env, tmp_path_factory):
    """The random model evaluated twice with one cache: (first result, second result, generator calls after
    the first run, all generator calls, the cache folder)."""
    root = tmp_path_factory.mktemp("random")
    variant, calls = counting(random_variant(random_pipe))
    test_set = load_test_set(corpus)
    extractor = dinov2_named_extractor(random_pipe, "the random test pipeline")
    cache = GenerationCache(root / "cache")
    first = run_normal_fid(test_set, variant, root / "first", extractors=[extractor], cache=cache, progress=False)
    calls_after_first = list(calls)
    second = run_normal_fid(test_set, variant, root / "second", extractors=[extractor], cache=cache, progress=False)
    return first, second, calls_after_first, calls, root / "cache"


@pytest.fixture(scope="module")
def ground_truth_run(corpus, random_pipe, no_inception_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("ground_truth")
    extractor = dinov2_named_extractor(random_pipe, "the random test pipeline")
    result = run_normal_fid(load_test_set(corpus), ground_truth_variant(), root / "out", extractors=[extractor],
                            cache=GenerationCache(root / "cache"), progress=False)
    return result, root / "cache"


def test_end_to_end_rows_fd_dinov2_and_unavailable_fid(random_runs, corpus):
    result = random_runs[0]
    table = result.per_object
    assert len(table) == 3 and (table["status"] == "ok").all()
    assert table[["chamfer", "f_score", "normal_consistency"]].notna().all().all()
    fd = result.summary["feature_distances"]["FD-DINOv2"]
    assert fd["extractor"] == "FD-DINOv2" and "random test pipeline" in fd["encoder"] and fd["fd_dinov2"] > 0
    assert result.summary["metrics"]["fd_dinov2"] == fd["fd_dinov2"]
    assert result.summary["fid"]["available"] is False and result.summary["metrics"]["fid"] is None
    assert INCEPTION_FILENAME in result.summary["fid"]["reason"]
    for name in ("per_object.csv", "summary.json", "comparison.png"):
        assert (result.out_dir / name).is_file()
    assert len(pd.read_csv(result.out_dir / "per_object.csv")) == 3
    assert json.loads((result.out_dir / "summary.json").read_text())["counts"]["generated"] == 3
    assert len(list((result.out_dir / "normals" / "generated").glob("*.png"))) == 3


def test_cache_makes_a_second_run_skip_generation(random_runs):
    first, second, calls_after_first, calls, _ = random_runs
    assert len(calls_after_first) == 3 and len(calls) == 3  # the second run never called the generator
    assert second.per_object["cached"].all() and second.summary["counts"]["cached"] == 3
    assert second.summary["metrics"]["fd_dinov2"] == pytest.approx(first.summary["metrics"]["fd_dinov2"], rel=1e-6)
    assert list(second.per_object["chamfer"]) == pytest.approx(list(first.per_object["chamfer"]))


def test_cache_key_covers_model_settings_object_and_image():
    identity = {"model": {"path": "/m"}, "sampling": {"seed": 0}}
    key = GenerationCache.key(identity, "obj", b"image")
    assert key == GenerationCache.key(json.loads(json.dumps(identity)), "obj", b"image")
    assert key != GenerationCache.key({"model": {"path": "/m"}, "sampling": {"seed": 1}}, "obj", b"image")
    assert key != GenerationCache.key({"model": {"path": "/n"}, "sampling": {"seed": 0}}, "obj", b"image")
    assert key != GenerationCache.key(identity, "other", b"image")
    assert key != GenerationCache.key(identity, "obj", b"image2")


def test_model_identity_follows_config_contents(tmp_path, random_pipe):
    folder = tmp_path / "model"
    random_pipe.save_pretrained(folder)
    before = model_identity(folder)
    assert before["kind"] == "local" and before["path"] == str(folder.resolve())
    TINY_SAMPLING.save(folder)
    assert model_identity(folder)["config_sha256"] != before["config_sha256"]
    assert model_identity("owner/model-name")["kind"] == "hub"
    with pytest.raises(FileNotFoundError, match="not found"):
        model_identity(tmp_path / "nowhere")


def test_ground_truth_generator_scores_best_and_random_model_worse(ground_truth_run, random_runs):
    perfect, random = ground_truth_run[0].summary["metrics"], random_runs[0].summary["metrics"]
    assert perfect["fd_dinov2"] < 0.02 * random["fd_dinov2"]
    assert perfect["f_score"] > 0.98 and perfect["chamfer"] < 0.02
    assert random["f_score"] < 0.8 and random["chamfer"] > 2 * perfect["chamfer"]


def test_whole_shape_share_counts_broken_parts_the_other_metrics_see_the_cleaned_mesh(
        corpus, ground_truth_run, no_inception_env, tmp_path):
    """A generator whose mesh has a broken-off piece far away: the whole-shape share sees it (measured before
    floater removal); the normal maps and reconstruction metrics see the mesh a user gets (floater removed),
    so they match the clean ground-truth run."""
    pieces = {}

    def generate(image, test_object):
        whole = sample_shape(test_object.metadata["family"], test_object.metadata["seed"]).to_mesh(MESH_RESOLUTION)
        piece = trimesh.creation.icosphere(subdivisions=1, radius=0.05).apply_translation([5.0, 0.0, 0.0])
        pieces[test_object.object_id] = whole.area / (whole.area + piece.area)  # of the whole's own share
        assert len(piece.faces) < 0.05 * len(whole.faces)  # small enough to be a floater
        return trimesh.util.concatenate([whole, piece])

    result = run_normal_fid(load_test_set(corpus), ModelVariant("broken-off", generate, {"model": "broken"}),
                            tmp_path / "out", extractors=[], progress=False)
    table = result.per_object.set_index("object_id")
    clean = ground_truth_run[0].per_object.set_index("object_id")
    for object_id, kept in pieces.items():
        assert kept < 0.9999
        assert table.loc[object_id, "largest_piece"] == pytest.approx(clean.loc[object_id, "largest_piece"] * kept)
    assert list(table.loc[clean.index, "f_score"]) == pytest.approx(list(clean["f_score"]))
    assert list(table.loc[clean.index, "chamfer"]) == pytest.approx(list(clean["chamfer"]))


def test_yaw_aligned_scores_forgive_a_turn_about_up_and_nothing_else(corpus, ground_truth_run, no_inception_env,
                                                                     tmp_path):
    """The ground truth turned by 40° about +y: the plain metrics charge the turn; with `yaw_aligned` the aligned
    ones find it again and score like the unturned ground truth."""
    from evaluation.yaw import turn_about_up

    def generate(image, test_object):
        mesh = sample_shape(test_object.metadata["family"], test_object.metadata["seed"]).to_mesh(MESH_RESOLUTION)
        return trimesh.Trimesh(turn_about_up(mesh.vertices, 40.0), mesh.faces, process=False)

    result = run_normal_fid(load_test_set(corpus), ModelVariant("turned", generate, {"model": "turned"}),
                            tmp_path / "out", config=NormalFidConfig(fid="off", yaw_aligned=True), extractors=[],
                            progress=False)
    table = result.per_object.set_index("object_id")
    clean = ground_truth_run[0].per_object.set_index("object_id").loc[table.index]
    charged = table["f_score"] < clean["f_score"] - 0.05
    assert charged.any()  # not every family is round about the up axis
    assert (table.loc[charged, "turn_deg"] + 40.0).abs().max() <= 2.0
    assert list(table["f_score_yaw"]) == pytest.approx(list(clean["f_score"]), abs=0.02)
    assert (table["chamfer_yaw"] <= table["chamfer"] + 1e-3).all()
    metrics = result.summary["metrics"]
    assert metrics["f_score_yaw"] == pytest.approx(table["f_score_yaw"].mean())
    assert metrics["f_score_yaw"] > metrics["f_score"]
    assert "f_score_yaw" not in ground_truth_run[0].summary["metrics"]  # off by default


def test_a_yaw_undone_test_set_measures_upright_meshes_in_the_corpus_frame(corpus, ground_truth_run,
                                                                          no_inception_env, tmp_path):
    """A model trained with the yaw undone generates each shape at yaw 0: `corpus_test_set(undo_yaw=True)` turns
    its meshes by the shape's yaw before measuring, so the upright ground truth scores like the corpus's own."""
    from evaluation.yaw import turn_about_up

    def upright(image, test_object):
        mesh = sample_shape(test_object.metadata["family"], test_object.metadata["seed"]).to_mesh(MESH_RESOLUTION)
        return trimesh.Trimesh(turn_about_up(mesh.vertices, -test_object.metadata["yaw_deg"]), mesh.faces,
                               process=False)

    variant = ModelVariant("upright", upright, {"model": "upright"})
    undone = corpus_test_set(corpus, undo_yaw=True)
    assert "yaw undone" in undone.name
    assert all(o.generated_turn_deg == o.metadata["yaw_deg"] != 0 for o in undone.objects)
    measured = run_normal_fid(undone, variant, tmp_path / "undone", extractors=[], progress=False).per_object
    charged = run_normal_fid(corpus_test_set(corpus), variant, tmp_path / "plain", extractors=[],
                             progress=False).per_object
    clean = ground_truth_run[0].per_object.set_index("object_id").loc[measured["object_id"]]
    assert list(measured["f_score"]) == pytest.approx(list(clean["f_score"]), abs=0.02)
    assert list(measured["normal_consistency"]) == pytest.approx(list(clean["normal_consistency"]), abs=0.01)
    assert (charged["chamfer"].to_numpy() > measured["chamfer"].to_numpy()).any()


def test_pipeline_variant_asks_for_the_mesh_before_floater_removal(random_pipe):
    variant = random_variant(random_pipe)
    assert variant.identity["sampling"]["remove_floaters"] is False
    kept = pipeline_variant(random_pipe, TINY_SAMPLING, {"kind": "test"}, "random", remove_floaters=True)
    assert kept.identity["sampling"]["remove_floaters"] is True


class _PoolLayers(torch.nn.Module):
    """Stands in for Inception's layers: (B, 3, 299, 299) normalised images → (B, 2048), 3 non-zero."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([images.mean(dim=(2, 3)), torch.zeros(images.shape[0], 2045)], dim=1)


class _FakeInception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _PoolLayers()

    def forward(self, images: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(images)


def test_fid_with_local_inception_stand_in(ground_truth_run, random_runs, corpus, random_pipe, tmp_path,
                                            monkeypatch):
    weights = tmp_path / "inception.pt"
    torch.jit.script(_FakeInception()).save(str(weights))
    exact = fid.frechet_distance

    def three_dim_frechet_distance(mu1, sigma1, mu2, sigma2):
        # Only the stand-in's first 3 features vary; a 2048-d matrix square root would take tens of seconds.
        return exact(mu1[:3], sigma1[:3, :3], mu2[:3], sigma2[:3, :3])

    monkeypatch.setattr(fid, "frechet_distance", three_dim_frechet_distance)
    config = NormalFidConfig(fid="required", inception_weights=weights, device="cpu", kid_subsets=2)
    results, calls = [], []
    for variant, cache in ((ground_truth_variant(), ground_truth_run[1]), (random_variant(random_pipe), random_runs[4])):
        variant, variant_calls = counting(variant)
        results.append(run_normal_fid(load_test_set(corpus), variant, tmp_path / variant.name, config,
                                      cache=GenerationCache(cache), progress=False))
        calls += variant_calls
    assert calls == []  # both served from the earlier runs' caches
    perfect, random = (result.summary for result in results)
    assert perfect["fid"]["available"] and perfect["fid"]["extractor"] == "inception-v3 (clean-fid)"
    assert perfect["metrics"]["kid"] is not None
    assert perfect["metrics"]["fid"] < 0.02 * random["metrics"]["fid"]


def test_required_fid_without_weights_fails_before_generating(corpus, tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    variant, calls = counting(ground_truth_variant())
    with pytest.raises(MissingInceptionWeightsError, match=INCEPTION_WEIGHTS_ENV):
        run_normal_fid(load_test_set(corpus), variant, tmp_path, NormalFidConfig(fid="required"), progress=False)
    assert calls == []


def test_failed_generations_count_as_empty_normal_maps_and_are_cached(corpus, no_inception_env, tmp_path):
    test_set = load_test_set(corpus)
    failing_id = test_set.objects[0].object_id
    truth = ground_truth_variant()

    def generate(image, test_object):
        if test_object.object_id == failing_id:
            raise EmptySurfaceError("no surface")
        return truth.generate(image, test_object)

    variant, calls = counting(ModelVariant("flaky", generate, {"model": "flaky"}))
    cache = GenerationCache(tmp_path / "cache")
    result = run_normal_fid(test_set, variant, tmp_path / "first", cache=cache, progress=False)
    row = result.per_object.set_index("object_id").loc[failing_id]
    assert row["status"] == "failed" and "EmptySurfaceError" in row["error"] and np.isnan(row["f_score"])
    assert result.summary["counts"]["failed"] == 1 and result.summary["reconstruction"]["num_objects"] == 2
    blank = np.asarray(Image.open(result.out_dir / row["generated_normal"]))
    assert (blank == 255).all()
    run_normal_fid(test_set, variant, tmp_path / "second", cache=cache, progress=False)
    assert len(calls) == 3  # the deterministic failure was cached too

    def always_fails(image, test_object):
        raise EmptySurfaceError("no surface")

    with pytest.raises(RuntimeError, match="every generation failed"):
        run_normal_fid(test_set, ModelVariant("broken", always_fails, {}), tmp_path / "third", progress=False)


def test_corpus_test_set_balances_families_before_the_limit(corpus, tmp_path):
    copy = tmp_path / "corpus"
    ids = corpus_with_families(corpus, copy, ["a", "a", "b"])  # families in blocks, as a built manifest lists them

    def object_ids(**kwargs) -> list[str]:
        return [o.object_id for o in corpus_test_set(copy, **kwargs).objects]

    assert object_ids() == ids
    assert object_ids(per_family=1) == [ids[0], ids[2]]
    assert object_ids(per_family=1, limit=1) == [ids[0]]
    assert object_ids(limit=2) == ids[:2]
    assert "1 per family" in corpus_test_set(copy, per_family=1).name
    with pytest.raises(ValueError, match="per_family"):
        corpus_test_set(copy, per_family=0)


def test_corpus_without_objects_in_split_is_a_clear_error(corpus):
    with pytest.raises(ValueError, match="no usable objects in split 'train'"):
        load_test_set(corpus, split="train")


# ----------------------------------------------------------------------------------------------
# Zip safety and mesh test sets
# ----------------------------------------------------------------------------------------------


def mesh_bytes(mesh: trimesh.Trimesh, file_type: str) -> bytes:
    return mesh.export(file_type=file_type)


def write_zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("name, message", [
    ("../x.obj", r"'\.\.'"),
    ("meshes/../../x.obj", r"'\.\.'"),
    ("/etc/x.obj", "absolute"),
    ("C:/x.obj", "absolute"),
])
def test_zip_refuses_members_escaping_the_folder(tmp_path, name, message):
    archive = write_zip(tmp_path / "bad.zip", [("ok.obj", b"v 0 0 0\n"), (zipfile.ZipInfo(name), b"v 0 0 0\n")])
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_zip_refuses_symlinks(tmp_path):
    link = zipfile.ZipInfo("link.obj")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = write_zip(tmp_path / "link.zip", [(link, b"/etc/passwd")])
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract_zip(archive, tmp_path / "out")


def test_zip_refuses_too_many_members_and_too_much_data(tmp_path):
    archive = write_zip(tmp_path / "many.zip", [(f"m{i}.obj", bytes(800)) for i in range(5)])
    with pytest.raises(UnsafeArchiveError, match="5 members"):
        safe_extract_zip(archive, tmp_path / "out", ZipLimits(max_members=3))
    with pytest.raises(UnsafeArchiveError, match="more than 2000 bytes"):
        safe_extract_zip(archive, tmp_path / "out", ZipLimits(max_total_bytes=2000))


def test_zip_refuses_compression_bombs(tmp_path):
    archive = write_zip(tmp_path / "bomb.zip", [("bomb.obj", bytes(4 * 2**20))])  # zeros: ~1000x
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        safe_extract_zip(archive, tmp_path / "out")


def test_zip_of_two_meshes_becomes_a_rendered_test_set(tmp_path):
    box = trimesh.creation.box(extents=(1.0, 3.0, 0.5))
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=5.0)
    sphere.apply_translation((10.0, 0.0, 0.0))
    archive = write_zip(tmp_path / "meshes.zip", [("box.obj", mesh_bytes(box, "obj")),
                                                  ("nested/ball.ply", mesh_bytes(sphere, "ply"))])
    test_set = load_test_set(archive, work_dir=tmp_path / "work", resolution=64, progress=False)
    assert len(test_set) == 2 and not test_set.skipped
    for test_object in test_set:
        rgb, normal = test_object.load_rgb(), test_object.load_normal()
        assert rgb.mode == "RGBA" and rgb.size == (64, 64) and normal.shape == (64, 64, 3)
        assert (np.asarray(rgb)[..., 3] > 0).any()  # the object is in view
        reference = test_object.load_reference()
        lower, upper = reference.bounds
        assert np.max(upper - lower) == pytest.approx(1.8, abs=1e-4)
        np.testing.assert_allclose((lower + upper) / 2, 0.0, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def test_cli_recon_prints_metrics(tmp_path, capsys):
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    box.export(tmp_path / "pred.obj")
    box.export(tmp_path / "target.stl")
    code = evaluation_cli(["recon", str(tmp_path / "pred.obj"), str(tmp_path / "target.stl"),
                           "--num-points", "3000", "--threshold", "0.05"])
    output = capsys.readouterr().out
    assert code == 0
    assert "chamfer" in output and "f_score" in output and "normal_consistency" in output
    assert evaluation_cli(["recon", str(tmp_path / "pred.obj"), str(tmp_path / "missing.obj")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_model_folder(random_pipe, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_model")
    random_pipe.save_pretrained(folder)
    TINY_SAMPLING.save(folder)
    return folder


def test_cli_normal_fid_writes_outputs(corpus, tiny_model_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    out = tmp_path / "out"
    code = evaluation_cli(["normal-fid", "--model", str(tiny_model_folder), "--test-set", str(corpus),
                           "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--limit", "2",
                           "--per-family", "1", "--recon-points", "2000", "--device", "cpu", "--yaw-aligned",
                           "--undo-yaw"])
    output = capsys.readouterr().out
    assert code == 0, output
    rows = pd.read_csv(out / "per_object.csv")
    assert len(rows) == 2 and rows["family"].is_unique  # one object per family, then the limit
    assert rows["turn_deg"].abs().le(90).all() and (rows["chamfer_yaw"] <= rows["chamfer"] + 1e-3).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["fd_dinov2"] > 0 and summary["identity"]["sampling"]["num_tokens"] == 16
    assert "FID: unavailable" in output and "FD-DINOv2" in output
    assert "after the best turn about the up axis" in output and "yaw undone" in output


def test_undo_yaw_is_for_corpus_test_sets(tmp_path):
    trimesh.creation.box().export(tmp_path / "box.obj")
    with pytest.raises(ValueError, match="no yaw to undo"):
        load_test_set(tmp_path, work_dir=tmp_path / "work", undo_yaw=True)


def test_cli_reports_missing_model_and_weights(corpus, tiny_model_folder, tmp_path, capsys):
    code = evaluation_cli(["normal-fid", "--model", str(tmp_path / "no-such-model"), "--test-set", str(corpus),
                           "--out", str(tmp_path / "out")])
    assert code == 2 and "no-such-model" in capsys.readouterr().err
    code = evaluation_cli(["normal-fid", "--model", str(tiny_model_folder), "--test-set", str(corpus),
                           "--out", str(tmp_path / "out"), "--inception-weights", str(tmp_path / "missing.pt")])
    assert code == 2 and INCEPTION_FILENAME in capsys.readouterr().err
