"""VAE training: loss terms on an analytic sphere, overfitting, exact resume, checkpoints, DDP, the CLI."""

from __future__ import annotations

import csv
import math
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from training.data.build import BuildConfig, run_build
from training.data.datasets import FieldDataset, MultiResolutionCollate
from training.data.fields import FieldConfig
from training.engine.checkpoint import find_checkpoint, list_checkpoints, save_checkpoint
from training.engine.config import TrainConfig, load_config
from training.engine.logging import MetricLogger
from training.engine.loop import Trainer
from training.engine.schedule import lr_lambda
from training.losses import VAELossConfig, routing_loss, vae_loss
from training.train_vae import VAETrainingConfig, build_vae, make_loss_fn, train_vae
from triposg.models import TripoSGVAEModel
from triposg.models.vae import DiagonalGaussian, QueryAttention

REPO = Path(__file__).resolve().parents[1]
TINY_FIELDS = FieldConfig(num_surface=256, num_near=128, num_volume=128, num_on_surface=128, udf_resolution=32)
TINY_VAE = dict(latent_channels=8, num_attention_heads=2, width_encoder=32, width_decoder=32,
                num_layers_encoder=1, num_layers_decoder=1)


# ------------------------------------------------------------------ losses on an analytic sphere

class SphereField(nn.Module):
    """Raw field |x| − r (an exact SDF, positive outside), optionally perturbed by a sine."""

    def __init__(self, radius: float = 0.5, wobble: float = 0.0):
        super().__init__()
        self.radius, self.wobble = radius, wobble

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        return xyz.norm(dim=-1) - self.radius + self.wobble * torch.sin(12.0 * xyz[..., 0])


