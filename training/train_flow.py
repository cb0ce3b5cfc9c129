"""Train the TripoSG flow transformer (paper §3.1–3.2, §5.1): `python -m training.train_flow --config ...`.

    python -m training.train_flow --config training/configs/flow-tiny.yaml \
        [--resume latest] [--set train.max_steps=200 --set data.corpus=data/tiny ...]

Multi-GPU / multi-node: the same command under `accelerate launch` or `torchrun`.

A frozen, trained VAE (`model.vae`, e.g. the `vae/` folder a `train_vae` run exports) encodes the latents
on the fly, with the token count M drawn per batch from `data.token_counts`. The trained module is a
:class:`FlowModel`: the DiT plus, when trained from scratch, the image-condition encoder, so the engine's
optimizer, EMA and checkpoints cover both. The paper's MoE stage (§3.2) is `model.upcycle_from`: a dense
transformer whose last decoder blocks' FFNs become experts, trained with the balance loss.

The run folder (`train.output_dir`) receives `config.yaml`, `logs/metrics.csv` (flow, moe_aux, loss, lr,
grad_norm, expert load, samples/s), `checkpoints/checkpoint-<step>/`, `samples/step-<step>.png` (+ `.glb`:
a mesh generated from a validation image) and, at the end, `pipeline/`: a complete `TripoSGPipeline`
folder (`TripoSGPipeline.from_pretrained`, `python -m triposg generate --model <run>/pipeline`). With
`model.lora_rank > 0` the pretrained transformer stays frozen, LoRA adapters are trained, and the run exports
`lora/pytorch_lora_weights.safetensors` instead (`pipe.load_lora_weights(<run>/lora)` on the base pipeline).
"""

from __future__ import annotations

import copy
import dataclasses
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import Subset

from triposg.loading import GenerationDefaults
from triposg.pipelines.generation_config import check_resolution, checked_number
from triposg.models import TripoSGDiTModel, TripoSGVAEModel
from triposg.pipelines import TripoSGPipeline
from triposg.pipelines.lora import LORA_WEIGHT_NAME

from .conditioning import ConditionEncoder, drop_conditions
from .data.augment import AppearanceJitter
from .data.datasets import ImageViewDataset, collate_views
from .engine.checkpoint import PythonRandomState
from .engine.config import TrainConfig, load_config, parse_training_args, save_config
from .engine.loop import Trainer
from .flow_objectives import DEFAULT_AUX_LOSS_WEIGHT, FlowObjective, expert_load_summary, flow_loss, make_objective
from .latents import LatentStore, build_latent_store, encode_latents, vae_fingerprint


@dataclass
class ConditionConfig:
    """The `model.condition:` section: the image encoders (DINOv2 local tokens, optional CLIP global token)."""

    pretrained_dinov2: str | None = None  # hub id / folder of a Dinov2Model (frozen, as in the paper)
    pretrained_clip: str | None = None  # hub id / folder of a CLIPVisionModelWithProjection; None: DINOv2 only
    from_pipeline: str | None = None  # a TripoSG pipeline folder whose encoders to reuse (frozen)
    dinov2_args: dict[str, Any] = field(default_factory=dict)  # Dinov2Config kwargs for a from-scratch encoder
    clip_args: dict[str, Any] | None = None  # CLIPVisionConfig kwargs for a from-scratch CLIP; None: no CLIP
    trainable: bool | None = None  # None: train from-scratch encoders, freeze pretrained ones


