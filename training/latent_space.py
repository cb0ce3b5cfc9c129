"""Standardise a trained VAE's latent space in place, so the flow model sees zero-mean, unit-std channels.

    python -m training.latent_space runs/default-vae/vae --corpus data/procedural [--num-tokens 256] \
        [--objects 256] [--out runs/default-vae/vae-standardized]

A VAE trained without the KL term (or with a tiny weight) has latents of any scale: the default model's had
|μ| ≈ 2.6 per channel. Rectified flow starts from N(0, I), so such latents waste the early sampling steps and
weight the channels unevenly. The release pipeline has no latent scaling factor, so instead of adding one
this folds the affine map into the weights, which leaves the autoencoder's function unchanged:

    quant (means):    W ← W / s,  b ← (b − m) / s        new latent z' = (z − m) / s
    quant (log-var):  b ← b − 2·log s                    the posterior std scales with the mean
    post_quant:       b ← b + W·m,  W ← W·diag(s)        decode(z') = old decode(z)

`m`, `s` are per-channel statistics of the posterior means over training objects.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm.auto import tqdm

from triposg.models import TripoSGVAEModel

from .data.datasets import FieldDataset, spread_indices


@torch.no_grad()
def latent_statistics(vae: TripoSGVAEModel, surfaces: list[torch.Tensor], num_tokens: int,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the posterior means of `surfaces` ((S, 6) each) → two (C,) tensors."""
    if not surfaces:
        raise ValueError("latent_statistics needs at least one surface")
    generator = torch.Generator().manual_seed(seed)
    means = [vae.encode(surface[None].to(vae.device, vae.dtype), num_tokens, generator=generator).latent_dist.mean[0]
             for surface in tqdm(surfaces, desc="latent statistics", unit="obj")]
    stacked = torch.cat(means).float()  # (objects·M, C)
    return stacked.mean(0), stacked.std(0).clamp_min(1e-6)


@torch.no_grad()
def fold_latent_standardization(vae: TripoSGVAEModel, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Rewrite `quant` and `post_quant` so new latents are `(old − mean) / std` and decode the same (in place)."""
    channels = vae.config.latent_channels
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"mean and std must be ({channels},), got {tuple(mean.shape)} and {tuple(std.shape)}")
    if not (std > 0).all():
        raise ValueError("std must be positive in every channel")
    mean, std = mean.to(vae.quant.weight), std.to(vae.quant.weight)
    weight, bias = vae.quant.weight, vae.quant.bias  # (2C, D), (2C,): means first, then log-variances
    weight[:channels] /= std[:, None]
    bias[:channels] = (bias[:channels] - mean) / std
    bias[channels:] -= 2.0 * std.log()
    vae.post_quant.bias += vae.post_quant.weight @ mean
    vae.post_quant.weight *= std[None, :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("vae", type=Path, help="a saved TripoSGVAEModel folder")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--num-tokens", type=int, default=256)
    parser.add_argument("--num-surface", type=int, default=4096)
    parser.add_argument("--objects", type=int, default=256, help="objects the statistics are taken over")
    parser.add_argument("--out", type=Path, help="where to save the standardised VAE (default: <vae>-standardized)")
    args = parser.parse_args(argv)
    vae = TripoSGVAEModel.from_pretrained(args.vae).eval()
    dataset = FieldDataset(args.corpus, args.split, num_surface=args.num_surface)
    surfaces = [dataset[i]["surface"] for i in spread_indices(len(dataset), args.objects)]
    mean, std = latent_statistics(vae, surfaces, args.num_tokens)
    print(f"before: channel means {mean.abs().mean():.3f} (mean |m|), stds {std.min():.3f}–{std.max():.3f}")
    fold_latent_standardization(vae, mean, std)
    out = args.out or args.vae.with_name(args.vae.name + "-standardized")
    vae.save_pretrained(out)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