def sphere_batch(radius: float = 0.5, seed: int = 0):
    """Supervision points in the truncation band with exact targets, and on-surface points with outward normals."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(2, 400, 3, generator=generator), dim=-1)
    offsets = (torch.rand(2, 300, 1, generator=generator) - 0.5) * 0.18
    supervision = directions[:, :300] * (radius + offsets)
    surface = directions[:, 300:] * radius
    query_xyz = torch.cat([supervision, surface], dim=1).requires_grad_(True)
    target = supervision.norm(dim=-1) - radius
    return query_xyz, target, directions[:, 300:]


NO_KL = VAELossConfig(use_kl_loss=False)


def test_true_sphere_sdf_has_zero_losses():
    query_xyz, target, normals = sphere_batch()
    terms = vae_loss(query_xyz, SphereField()(query_xyz), target, normals, config=NO_KL)
    assert set(terms) == {"sdf", "normal", "eikonal", "loss"}
    assert terms["sdf"].item() < 1e-6
    assert terms["normal"].item() < 1e-6
    assert terms["eikonal"].item() < 1e-6


def test_perturbed_sphere_has_clearly_positive_gradient_losses():
    query_xyz, target, normals = sphere_batch()
    terms = vae_loss(query_xyz, SphereField(wobble=0.05)(query_xyz), target, normals, config=NO_KL)
    assert terms["eikonal"].item() > 0.05
    assert terms["normal"].item() > 0.02
    assert terms["sdf"].item() > 1e-3
    expected = terms["sdf"] + 10.0 * terms["normal"] + 0.1 * terms["eikonal"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    terms["loss"].backward()  # create_graph=True: the loss is differentiable through ∇D


def test_decode_sign_convention_is_rejected_by_the_normal_loss():
    """Passing the decode convention (positive inside) instead of the raw output flips every normal."""
    query_xyz, target, normals = sphere_batch()
    terms = vae_loss(query_xyz, -SphereField()(query_xyz), target, normals, config=NO_KL)
    assert terms["normal"].item() == pytest.approx(2.0, abs=1e-5)


def test_term_switches_remove_terms():
    query_xyz, target, normals = sphere_batch()
    raw = SphereField(wobble=0.05)(query_xyz)
    config = VAELossConfig(use_normal_loss=False, use_eikonal_loss=False, use_kl_loss=False)
    terms = vae_loss(query_xyz, raw, target, normals, config=config)
    assert set(terms) == {"sdf", "loss"} and terms["loss"].item() == terms["sdf"].item()
    only_eik = vae_loss(query_xyz, raw, target, normals, config=replace(config, use_eikonal_loss=True))
    assert set(only_eik) == {"sdf", "eikonal", "loss"}


def test_kl_term_from_the_posterior():
    query_xyz, target, normals = sphere_batch()
    mean = torch.ones(2, 4, 3)
    posterior = DiagonalGaussian(torch.cat([mean, torch.zeros_like(mean)], dim=-1))  # KL = 0.5 per channel
    terms = vae_loss(query_xyz, SphereField()(query_xyz), target, normals, posterior,
                     VAELossConfig(use_normal_loss=False, use_eikonal_loss=False))
    assert terms["kl"].item() == pytest.approx(0.5)
    assert terms["loss"].item() == pytest.approx(terms["sdf"].item() + 0.001 * 0.5, abs=1e-9)


def test_occupancy_variant():
    query_xyz, target, normals = sphere_batch()
    config = VAELossConfig(field="occupancy", use_eikonal_loss=False, use_kl_loss=False)
    sharp = vae_loss(query_xyz, 2000.0 * SphereField()(query_xyz), target, normals, config=config)
    assert set(sharp) == {"occupancy", "normal", "loss"}
    assert sharp["occupancy"].item() < 0.05 and sharp["normal"].item() < 1e-6
    flipped = vae_loss(query_xyz, -2000.0 * SphereField()(query_xyz), target, normals, config=config)
    assert flipped["occupancy"].item() > 5.0
    with pytest.raises(ValueError, match="eikonal"):
        VAELossConfig(field="occupancy")


# ------------------------------------------------------------------ engine pieces

def test_routing_loss_is_zero_for_the_kernel_and_pulls_attention_towards_near_tokens():
    generator = torch.Generator().manual_seed(0)
    query_xyz, token_xyz, sigma = torch.rand(1, 40, 3, generator=generator), torch.rand(1, 12, 3, generator=generator), 0.1
    kernel = (-torch.cdist(query_xyz, token_xyz).pow(2) / (2 * sigma**2))[:, None].expand(-1, 2, -1, -1)
    assert routing_loss(kernel + 3.0, query_xyz, token_xyz, sigma).abs() < 1e-5  # softmax ignores offsets
    uniform = torch.zeros(1, 2, 40, 12, requires_grad=True)
    loss = routing_loss(uniform, query_xyz, token_xyz, sigma)
    assert loss > 0.5
    loss.backward()
    nearest = torch.cdist(query_xyz, token_xyz)[0].argmin(-1)  # (Q,)
    step = -uniform.grad[0, 0]  # descent direction per (query, token)
    assert (step.argmax(-1) == nearest).all()


def test_routing_term_switch():
    query_xyz, target, normals = sphere_batch()
    raw = SphereField()(query_xyz)
    config = VAELossConfig(use_kl_loss=False, use_normal_loss=False, use_eikonal_loss=False, use_routing_loss=True)
    with pytest.raises(ValueError, match="query_attention"):
        vae_loss(query_xyz, raw, target, normals, config=config)
    attention = QueryAttention(torch.zeros(2, 1, 400, 5), torch.rand(2, 5, 6))
    terms = vae_loss(query_xyz, raw, target, normals, config=config, query_attention=attention)
    torch.testing.assert_close(terms["loss"], terms["sdf"] + config.lambda_routing * terms["routing"])
    with pytest.raises(ValueError, match="routing_sigma"):
        VAELossConfig(routing_sigma=0.0)


def test_anchor_term_asks_the_first_latent_channels_for_the_token_points():
    query_xyz, target, normals = sphere_batch()
    raw = SphereField()(query_xyz)
    config = VAELossConfig(use_kl_loss=False, use_normal_loss=False, use_eikonal_loss=False, use_anchor_loss=True)
    token_points = torch.rand(2, 5, 6)
    anchored = DiagonalGaussian(torch.cat([token_points, torch.randn(2, 5, 2), torch.zeros(2, 5, 8)], -1))
    attention = QueryAttention(torch.zeros(2, 1, 400, 5), token_points)
    terms = vae_loss(query_xyz, raw, target, normals, anchored, config, query_attention=attention)
    assert terms["anchor"] < 1e-12  # only channels 0-5 are asked for; 6-7 are free
    shifted = DiagonalGaussian(torch.cat([token_points + 0.5, torch.randn(2, 5, 2), torch.zeros(2, 5, 8)], -1))
    terms = vae_loss(query_xyz, raw, target, normals, shifted, config, query_attention=attention)
    torch.testing.assert_close(terms["anchor"], torch.tensor(0.25))
    torch.testing.assert_close(terms["loss"], terms["sdf"] + config.lambda_anchor * terms["anchor"])
    with pytest.raises(ValueError, match="token points"):
        vae_loss(query_xyz, raw, target, normals, shifted, config)
    with pytest.raises(ValueError, match="at least 6 latent channels"):
        vae_loss(query_xyz, raw, target, normals, DiagonalGaussian(torch.zeros(2, 5, 8)), config,
                 query_attention=attention)


def test_schedule_warmup_then_cosine():
    multiplier = lr_lambda(max_steps=110, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert multiplier(0) == pytest.approx(0.1) and multiplier(9) == pytest.approx(1.0)
    assert multiplier(60) == pytest.approx(0.55) and multiplier(110) == pytest.approx(0.1)


def test_schedule_wsd_holds_the_peak_so_the_run_length_can_change_late():
    short = lr_lambda(max_steps=1000, warmup_steps=100, schedule="wsd", min_lr_ratio=0.05, decay_fraction=0.2)
    long = lr_lambda(max_steps=2000, warmup_steps=100, schedule="wsd", min_lr_ratio=0.05, decay_fraction=0.2)
    assert short(0) == pytest.approx(0.01) and short(99) == pytest.approx(1.0)
    assert [short(s) for s in range(100, 800)] == [long(s) for s in range(100, 800)] == [1.0] * 700
    assert short(900) == pytest.approx(0.525) and short(1000) == pytest.approx(0.05)
    assert long(1600) == 1.0 and long(2000) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="decay_fraction"):
        lr_lambda(max_steps=10, schedule="wsd", decay_fraction=0.0)
    with pytest.raises(ValueError, match="wsd"):
        lr_lambda(max_steps=10, schedule="linear")


def test_config_overrides_and_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 5.0e-5\ndata:\n  token_counts: [512, 2048]\n")
    config = load_config(path, ["train.max_steps=7", "loss.use_kl_loss=false"], config_class=VAETrainingConfig)
    assert config.train.learning_rate == 5e-5 and config.train.max_steps == 7
    assert config.data.token_counts == (512, 2048) and config.loss.use_kl_loss is False
    with pytest.raises(ValueError, match="valid keys"):
        load_config(path, ["train.max_stpes=7"], config_class=VAETrainingConfig)


def test_checkpoint_retention_and_incomplete_folders(tmp_path):
    model = nn.Linear(3, 2)
    for step in range(1, 5):
        save_checkpoint(tmp_path, step, model, {"step": step}, total_limit=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000003", "checkpoint-00000004"]
    (tmp_path / "checkpoint-00000009").mkdir()  # killed mid-save: no COMPLETE marker
    (tmp_path / ".checkpoint-00000010.tmp").mkdir()
    assert find_checkpoint(tmp_path, "latest").name == "checkpoint-00000004"
    with pytest.raises(FileNotFoundError, match="COMPLETE"):
        find_checkpoint(tmp_path, str(tmp_path / "checkpoint-00000009"))
    assert find_checkpoint(tmp_path / "empty", "latest") is None


# ------------------------------------------------------------------ training on a tiny corpus

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vae-corpus")
    summary = run_build(BuildConfig(out=out, num=3, workers=1, num_views=1, render_resolution=32,
                                    mesh_resolution=32, fields=TINY_FIELDS, split_fractions=(1.0, 0.0, 0.0)))
    assert summary["built"] == 3, summary
    return out


def tiny_run_config(corpus: Path, output_dir: Path, **train) -> VAETrainingConfig:
    settings = dict(output_dir=str(output_dir), max_steps=6, batch_size=2, learning_rate=1e-3, warmup_steps=2,
                    lr_schedule="cosine", ema_decay=0.9, log_every=1, checkpoint_every=3, sample_every=0,
                    progress_bar=False)
    settings.update(train)
    config = VAETrainingConfig(train=TrainConfig(**settings))
    config.model.args = dict(TINY_VAE)
    config.data = replace(config.data, corpus=str(corpus), num_surface=128, num_near=64, num_volume=64,
                          num_on_surface=64, token_counts=(16, 32))
    config.sample = replace(config.sample, resolution=16, image_size=32, num_views=1)
    return config


def test_tiny_vae_overfits_a_few_shapes(corpus, tmp_path):
    """Real model class and real loss: the total loss falls ×3 and the normal term halves in 150 steps.

    A fresh VAE's field is exactly 0 (zero output layer), so the first SDF term is already that of the
    constant field and cannot fall ×5; the normal term (weight 10) is what moves first."""
    config = tiny_run_config(corpus, tmp_path, max_steps=150, batch_size=3, checkpoint_every=1000, ema_decay=None,
                             warmup_steps=10)
    data = config.data
    torch.manual_seed(0)
    dataset = FieldDataset(corpus, "train", num_surface=128, num_near=64, num_volume=64, num_on_surface=64)
    trainer = Trainer(config.train, TripoSGVAEModel(**TINY_VAE), dataset, make_loss_fn(config.loss),
                      collate_fn=MultiResolutionCollate(data.token_counts, seed=0))
    history = trainer.train()
    first, last = history[0], history[-10:]
    mean_last = {key: sum(row[key] for row in last) / len(last) for key in ("loss", "sdf", "normal")}
    assert mean_last["loss"] < first["loss"] / 3, (first, mean_last)
    assert mean_last["normal"] < 0.5 * first["normal"], (first, mean_last)


def test_loss_fn_with_routing_and_anchor_terms(corpus):
    dataset = FieldDataset(corpus, "train", num_surface=128, num_near=64, num_volume=64, num_on_surface=64)
    batch = MultiResolutionCollate((16,), seed=0)([dataset[0], dataset[1]])
    config = VAELossConfig(use_normal_loss=False, use_eikonal_loss=False, use_kl_loss=False, use_routing_loss=True,
                           use_anchor_loss=True)
    vae = TripoSGVAEModel(**TINY_VAE)
    terms = make_loss_fn(config)(vae, batch)
    assert terms["routing"] > 0 and terms["anchor"] > 0
    terms["loss"].backward()
    assert vae.decoder.blocks[-1].attn2.to_q.weight.grad.abs().sum() > 0


def test_latent_noise_perturbs_only_the_objects_given_noise(corpus):
    """`latent_noise` per object: a zero leaves that object's decode exactly as without noise, a positive std moves
    the other's; the loss function draws it per object and the config rejects a negative one."""
    dataset = FieldDataset(corpus, "train", num_surface=128, num_near=64, num_volume=64, num_on_surface=64)
    batch = MultiResolutionCollate((16,), seed=0)([dataset[0], dataset[1]])
    torch.manual_seed(0)
    vae = TripoSGVAEModel(**TINY_VAE)
    with torch.no_grad():
        vae.decoder.proj_out.weight.normal_()  # a fresh decoder outputs a constant field; make it read the latents
        clean, _ = vae(batch["surface"], batch["points"], num_tokens=16, sample_posterior=False,
                       generator=torch.Generator().manual_seed(0))  # the same token subset in both calls
        noisy, _ = vae(batch["surface"], batch["points"], num_tokens=16, sample_posterior=False,
                       generator=torch.Generator().manual_seed(0), latent_noise=torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(noisy[0], clean[0], rtol=0, atol=0)
    assert (noisy[1] - clean[1]).abs().max() > 1e-3
    config = VAELossConfig(use_normal_loss=False, use_eikonal_loss=False, use_kl_loss=False)
    torch.manual_seed(1)
    without = make_loss_fn(config)(vae, batch)["loss"]
    torch.manual_seed(1)
    with_noise = make_loss_fn(config, latent_noise=0.5)(vae, batch)["loss"]
    assert with_noise != without
    with pytest.raises(ValueError, match="latent_noise"):
        build_vae(replace(VAETrainingConfig().model, latent_noise=-0.1))


def test_gradient_losses_switch_on_at_their_step(corpus):
    dataset = FieldDataset(corpus, "train", num_surface=128, num_near=64, num_volume=64, num_on_surface=64)
    batch = MultiResolutionCollate((16,), seed=0)([dataset[0], dataset[1]])
    config = VAELossConfig(use_kl_loss=False, gradient_losses_from_step=100)
    assert not config.at_step(99).needs_input_gradients and config.at_step(100) is config
    step = [99]
    loss_fn = make_loss_fn(config, lambda: step[0])
    vae = TripoSGVAEModel(**TINY_VAE)
    before = loss_fn(vae, batch)
    step[0] = 100
    after = loss_fn(vae, batch)
    assert "normal" not in before and "eikonal" not in before
    assert after["normal"] > 0 and after["eikonal"] > 0 and after["loss"] > before["loss"]
    with pytest.raises(ValueError, match="gradient_losses_from_step"):
        VAELossConfig(gradient_losses_from_step=-1)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_kill_and_resume_continues_exactly(corpus, tmp_path):
    straight = train_vae(tiny_run_config(corpus, tmp_path / "straight"))

    interrupted_dir = tmp_path / "interrupted"
    train_vae(tiny_run_config(corpus, interrupted_dir))
    # Simulate a kill after step 3: the step-6 checkpoint never completed and the export never happened.
    (interrupted_dir / "checkpoints" / "checkpoint-00000006" / "COMPLETE").unlink()
    resumed = train_vae(tiny_run_config(corpus, interrupted_dir), resume="latest")

    assert [row["step"] for row in resumed.history] == [4, 5, 6]
    for a, b in zip(straight.history[3:], resumed.history):
        for key in ("loss", "sdf", "normal", "eikonal", "kl", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), (key, a, b)
    for (name, p), q in zip(straight.unwrapped_model.named_parameters(), resumed.unwrapped_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6, msg=name)
    for p, q in zip(straight.ema.shadow, resumed.ema.shadow):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)
    assert straight.ema.num_updates == resumed.ema.num_updates == 6
    assert [int(row["step"]) for row in read_csv(interrupted_dir / "logs" / "metrics.csv")] == [1, 2, 3, 4, 5, 6]