@dataclass
class FlowModelConfig:
    """The `model:` section."""

    vae: str = "runs/vae/vae"  # trained VAE folder (frozen); a pipeline folder with vae_subfolder="vae" also works
    vae_subfolder: str | None = None
    pretrained: str | None = None  # transformer folder to continue from (e.g. the 512-token stage's export)
    subfolder: str | None = None  # e.g. "transformer" when `pretrained` is a pipeline folder
    upcycle_from: str | None = None  # dense transformer folder to upcycle into MoE (paper §3.2)
    upcycle_subfolder: str | None = None
    args: dict[str, Any] = field(default_factory=dict)  # TripoSGDiTModel kwargs; in/cross dims follow VAE/encoder
    num_experts: int = 8  # MoE upcycling: experts per MoE FFN (paper: 8)
    moe_top_k: int = 2  # experts routed per token (paper: top-2)
    moe_shared_expert: bool = True  # one expert applied to every token (paper §3.2)
    moe_layers: list[int] | None = None  # blocks that get experts; None = the last 6 decoder blocks (paper)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    gradient_checkpointing: bool = False  # trade compute for memory on the release-size model
    export_ema: bool = True  # sample and export the EMA weights rather than the last step's
    # LoRA fine-tuning (PEFT): rank > 0 trains low-rank adapters on `pretrained`'s frozen transformer and exports
    # `<output_dir>/lora/` (load it with `pipe.load_lora_weights`) instead of a whole pipeline. 0 = all weights.
    lora_rank: int = 0
    lora_alpha: float | None = None  # adapter scale alpha/rank; None = rank (scale 1)
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])


@dataclass
class FlowConfig:
    """The `flow:` section: the training objective."""

    objective: str = "rectified_flow"  # "rectified_flow" (release), "ddpm" or "edm" (Table 1 ablations)
    condition_dropout: float = 0.1  # share of samples trained unconditionally, for classifier-free guidance
    aux_loss_weight: float = DEFAULT_AUX_LOSS_WEIGHT  # MoE load-balancing loss weight (§3.2)
    logit_mean: float = 0.0  # rectified flow: logit-normal location m of σ (eq. 10)
    logit_std: float = 1.0  # rectified flow: logit-normal scale s of σ (eq. 10)
    sample_posterior: bool = True  # train on VAE posterior samples (not means): robust to decoder input noise
    match_tokens: bool = False  # pair noise and clean tokens by a per-shape assignment (flow_objectives.match_tokens_to_noise)
    # Guidance distillation: regress the guided prediction, at this scale, of a frozen copy of the starting
    # transformer (`model.pretrained`) instead of the objective's target; the result samples with guidance off
    # (one conditional pass per step, about half the cost). None: ordinary training.
    distill_guidance_scale: float | None = None


@dataclass
class FlowDataConfig:
    """The `data:` section: the corpus built by `python -m training.data`, views and surface points."""

    corpus: str = "data/corpus"
    split: str = "train"
    val_split: str = "val"  # image for the sample meshes (falls back to the first training object)
    num_surface: int | None = 20480  # VAE encoder input points per object (paper §3.3)
    token_counts: tuple[int, ...] = (512,)  # latent tokens M, one drawn per batch
    image_size: int | None = None  # resize the preprocessed views (None keeps the rendered size)
    foreground_ratio: float = 0.9  # share of the square the object fills (paper §5.1)
    rotation_prob: float = 0.2  # augmentation: rotate the view with this probability (paper §5.1)
    max_rotation_deg: float = 10.0  # ... uniformly within ± this angle
    # Probability that a training view's lighting, exposure, colour and focus are changed
    # (training.data.augment.AppearanceJitter); 0 renders-as-rendered only.
    appearance_jitter: float = 0.0
    include_flagged: bool = False  # also train on objects the quality filters flagged
    objects_per_family: int | None = None  # train on the first N objects of each family only (None = all)
    # Folder of cached VAE posteriors (one file per object and token count, keyed by the VAE's weights);
    # filled for every training object before the first step, then read instead of encoding, and the
    # surface points are no longer loaded per item. None encodes every batch.
    latent_cache: str | None = None
    # Train on each procedural shape turned back to yaw 0 (training.data.procedural.undo_yaw; the views stay): the
    # corpus's random yaw cannot be told from an image (evaluation.yaw). Cached latents get their own frame.
    undo_yaw: bool = False

    @property
    def frame(self) -> str:
        """The `LatentStore` frame of the training surfaces."""
        return "yaw-undone" if self.undo_yaw else "corpus"


