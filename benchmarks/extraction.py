"""Volume decoding methods side by side on a known surface: queries, wall time, growth with resolution, agreement.

    python benchmarks/extraction.py [--resolutions 128 256 512] [--field analytic|mlp|release]
        [--methods tracking hierarchical dense] [--device cpu|cuda] [--dtype float32|float16|bfloat16]
        [--threads N] [--repeats 1]

The surface is an analytic union of a torus, a sphere and a rounded box (positive inside), so every method's
surface can be checked against the dense one. What a query costs depends on ``--field``:

- ``analytic``: the formula alone (nearly free: shows the bookkeeping cost of each method);
- ``mlp``: plus a small random MLP offset (a cheap neural decoder);
- ``release``: every query also runs the query layers of a **release-width VAE decoder** (width 1024, 8 heads,
  2048 latent tokens, random weights) through `SDFField`, the way the released TripoSG VAE is queried; its
  output is scaled to 1e-6 so the surface stays the analytic one. This is the cost a user of the released
  weights pays per point. Use ``--device cuda --dtype float16`` on a GPU (see benchmarks/gpu_extraction.sh).

Dense decoding at high resolution, or any method with the release-width field on a CPU, can take hours, so
the methods named by ``--estimate`` (and dense above ``--dense-max``) are not run with the costly field: their
queries are counted on the analytic field alone (the values, and so the queries, are the same) and their time
is that count times the cost per query measured in the same row (marked "est."). The growth factors per
doubling of the resolution are printed for every method: a surface method grows ~4x, a volume method 8x.
Surface agreement is measured against the dense surface (the first method run, when dense is not run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.spatial import cKDTree

from triposg.geometry import DEFAULT_BOUNDS, decode_volume, extract_surface


def analytic_field(points: torch.Tensor) -> torch.Tensor:
    """Union of a torus, a sphere and a rounded box: (Q, 3) xyz -> (Q,) signed distance, positive inside."""
    x, y, z = points.unbind(-1)
    torus = 0.12 - torch.hypot(torch.hypot(x + 0.2, z) - 0.45, y - 0.1)
    sphere = 0.3 - torch.linalg.vector_norm(points - points.new_tensor([0.45, -0.35, 0.3]), dim=-1)
    half_size = points.new_tensor([0.25, 0.2, 0.3])
    q = (points - points.new_tensor([-0.3, -0.45, -0.35])).abs() - half_size + 0.05
    box = -(torch.linalg.vector_norm(q.clamp(min=0), dim=-1) + q.max(dim=-1).values.clamp(max=0) - 0.05)
    return torch.maximum(torch.maximum(torus, sphere), box)


class SmoothOffsetMLP(torch.nn.Module):
    """A fixed random MLP on low-frequency Fourier features: a smooth bounded offset with a decoder-like cost."""

    def __init__(self, width: int = 128, num_frequencies: int = 32, amplitude: float = 0.03, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        # Low frequencies keep the offset smooth, so the field stays close to a true SDF.
        self.register_buffer("frequencies", torch.randn(3, num_frequencies, generator=generator) * 2.0)
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(2 * num_frequencies, width),
            torch.nn.SiLU(),
            torch.nn.Linear(width, width),
            torch.nn.SiLU(),
            torch.nn.Linear(width, width),
            torch.nn.SiLU(),
            torch.nn.Linear(width, 1),
        )
        with torch.no_grad():
            for parameter in self.layers.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / max(parameter.shape[-1], 1) ** 0.5)
            # Rescale the output layer to unit spread over the box, so `amplitude` alone sets the offset's size.
            probe = torch.rand(4096, 3, generator=generator) * 2 - 1
            spread = self.layers(self.features(probe)).std()
            self.layers[-1].weight /= spread
            self.layers[-1].bias /= spread
        self.amplitude = amplitude

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """(Q, 3) xyz -> (Q, 2 * num_frequencies) Fourier features."""
        phase = points @ self.frequencies
        return torch.cat([phase.sin(), phase.cos()], dim=-1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(Q, 3) xyz -> (Q,) offset in [-amplitude, amplitude]."""
        return self.amplitude * torch.tanh(self.layers(self.features(points))).squeeze(-1)


def release_cost_field(device: str, dtype: torch.dtype, num_tokens: int = 2048):
    """The analytic field, with every query also run through a release-width VAE decoder (random weights)."""
    from triposg.models import SDFField, TripoSGVAEModel

    torch.manual_seed(0)
    vae = TripoSGVAEModel().eval()  # the release configuration: decoder width 1024, 16 layers, 64 channels
    torch.nn.init.normal_(vae.decoder.proj_out.weight, std=0.02)
    vae = vae.to(device=device, dtype=dtype)
    latent = torch.randn(1, num_tokens, vae.config.latent_channels, device=device, dtype=dtype)
    start = time.perf_counter()
    decoder = SDFField(vae, latent, "auto")
    if device == "cuda":
        torch.cuda.synchronize()
    print(f"release-width decoder: {sum(p.numel() for p in vae.decoder.parameters()) / 1e6:.0f}M parameters, "
          f"{num_tokens} tokens, per-shape work {time.perf_counter() - start:.1f} s, query precision "
          f"{decoder.precision} ({dtype})")

    def field(points: torch.Tensor) -> torch.Tensor:
        offset = decoder(points.to(device))
        return analytic_field(points) + 1e-6 * offset.to(points.device).clamp(-1, 1)

    return field