def test_decoder_only_fine_tuning_keeps_the_posterior(corpus, tmp_path):
    torch.manual_seed(0)
    TripoSGVAEModel(**TINY_VAE).save_pretrained(tmp_path / "start")
    config = tiny_run_config(corpus, tmp_path / "run")
    config.model = replace(config.model, pretrained=str(tmp_path / "start"), freeze_encoder=True)
    train_vae(config)
    start = TripoSGVAEModel.from_pretrained(tmp_path / "start")
    tuned = TripoSGVAEModel.from_pretrained(tmp_path / "run" / "vae")
    weights = dict(tuned.named_parameters())
    for name, value in start.named_parameters():
        frozen = name.startswith(("encoder.", "quant."))
        assert torch.equal(value, weights[name]) == frozen, name
    points = torch.randn(1, 64, 6)
    means = [vae.encode(points, 16, generator=torch.Generator().manual_seed(0)).latent_dist.mean for vae in (start, tuned)]
    torch.testing.assert_close(*means)
    with pytest.raises(ValueError, match="model.pretrained"):
        build_vae(replace(config.model, pretrained=None))


def test_metric_log_widens_its_header_when_a_resumed_run_adds_a_term(tmp_path):
    log = MetricLogger(tmp_path, tensorboard=False)
    for step in (1, 2, 3):
        log.log(step, {"loss": 0.5, "sdf": 0.25})
    resumed = MetricLogger(tmp_path, tensorboard=False, resume_step=2)  # step 3 came after the checkpoint
    resumed.log(3, {"loss": 0.4, "sdf": 0.2, "routing": 0.1})
    resumed.log(4, {"loss": 0.3, "routing": 0.05})  # a term may also be missing from a row
    rows = read_csv(tmp_path / "metrics.csv")
    assert list(rows[0]) == ["step", "loss", "sdf", "routing"]
    assert [(r["step"], r["sdf"], r["routing"]) for r in rows] == [
        ("1", "0.25", ""), ("2", "0.25", ""), ("3", "0.2", "0.1"), ("4", "", "0.05")]