@dataclass
class FlowSampleConfig:
    """The `sample:` section: progress meshes during training (cheap settings)."""

    num_inference_steps: int = 25
    guidance_scale: float = 7.0
    num_tokens: int | None = None  # None = the largest training M
    octree_resolution: int = 128  # marching-cubes cells per side
    image_size: int = 256  # rendered view side in pixels

    def __post_init__(self) -> None:  # the one set of limits the pipeline's own settings are checked against
        for name, kind in (("num_inference_steps", int), ("guidance_scale", float)):
            checked_number(name, getattr(self, name), kind, f"sample.{name}")
        if self.num_tokens is not None:
            checked_number("num_tokens", self.num_tokens, int, "sample.num_tokens")
        check_resolution(self.octree_resolution, "tracking", "sample.octree_resolution")


@dataclass
class FlowExportConfig(GenerationDefaults):
    """The `export:` section: the exported pipeline's `generation_config.json` — the one set of generation
    settings (`GenerationDefaults`, checked by its `validate`), with two training defaults of its own."""

    num_tokens: int | None = None  # None = the largest training M
    query_precision: str = "auto"  # field queries in bf16 on CPUs that have it (check the model's meshes with it)

    def for_model(self, largest_num_tokens: int) -> GenerationDefaults:
        """The settings the exported folder gets: `num_tokens` filled in, validated."""
        values = {**dataclasses.asdict(self), "num_tokens": self.num_tokens or largest_num_tokens}
        return GenerationDefaults(**values).validate()


