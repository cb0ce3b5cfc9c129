"""An independent, straightforward statement of the release pipeline's sampling and extraction semantics
(`shared/reference/official-checkpoint.md`), for the compatibility tests. Written from the documented
behaviour, not from either implementation: one loop, no helpers from `triposg.pipelines`.

Networks (transformers' DINOv2, our DiT and VAE, bit-identical to the release's in fp32 elsewhere in the suite)
are called as black boxes: what is restated here is everything around them.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
from skimage import measure


def release_schedule(num_steps: int, shift: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """`s_i = 1 − i/N`, `σ = shift·s/(1 + (shift − 1)·s)` in float64, cast to float32; timestep = 1000·σ in
    float32; sigmas end with 0. Returns (timesteps (N,), sigmas (N+1,))."""
    s = np.array([1.0 - i / num_steps for i in range(num_steps)], dtype=np.float64)
    sigmas = torch.from_numpy(shift * s / (1.0 + (shift - 1.0) * s)).to(torch.float32)
    return sigmas * 1000.0, torch.cat([sigmas, torch.zeros(1)])


@torch.no_grad()
def release_latents(
    pipe, image: PIL.Image.Image | torch.Tensor, num_steps: int, guidance_scale: float, num_tokens: int,
    generator: torch.Generator, num_shapes: int = 1, timesteps: list[float] | None = None,
) -> torch.Tensor:
    """The release's denoising loop on an already prepared image (or pixel values)."""
    encoder, device = pipe.image_encoder_dinov2, pipe.transformer.device
    if isinstance(image, torch.Tensor):
        pixels = image
    else:
        pixels = pipe.feature_extractor_dinov2(image, return_tensors="pt").pixel_values
    cond = encoder(pixels.to(device=device, dtype=encoder.dtype)).last_hidden_state
    cond = cond.repeat_interleave(num_shapes, dim=0)
    guided = guidance_scale > 1
    context = torch.cat([torch.zeros_like(cond), cond]) if guided else cond
    shape = (cond.shape[0], num_tokens, pipe.transformer.config.in_channels)
    # Noise is drawn on the generator's device, in the condition's dtype, then moved (diffusers' randn_tensor).
    x = torch.randn(shape, generator=generator, device=generator.device, dtype=cond.dtype).to(device)
    if timesteps is None:
        schedule, sigmas = release_schedule(num_steps, float(pipe.scheduler.config.shift))
    else:
        schedule = torch.tensor(timesteps, dtype=torch.float32)
        sigmas = torch.cat([schedule / 1000.0, torch.zeros(1)])
    schedule, sigmas = schedule.to(device), sigmas.to(device)
    for i, t in enumerate(schedule):
        model_input = torch.cat([x, x]) if guided else x
        v = pipe.transformer(model_input, t.expand(model_input.shape[0]), encoder_hidden_states=context,
                             return_dict=False)[0]
        if guided:
            v_uncond, v_cond = v.chunk(2)
            v = v_uncond + guidance_scale * (v_cond - v_uncond)
        x = (x.float() + (sigmas[i] - sigmas[i + 1]) * v).to(v.dtype)
    return x


@torch.no_grad()
def dense_mesh(
    vae, latent: torch.Tensor, bounds: tuple[float, ...], resolution: int,
    window: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes (level 0) of the decoded field on a dense grid of `resolution` cells per side spanning
    `bounds`, vertices mapped back into `bounds`. Returns vertices (V, 3) and faces (F, 3).

    `window`: per axis (first, last) grid point index; only that box of the grid is decoded. Marching cubes works
    cell by cell, so its vertices there are the whole grid's (a fine grid's surface, checked piece by piece)."""
    lo, hi = np.array(bounds[:3]), np.array(bounds[3:])
    window = window or ((0, resolution),) * 3
    axes = [lo[a] + np.arange(first, last + 1) * (hi[a] - lo[a]) / resolution for a, (first, last) in enumerate(window)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    points = torch.from_numpy(grid).to(device=latent.device, dtype=latent.dtype)[None]
    values = vae.decode(latent[None], points).sample[0, :, 0].float().cpu().numpy()
    vertices, faces, _, _ = measure.marching_cubes(values.reshape([len(axis) for axis in axes]), 0.0)
    first = np.array([first for first, _ in window])
    return (vertices + first) * (hi - lo) / resolution + lo, faces
