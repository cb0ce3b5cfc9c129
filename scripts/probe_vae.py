"""Early-training diagnostics of an SDF VAE: is the posterior quiet, and does the decoder use the latents?

    python scripts/probe_vae.py runs/default-vae/checkpoints/checkpoint-00000500/model \
        --corpus data/procedural [--split val] [--objects 4] [--num-tokens 256]

Prints, over the first `--objects` objects of the split:
- posterior: mean |μ|, spread of μ over tokens, mean σ. σ near 1 means the posterior collapsed to the prior
  (the sampled noise then hides the latents from the decoder).
- object difference: mean |field(object i) − field(object 0)| at the same query points (object 0's
  supervision points), next to the field's own std. Near 0 means the decoder ignores the latents and
  predicts one average field; it is the earliest sign of a working autoencoder, long before the loss moves.
- near-surface sign accuracy: share of points with |SDF| < 0.1 on the right side of the surface (0.5 = chance),
  then per band of distance to the surface with the mean |error|. A model that knows inside from outside far
  away but predicts ≈ 0 in a thick band around every surface (it cannot locate the surface yet) shows chance
  accuracy and an error ≈ |SDF| in the near bands; the bands must improve before any mesh can.
- query routing: how many tokens each near-surface query reads in the decoder's cross-attention (per head,
  exp of the attention entropy) and at what mean distance, next to the nearest token's distance and the mean
  distance to all tokens. Reading ~half the tokens at about the mean distance means the attention ignores
  position (the decoder can then only blur the shape); a working decoder reads a few nearby tokens.
- the mean field per signed-SDF band: it rises with the SDF through 0 when the model locates surfaces, and stays
  flat (a constant near 0 from inside to outside) when it hedges.

The objects are spread over the split (every len/objects-th), so several families are probed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.data.datasets import FieldDataset, spread_indices
from triposg.models import TripoSGVAEModel


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("vae", type=Path, help="a saved TripoSGVAEModel folder (e.g. a checkpoint's model/)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--num-tokens", type=int, default=256)
    args = parser.parse_args(argv)
    if args.objects < 2:
        parser.error("--objects must be at least 2 (the object difference compares objects)")

    vae = TripoSGVAEModel.from_pretrained(args.vae).eval()
    dataset = FieldDataset(args.corpus, args.split, num_surface=4096)
    items = [dataset[i] for i in spread_indices(len(dataset), args.objects)]
    generator = torch.Generator().manual_seed(0)
    encodings = [vae.encode(item["surface"][None], args.num_tokens, generator=generator) for item in items]
    posteriors = [encoded.latent_dist for encoded in encodings]
    queries = items[0]["points"][None]  # (1, Q, 3)
    fields = [vae.decode(p.mode(), queries).sample[0, :, 0] for p in posteriors]  # positive inside
    own = [vae.decode(p.mode(), item["points"][None]).sample[0, :, 0] for p, item in zip(posteriors, items)]

    mean_abs = np.mean([p.mean.abs().mean().item() for p in posteriors])
    token_spread = np.mean([p.mean.std(dim=1).mean().item() for p in posteriors])
    sigma = np.mean([p.std.mean().item() for p in posteriors])
    difference = np.mean([(f - fields[0]).abs().mean().item() for f in fields[1:]])
    accuracy = []
    for field, item in zip(own, items):
        near = item["sdf"].abs() < 0.1
        accuracy.append(((-field < 0) == (item["sdf"] < 0))[near].float().mean().item())
    print(f"posterior: mean |mu| {mean_abs:.3f}, mu spread over tokens {token_spread:.3f}, mean sigma {sigma:.3f}")
    print(f"object difference {difference:.5f} (field std {fields[0].std().item():.5f})")
    print(f"near-surface sign accuracy {np.mean(accuracy):.3f} (0.5 = chance)")
    routing = [attention_locality(vae, p, encoded, item, args.num_tokens) for p, encoded, item in
               zip(posteriors, encodings, items)]
    tokens, read, nearest, mean = (np.mean([r[i] for r in routing]) for i in range(4))
    print(f"query routing: reads {tokens:.1f} of {args.num_tokens} tokens per head at mean distance {read:.3f} "
          f"(nearest token {nearest:.3f}, all tokens {mean:.3f})")
    raw = -torch.cat(own)  # positive outside, like the data
    sdfs = [item["sdf"] for item in items]
    for (low, high), (share, error, count) in zip(SDF_BANDS, band_accuracy(raw, torch.cat(sdfs))):
        print(f"  |SDF| in [{low:g}, {high:g}): sign accuracy {share:.3f}, mean |error| {error:.4f} ({count} points)")
    print("mean field by signed distance (follows the SDF when surfaces are located; flat when the model hedges):")
    for (low, high), mean in zip(zip(SIGNED_EDGES[:-1], SIGNED_EDGES[1:]), signed_band_means(raw, torch.cat(sdfs))):
        print(f"  SDF in [{low:+.3f}, {high:+.3f}): mean field {mean:+.4f}")
    return 0


def attention_locality(vae, posterior, encoded, item, num_tokens: int, max_queries: int = 500) -> tuple[float, ...]:
    """For near-surface queries (|SDF| < 0.05) of one object: (tokens read per head, mean distance of the read
    tokens, nearest token's distance, mean distance to all tokens). Token positions are the input points the
    encoder's queries started from."""
    queries = item["points"][item["sdf"].abs() < 0.05][:max_queries][None]  # (1, Q, 3)
    token_xyz = item["surface"][encoded.query_indices[0], :3]  # (M, 3)
    weights = vae.query_attention_logits(vae.decode_tokens(posterior.mode()), queries)[0].softmax(-1)  # (H, Q, M)
    return locality_figures(weights, torch.cdist(queries[0], token_xyz))


def locality_figures(weights: torch.Tensor, distances: torch.Tensor) -> tuple[float, float, float, float]:
    """`weights` (H, Q, M) attention, `distances` (Q, M) query–token → the four figures of `attention_locality`."""
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1)  # (H, Q)
    return (entropy.exp().mean().item(), (weights * distances).sum(-1).mean().item(),
            distances.min(-1).values.mean().item(), distances.mean().item())


SDF_BANDS = ((0.0, 0.005), (0.005, 0.01), (0.01, 0.02), (0.02, 0.04), (0.04, 0.0999), (0.0999, float("inf")))
SIGNED_EDGES = (-0.0999, -0.03, -0.01, 0.0, 0.01, 0.03, 0.0999)


def signed_band_means(raw: torch.Tensor, sdf: torch.Tensor) -> list[float]:
    """Mean raw field per signed-SDF band between `SIGNED_EDGES` (NaN for an empty band); both positive outside."""
    means = []
    for low, high in zip(SIGNED_EDGES[:-1], SIGNED_EDGES[1:]):
        band = (sdf >= low) & (sdf < high)
        means.append(raw[band].mean().item() if band.any() else float("nan"))
    return means


def band_accuracy(raw: torch.Tensor, sdf: torch.Tensor) -> list[tuple[float, float, int]]:
    """Per band of |SDF| (`SDF_BANDS`; the last holds the truncated far field): (share of points on the right
    side, mean |raw − sdf|, number of points). `raw` and `sdf` are (N,), both positive outside."""
    rows = []
    for low, high in SDF_BANDS:
        band = (sdf.abs() >= low) & (sdf.abs() < high)
        if not band.any():
            rows.append((float("nan"), float("nan"), 0))
            continue
        right = ((raw < 0) == (sdf < 0))[band].float().mean().item()
        rows.append((right, (raw - sdf)[band].abs().mean().item(), int(band.sum())))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
