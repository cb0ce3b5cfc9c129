"""Train the TripoSG SDF VAE (paper §3.3): `python -m training.train_vae --config training/configs/vae-tiny.yaml`.

    python -m training.train_vae --config training/configs/vae-tiny.yaml \
        [--resume latest] [--set train.max_steps=200 --set data.corpus=data/tiny ...]

Multi-GPU / multi-node: the same command under `accelerate launch` or `torchrun`.

The run folder (`train.output_dir`) receives `config.yaml` (the resolved config), `logs/metrics.csv`
(every loss term, lr, samples/s; TensorBoard events when installed), `checkpoints/checkpoint-<step>/`,
`samples/step-<step>.png` (+ `.glb`: a validation shape encoded, decoded and meshed, to watch progress)
and, at the end, `vae/`, the exported `TripoSGVAEModel` (`from_pretrained`-loadable).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from triposg.models import TripoSGVAEModel

from .data.datasets import FieldDataset, MultiResolutionCollate
from .engine.checkpoint import PythonRandomState
from .engine.config import TrainConfig, load_config, parse_training_args, save_config
from .engine.loop import Trainer
from .losses import VAELossConfig, input_gradient_context, vae_loss


@dataclass
class VAEModelConfig:
    """The `model:` section."""

    pretrained: str | None = None  # a VAE (or pipeline) folder to fine-tune from; None builds from `args`
    subfolder: str | None = None  # e.g. "vae" when `pretrained` is a pipeline folder
    args: dict[str, Any] = field(default_factory=dict)  # TripoSGVAEModel kwargs; empty = release architecture
    gradient_checkpointing: bool = False  # trade compute for memory on the release-size model
    export_ema: bool = True  # export the EMA weights (smoother) rather than the last step's
    # Train only post_quant and the decoder: the posterior stays exactly as it was, so a flow model trained
    # on this VAE's latents stays valid with the fine-tuned decoder (use with `pretrained`).
    freeze_encoder: bool = False
    # Decoder fine-tune for a flow model's near-miss latents: each object's latents get Gaussian noise of std drawn
    # uniformly from [0, latent_noise] (standardised latents have unit std per channel); 0 = off.
    latent_noise: float = 0.0


@dataclass
class VAEDataConfig:
    """The `data:` section: the corpus built by `python -m training.data` and per-item point counts."""

    corpus: str = "data/corpus"
    split: str = "train"
    val_split: str = "val"  # shape for the sample renders (falls back to the first training shape)
    num_surface: int | None = 20480  # encoder input points (paper §3.3); None keeps all stored
    num_near: int | None = 8192  # near-surface supervision points
    num_volume: int | None = 8192  # uniform volume supervision points
    num_on_surface: int | None = 8192  # on-surface points for the normal loss
    token_counts: tuple[int, ...] = (512, 2048)  # M drawn per batch (multi-resolution, shared weights)
    include_flagged: bool = False  # also train on objects the quality filters flagged


@dataclass
class VAESampleConfig:
    """The `sample:` section: how the progress meshes are made."""

    resolution: int = 128  # marching-cubes grid cells per side
    num_tokens: int | None = None  # M for the sample encoding; None = the largest training M
    image_size: int = 256  # rendered view side in pixels
    num_views: int = 4  # turntable views in the PNG grid


@dataclass
class VAETrainingConfig:
    """A VAE training run: engine settings plus model, data, loss and sample sections."""

    train: TrainConfig = field(default_factory=TrainConfig)
    model: VAEModelConfig = field(default_factory=VAEModelConfig)
    data: VAEDataConfig = field(default_factory=VAEDataConfig)
    loss: VAELossConfig = field(default_factory=VAELossConfig)
    sample: VAESampleConfig = field(default_factory=VAESampleConfig)


def build_vae(config: VAEModelConfig) -> TripoSGVAEModel:
    """A fresh VAE from `config.args`, or pretrained weights from `config.pretrained`."""
    if config.freeze_encoder and config.pretrained is None:
        raise ValueError("model.freeze_encoder=true keeps the encoder as it is, so it needs trained weights: set "
                         "model.pretrained to a VAE folder (or a pipeline folder with model.subfolder=vae)")
    if config.latent_noise < 0:
        raise ValueError(f"model.latent_noise must be >= 0 (the largest noise std), got {config.latent_noise}")
    if config.pretrained is not None:
        path = Path(config.pretrained)
        if not path.exists():
            raise FileNotFoundError(f"model.pretrained={path} does not exist; give a folder saved by save_pretrained")
        vae = TripoSGVAEModel.from_pretrained(path, subfolder=config.subfolder, torch_dtype=torch.float32)
    else:
        vae = TripoSGVAEModel(**config.args)
    if config.freeze_encoder:
        for module in (vae.embedder, vae.encoder, vae.quant):
            module.requires_grad_(False)
    if config.gradient_checkpointing:
        vae.enable_gradient_checkpointing()
    return vae


def make_loss_fn(
    loss_config: VAELossConfig, current_step: Callable[[], int] = lambda: 0, latent_noise: float = 0.0
) -> Callable[[torch.nn.Module, dict[str, Any]], dict[str, torch.Tensor]]:
    """`compute_loss(model, batch)` for the trainer: one forward over supervision + on-surface queries.

    `current_step()` gives the training step, for the terms switched on later (`loss.gradient_losses_from_step`).
    `latent_noise`: `VAEModelConfig.latent_noise` (each object's noise std drawn from [0, latent_noise]).
    """

    def compute_loss(model: torch.nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        config = loss_config.at_step(current_step())
        on_surface = batch["on_surface"]  # (B, O, 6) xyz + outward normal
        query_xyz = torch.cat([batch["points"], on_surface[..., :3]], dim=1)  # (B, Q + O, 3)
        query_xyz.requires_grad_(config.needs_input_gradients)
        noise = latent_noise * torch.rand(len(query_xyz), device=query_xyz.device) if latent_noise > 0 else 0.0
        with input_gradient_context(config):
            decoded, posterior, *attention = model(batch["surface"], query_xyz, num_tokens=batch["num_tokens"],
                                                   return_query_attention=config.use_routing_loss or config.use_anchor_loss,
                                                   latent_noise=noise)
        raw_field = -decoded[..., 0]  # decode is positive inside; the data's SDF is negative inside
        return vae_loss(query_xyz, raw_field, batch["sdf"], on_surface[..., 3:], posterior, config,
                        query_attention=attention[0] if attention else None)

    return compute_loss


def make_sample_fn(surface: torch.Tensor, num_tokens: int, config: VAESampleConfig) -> Callable:
    """Encode `surface` (S, 6), decode a mesh, save `samples/step-<step>.glb` and a turntable PNG."""
    from triposg.pipelines.vae_mesh import encode_surface, latent_to_mesh
    from triposg.rendering import RendererUnavailableError, render, save_image_grid, turntable_cameras

    def sample(vae: TripoSGVAEModel, step: int, samples_dir: Path) -> None:
        samples_dir.mkdir(parents=True, exist_ok=True)
        # Seed 0: the same latent queries every time, so the renders are comparable across steps.
        mesh = latent_to_mesh(vae, encode_surface(vae, surface, num_tokens, seed=0), config.resolution)
        if mesh is None:
            warnings.warn(f"step {step}: the decoded field has no surface yet; no sample mesh")
            return
        mesh.export(samples_dir / f"step-{step:08d}.glb")
        try:
            views = render(mesh, turntable_cameras(config.num_views), resolution=config.image_size)
        except RendererUnavailableError as error:
            warnings.warn(f"sample render skipped: {error}")
            return
        save_image_grid([view.rgb for view in views], samples_dir / f"step-{step:08d}.png",
                        ncols=config.num_views)

    return sample


def validation_surface(data: VAEDataConfig) -> torch.Tensor:
    """(S, 6) surface points of the first validation shape (or the first training shape)."""
    try:
        dataset = FieldDataset(data.corpus, data.val_split, num_surface=data.num_surface,
                               include_flagged=data.include_flagged)
    except ValueError:
        dataset = FieldDataset(data.corpus, data.split, num_surface=data.num_surface,
                               include_flagged=data.include_flagged)
    return dataset[0]["surface"]


def train_vae(config: VAETrainingConfig, resume: str | None = None) -> Trainer:
    """Run (or resume) a VAE training run and export the VAE to `<output_dir>/vae`. Returns the trainer."""
    set_seed(config.train.seed)  # same initial weights on every process
    vae = build_vae(config.model)
    data = config.data
    dataset = FieldDataset(data.corpus, data.split, num_surface=data.num_surface, num_near=data.num_near,
                           num_volume=data.num_volume, num_on_surface=data.num_on_surface,
                           include_flagged=data.include_flagged)
    collate = MultiResolutionCollate(data.token_counts, seed=config.train.seed)
    sample_tokens = config.sample.num_tokens or max(data.token_counts)
    # The loss reads the step from the trainer it is handed to (the closure resolves `trainer` at call time).
    trainer = Trainer(
        config.train, vae, dataset, make_loss_fn(config.loss, lambda: trainer.step, config.model.latent_noise),
        collate_fn=collate,
        sample_fn=make_sample_fn(validation_surface(data), sample_tokens, config.sample),
        stateful={"token_count_rng": PythonRandomState(collate.rng)},
    )
    output_dir = Path(config.train.output_dir)
    if trainer.accelerator.is_main_process:
        save_config(config, output_dir / "config.yaml")
    trainer.train(resume=resume)
    if trainer.accelerator.is_main_process:
        exported = trainer.averaged_model() if config.model.export_ema else trainer.unwrapped_model
        exported.save_pretrained(output_dir / "vae")
    trainer.accelerator.wait_for_everyone()
    return trainer


def main(argv: list[str] | None = None) -> None:
    args = parse_training_args("Train the TripoSG SDF VAE.", "training/configs/vae-tiny.yaml", argv)
    config = load_config(args.config, args.overrides, config_class=VAETrainingConfig)
    train_vae(config, resume=args.resume)


if __name__ == "__main__":
    main()