class CountingField:
    """Wraps a field function and counts the points it is asked for."""

    def __init__(self, field):
        self.field = field
        self.num_queries = 0

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        self.num_queries += points.shape[0]
        return self.field(points)


def surface_distance(vertices_a: np.ndarray, vertices_b: np.ndarray) -> tuple[float, float]:
    """Symmetric Chamfer (mean of both directions) and Hausdorff distance between two vertex sets."""
    a_to_b, _ = cKDTree(vertices_b).query(vertices_a)
    b_to_a, _ = cKDTree(vertices_a).query(vertices_b)
    return 0.5 * (a_to_b.mean() + b_to_a.mean()), max(a_to_b.max(), b_to_a.max())


def time_method(method: str, field, resolution: int, repeats: int) -> tuple[float, int, tuple]:
    """Best wall time of ``repeats`` decodes (marching cubes excluded), queries, and the extracted surface."""
    seconds, counted, volume = [], None, None
    for _ in range(repeats):
        counted = CountingField(field)
        volume = None  # free the previous repeat's grid before allocating the next
        start = time.perf_counter()
        volume = decode_volume(counted, DEFAULT_BOUNDS, resolution, method=method)
        seconds.append(time.perf_counter() - start)
    assert counted.num_queries == volume.num_queries
    surface = extract_surface(volume)
    return min(seconds), volume.num_queries, surface


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--field", choices=("analytic", "mlp", "release"), default="mlp")
    parser.add_argument("--methods", nargs="+", default=["tracking", "hierarchical", "dense"])
    parser.add_argument("--dense-max", type=int, default=256, help="above this resolution dense time is estimated")
    parser.add_argument("--estimate", nargs="*", default=None,
                        help="methods whose time is estimated (default: hierarchical and dense for --field release)")
    parser.add_argument("--device", default="cpu", help="where the release-width decoder runs")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    parser.add_argument("--repeats", type=int, default=1, help="time each decode this many times, keep the best")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    estimate = set(args.estimate if args.estimate is not None else
                   (["hierarchical", "dense"] if args.field == "release" else []))

    field = analytic_field
    if args.field == "mlp":
        offset = SmoothOffsetMLP().eval()

        def field(points: torch.Tensor) -> torch.Tensor:
            return analytic_field(points) + offset(points)
    elif args.field == "release":
        field = release_cost_field(args.device, getattr(torch, args.dtype))

    print(f"field: {args.field}; torch threads {torch.get_num_threads()}; best of {args.repeats}")
    header = (f"{'res':>5} {'method':>12} | {'queries':>12} {'vs dense':>8} | {'seconds':>9} {'vs dense':>8} "
              f"{'q/s':>9} | {'chamfer vox':>11} {'hausdorff vox':>13} {'same faces':>10}")
    print(header)
    print("-" * len(header))
    history: dict[str, list[tuple[int, float]]] = {method: [] for method in args.methods}
    for resolution in args.resolutions:
        results, estimated = {}, {}
        for method in args.methods:
            if method in estimate or (method == "dense" and resolution > args.dense_max):
                queries = (resolution + 1) ** 3 if method == "dense" else decode_volume(
                    analytic_field, DEFAULT_BOUNDS, resolution, method=method).num_queries
                estimated[method] = queries
            else:
                results[method] = time_method(method, field, resolution, args.repeats)
        if not results:
            raise SystemExit("every method is estimated: run at least one (e.g. --methods tracking ...)")
        # Cost per query from the fastest measured method (the decoder dominates), for estimates.
        per_query = min(seconds / queries for seconds, queries, _ in results.values())
        dense_queries = (resolution + 1) ** 3
        dense_seconds = results["dense"][0] if "dense" in results else dense_queries * per_query
        reference = results.get("dense", next(iter(results.values())))
        voxel = 2.01 / resolution
        for method in args.methods:
            if method in estimated:
                queries = estimated[method]
                seconds = queries * per_query
                history[method].append((queries, seconds))
                print(f"{resolution:>5} {method:>12} | {queries:>12,} {dense_queries / queries:>7.1f}x | "
                      f"{seconds:>8.1f}s {dense_seconds / seconds:>7.1f}x {'est.':>9} |")
                continue
            seconds, queries, surface = results[method]
            chamfer, hausdorff = surface_distance(reference[2][0], surface[0])
            history[method].append((queries, seconds))
            print(f"{resolution:>5} {method:>12} | {queries:>12,} {dense_queries / queries:>7.1f}x | {seconds:>8.2f}s "
                  f"{dense_seconds / seconds:>7.1f}x {queries / seconds:>9,.0f} | {chamfer / voxel:>11.2e} "
                  f"{hausdorff / voxel:>13.2e} {str(len(surface[1]) == len(reference[2][1])):>10}", flush=True)
    if len(args.resolutions) > 1:
        print("growth per doubling of the resolution (a surface method ~4x, a volume method 8x):")
        for method, points in history.items():
            if len(points) > 1:
                queries = " ".join(f"{b[0] / a[0]:.2f}x" for a, b in zip(points, points[1:]))
                seconds = " ".join(f"{b[1] / a[1]:.2f}x" for a, b in zip(points, points[1:]))
                print(f"  {method:>12}: queries {queries}; time {seconds}")


if __name__ == "__main__":
    main()