@dataclass
class FlowTrainingConfig:
    """A flow training run: engine settings plus model, flow, data, sample and export sections."""

    train: TrainConfig = field(default_factory=TrainConfig)
    model: FlowModelConfig = field(default_factory=FlowModelConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    data: FlowDataConfig = field(default_factory=FlowDataConfig)
    sample: FlowSampleConfig = field(default_factory=FlowSampleConfig)
    export: FlowExportConfig = field(default_factory=FlowExportConfig)


class FlowModel(nn.Module):
    """What the engine trains: the DiT and, when trainable, the condition encoder (else None).

    `forward` runs one flow-matching loss so the DDP-wrapped model is called through `forward` only.
    """

    def __init__(self, transformer: TripoSGDiTModel, condition_encoder: ConditionEncoder | None = None):
        super().__init__()
        self.transformer = transformer
        self.condition_encoder = condition_encoder

    def forward(
        self,
        latents: torch.Tensor,
        cond: torch.Tensor | None,
        cond_2: torch.Tensor | None,
        images: list | None,
        objective: FlowObjective,
        condition_dropout: float,
        aux_loss_weight: float,
        teacher: nn.Module | None = None,
        guidance_scale: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        """`latents`: (B, M, C) clean x0; `cond` (B, S, D) / `cond_2` (B, 1, D2) precomputed contexts, or
        `images` (B PIL images) to encode with the trainable encoder. `teacher`, `guidance_scale`: guidance
        distillation (`flow_loss`). Returns `flow_loss`'s terms."""
        if self.condition_encoder is not None:
            cond, cond_2 = self.condition_encoder.encode(images)
        cond, cond_2, _ = drop_conditions(cond, cond_2, condition_dropout)
        return flow_loss(self.transformer, latents, cond, cond_2, objective, aux_loss_weight=aux_loss_weight,
                         teacher=teacher, guidance_scale=guidance_scale)


class TokenCountCollate:
    """`collate_views` plus the batch's latent token count M, drawn from `token_counts` (seeded)."""

    def __init__(self, token_counts: Sequence[int], seed: int | None = None):
        if not token_counts:
            raise ValueError("data.token_counts is empty")
        self.token_counts = tuple(int(m) for m in token_counts)
        self.rng = random.Random(seed)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate_views(items)
        batch["num_tokens"] = self.rng.choice(self.token_counts)
        return batch


def _existing(path: str, key: str) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"{key}={folder} does not exist; give a folder saved by save_pretrained")
    return folder


def build_vae(config: FlowModelConfig) -> TripoSGVAEModel:
    """The frozen VAE that encodes training latents (float32, also from a folder saved in fp16)."""
    vae = TripoSGVAEModel.from_pretrained(_existing(config.vae, "model.vae"), subfolder=config.vae_subfolder,
                                          torch_dtype=torch.float32)
    return vae.requires_grad_(False).eval()


def build_condition_encoder(config: ConditionConfig) -> ConditionEncoder:
    """Pretrained encoders (frozen by default; float32, also from fp16 folders) or from-scratch ones from
    `dinov2_args`/`clip_args` (trainable)."""
    if config.from_pipeline is not None:
        return ConditionEncoder.from_pretrained(_existing(config.from_pipeline, "model.condition.from_pipeline"),
                                                subfolders=True, trainable=bool(config.trainable), dtype=torch.float32)
    if config.pretrained_dinov2 is not None:
        return ConditionEncoder.from_pretrained(config.pretrained_dinov2, config.pretrained_clip,
                                                trainable=bool(config.trainable), dtype=torch.float32)
    if not config.dinov2_args:
        raise ValueError("model.condition needs pretrained_dinov2, from_pipeline or dinov2_args (from scratch)")
    trainable = True if config.trainable is None else config.trainable
    return ConditionEncoder.from_config(config.dinov2_args, config.clip_args, trainable=trainable)


def build_transformer(config: FlowModelConfig, latent_channels: int, encoder: ConditionEncoder) -> TripoSGDiTModel:
    """A fresh DiT sized to the VAE and encoder, a pretrained one, or a dense one upcycled to MoE (§3.2)."""
    if config.upcycle_from is not None:
        dense = TripoSGDiTModel.from_pretrained(_existing(config.upcycle_from, "model.upcycle_from"),
                                                subfolder=config.upcycle_subfolder, torch_dtype=torch.float32)
        transformer = TripoSGDiTModel.upcycle(dense, num_experts=config.num_experts, moe_top_k=config.moe_top_k,
                                              moe_shared_expert=config.moe_shared_expert,
                                              moe_layers=config.moe_layers)
    elif config.pretrained is not None:
        transformer = TripoSGDiTModel.from_pretrained(_existing(config.pretrained, "model.pretrained"),
                                                      subfolder=config.subfolder, torch_dtype=torch.float32)
    else:
        args = {"in_channels": latent_channels, "cross_attention_dim": encoder.local_dim,
                "use_cross_attention_2": encoder.global_dim is not None,
                "cross_attention_2_dim": encoder.global_dim, **config.args}
        transformer = TripoSGDiTModel(**args)
    if transformer.config.in_channels != latent_channels:
        raise ValueError(f"the transformer takes {transformer.config.in_channels} latent channels but the VAE "
                         f"makes {latent_channels}; use the VAE the transformer was trained with")
    if config.lora_rank > 0:
        add_lora(transformer, config)
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    return transformer


def add_lora(transformer: TripoSGDiTModel, config: FlowModelConfig) -> None:
    """Freeze `transformer` and give it trainable LoRA adapters (zero-initialised: it starts as the base model)."""
    from peft import LoraConfig

    if config.pretrained is None and config.upcycle_from is None:
        raise ValueError("model.lora_rank fine-tunes a trained transformer: set model.pretrained (e.g. a pipeline "
                         "folder with model.subfolder=transformer)")
    transformer.requires_grad_(False)
    alpha = config.lora_alpha if config.lora_alpha is not None else config.lora_rank
    transformer.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=alpha, lora_dropout=config.lora_dropout,
                                       target_modules=list(config.lora_targets), init_lora_weights=True))


def build_objective(config: FlowConfig) -> FlowObjective:
    """The objective (and with it the sampling scheduler) named by `flow.objective`."""
    if config.objective == "rectified_flow":
        objective = make_objective(config.objective, logit_mean=config.logit_mean, logit_std=config.logit_std)
    else:
        objective = make_objective(config.objective)
    objective.match_tokens = config.match_tokens
    return objective


