"""Configs as data: YAML files loaded into (nested) dataclasses, with `key.sub=value` overrides.

A trainer declares one top-level dataclass whose fields are sections (`train: TrainConfig`, `model: ...`,
`data: ...`, `loss: ...`); `load_config(path, overrides, config_class)` fills it from YAML. Unknown keys
are errors that list the valid ones, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


@dataclass
class TrainConfig:
    """Engine settings shared by every trainer (the `train:` section of a config file)."""

    output_dir: str = "runs/default"  # run folder: checkpoints/, logs/, samples/, the exported model
    seed: int = 0  # seeds python, numpy and torch on every process; data order is derived from it
    max_steps: int = 1000  # optimizer steps; the LR schedule is laid out over this many
    batch_size: int = 8  # per process and per micro-batch; the global batch is × processes × accumulation
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step (a larger batch in the same memory)
    learning_rate: float = 1e-4  # peak learning rate, reached at the end of warmup
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    warmup_steps: int = 0  # linear warmup from 0: large early updates destabilise transformers
    lr_schedule: str = "constant"  # after warmup: "constant", "cosine" or "wsd" (down to min_lr_ratio · peak)
    min_lr_ratio: float = 0.0  # floor of the cosine decay, as a fraction of the peak
    decay_fraction: float = 0.2  # "wsd": the last share of max_steps that decays; before it the peak holds
    max_grad_norm: float | None = 1.0  # gradient clipping by global norm; None disables
    mixed_precision: str = "no"  # "no", "bf16" or "fp16" on GPU; on CPU "bf16" where bf16 is fast, else fp32
    ema_decay: float | None = 0.999  # EMA of weights for sampling/export; None disables
    ema_warmup: bool = True  # decay min(ema_decay, (1+n)/(10+n)) so short runs are not dominated by the init
    num_workers: int = 0  # DataLoader workers; resume is bit-exact only with 0 (workers reseed per epoch)
    log_every: int = 10  # optimizer steps between CSV/TensorBoard rows
    checkpoint_every: int = 500  # optimizer steps between checkpoints (also one at the end)
    checkpoints_total_limit: int | None = 3  # keep only the newest K complete checkpoints; None keeps all
    sample_every: int = 500  # optimizer steps between sample callbacks (mesh renders); 0 disables
    tensorboard: bool = True  # also write TensorBoard events when `tensorboard` is installed
    progress_bar: bool = True  # tqdm bar with loss, lr, samples/s and ETA on rank 0

    def __post_init__(self) -> None:
        if self.mixed_precision is False:  # YAML 1.1 reads a bare `no` (e.g. --set train.mixed_precision=no) as false
            self.mixed_precision = "no"


def _is_dataclass_type(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _unwrap_optional(kind: Any) -> Any:
    """`X | None` → X (None handled by the caller); other types unchanged."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def _convert(value: Any, kind: Any, where: str) -> Any:
    """Convert a YAML value to the declared field type (nested dataclasses, tuples, floats from ints)."""
    if value is None:
        return None
    kind = _unwrap_optional(kind)
    if _is_dataclass_type(kind):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be a mapping, got {value!r}")
        return from_dict(kind, value, where)
    origin = typing.get_origin(kind)
    if origin is tuple:
        args = typing.get_args(kind)
        item_kind = args[0] if args else Any
        return tuple(_convert(v, item_kind, where) for v in value)
    if origin is list:
        args = typing.get_args(kind)
        return [_convert(v, args[0] if args else Any, where) for v in value]
    if kind is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        return float(value)  # YAML reads 5e-5 as a string and 1 as an int
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def from_dict(config_class: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build `config_class` from a mapping; nested dataclass fields take nested mappings."""
    hints = typing.get_type_hints(config_class)
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)} in {where}; valid keys: {sorted(names)}")
    kwargs = {name: _convert(value, hints[name], f"{where}.{name}") for name, value in values.items()}
    return config_class(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML-friendly data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def apply_override(values: dict[str, Any], override: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (`1e-4`, `[64, 128]`, `null`)."""
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like key.sub=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = values
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {override!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def load_config(path: str | Path | None, overrides: Sequence[str] = (), *, config_class: type[T]) -> T:
    """Read a YAML file (None: all defaults), apply `key=value` overrides, and build `config_class`."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found; see training/configs/ for presets")
        values = yaml.safe_load(path.read_text()) or {}
    for override in overrides:
        apply_override(values, override)
    return from_dict(config_class, values)


def save_config(config: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (the run folder keeps what was actually trained)."""
    from triposg.io import write_bytes_atomic

    return write_bytes_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False).encode())


__all__ = ["TrainConfig", "apply_override", "from_dict", "load_config", "save_config", "to_dict"]


def parse_training_args(description: str, example_config: str, argv: list[str] | None = None):
    """The command line every trainer shares: `--config`, `--resume`, repeatable `--set KEY=VALUE`."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help=f"YAML config, e.g. {example_config}")
    parser.add_argument("--resume", default=None, help="'latest', a checkpoint folder or a packed checkpoint folder")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.max_steps=100 (repeatable)")
    return parser.parse_args(argv)
