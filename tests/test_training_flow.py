"""Flow training CLI: logs, checkpoints, samples, the exported pipeline, resume, and the MoE upcycling stage."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from training.data.datasets import usable_rows
from training.engine.checkpoint import list_checkpoints
from training.train_flow import main
from triposg.models import TripoSGDiTModel, TripoSGVAEModel
from triposg.pipelines import TripoSGPipeline

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "training" / "configs" / "flow-tiny.yaml"


def tiny_args(corpus: Path, vae: Path, output_dir: Path, *extra: str) -> list[str]:
    settings = [
        f"train.output_dir={output_dir}", f"data.corpus={corpus}", f"model.vae={vae}",
        "train.max_steps=6", "train.batch_size=2", "train.log_every=2", "train.checkpoint_every=3",
        "train.sample_every=6", "train.progress_bar=false", "train.tensorboard=false", "train.warmup_steps=0",
        "model.args.width=32", "model.args.num_layers=3", "model.args.num_attention_heads=2",
        "model.condition.dinov2_args.hidden_size=32", "model.condition.dinov2_args.num_hidden_layers=1",
        "model.condition.dinov2_args.intermediate_size=64", "model.condition.dinov2_args.num_attention_heads=2",
        "model.condition.dinov2_args.image_size=56", "data.image_size=56", "data.num_surface=128",
        "data.token_counts=[16, 32]", "sample.num_inference_steps=2", "sample.octree_resolution=32",
        "sample.image_size=64", "export.num_inference_steps=2", "export.octree_resolution=32",
        *extra,
    ]
    return ["--config", str(TINY_CONFIG), *[arg for s in settings for arg in ("--set", s)]]


def read_log(run: Path) -> list[dict[str, str]]:
    with open(run / "logs" / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def dense_run(training_corpus, vae_folder, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("flow-run")
    main(tiny_args(training_corpus, vae_folder, run))
    return run


def test_run_logs_every_term_checkpoints_and_samples(dense_run):
    rows = read_log(dense_run)
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    for column in ("loss", "flow", "lr", "grad_norm", "samples_per_second"):
        assert column in rows[0], rows[0].keys()
        assert all(float(r[column]) == float(r[column]) for r in rows)  # no NaN
    assert "moe_aux" not in rows[0]  # dense model: no balance loss
    assert [p.name for p in list_checkpoints(dense_run / "checkpoints")] == ["checkpoint-00000003",
                                                                            "checkpoint-00000006"]
    assert (dense_run / "samples" / "step-00000006.png").is_file()
    assert (dense_run / "config.yaml").is_file()


def test_exported_pipeline_loads_and_generates(dense_run, training_corpus, vae_folder):
    folder = dense_run / "pipeline"
    for part in ("vae", "transformer", "scheduler", "image_encoder_dinov2", "feature_extractor_dinov2",
                 "generation_config.json"):
        assert (folder / part).exists(), part
    pipe = TripoSGPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    # The run's frozen VAE travels with the export unchanged (its surface is what the latents were trained on).
    run_vae, exported_vae = TripoSGVAEModel.from_pretrained(vae_folder).state_dict(), pipe.vae.state_dict()
    assert exported_vae.keys() == run_vae.keys() and all(torch.equal(exported_vae[k], run_vae[k]) for k in run_vae)
    image = next(training_corpus.rglob("eval_rgb.png"))
    output = pipe(str(image), num_inference_steps=2, num_tokens=32, octree_resolution=32, preprocess=False, seed=0)
    assert output.meshes[0].is_watertight


def test_cli_generates_from_the_exported_pipeline(dense_run, training_corpus, tmp_path):
    from triposg.cli import main as cli_main

    image = next(training_corpus.rglob("eval_rgb.png"))
    code = cli_main(["generate", str(image), "-o", str(tmp_path), "--model", str(dense_run / "pipeline"),
                     "--device", "cpu"])
    assert code == 0
    assert (tmp_path / f"{image.stem}.glb").is_file()


def test_resume_from_latest_continues_the_step_count(dense_run, training_corpus, vae_folder):
    main(tiny_args(training_corpus, vae_folder, dense_run, "train.max_steps=8", "train.sample_every=0")
         + ["--resume", "latest"])
    assert [int(r["step"]) for r in read_log(dense_run)] == [2, 4, 6, 8]
    assert list_checkpoints(dense_run / "checkpoints")[-1].name == "checkpoint-00000008"


def test_moe_upcycling_stage_logs_balance_loss_and_expert_load(dense_run, training_corpus, vae_folder, tmp_path):
    run = tmp_path / "moe"
    main(tiny_args(training_corpus, vae_folder, run, f"model.upcycle_from={dense_run / 'pipeline'}",
                   "model.upcycle_subfolder=transformer", "model.num_experts=4", "model.moe_layers=[2]",
                   f"model.condition.from_pipeline={dense_run / 'pipeline'}",  # frozen encoder path
                   "train.max_steps=2", "train.sample_every=0", "flow.aux_loss_weight=0.05"))
    rows = read_log(run)
    assert "moe_aux" in rows[-1] and float(rows[-1]["moe_aux"]) > 0
    # Shares of routed tokens: valid fractions (with 4 experts and a few dozen tokens one may get none).
    assert 0 <= float(rows[-1]["expert_load_min"]) <= float(rows[-1]["expert_load_max"]) <= 1
    assert float(rows[-1]["expert_load_max"]) > 0
    transformer = TripoSGDiTModel.from_pretrained(run / "pipeline", subfolder="transformer")
    assert transformer.config.use_moe and transformer.config.num_experts == 4
    checkpoint_state = torch.load(list_checkpoints(run / "checkpoints")[-1] / "model" / "model.pt", weights_only=True)
    assert not any(k.startswith("condition_encoder.") for k in checkpoint_state)  # frozen: not trained, not saved


@pytest.mark.parametrize("objective, scheduler_class", [("ddpm", "TripoSGDDPMScheduler"),
                                                        ("edm", "TripoSGEDMScheduler")])
def test_ablation_objectives_export_their_scheduler(training_corpus, vae_folder, tmp_path, objective, scheduler_class):
    run = tmp_path / objective
    main(tiny_args(training_corpus, vae_folder, run, f"flow.objective={objective}", "train.max_steps=2",
                   "train.sample_every=0"))
    assert float(read_log(run)[-1]["flow"]) > 0
    pipe = TripoSGPipeline.from_pretrained(run / "pipeline")
    assert type(pipe.scheduler).__name__ == scheduler_class


def test_unknown_config_key_names_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="valid keys"):
        main(["--config", str(TINY_CONFIG), "--set", "flow.objectve=ddpm"])


def test_missing_vae_folder_is_a_clear_error(training_corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="model.vae"):
        main(tiny_args(training_corpus, tmp_path / "no-vae", tmp_path / "run"))


def test_from_scratch_clip_branch_is_trained_and_exported(training_corpus, vae_folder, tmp_path):
    run = tmp_path / "clip"
    clip = "{hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, " \
           "image_size: 56, patch_size: 14, projection_dim: 24}"
    main(tiny_args(training_corpus, vae_folder, run, f"model.condition.clip_args={clip}", "train.max_steps=2",
                   "train.sample_every=0"))
    pipe = TripoSGPipeline.from_pretrained(run / "pipeline")
    assert pipe.transformer.config.use_cross_attention_2 and pipe.image_encoder_clip is not None
    assert (run / "pipeline" / "feature_extractor_clip").is_dir()


def test_latent_cache_is_filled_once_and_then_read(training_corpus, vae_folder, tmp_path):
    from training.latents import LatentStore, vae_fingerprint
    from triposg.models import TripoSGVAEModel

    cache = tmp_path / "latents"
    main(tiny_args(training_corpus, vae_folder, tmp_path / "run", f"data.latent_cache={cache}",
                   "train.sample_every=100"))
    key = vae_fingerprint(TripoSGVAEModel.from_pretrained(vae_folder))
    cached = {m: set(LatentStore(cache, key, m).object_ids()) for m in (16, 32)}
    train_ids = set(usable_rows(training_corpus, "train", False)[1]["object_id"])
    assert train_ids and all(ids == train_ids for ids in cached.values())  # every object, every M, up front
    files = sorted(cache.rglob("*.safetensors"))
    stamps = [f.stat().st_mtime_ns for f in files]
    main(tiny_args(training_corpus, vae_folder, tmp_path / "run2", f"data.latent_cache={cache}",
                   "train.sample_every=100", "train.max_steps=2"))
    seen_again = [f for f in files if f.exists()]
    assert [f.stat().st_mtime_ns for f in seen_again] == stamps  # read, not re-encoded


def test_a_sample_without_surface_warns_and_training_goes_on(training_corpus, vae_folder, tmp_path):
    # A fresh VAE's field often never crosses zero (no sphere prior): the sample step must not end the run.
    no_surface_vae = tmp_path / "vae"
    from triposg.models import TripoSGVAEModel

    vae = TripoSGVAEModel(latent_channels=8, num_attention_heads=2, width_encoder=16, width_decoder=16,
                          num_layers_encoder=1, num_layers_decoder=1)
    with torch.no_grad():
        vae.decoder.proj_out.bias.fill_(-10.0)  # decode = -raw ≈ +10 everywhere: the field never crosses zero
    vae.save_pretrained(no_surface_vae)
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="no surface yet"):
        main(tiny_args(training_corpus, no_surface_vae, run, "train.max_steps=2", "train.sample_every=1"))
    assert (run / "pipeline" / "model_index.json").is_file()


def test_cached_latents_without_surface_name_the_missing_objects(vae_folder, tmp_path):
    from training.train_flow import CachedLatents
    from triposg.models import TripoSGVAEModel

    cached = CachedLatents(TripoSGVAEModel.from_pretrained(vae_folder), tmp_path / "latents", sample_posterior=False)
    surface = torch.randn(2, 64, 6)
    first = cached(["a", "b"], surface, 16)
    assert torch.equal(cached(["b", "a"], None, 16), first.flip(0))  # read back without any surface
    with pytest.raises(KeyError, match="'c'.*fill_latent_cache"):
        cached(["a", "c"], None, 16)


def test_objects_per_family_trains_on_a_family_balanced_subset(training_corpus, vae_folder, tmp_path):
    from corpus_copy import corpus_with_families

    from training.latents import LatentStore, vae_fingerprint
    from training.train_flow import FlowDataConfig, fill_latent_cache
    from triposg.models import TripoSGVAEModel

    corpus = tmp_path / "corpus"
    ids = corpus_with_families(training_corpus, corpus, ["a", "a", "b"])  # families in blocks, as manifests list them
    assert usable_rows(corpus, "train", False, per_family=1)[1]["object_id"].tolist() == [ids[0], ids[2]]
    assert usable_rows(corpus, "train", False)[1]["object_id"].tolist() == ids

    vae = TripoSGVAEModel.from_pretrained(vae_folder)
    data = FlowDataConfig(corpus=str(corpus), num_surface=64, token_counts=(16,), objects_per_family=1,
                          latent_cache=str(tmp_path / "latents"))
    fill_latent_cache(vae, data)  # encodes only the objects the run trains on
    assert sorted(LatentStore(data.latent_cache, vae_fingerprint(vae), 16).object_ids()) == sorted([ids[0], ids[2]])


def test_lora_fine_tuning_trains_adapters_only_and_loads_into_the_base_pipeline(dense_run, training_corpus,
                                                                                 vae_folder, tmp_path):
    base = dense_run / "pipeline"
    run = tmp_path / "lora"
    main(tiny_args(training_corpus, vae_folder, run, f"model.pretrained={base}", "model.subfolder=transformer",
                   f"model.condition.from_pipeline={base}", "model.lora_rank=4", "train.max_steps=4",
                   "train.sample_every=0", "train.learning_rate=0.05", "train.ema_decay=0"))
    weights = run / "lora" / "pytorch_lora_weights.safetensors"
    assert weights.is_file() and not (run / "pipeline").exists()
    from safetensors.torch import load_file

    state = load_file(weights)
    assert state and all("lora_" in key for key in state)  # adapters only, not the base weights
    assert any(key.endswith("lora_B.weight") and value.abs().max() > 0 for key, value in state.items())  # trained

    pipe = TripoSGPipeline.from_pretrained(base)
    pipe.set_progress_bar_config(disable=True)
    latents = torch.randn(1, 16, pipe.transformer.config.in_channels, generator=torch.Generator().manual_seed(0))
    image = next(training_corpus.rglob("eval_rgb.png"))
    settings = dict(num_inference_steps=2, num_tokens=16, octree_resolution=32, preprocess=False)
    before = pipe(str(image), latents=latents, **settings).latents
    pipe.load_lora_weights(run / "lora")
    after = pipe(str(image), latents=latents, **settings).latents
    switched_off = pipe(str(image), latents=latents, attention_kwargs={"scale": 0.0}, **settings).latents
    assert not torch.allclose(before, after)  # the adapters change the result
    torch.testing.assert_close(switched_off, before)  # scale 0 switches them off
    pipe.unload_lora_weights()
    torch.testing.assert_close(pipe(str(image), latents=latents, **settings).latents, before)
    pickled = tmp_path / "adapter.bin"
    pickled.write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="safetensors"):
        pipe.load_lora_weights(pickled)


def test_lora_needs_a_pretrained_transformer(training_corpus, vae_folder, tmp_path):
    with pytest.raises(ValueError, match="model.pretrained"):
        main(tiny_args(training_corpus, vae_folder, tmp_path / "run", "model.lora_rank=4"))


def test_guidance_distillation_exports_a_model_sampled_without_guidance(dense_run, training_corpus, vae_folder,
                                                                       tmp_path):
    base = dense_run / "pipeline"
    distil = [f"model.pretrained={base}", "model.subfolder=transformer", f"model.condition.from_pipeline={base}",
              "flow.condition_dropout=0", "flow.distill_guidance_scale=3", "sample.guidance_scale=1",
              "export.guidance_scale=1", "train.max_steps=2", "train.sample_every=0"]
    run = tmp_path / "distil"
    main(tiny_args(training_corpus, vae_folder, run, *distil))
    assert all(float(row["flow"]) > 0 for row in read_log(run))
    pipe = TripoSGPipeline.from_pretrained(run / "pipeline")
    assert pipe.generation_defaults.guidance_scale == 1.0  # one conditional pass per step
    student = pipe.transformer.state_dict()
    teacher = TripoSGDiTModel.from_pretrained(base, subfolder="transformer").state_dict()
    assert any(not torch.equal(student[key], teacher[key]) for key in teacher)  # trained away from its start
    for setting, message in [("flow.condition_dropout=0.1", "flow.condition_dropout=0"),
                             ("export.guidance_scale=3", "export.guidance_scale=1")]:
        with pytest.raises(ValueError, match=message):
            main(tiny_args(training_corpus, vae_folder, tmp_path / "bad", *distil, setting))
    with pytest.raises(ValueError, match="model.pretrained"):
        main(tiny_args(training_corpus, vae_folder, tmp_path / "bad", "flow.condition_dropout=0",
                       "flow.distill_guidance_scale=3", "sample.guidance_scale=1", "export.guidance_scale=1"))


def test_undo_yaw_fills_its_own_latent_frame_from_the_turned_back_surfaces(training_corpus, vae_folder, tmp_path):
    """`data.undo_yaw`: the cache gets a second frame beside the corpus one, encoded from the surfaces turned back
    to yaw 0 (so different latents), and a store refuses a file of the other frame."""
    from training.data.datasets import ImageViewDataset
    from training.latents import LatentStore, vae_fingerprint
    from training.train_flow import FlowDataConfig, fill_latent_cache
    from triposg.models import TripoSGVAEModel

    vae = TripoSGVAEModel.from_pretrained(vae_folder)
    key = vae_fingerprint(vae)
    stores = {}
    for undo in (False, True):
        data = FlowDataConfig(corpus=str(training_corpus), num_surface=64, token_counts=(16,), undo_yaw=undo,
                              latent_cache=str(tmp_path / "latents"))
        fill_latent_cache(vae, data)
        stores[undo] = LatentStore(data.latent_cache, key, 16, data.frame)
    assert stores[True].folder != stores[False].folder
    ids = stores[False].object_ids()
    assert ids and stores[True].object_ids() == ids
    turned = [object_id for object_id in ids if not torch.equal(stores[True].load(object_id)[0],
                                                                stores[False].load(object_id)[0])]
    rows = usable_rows(training_corpus, "train", False)[1].set_index("object_id")
    assert turned == [object_id for object_id in ids if rows.loc[object_id, "params"].get("yaw_deg")]
    assert turned  # the fixture's shapes have a yaw
    stores[True].path(ids[0]).write_bytes(stores[False].path(ids[0]).read_bytes())  # a corpus-frame file
    with pytest.raises(KeyError, match="frame"):
        stores[True].load(ids[0])
    with pytest.raises(ValueError, match="frame must be one of"):
        LatentStore(tmp_path, key, 16, "sideways")
    # The images stay as rendered: only the surface is turned.
    plain, undone = (ImageViewDataset(training_corpus, use_eval_view=True, undo_yaw=u)[0] for u in (False, True))
    assert plain["image"].tobytes() == undone["image"].tobytes()
    assert not torch.equal(plain["surface"], undone["surface"])