class CachedLatents:
    """Latents from a `LatentStore` per token count, encoding (and storing) objects not cached yet."""

    def __init__(self, vae: TripoSGVAEModel, folder: str | Path, sample_posterior: bool, frame: str = "corpus"):
        self.vae, self.folder, self.sample_posterior, self.frame = vae, folder, sample_posterior, frame
        self.vae_key = vae_fingerprint(vae)  # hashes every weight: once, not per batch
        self.stores: dict[int, LatentStore] = {}

    @torch.no_grad()
    def __call__(self, object_ids: list[str], surface: torch.Tensor | None, num_tokens: int,
                 device: torch.device | str | None = None) -> torch.Tensor:
        store = self.stores.setdefault(num_tokens, LatentStore(self.folder, self.vae_key, num_tokens,
                                                                         self.frame))
        missing = [i for i, object_id in enumerate(object_ids) if object_id not in store]
        if missing:
            if surface is None:
                raise KeyError(f"no cached latents (M={num_tokens}) for {[object_ids[i] for i in missing]} in "
                               f"{store.folder}, and the batch has no surface points to encode them; "
                               "fill the cache with fill_latent_cache first")
            posterior = self.vae.encode(surface[missing], num_tokens=num_tokens).latent_dist
            for row, index in enumerate(missing):
                store.save(object_ids[index], posterior.mean[row], posterior.std[row])
        return store.load_latents(object_ids, sample_posterior=self.sample_posterior, device=device)


def fill_latent_cache(vae: TripoSGVAEModel, data: FlowDataConfig) -> None:
    """Encode every training object of `data` that is not cached yet, at each token count, into
    `data.latent_cache` (one surface read per object; a resumed run finds them cached and reads nothing).

    Under `accelerate launch` each process encodes every `num_processes`-th missing object on its own device,
    then all wait for the cache to be complete: N GPUs fill it N times faster (one file per object, written
    atomically, so processes never write the same file)."""
    state = PartialState(cpu=not torch.cuda.is_available())  # the state the training's Accelerator will share
    dataset = ImageViewDataset(data.corpus, data.split, num_surface=data.num_surface, load_image=False,
                               include_flagged=data.include_flagged, per_family=data.objects_per_family,
                               undo_yaw=data.undo_yaw)
    vae.to(state.device)
    missing = {}
    for num_tokens in data.token_counts:
        store = LatentStore.for_vae(data.latent_cache, vae, num_tokens, data.frame)
        missing[num_tokens] = [i for i, object_id in enumerate(dataset.rows["object_id"]) if object_id not in store]
    state.wait_for_everyone()  # every process has the same lists before any writes: the shares do not overlap
    for num_tokens, indices in missing.items():
        share = indices[state.process_index::state.num_processes]
        if share:
            build_latent_store(vae, Subset(dataset, share), num_tokens, data.latent_cache,
                               progress=state.is_local_main_process, frame=data.frame)
    state.wait_for_everyone()


