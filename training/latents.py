"""Latents for flow training: encode surface points with a trained VAE on the fly, or cache them on disk.

The cache stores each object's latent **posterior** (mean and std over its M tokens), not one sample, so
training can still draw a fresh posterior sample per step (``sample_posterior=True``) from cached
latents. Entries live under a key made of a fingerprint of the VAE (its config and every weight) and
the token count M: a retrained VAE or another M writes to and reads from a different key, never
reusing stale latents.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from diffusers.utils.torch_utils import randn_tensor
from safetensors import safe_open
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from triposg.io import write_bytes_atomic

FRAMES = ("corpus", "yaw-undone")  # the surfaces a store's latents encode (see LatentStore)
# Object ids that are already safe, portable file names are used as is; others are hashed.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _posterior(vae, surface_points: torch.Tensor, num_tokens: int, generator: torch.Generator | None):
    """The VAE posterior for (B, N, 6) surface points, on the VAE's device and dtype."""
    points = surface_points.to(device=vae.device, dtype=vae.dtype)
    return vae.encode(points, num_tokens=num_tokens, generator=generator).latent_dist


def draw_latents(
    mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None = None, sample_posterior: bool = True
) -> torch.Tensor:
    """``mean + std·z`` (a posterior sample) or ``mean``. Shapes (B, M, C). The noise is drawn on the
    generator's device and moved, so a CPU generator also seeds GPU latents."""
    if not sample_posterior:
        return mean
    return mean + std * randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)


@torch.no_grad()
def encode_latents(
    vae,
    surface_points: torch.Tensor,
    num_tokens: int,
    generator: torch.Generator | None = None,
    sample_posterior: bool = True,
) -> torch.Tensor:
    """Latents x0 for flow training, encoded on the fly without gradients.

    Args:
        vae: a ``TripoSGVAEModel`` (kept as is; call ``.eval()`` on it yourself).
        surface_points: (B, N, 6) xyz + normals, N ≥ num_tokens.
        num_tokens: M latent tokens.
        generator: seeds the query-point selection and the posterior sample.
        sample_posterior: a posterior sample (the VAE's training-time latent) or its mean.
    Returns: (B, M, C) latents on the VAE's device and dtype.
    """
    dist = _posterior(vae, surface_points, num_tokens, generator)
    return draw_latents(dist.mean, dist.std, generator, sample_posterior)