# ------------------------------------------------------------------ two-process DDP on CPU (gloo)

class RegressionDataset(torch.utils.data.Dataset):
    def __init__(self):
        generator = torch.Generator().manual_seed(1)
        self.x = torch.randn(8, 5, generator=generator)
        self.y = torch.randn(8, 2, generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return {"x": self.x[index], "y": self.y[index]}


def regression_loss(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    loss = (model(batch["x"]) - batch["y"]).pow(2).mean()
    return {"loss": loss, "mse": loss.detach()}


def run_regression(output_dir: str, batch_size: int) -> Trainer:
    torch.manual_seed(0)
    config = TrainConfig(output_dir=output_dir, max_steps=4, batch_size=batch_size, learning_rate=0.05,
                         log_every=1, checkpoint_every=100, sample_every=0, progress_bar=False, ema_decay=None)
    trainer = Trainer(config, nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2)), RegressionDataset(),
                      regression_loss, collate_fn=torch.utils.data.default_collate)
    trainer.train()
    return trainer


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_WORLD_SIZE="2")
    torch.set_num_threads(1)
    trainer = run_regression(out_dir, batch_size=2)
    torch.save(trainer.unwrapped_model.state_dict(), Path(out_dir) / f"params_{rank}.pt")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_matches_single_process(tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, args=(free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "ddp" / "params_0.pt")
    rank1 = torch.load(tmp_path / "ddp" / "params_1.pt")
    single = run_regression(str(tmp_path / "single"), batch_size=4).unwrapped_model.state_dict()
    torch.manual_seed(0)
    initial = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2)).state_dict()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0)
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-5, atol=1e-6)
    assert (rank0["0.weight"] - initial["0.weight"]).abs().max() > 1e-3  # training moved the weights


