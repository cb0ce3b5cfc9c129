"""Dense vs hierarchical volume decoding: SDF queries, wall time and surface agreement.

    python benchmarks/extraction.py [--resolutions 128 256 512] [--coarse-resolution 64] [--mlp]

The field is an analytic union of a torus, a sphere and a rounded box (positive inside). With ``--mlp`` a small
random but smooth torch MLP adds a bounded offset, so each query costs about what a neural decoder's would and the
wall-time ratio is meaningful. Surface agreement is the Chamfer (mean) and Hausdorff (max) distance between the
two meshes' vertices, in voxels.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.spatial import cKDTree

# Runnable as `python benchmarks/extraction.py` without installing the package: put the repo root on the path.

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


def run(resolution: int, field, coarse_resolution: int, repeats: int) -> dict[str, float]:
    """Decode ``field`` densely and hierarchically; wall time is the best of ``repeats`` (shared CPUs are noisy)."""
    row: dict[str, float] = {"resolution": resolution}
    meshes = {}
    for method in ("dense", "hierarchical"):
        kwargs = {"coarse_resolution": coarse_resolution} if method == "hierarchical" else {}
        seconds = []
        for _ in range(repeats):
            counted = CountingField(field)
            volume = None  # free the previous repeat's grid before allocating the next
            start = time.perf_counter()
            volume = decode_volume(counted, DEFAULT_BOUNDS, resolution, method=method, **kwargs)
            seconds.append(time.perf_counter() - start)
        row[f"{method}_seconds"] = min(seconds)
        row[f"{method}_queries"] = counted.num_queries
        assert counted.num_queries == volume.num_queries
        meshes[method] = extract_surface(volume)
        voxel = float(volume.voxel_size.max())
        del volume
    chamfer, hausdorff = surface_distance(meshes["dense"][0], meshes["hierarchical"][0])
    row["chamfer_voxels"], row["hausdorff_voxels"] = chamfer / voxel, hausdorff / voxel
    row["same_faces"] = len(meshes["dense"][1]) == len(meshes["hierarchical"][1])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--coarse-resolution", type=int, default=64)
    parser.add_argument("--mlp", action="store_true", help="add a smooth random MLP offset (neural-decoder cost)")
    parser.add_argument("--repeats", type=int, default=1, help="time each decode this many times, keep the best")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    field = analytic_field
    if args.mlp:
        offset = SmoothOffsetMLP().eval()

        def field(points: torch.Tensor) -> torch.Tensor:
            return analytic_field(points) + offset(points)

    print(f"field: {'analytic + MLP offset' if args.mlp else 'analytic'}, coarse resolution "
          f"{args.coarse_resolution}, torch threads {torch.get_num_threads()}, best of {args.repeats}")
    header = (
        f"{'res':>5} | {'dense queries':>13} {'hier queries':>12} {'ratio':>6} | {'dense s':>8} {'hier s':>7} "
        f"{'ratio':>6} | {'chamfer vox':>11} {'hausdorff vox':>13} {'same F':>6}"
    )
    print(header)
    print("-" * len(header))
    for resolution in args.resolutions:
        row = run(resolution, field, args.coarse_resolution, args.repeats)
        print(
            f"{resolution:>5} | {row['dense_queries']:>13,} {row['hierarchical_queries']:>12,} "
            f"{row['dense_queries'] / row['hierarchical_queries']:>6.1f} | {row['dense_seconds']:>8.2f} "
            f"{row['hierarchical_seconds']:>7.2f} {row['dense_seconds'] / row['hierarchical_seconds']:>6.1f} | "
            f"{row['chamfer_voxels']:>11.2e} {row['hausdorff_voxels']:>13.2e} {str(row['same_faces']):>6}",
            flush=True,
        )


if __name__ == "__main__":
    main()