def vae_fingerprint(vae) -> str:
    """SHA-256 of a VAE's config and all its weights (names, shapes, dtypes, values), as hex.

    Any retraining or change of architecture changes it; loading the same weights twice does not.
    """
    digest = hashlib.sha256()
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class LatentStore:
    """A folder of cached latent posteriors, one safetensors file per object, for one (VAE, M) key.

    Layout: ``folder/vae-<fingerprint[:16]>-m<num_tokens>[-<frame>]/<object_id>.safetensors`` holding ``mean``
    and ``std`` (M, C) float32 plus metadata (object id, full fingerprint, M, frame) that ``load`` checks.

    Args:
        folder: the store's root (several VAEs, token counts and frames may share it).
        vae_key: the VAE's :func:`vae_fingerprint` (use :meth:`for_vae` to compute it).
        num_tokens: M.
        frame: which surfaces were encoded: ``"corpus"`` (as built) or ``"yaw-undone"``
            (``training.data.procedural.undo_yaw``).
    """

    def __init__(self, folder: str | Path, vae_key: str, num_tokens: int, frame: str = "corpus"):
        if num_tokens <= 0:
            raise ValueError(f"num_tokens must be positive, got {num_tokens}")
        if frame not in FRAMES:
            raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
        self.root = Path(folder)
        self.vae_key = vae_key
        self.num_tokens = num_tokens
        self.frame = frame
        suffix = "" if frame == "corpus" else f"-{frame}"  # the corpus frame keeps the folders made before frames
        self.folder = self.root / f"vae-{vae_key[:16]}-m{num_tokens}{suffix}"

    @classmethod
    def for_vae(cls, folder: str | Path, vae, num_tokens: int, frame: str = "corpus") -> LatentStore:
        """The store for latents of ``vae`` at ``num_tokens`` tokens, of surfaces in ``frame``, under ``folder``."""
        return cls(folder, vae_fingerprint(vae), num_tokens, frame)

    def path(self, object_id: str) -> Path:
        """File of ``object_id`` (ids that are not plain file names are stored under their SHA-1)."""
        name = object_id if _SAFE_NAME.match(object_id) else hashlib.sha1(object_id.encode()).hexdigest()
        return self.folder / f"{name}.safetensors"

    def __contains__(self, object_id: str) -> bool:
        return self.path(object_id).is_file()

    def object_ids(self) -> list[str]:
        """Ids of all cached objects of this key (read from the files' metadata)."""
        ids = []
        for file in sorted(self.folder.glob("*.safetensors")):
            with safe_open(file, framework="pt") as handle:
                ids.append(handle.metadata()["object_id"])
        return ids

    def save(self, object_id: str, mean: torch.Tensor, std: torch.Tensor) -> Path:
        """Cache one object's posterior, (M, C) mean and std, atomically (a reader never sees half a file)."""
        expected = (self.num_tokens, mean.shape[-1])
        if tuple(mean.shape) != expected or tuple(std.shape) != expected:
            raise ValueError(
                f"mean and std must be (num_tokens, C) = {expected}, got {tuple(mean.shape)}, {tuple(std.shape)}"
            )
        tensors = {"mean": mean.detach().float().cpu().contiguous(), "std": std.detach().float().cpu().contiguous()}
        metadata = {"object_id": object_id, "vae_key": self.vae_key, "num_tokens": str(self.num_tokens),
                    "frame": self.frame}
        return write_bytes_atomic(self.path(object_id), save(tensors, metadata=metadata))

    def load(self, object_id: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached (M, C) mean and std of ``object_id``; KeyError if it is not cached for this key."""
        path = self.path(object_id)
        if not path.is_file():
            raise KeyError(f"no cached latents for {object_id!r} in {self.folder}; run build_latent_store first")
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata()
        if (metadata.get("object_id") != object_id or metadata.get("vae_key") != self.vae_key
                or metadata.get("frame", "corpus") != self.frame):
            raise KeyError(f"{path} holds latents of another object, VAE or frame; delete it and rebuild the store")
        tensors = load_file(path)
        return tensors["mean"], tensors["std"]

    def load_latents(
        self,
        object_ids: Iterable[str],
        generator: torch.Generator | None = None,
        sample_posterior: bool = True,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Training latents (B, M, C) for a batch of ids: posterior samples (or means) from the cache."""
        pairs = [self.load(object_id) for object_id in object_ids]
        mean = torch.stack([m for m, _ in pairs]).to(device)
        std = torch.stack([s for _, s in pairs]).to(device)
        return draw_latents(mean, std, generator, sample_posterior)


@torch.no_grad()
def build_latent_store(
    vae,
    dataset: Iterable[Mapping],
    num_tokens: int,
    folder: str | Path,
    generator: torch.Generator | None = None,
    overwrite: bool = False,
    progress: bool = True,
    frame: str = "corpus",
) -> LatentStore:
    """Encode every object of ``dataset`` once and cache its posterior; objects already cached are skipped.

    Args:
        vae: the trained ``TripoSGVAEModel`` whose latents the flow model will learn.
        dataset: items with ``"object_id"`` (str) and ``"surface"`` ((N, 6) xyz + normals), e.g.
            ``training.data.datasets.ImageViewDataset``.
        num_tokens: M.
        folder: the store's root.
        generator: seeds the query-point selection.
        overwrite: re-encode objects that are already cached.
        progress: show a progress bar.
        frame: the frame of the dataset's surfaces (see :class:`LatentStore`).
    Returns: the :class:`LatentStore` for (vae, num_tokens, frame).
    """
    store = LatentStore.for_vae(folder, vae, num_tokens, frame)
    encoded = skipped = 0
    # Index map-style datasets explicitly (a torch Dataset has no __iter__) so the bar knows the total.
    items = (dataset[i] for i in range(len(dataset))) if hasattr(dataset, "__len__") else iter(dataset)
    total = len(dataset) if hasattr(dataset, "__len__") else None
    bar = tqdm(items, total=total, desc=f"encoding latents (M={num_tokens})", disable=not progress, unit="shape")
    for item in bar:
        object_id = item["object_id"]
        if object_id in store and not overwrite:
            skipped += 1
            continue
        surface = torch.as_tensor(item["surface"])[None]  # (1, N, 6)
        dist = _posterior(vae, surface, num_tokens, generator)
        store.save(object_id, dist.mean[0], dist.std[0])
        encoded += 1
        bar.set_postfix(encoded=encoded, skipped=skipped)
    return store