# ------------------------------------------------------------------ the CLI

def test_cli_trains_checkpoints_samples_and_exports(corpus, tmp_path):
    run = tmp_path / "run"
    overrides = [f"data.corpus={corpus}", f"train.output_dir={run}", "train.max_steps=4", "train.batch_size=2",
                 "train.log_every=2", "train.checkpoint_every=2", "train.sample_every=4", "sample.resolution=32",
                 "data.num_surface=128", "data.num_near=64", "data.num_volume=64", "data.num_on_surface=64"]
    command = [sys.executable, "-m", "training.train_vae", "--config", "training/configs/vae-tiny.yaml"]
    for override in overrides:
        command += ["--set", override]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_csv(run / "logs" / "metrics.csv")
    assert [row["step"] for row in rows] == ["2", "4"]
    assert {"loss", "sdf", "normal", "eikonal", "kl", "lr", "samples_per_second"} <= set(rows[0])
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["checkpoint-00000002", "checkpoint-00000004"]
    assert (run / "samples" / "step-00000004.png").stat().st_size > 0
    vae = TripoSGVAEModel.from_pretrained(run / "vae")
    assert vae.config.width_encoder == 64
    assert (run / "config.yaml").is_file()


@pytest.mark.parametrize("fast_cpu", [True, False])
def test_mixed_precision_on_cpu_is_bf16_only_where_the_cpu_has_it(monkeypatch, fast_cpu):
    from training.engine import loop

    monkeypatch.setattr(loop.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loop, "cpu_has_fast_bf16", lambda: fast_cpu)
    assert loop.resolve_mixed_precision("no") == "no"
    if fast_cpu:
        assert loop.resolve_mixed_precision("bf16") == "bf16"
    else:
        with pytest.warns(UserWarning, match="fast path is bf16"):
            assert loop.resolve_mixed_precision("bf16") == "no"
    with pytest.warns(UserWarning, match="fp32"):
        assert loop.resolve_mixed_precision("fp16") == "no"
    from training.engine.config import apply_override, from_dict

    values: dict = {}
    apply_override(values, "mixed_precision=no")  # YAML reads a bare `no` as false: still "no"
    assert from_dict(loop.TrainConfig, values).mixed_precision == "no"
    with pytest.raises(ValueError, match="mixed_precision"):
        loop.resolve_mixed_precision("fp8")


