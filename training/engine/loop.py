"""`Trainer`: the training loop shared by the VAE and flow trainers, on `accelerate`.

The trainer knows nothing about the objective: it is given a model, a dataset and
`compute_loss(model, batch) -> {"loss": ..., <named terms>...}`, and does the rest — data sharding
across processes, gradient accumulation, clipping, mixed precision (GPU; bf16 on CPUs where it is the fast path),
EMA, the LR schedule, logging of every term, periodic checkpoints and sample callbacks, and exact resume.

Data order is a pure function of (seed, epoch): every epoch is a seeded permutation cut into global
batches, and process r takes the r-th slice of each. So P processes with batch b see exactly the
samples one process with batch P·b would, and resuming at step s just skips s·accumulation batches.
"""

from __future__ import annotations

import copy
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from triposg.models.sdf_field import cpu_has_fast_bf16

from .checkpoint import (
    checkpoint_name,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .config import TrainConfig
from .ema import EMA
from .logging import MetricLogger
from .packed import is_packed, read_packed_step, unpack_checkpoint
from .schedule import build_scheduler

LossFn = Callable[[nn.Module, dict[str, Any]], dict[str, torch.Tensor]]
SampleFn = Callable[[nn.Module, int, Path], None]


class GracefulStop:
    """While active, the first SIGINT (Ctrl-C) or SIGTERM asks the loop to stop after the step in progress — it saves a
    checkpoint, so nothing trained is lost — and a second one interrupts at once. Handlers are only installed from the
    main thread (signals cannot be caught elsewhere) and the previous ones are restored on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # the second signal: the default behaviour (KeyboardInterrupt for Ctrl-C)
            previous = self._previous.get(signum)
            if callable(previous):
                previous(signum, frame)
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write(f"{signal.Signals(signum).name}: stopping after this step with a checkpoint "
                   "(send it again to stop at once)")

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


def resolve_mixed_precision(requested: str) -> str:
    """The precision to run: as requested on GPU. On CPU: "bf16" where bf16 is the CPU's fast path
    (`cpu_has_fast_bf16`: AMX, or AVX512-BF16 measured faster; with AMX a VAE step with the gradient losses ran
    1.5x faster), otherwise fp32 ("no"; on a Xeon with AVX512-BF16 but slow bf16 matmuls, bf16 autocast made a flow
    training step 1.4x slower)."""
    if requested not in ("no", "bf16", "fp16"):
        raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {requested!r}")
    if requested == "no" or torch.cuda.is_available():
        return requested
    if requested == "bf16" and cpu_has_fast_bf16():
        return requested
    warnings.warn(f"mixed_precision={requested!r} needs a GPU or a CPU whose fast path is bf16 (AMX, or AVX512-BF16 "
                  "measured faster); training in fp32 on this CPU")
    return "no"


def make_accelerator(mixed_precision: str) -> Accelerator:
    """An `Accelerator` at this precision. accelerate keeps one state per process and refuses a second precision
    in it; a process that trains several runs in turn (an ablation group, the tests) resets its precision part."""
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available())


class ShardedBatchSampler(Sampler[list[int]]):
    """Per-epoch seeded permutation cut into global batches of `batch_size · num_processes`; process
    `rank` yields its slice of each. Datasets smaller than a global batch are repeated (new permutation
    per repeat) so tiny corpora still fill a batch."""

    def __init__(self, dataset_size: int, batch_size: int, num_processes: int = 1, rank: int = 0, seed: int = 0):
        if dataset_size < 1:
            raise ValueError("the dataset is empty")
        self.dataset_size, self.batch_size = dataset_size, batch_size
        self.num_processes, self.rank, self.seed = num_processes, rank, seed
        self.global_batch = batch_size * num_processes
        repeats = math.ceil(self.global_batch / dataset_size)
        self.num_batches = repeats * dataset_size // self.global_batch
        self.epoch, self.skip_batches = 0, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def __len__(self) -> int:
        return self.num_batches - self.skip_batches

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        repeats = math.ceil(self.global_batch / self.dataset_size)
        order = torch.cat([torch.randperm(self.dataset_size, generator=generator) for _ in range(repeats)])
        for index in range(self.skip_batches, self.num_batches):
            start = index * self.global_batch + self.rank * self.batch_size
            yield order[start:start + self.batch_size].tolist()


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors (also inside dicts/lists) moved to `device`; other values unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, list):
        return [move_to_device(value, device) for value in batch]
    return batch


class Trainer:
    """Train `model` on `dataset` with `compute_loss`, following a `TrainConfig`.

    Args:
        config: engine settings (batch size, schedule, EMA, checkpoint/log/sample cadence, output_dir).
        model: the module to train (unwrapped; the trainer prepares it for DDP / mixed precision).
        dataset: map-style dataset; `collate_fn` batches its items.
        compute_loss: `(prepared_model, batch) -> {"loss": scalar, <term>: scalar, ...}`; call the model
            through its `forward` (the DDP wrapper has no other methods).
        sample_fn: `(model, step, samples_dir)` on rank 0 every `sample_every` steps and at the end, given a
            copy carrying the EMA weights when EMA is on; the RNG state is restored afterwards.
        stateful: extra objects with `state_dict`/`load_state_dict` saved in checkpoints (e.g. a collate RNG).
    """

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module,
        dataset: Dataset,
        compute_loss: LossFn,
        collate_fn: Callable | None = None,
        sample_fn: SampleFn | None = None,
        stateful: dict[str, Any] | None = None,
    ):
        self.config = config
        self.accelerator = make_accelerator(resolve_mixed_precision(config.mixed_precision))
        self.output_dir = Path(config.output_dir)
        self.checkpoints_dir = self.output_dir / "checkpoints"
        self.samples_dir = self.output_dir / "samples"
        self.compute_loss = compute_loss
        self.sample_fn = sample_fn
        self.stateful = dict(stateful or {})
        self.sampler = ShardedBatchSampler(len(dataset), config.batch_size, self.accelerator.num_processes,
                                           self.accelerator.process_index, config.seed)
        self.dataloader = DataLoader(dataset, batch_sampler=self.sampler, collate_fn=collate_fn,
                                     num_workers=config.num_workers)
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, betas=tuple(config.adam_betas),
                                      eps=config.adam_eps, weight_decay=config.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.scheduler = build_scheduler(self.optimizer, config.max_steps, config.warmup_steps,
                                         config.lr_schedule, config.min_lr_ratio, config.decay_fraction)
        self.ema = EMA(self.unwrapped_model, config.ema_decay, config.ema_warmup) if config.ema_decay else None
        self.step = 0
        self.history: list[dict[str, float]] = []  # every logged row, also returned by `train`

    @property
    def unwrapped_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def averaged_model(self) -> nn.Module:
        """A copy of the model carrying the EMA weights (the trained weights when EMA is off), in eval mode."""
        model = copy.deepcopy(self.unwrapped_model)
        if self.ema is not None:
            self.ema.copy_to(model)
        return model.eval()

    # -- checkpoints ------------------------------------------------------------------------------

    def save(self) -> Path:
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "extra": {name: obj.state_dict() for name, obj in self.stateful.items()},
        }
        return save_checkpoint(
            self.checkpoints_dir, self.step, self.unwrapped_model, state, ema=self.ema,
            rank=self.accelerator.process_index, is_main=self.accelerator.is_main_process,
            barrier=self.accelerator.wait_for_everyone, total_limit=self.config.checkpoints_total_limit,
        )

    def load(self, folder: str | Path) -> None:
        state = load_checkpoint(folder, self.unwrapped_model, rank=self.accelerator.process_index)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        for name, obj in self.stateful.items():
            obj.load_state_dict(state["extra"][name])
        self.step = state["step"]

    def run_sample_fn(self) -> None:
        if self.sample_fn is None:
            return
        if self.accelerator.is_main_process:
            saved = rng_state()  # sampling must not shift the training random streams (exact resume)
            self.sample_fn(self.averaged_model(), self.step, self.samples_dir)
            set_rng_state(saved)
        self.accelerator.wait_for_everyone()

    # -- the loop ---------------------------------------------------------------------------------

    def train(self, resume: str | None = None, stop_at_step: int | None = None) -> list[dict[str, float]]:
        """Train up to `config.max_steps` (or stop early at `stop_at_step`, keeping the schedule).

        `resume`: "latest" (the newest complete checkpoint in the run, or a fresh start if none), a
        checkpoint folder, or a packed checkpoint folder (`training.engine.packed`, unpacked into the run). Returns the logged rows (step, lr, samples_per_second, every loss term).
        Ctrl-C or SIGTERM stops after the step in progress with a checkpoint (`GracefulStop`); `--resume latest`
        continues from it.
        """
        with GracefulStop() as stop:
            return self._train(resume, stop_at_step, stop)

    def _stop_requested(self, stop: GracefulStop) -> bool:
        """Whether any process was asked to stop (every process takes the same decision at the same step)."""
        if self.accelerator.num_processes == 1:
            return stop.requested
        flag = torch.tensor(float(stop.requested), device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def _train(self, resume: str | None, stop_at_step: int | None, stop: GracefulStop) -> list[dict[str, float]]:
        config, accelerator = self.config, self.accelerator
        if resume and resume != "latest" and is_packed(resume):  # a packed checkpoint (e.g. from git)
            packed_step = read_packed_step(resume)
            newer = [path for path in list_checkpoints(self.checkpoints_dir) if path.name > checkpoint_name(packed_step)]
            if newer:  # e.g. a machine that kept the run folder since the pack was made
                warnings.warn(f"{self.checkpoints_dir} already has a newer checkpoint ({newer[-1].name}) than the "
                              f"packed one (step {packed_step}); resuming from the pack as asked. Pass --resume "
                              "latest to continue from the newer one instead.")
            if accelerator.is_main_process:
                unpack_checkpoint(resume, self.checkpoints_dir)
            accelerator.wait_for_everyone()
            resume = str(self.checkpoints_dir / checkpoint_name(packed_step))
        checkpoint = find_checkpoint(self.checkpoints_dir, resume) if resume else None
        if checkpoint is not None:
            self.load(checkpoint)
        else:
            set_seed(config.seed + accelerator.process_index)
        end = min(config.max_steps, stop_at_step or config.max_steps)
        logger = MetricLogger(self.output_dir / "logs", enabled=accelerator.is_main_process,
                              tensorboard=config.tensorboard, resume_step=self.step)
        accumulation = config.gradient_accumulation_steps
        samples_per_step = config.batch_size * accumulation * accelerator.num_processes
        epoch, skip = divmod(self.step * accumulation, len(self.sampler))
        progress = tqdm(total=config.max_steps, initial=self.step, desc="training", dynamic_ncols=True,
                        disable=not (accelerator.is_main_process and config.progress_bar))
        if checkpoint is not None and accelerator.is_main_process:
            progress.write(f"resumed from {checkpoint} at step {self.step}")
        self.model.train()
        micro, sums, window_start, window_steps = 0, {}, time.perf_counter(), 0
        while self.step < end:
            self.sampler.set_epoch(epoch, skip)
            skip = 0
            for batch in self.dataloader:
                micro += 1
                sync = micro % accumulation == 0
                with nullcontext() if sync else accelerator.no_sync(self.model):
                    terms = self.compute_loss(self.model, move_to_device(batch, accelerator.device))
                    accelerator.backward(terms["loss"] / accumulation)
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + value.detach().float() / accumulation
                if not sync:
                    continue
                metrics = {"lr": self.scheduler.get_last_lr()[0]}
                if config.max_grad_norm is not None:
                    metrics["grad_norm"] = accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                if self.ema is not None:
                    self.ema.update(self.unwrapped_model)
                self.step += 1
                window_steps += 1
                if self.step % config.log_every == 0 or self.step == end:
                    terms_mean = {k: accelerator.reduce(v, reduction="mean").item() for k, v in sums.items()}
                    elapsed = time.perf_counter() - window_start
                    row = {**terms_mean, "lr": metrics["lr"],
                           "grad_norm": float(metrics.get("grad_norm", float("nan"))),
                           "samples_per_second": window_steps * samples_per_step / max(elapsed, 1e-9)}
                    logger.log(self.step, row)
                    self.history.append({"step": self.step, **row})
                    progress.set_postfix(loss=f"{row['loss']:.4g}", lr=f"{row['lr']:.2e}",
                                         samples_s=f"{row['samples_per_second']:.1f}")
                    window_start, window_steps = time.perf_counter(), 0
                sums = {}
                progress.update(1)
                stopping = self._stop_requested(stop)
                if self.step % config.checkpoint_every == 0 or self.step == end or stopping:
                    self.save()
                if stopping:
                    if accelerator.is_main_process:
                        progress.write(f"stopped at step {self.step}, checkpoint saved in {self.checkpoints_dir}; "
                                       "continue with --resume latest")
                    end = self.step
                    break
                if (config.sample_every and self.step % config.sample_every == 0) or self.step == end:
                    self.run_sample_fn()
                if self.step >= end:
                    break
            epoch += 1
        progress.close()
        logger.close()
        return self.history
