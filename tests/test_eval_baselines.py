"""Baselines (zeroed image condition, majority-occupancy mean shape), the VAE reconstruction protocol and the
local-plane token oracle."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from evaluation.__main__ import main as evaluation_cli
from evaluation.baselines import mean_occupancy_shape, mean_shape_variant, unconditional_variant, zero_image_condition
from evaluation.metrics import reconstruction_metrics
from evaluation.normal_fid import pipeline_variant
from evaluation.token_oracle import LocalPlaneVAE, plane_field
from evaluation.vae_recon import (
    run_vae_reconstruction,
    select_rows,
    summarize_by_family,
    summarize_reconstruction,
)
from training.data.build import BuildConfig, run_build
from training.data.fields import FieldConfig
from training.data.procedural import sample_shape
from triposg.loading import GenerationDefaults
from triposg.pipelines import make_random_pipeline

SAMPLING = GenerationDefaults(num_inference_steps=2, guidance_scale=3.0, num_tokens=16, octree_resolution=32, seed=0)
FIELDS = FieldConfig(num_surface=4096, num_near=256, num_volume=256, num_on_surface=4096, udf_resolution=48)


@pytest.fixture(scope="module")
def sphere_corpus(tmp_path_factory):
    """One procedural object (the first family, a sphere) in the test split and the train split alike."""
    out = tmp_path_factory.mktemp("corpus")
    summary = run_build(BuildConfig(out=out, num=1, workers=1, num_views=1, render_resolution=32, mesh_resolution=64,
                                    fields=FIELDS, split_fractions=(0.0, 0.0, 1.0)))
    assert summary["built"] == 1
    return out


@pytest.fixture(scope="module")
def pipe():
    pipe = make_random_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _images():
    from PIL import Image

    images = []
    for corner, colour in ((8, (200, 30, 30)), (20, (30, 30, 200))):  # different objects on white
        pixels = np.full((64, 64, 3), 255, dtype=np.uint8)
        pixels[corner:corner + 30, 16:40] = colour
        images.append(Image.fromarray(pixels))
    return images


def test_zero_condition_is_scoped_to_the_block(pipe):
    images = _images()
    normal, _ = pipe.encode_image(images, pipe.device)
    assert normal.abs().sum() > 0
    with zero_image_condition(pipe):
        zeros, _ = pipe.encode_image(images, pipe.device)
    assert zeros.shape == normal.shape and zeros.abs().sum() == 0
    again, _ = pipe.encode_image(images, pipe.device)
    torch.testing.assert_close(again, normal)


def test_unconditional_variant_feeds_zeros_without_guidance(pipe):
    contexts = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: contexts.append(kwargs["encoder_hidden_states"].clone()), with_kwargs=True)
    try:
        unconditional = unconditional_variant(pipe, SAMPLING, {"kind": "test"})
        first, second = _images()
        a, b = unconditional.generate(first, None), unconditional.generate(second, None)
        assert len(contexts) == 2 * SAMPLING.num_inference_steps  # no CFG: one batch of 1 per step
        assert all(context.shape[0] == 1 and context.abs().sum() == 0 for context in contexts)
        np.testing.assert_array_equal(a.vertices, b.vertices)  # same seed, no image: the same shape
        contexts.clear()
        pipeline_variant(pipe, SAMPLING, {"kind": "test"}).generate(first, None)
        assert contexts[0].shape[0] == 2 and contexts[0][1].abs().sum() > 0  # [uncond, cond] with the image
    finally:
        hook.remove()
    assert unconditional.identity["sampling"]["guidance_scale"] == 1.0


def test_mean_shape_of_one_object_is_that_object(sphere_corpus):
    mesh = mean_occupancy_shape(sphere_corpus, split="test", resolution=48)
    assert mesh.is_watertight and mesh.volume > 0  # closed and outward-facing
    from training.data.manifest import read_manifest

    row = read_manifest(sphere_corpus).iloc[0]
    truth = sample_shape(row["family"], int(row["seed"])).to_mesh(64)
    assert reconstruction_metrics(mesh, truth, num_points=5000, threshold=0.05)["f_score"] > 0.95
    variant = mean_shape_variant(mesh, {"corpus": "test"})
    assert variant.generate(None, None).vertices.shape == mesh.vertices.shape
    with pytest.raises(ValueError, match="no procedural objects"):
        mean_occupancy_shape(sphere_corpus, split="train")


class SphereVAE(torch.nn.Module):
    """A stand-in VAE whose decoded field is a sphere fitted to the encoded points, scaled by `radius_scale`
    (1 = a perfect reconstruction of a sphere)."""

    def __init__(self, radius_scale: float):
        super().__init__()
        self.radius_scale = radius_scale
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def encode(self, points, num_tokens, generator=None):
        radius = points[..., :3].norm(dim=-1).mean(dim=1, keepdim=True)  # (B, 1)
        latent = radius[:, :, None].expand(-1, num_tokens, 1)
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: latent))

    def decode_tokens(self, latents):
        return latents

    def query(self, tokens, xyz, chunk_size=None):
        radius = tokens[:, :1, :1] * self.radius_scale
        return (radius - xyz.norm(dim=-1, keepdim=True))  # positive inside, like TripoSGVAEModel.decode


def test_vae_reconstruction_scores_a_perfect_and_a_wrong_reconstruction(sphere_corpus):
    kwargs = dict(split="test", num_tokens=8, resolution=64, num_points=8192, threshold=0.05, progress=False)
    perfect = run_vae_reconstruction(SphereVAE(1.0), sphere_corpus, **kwargs)
    wrong = run_vae_reconstruction(SphereVAE(0.8), sphere_corpus, **kwargs)
    assert perfect.loc[0, "status"] == "ok" and perfect.loc[0, "family"] == "sphere"
    assert perfect.loc[0, "f_score"] > 0.95 and perfect.loc[0, "normal_consistency"] > 0.95
    assert wrong.loc[0, "f_score"] < 0.2 and wrong.loc[0, "chamfer"] > 5 * perfect.loc[0, "chamfer"]


def test_select_rows_balances_families_before_the_limit():
    rows = pd.DataFrame({"object_id": list("abcdefg"), "family": ["box"] * 4 + ["cone"] * 2 + ["mug"]})
    assert select_rows(rows, per_family=2)["object_id"].tolist() == ["a", "b", "e", "f", "g"]
    assert select_rows(rows, per_family=1, limit=2)["object_id"].tolist() == ["a", "e"]
    assert select_rows(rows, limit=3)["object_id"].tolist() == ["a", "b", "c"]
    assert len(select_rows(rows)) == 7


def test_plane_field_is_the_signed_distance_to_a_flat_wall():
    grid = torch.stack(torch.meshgrid(torch.linspace(-1, 1, 9), torch.linspace(-1, 1, 9), indexing="ij"), -1)
    tokens = torch.cat([grid.reshape(-1, 2), torch.zeros(81, 1)], -1)  # the plane z = 0, normals +z
    normals = torch.tensor([0.0, 0.0, 1.0]).expand(81, 3)
    queries = torch.rand(200, 3, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    for sigma in (None, 0.05):
        assert torch.allclose(plane_field(queries, tokens, normals, sigma), queries[:, 2], atol=1e-5)
    flipped = plane_field(queries, tokens, -normals)  # the side comes from the normals
    assert torch.allclose(flipped, -queries[:, 2], atol=1e-5)
    with pytest.raises(ValueError, match="sigma"):
        plane_field(queries, tokens, normals, 0.0)


def test_local_plane_oracle_improves_with_the_token_count(sphere_corpus):
    kwargs = dict(split="test", resolution=48, num_points=8192, threshold=0.05, progress=False)
    coarse = run_vae_reconstruction(LocalPlaneVAE(), sphere_corpus, num_tokens=6, **kwargs)
    fine = run_vae_reconstruction(LocalPlaneVAE(sigma=0.05), sphere_corpus, num_tokens=512, **kwargs)
    assert coarse.loc[0, "status"] == fine.loc[0, "status"] == "ok"
    assert fine.loc[0, "f_score"] > 0.9 and fine.loc[0, "normal_consistency"] > 0.95
    # Six tangent planes of a sphere make a cube-like cell: far from the surface in places, normals off.
    assert coarse.loc[0, "f_score"] < fine.loc[0, "f_score"] - 0.2
    assert coarse.loc[0, "chamfer"] > 2 * fine.loc[0, "chamfer"]


def test_vae_recon_command_runs_the_local_plane_oracle(sphere_corpus, capsys):
    assert evaluation_cli(["vae-recon", "--local-plane-oracle", "--corpus", str(sphere_corpus), "--num-tokens", "64",
                           "--resolution", "32"]) == 0
    assert "f_score" in capsys.readouterr().out
    assert evaluation_cli(["vae-recon", "--local-plane-oracle", "0.05", "--vae", str(sphere_corpus),
                           "--corpus", str(sphere_corpus)]) == 2  # one source of fields, not two


def test_a_shape_without_surface_counts_as_zero():
    table = pd.DataFrame([
        {"object_id": "a", "family": "x", "status": "ok", "chamfer": 0.01, "f_score": 1.0, "precision": 1.0,
         "recall": 1.0, "normal_consistency": 1.0},
        {"object_id": "b", "family": "x", "status": "no surface"},
    ])
    summary = summarize_reconstruction(table)
    assert summary == {"objects": 2, "failed": 1, "chamfer": 0.01, "f_score": 0.5, "normal_consistency": 0.5}


def test_summaries_by_family_come_worst_first():
    table = pd.DataFrame([
        {"object_id": "a", "family": "box", "status": "ok", "chamfer": 0.01, "f_score": 0.9, "normal_consistency": 0.9},
        {"object_id": "b", "family": "box", "status": "ok", "chamfer": 0.03, "f_score": 0.7, "normal_consistency": 0.8},
        {"object_id": "c", "family": "mug", "status": "no surface"},
    ])
    by_family = summarize_by_family(table)
    assert list(by_family.index) == ["mug", "box"]
    assert by_family.loc["box", "f_score"] == pytest.approx(0.8)
    assert by_family.loc["box", "chamfer"] == pytest.approx(0.02)
    assert by_family.loc["mug", "failed"] == 1 and by_family.loc["mug", "f_score"] == 0.0


def test_vae_recon_cli_reads_a_vae_folder_and_names_bad_paths(sphere_corpus, tmp_path, capsys):
    from triposg.models import TripoSGVAEModel

    vae = TripoSGVAEModel(latent_channels=4, num_attention_heads=2, width_encoder=16, width_decoder=16,
                          num_layers_encoder=1, num_layers_decoder=1)
    vae.save_pretrained(tmp_path / "vae")
    code = evaluation_cli(["vae-recon", "--vae", str(tmp_path / "vae"), "--corpus", str(sphere_corpus),
                           "--num-tokens", "8", "--resolution", "32", "--csv", str(tmp_path / "recon.csv")])
    assert code == 0
    table = pd.read_csv(tmp_path / "recon.csv")
    assert len(table) == 1 and table.loc[0, "status"] in ("ok", "no surface")
    assert "f_score" in capsys.readouterr().out
    assert evaluation_cli(["vae-recon", "--vae", str(tmp_path), "--corpus", str(sphere_corpus)]) == 2
    assert "neither a VAE folder" in capsys.readouterr().err