def test_bf16_training_on_cpu_runs_the_model_in_bf16_with_the_gradient_losses(corpus, tmp_path, monkeypatch):
    """The decoder's matrices run in bf16 under the trainer's autocast, the double backward of the normal and
    eikonal terms works through it, and the weights the optimizer updates stay float32."""
    from training.engine import loop

    monkeypatch.setattr(loop, "cpu_has_fast_bf16", lambda: True)
    data = tiny_run_config(corpus, tmp_path).data
    dataset = FieldDataset(corpus, "train", num_surface=128, num_near=64, num_volume=64, num_on_surface=64)
    collate = MultiResolutionCollate(data.token_counts, seed=0)
    # A full-precision run earlier in the same process (accelerate keeps one state per process) is no obstacle.
    fp32 = tiny_run_config(corpus, tmp_path / "fp32", max_steps=1, mixed_precision="no", ema_decay=None)
    Trainer(fp32.train, TripoSGVAEModel(**TINY_VAE), dataset, make_loss_fn(fp32.loss), collate_fn=collate).train()
    config = tiny_run_config(corpus, tmp_path / "bf16", max_steps=3, mixed_precision="bf16", ema_decay=None)
    torch.manual_seed(0)
    vae = TripoSGVAEModel(**TINY_VAE)
    seen = []
    vae.decoder.blocks[-1].attn2.to_q.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    before = [p.detach().clone() for p in vae.parameters()]
    trainer = Trainer(config.train, vae, dataset, make_loss_fn(config.loss), collate_fn=collate)
    history = trainer.train()
    assert seen and set(seen) == {torch.bfloat16}
    assert all(math.isfinite(row["loss"]) and row["normal"] > 0 and row["eikonal"] >= 0 for row in history)
    assert all(p.dtype == torch.float32 for p in vae.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(vae.parameters(), before))