def make_loss_fn(
    vae: TripoSGVAEModel, encoder: ConditionEncoder, objective: FlowObjective, config: FlowConfig,
    latent_cache: str | None = None, teacher: TripoSGDiTModel | None = None, frame: str = "corpus",
) -> Callable[[nn.Module, dict[str, Any]], dict[str, torch.Tensor]]:
    """`compute_loss(model, batch)`: latents (cached, of surfaces in `frame`, or encoded; no grad), contexts
    (frozen encoder: no grad), flow loss (against `teacher`'s guided prediction when distilling)."""
    cached = CachedLatents(vae, latent_cache, config.sample_posterior, frame) if latent_cache else None

    def compute_loss(model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        surface = batch.get("surface")  # (B, N, 6) xyz + normals; absent when every latent is cached
        device = next(model.parameters()).device
        if vae.device != device:
            vae.to(device)
        if cached is not None:
            latents = cached(batch["object_id"], surface, batch["num_tokens"], device)
        else:
            latents = encode_latents(vae, surface, batch["num_tokens"], sample_posterior=config.sample_posterior)
        cond = cond_2 = None
        if not encoder.trainable:
            if encoder.dinov2.device != device:
                encoder.to(device)
            with torch.no_grad():
                cond, cond_2 = encoder.encode(batch["image"])
        if teacher is not None and teacher.device != device:
            teacher.to(device)
        terms = model(latents, cond, cond_2, batch["image"], objective, config.condition_dropout,
                      config.aux_loss_weight, teacher, config.distill_guidance_scale or 1.0)
        expert_load = terms.pop("expert_load", None)
        if expert_load is not None:  # logged like the loss terms (the engine averages tensors it is given)
            terms.update({k: torch.tensor(v, device=latents.device)
                          for k, v in expert_load_summary(expert_load).items()})
        return terms

    return compute_loss


def build_pipeline(
    model: FlowModel, vae: TripoSGVAEModel, encoder: ConditionEncoder, objective: FlowObjective
) -> TripoSGPipeline:
    """A `TripoSGPipeline` from the trained `model`, the frozen VAE, the encoders and the objective's scheduler."""
    encoder = model.condition_encoder if model.condition_encoder is not None else encoder
    # A copy: sampling sets the scheduler's timestep grid, which training must not see.
    return TripoSGPipeline(vae=vae, transformer=model.transformer.eval(), scheduler=copy.deepcopy(objective.scheduler),
                           **encoder.components())


def make_sample_fn(
    vae: TripoSGVAEModel, encoder: ConditionEncoder, objective: FlowObjective, image, num_tokens: int,
    config: FlowSampleConfig,
) -> Callable:
    """Generate a mesh from the validation `image`; save `samples/step-<step>.glb` and a rendered PNG."""
    from triposg.geometry import EmptySurfaceError
    from triposg.rendering import EVALUATION_CAMERA, RendererUnavailableError, render, save_image_grid

    def sample(model: FlowModel, step: int, samples_dir: Path) -> None:
        samples_dir.mkdir(parents=True, exist_ok=True)
        device = next(model.parameters()).device
        pipe = build_pipeline(model, vae, encoder, objective).to(device)
        pipe.set_progress_bar_config(disable=True)
        try:
            output = pipe(image, num_inference_steps=config.num_inference_steps,
                          guidance_scale=config.guidance_scale, num_tokens=num_tokens,
                          octree_resolution=config.octree_resolution, preprocess=False, seed=0)
        except EmptySurfaceError:  # early in training the field may not cross zero yet: not a reason to stop
            warnings.warn(f"step {step}: the generated field has no surface yet; no sample mesh")
            return
        mesh = output.meshes[0]
        mesh.export(samples_dir / f"step-{step:08d}.glb")
        try:
            views = render(mesh, EVALUATION_CAMERA, resolution=config.image_size)
        except RendererUnavailableError as error:
            warnings.warn(f"sample render skipped: {error}")
            return
        save_image_grid([views[0].rgb], samples_dir / f"step-{step:08d}.png", ncols=1)

    return sample


def validation_image(data: FlowDataConfig):
    """The evaluation view (PIL, preprocessed) of the first validation object (or first training object)."""
    kwargs = {"foreground_ratio": data.foreground_ratio, "image_size": data.image_size, "use_eval_view": True,
              "include_flagged": data.include_flagged}
    try:
        dataset = ImageViewDataset(data.corpus, data.val_split, **kwargs)
    except ValueError:
        dataset = ImageViewDataset(data.corpus, data.split, **kwargs)
    if len(dataset) == 0:
        dataset = ImageViewDataset(data.corpus, data.split, **kwargs)
    return dataset[0]["image"]


def export_pipeline(
    model: FlowModel, vae: TripoSGVAEModel, encoder: ConditionEncoder, objective: FlowObjective,
    defaults: GenerationDefaults, folder: Path,
) -> Path:
    """Write a complete `TripoSGPipeline` folder (all components + `generation_config.json`)."""
    pipe = build_pipeline(model, vae, encoder, objective).to("cpu")
    pipe.save_pretrained(folder)
    defaults.save(folder)
    return folder


def distillation_teacher(config: FlowTrainingConfig, transformer: TripoSGDiTModel) -> TripoSGDiTModel | None:
    """For guidance distillation (`flow.distill_guidance_scale`), a frozen copy of the starting transformer (the
    `model.pretrained` weights, before any step or resumed checkpoint), else None."""
    scale = config.flow.distill_guidance_scale
    if scale is None:
        return None
    if config.flow.condition_dropout != 0:
        raise ValueError("flow.distill_guidance_scale trains the conditional prediction only: set "
                         "flow.condition_dropout=0")
    if config.model.pretrained is None and config.model.upcycle_from is None:
        raise ValueError("flow.distill_guidance_scale distils a trained model's guidance: set model.pretrained to its "
                         "transformer folder")
    for name, value in (("sample.guidance_scale", config.sample.guidance_scale),
                        ("export.guidance_scale", config.export.guidance_scale)):
        if value > 1.0:
            raise ValueError(f"a guidance-distilled model samples without guidance: set {name}=1 (got {value:g})")
    if config.model.lora_rank > 0:
        raise ValueError("guidance distillation trains all weights: set model.lora_rank=0")
    return copy.deepcopy(transformer).requires_grad_(False).eval()


def train_flow(config: FlowTrainingConfig, resume: str | None = None) -> Trainer:
    """Run (or resume) a flow training run and export `<output_dir>/pipeline`. Returns the trainer."""
    set_seed(config.train.seed)  # same initial weights on every process
    vae = build_vae(config.model)
    encoder = build_condition_encoder(config.model.condition)
    transformer = build_transformer(config.model, vae.config.latent_channels, encoder)
    if config.model.lora_rank > 0 and encoder.trainable:
        raise ValueError("LoRA fine-tuning keeps the image encoder frozen: set model.condition.from_pipeline to the "
                         "base pipeline folder (or pretrained_dinov2) rather than training one from scratch")
    model = FlowModel(transformer, encoder if encoder.trainable else None)
    objective = build_objective(config.flow)
    teacher = distillation_teacher(config, transformer)
    data = config.data
    if data.latent_cache:
        fill_latent_cache(vae, data)
    dataset = ImageViewDataset(data.corpus, data.split, foreground_ratio=data.foreground_ratio,
                               rotation_prob=data.rotation_prob, max_rotation_deg=data.max_rotation_deg,
                               image_size=data.image_size, num_surface=data.num_surface,
                               include_flagged=data.include_flagged, load_surface=not data.latent_cache,
                               per_family=data.objects_per_family,
                               appearance=AppearanceJitter(probability=data.appearance_jitter)
                               if data.appearance_jitter > 0 else None, undo_yaw=data.undo_yaw)
    collate = TokenCountCollate(data.token_counts, seed=config.train.seed)
    largest = max(collate.token_counts)
    trainer = Trainer(
        config.train, model, dataset,
        make_loss_fn(vae, encoder, objective, config.flow, data.latent_cache, teacher, data.frame),
        collate_fn=collate,
        sample_fn=make_sample_fn(vae, encoder, objective, validation_image(data),
                                 config.sample.num_tokens or largest, config.sample),
        stateful={"token_count_rng": PythonRandomState(collate.rng)},
    )
    output_dir = Path(config.train.output_dir)
    if trainer.accelerator.is_main_process:
        save_config(config, output_dir / "config.yaml")
    trainer.train(resume=resume)
    if trainer.accelerator.is_main_process:
        exported = trainer.averaged_model() if config.model.export_ema else trainer.unwrapped_model
        defaults = config.export.for_model(largest)
        if config.model.lora_rank > 0:
            exported.transformer.save_lora_adapter(output_dir / "lora", weight_name=LORA_WEIGHT_NAME)
        else:
            export_pipeline(exported, vae, encoder, objective, defaults, output_dir / "pipeline")
    trainer.accelerator.wait_for_everyone()
    return trainer


def main(argv: list[str] | None = None) -> None:
    args = parse_training_args("Train the TripoSG flow transformer.", "training/configs/flow-tiny.yaml", argv)
    config = load_config(args.config, args.overrides, config_class=FlowTrainingConfig)
    train_flow(config, resume=args.resume)


if __name__ == "__main__":
    main()
