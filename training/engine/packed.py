"""Packed checkpoints: one training checkpoint as a small, pickle-free folder that can live in git.

A run that spans several sessions on machines that keep nothing (only the repository survives) commits a
packed copy of its newest checkpoint and resumes from it: `--resume <packed folder>` unpacks it into the
run's `checkpoints/` and continues with the optimizer, schedule, EMA and random streams it had.

Layout of a packed folder:
    tensors.safetensors     every tensor and array of the checkpoint, under its path in the state
    state.json              the rest (step, schedule, hyperparameters, Python RNG states) with tensor references
Nothing in it is unpickled on load (safetensors and JSON only), so a packed folder from elsewhere is safe to read.

To stay small it is lossy where precision matters least, by default: the EMA shadow is stored in float16 and
Adam's moments in bfloat16 (the trained weights stay float32): by parameter count about 60 MB instead of
120 MB for the default model's 5.9M-parameter transformer (not yet measured on it; the tests' tiny run packs
to under 0.75x its exact size). The resumed run continues within those roundings.

    python -m training.engine.packed pack runs/default-flow-v2/checkpoints/checkpoint-00004000 \\
        assets/training-resume/default-flow-v2
    python -m training.train_flow --config ... --resume assets/training-resume/default-flow-v2
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load, save

from triposg.io import write_bytes_atomic

from .checkpoint import COMPLETE_MARKER, _torch_save_atomic, checkpoint_name

TENSORS_FILE = "tensors.safetensors"
STATE_FILE = "state.json"
FORMAT = "triposg-packed-checkpoint/1"
# Path patterns (fnmatch over "/"-joined state paths) stored in a smaller dtype by default.
DEFAULT_LOSSY: dict[str, torch.dtype] = {
    "training_state/ema/shadow/*": torch.float16,
    "training_state/optimizer/state/*/exp_avg": torch.bfloat16,
    "training_state/optimizer/state/*/exp_avg_sq": torch.bfloat16,
}


class PackedCheckpointError(ValueError):
    """A packed folder that is incomplete, of another format, or asks for something it does not hold."""


def is_packed(folder: str | Path) -> bool:
    return (Path(folder) / STATE_FILE).is_file() and (Path(folder) / TENSORS_FILE).is_file()


# -- a tree codec: nested dicts/lists/tuples/scalars with tensors and arrays set aside ----------------------


def _join(path: str, key: Any) -> str:
    return f"{path}/{key}" if path else str(key)


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor], lossy: dict[str, torch.dtype]) -> Any:
    """`value` with every tensor and array moved into `tensors` (under its path) and replaced by a reference."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        for pattern, dtype in lossy.items():
            if tensor.is_floating_point() and fnmatch.fnmatchcase(path, pattern):
                tensor = tensor.to(dtype)
                break
        tensors[path] = tensor.contiguous()
        return {"__tensor__": path, "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, np.ndarray):
        # uint32 (NumPy's Mersenne Twister key) has no safetensors dtype in every version: widen it losslessly.
        stored = value.astype(np.int64) if value.dtype == np.uint32 else value
        tensors[path] = torch.from_numpy(np.ascontiguousarray(stored))
        return {"__ndarray__": path, "dtype": str(value.dtype)}
    if isinstance(value, dict):
        items = [[_encode(k, _join(path, f"key{i}"), tensors, lossy), _encode(v, _join(path, k), tensors, lossy)]
                 for i, (k, v) in enumerate(value.items())]
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: v for (k, _), (_, v) in zip(value.items(), items)}
        return {"__dict__": items}
    if isinstance(value, (list, tuple)):
        encoded = [_encode(v, _join(path, i), tensors, lossy) for i, v in enumerate(value)]
        return {"__tuple__": encoded} if isinstance(value, tuple) else encoded
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise PackedCheckpointError(f"cannot pack {type(value).__name__} at {path!r}: only tensors, arrays, "
                                "dicts, lists, tuples and scalars are stored")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        dtype = getattr(torch, value["dtype"])
        return _tensor(tensors, value["__tensor__"]).to(dtype)
    if "__ndarray__" in value:
        return _tensor(tensors, value["__ndarray__"]).numpy().astype(value["dtype"])
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__dict__"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def _tensor(tensors: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in tensors:
        raise PackedCheckpointError(f"{TENSORS_FILE} lacks the tensor {key!r}; the packed folder is incomplete")
    return tensors[key]


# -- pack / unpack ------------------------------------------------------------------------------------------


