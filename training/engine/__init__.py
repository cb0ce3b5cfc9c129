"""A small, generic training engine on `accelerate`, shared by the VAE and flow trainers.

- `config`: YAML → dataclasses with `--set key=value` overrides (`load_config`), and the engine's `TrainConfig`.
- `schedule`: learning-rate warmup then cosine or constant decay.
- `ema`: exponential moving average of the weights.
- `checkpoint`: atomic checkpoint folders (`save_pretrained` models + optimizer/scheduler/EMA/RNG state),
  retention limit, `latest` resolution that skips incomplete folders.
- `logging`: CSV of every loss term (+ optional TensorBoard), rank 0 only.
- `loop`: `Trainer`, the loop itself (accumulation, clipping, mixed precision, progress bar, callbacks, resume).
"""

from .checkpoint import find_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig, load_config
from .ema import EMA
from .logging import MetricLogger
from .loop import Trainer
from .schedule import lr_lambda

__all__ = [
    "EMA",
    "MetricLogger",
    "TrainConfig",
    "Trainer",
    "find_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_config",
    "lr_lambda",
    "save_checkpoint",
]