def test_sigterm_stops_after_the_step_with_a_checkpoint_and_resume_matches_a_straight_run(tmp_path):
    import signal

    straight = run_regression(str(tmp_path / "straight"), batch_size=4)
    calls = {"n": 0}

    def loss_that_gets_a_sigterm(model, batch):
        calls["n"] += 1
        if calls["n"] == 2:  # mid-step 2: the step finishes, a checkpoint is written, the loop stops
            os.kill(os.getpid(), signal.SIGTERM)
        return regression_loss(model, batch)

    previous = signal.getsignal(signal.SIGTERM)
    torch.manual_seed(0)
    config = TrainConfig(output_dir=str(tmp_path / "stopped"), max_steps=4, batch_size=4, learning_rate=0.05,
                         log_every=1, checkpoint_every=100, sample_every=0, progress_bar=False, ema_decay=None)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2))
    stopped = Trainer(config, model, RegressionDataset(), loss_that_gets_a_sigterm,
                      collate_fn=torch.utils.data.default_collate)
    stopped.train()
    assert stopped.step == 2 and [row["step"] for row in stopped.history] == [1, 2]
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is removed after training
    assert [path.name for path in list_checkpoints(tmp_path / "stopped" / "checkpoints")] == ["checkpoint-00000002"]

    torch.manual_seed(0)
    resumed = Trainer(config, nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2)), RegressionDataset(),
                      regression_loss, collate_fn=torch.utils.data.default_collate)
    resumed.train(resume="latest")
    assert [row["step"] for row in resumed.history] == [3, 4]
    for a, b in zip(straight.history[2:], resumed.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    for p, q in zip(straight.unwrapped_model.parameters(), resumed.unwrapped_model.parameters()):
        torch.testing.assert_close(p, q)