def _torch_load_own(path: Path) -> Any:
    """A file this engine wrote itself in a local run folder (never a downloaded one)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def pack_checkpoint(checkpoint: str | Path, out: str | Path, lossy: dict[str, torch.dtype] | None = None) -> Path:
    """Pack a complete `checkpoint-<step>` folder into `out` (replaced atomically). Returns `out`.

    `lossy`: path pattern → dtype for tensors stored smaller (default :data:`DEFAULT_LOSSY`; `{}` is exact).
    The EMA model folder is not stored: it is the trained model with the EMA shadow's values.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if not (checkpoint / COMPLETE_MARKER).is_file():
        raise PackedCheckpointError(f"{checkpoint} is not a complete checkpoint folder (no {COMPLETE_MARKER})")
    if not (checkpoint / "model" / "model.pt").is_file():
        raise PackedCheckpointError(f"{checkpoint}/model has no model.pt: only checkpoints of modules saved as "
                                    "state dicts (the flow trainer's) can be packed")
    state = {
        "model": torch.load(checkpoint / "model" / "model.pt", map_location="cpu", weights_only=True),
        "training_state": _torch_load_own(checkpoint / "training_state.pt"),
        "rng": {p.stem.removeprefix("rng_state_"): _torch_load_own(p) for p in sorted(checkpoint.glob("rng_state_*.pt"))},
        "has_ema": (checkpoint / "model_ema").is_dir(),
    }
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(state, "", tensors, DEFAULT_LOSSY if lossy is None else lossy)
    temporary = out.parent / f".{out.name}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    write_bytes_atomic(temporary / TENSORS_FILE, save(tensors))
    document = {"format": FORMAT, "step": int(state["training_state"]["step"]), "source": checkpoint.name,
                "state": encoded}
    (temporary / STATE_FILE).write_text(json.dumps(document, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)
    temporary.rename(out)
    return out


def read_packed_step(folder: str | Path) -> int:
    """The optimizer step a packed folder was taken at (reads only its JSON)."""
    return int(json.loads((Path(folder) / STATE_FILE).read_text())["step"])


def read_packed(folder: str | Path) -> dict[str, Any]:
    """The checkpoint state held by a packed folder: `model`, `training_state`, `rng` (rank → state), `step`."""
    folder = Path(folder)
    if not is_packed(folder):
        raise PackedCheckpointError(f"{folder} is not a packed checkpoint (needs {STATE_FILE} and {TENSORS_FILE}); "
                                    "make one with `python -m training.engine.packed pack`")
    document = json.loads((folder / STATE_FILE).read_text())
    if document.get("format") != FORMAT:
        raise PackedCheckpointError(f"{folder}/{STATE_FILE} has format {document.get('format')!r}, "
                                    f"expected {FORMAT!r}")
    tensors = load((folder / TENSORS_FILE).read_bytes())
    state = _decode(document["state"], tensors)
    state["step"] = document["step"]
    return state


def unpack_checkpoint(folder: str | Path, checkpoints_dir: str | Path) -> Path:
    """Write the packed checkpoint as `checkpoints_dir/checkpoint-<step>` (what `--resume` reads). Returns it.

    An existing complete folder of that step is kept as it is (a local checkpoint is at least as exact).
    """
    state = read_packed(folder)
    checkpoints_dir = Path(checkpoints_dir)
    final = checkpoints_dir / checkpoint_name(state["step"])
    if (final / COMPLETE_MARKER).is_file():
        return final
    temporary = checkpoints_dir / f".{final.name}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    (temporary / "model").mkdir(parents=True)
    model_state = state["model"]
    _torch_save_atomic(model_state, temporary / "model" / "model.pt")
    training_state = state["training_state"]  # every tensor already back in its saved dtype (read_packed)
    ema = training_state.get("ema")
    if state["has_ema"] and ema is not None:
        shadow = ema["shadow"]
        ema_state = {name: (shadow[name].to(value.dtype) if name in shadow else value)
                     for name, value in model_state.items()}
        (temporary / "model_ema").mkdir()
        _torch_save_atomic(ema_state, temporary / "model_ema" / "model.pt")
    _torch_save_atomic(training_state, temporary / "training_state.pt")
    for rank, rng in state["rng"].items():
        _torch_save_atomic(rng, temporary / f"rng_state_{rank}.pt")
    (temporary / COMPLETE_MARKER).write_text(f"{state['step']}\n")
    temporary.rename(final)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pack a training checkpoint for git, or unpack one.")
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="checkpoint-<step> folder -> packed folder")
    pack.add_argument("checkpoint", type=Path)
    pack.add_argument("out", type=Path)
    pack.add_argument("--exact", action="store_true", help="keep every tensor's dtype (about twice the size)")
    unpack = commands.add_parser("unpack", help="packed folder -> <run>/checkpoints/checkpoint-<step>")
    unpack.add_argument("packed", type=Path)
    unpack.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "pack":
        out = pack_checkpoint(args.checkpoint, args.out, lossy={} if args.exact else None)
        size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
        print(f"packed {args.checkpoint} -> {out} ({size:.1f} MiB)")
    else:
        print(unpack_checkpoint(args.packed, args.run_dir / "checkpoints"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
