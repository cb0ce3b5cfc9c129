"""Drop-in compatibility with the release pipeline: an official script's calls run unchanged on a folder laid out
like the release, and give the release's semantics (`official_reference`, an independent restatement).

fp32 latents must match the reference to 1e-5 and meshes must lie within half a voxel of the reference's dense
marching cubes; fp16 latents (CPU here, CUDA with a CUDA generator in the GPU variant) must match exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from official_reference import dense_mesh, release_latents
from release_layout import rewrite_as_release_folder
from triposg.pipelines.random_init import make_random_pipeline

@pytest.fixture(scope="module")
def release_folder(tmp_path_factory) -> Path:
    """A tiny pipeline saved in the release's layout: its model_index module names, its scheduler config, the
    older VAE class name, 64 latent channels and an even layer count (which the release code accepts)."""
    folder = tmp_path_factory.mktemp("release") / "TripoSG"
    make_random_pipeline(seed=3, latent_channels=64, num_layers=4).save_pretrained(folder)
    rewrite_as_release_folder(folder)
    return folder


def prepared_image() -> PIL.Image.Image:
    """What the release's `prepare_image` hands the pipeline: the object on white, padded to a square with a
    margin of 10% of its long side."""
    image = PIL.Image.new("RGB", (120, 120), "white")
    draw = PIL.ImageDraw.Draw(image)
    draw.ellipse((10, 25, 110, 95), fill=(200, 60, 40))
    draw.rectangle((45, 10, 75, 110), fill=(40, 90, 180))
    return image


def load_like_the_release_script(folder: Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    from triposg.pipelines.pipeline_triposg import TripoSGPipeline  # the release script's import

    pipe: TripoSGPipeline = TripoSGPipeline.from_pretrained(str(folder)).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def within_half_a_voxel(ours: np.ndarray, reference: tuple[np.ndarray, np.ndarray], bounds, resolution: int) -> None:
    """Every vertex of ours within half a voxel of the reference surface's vertices, and every vertex of the
    reference's main piece within half a voxel of ours (our post-processing drops small floating pieces)."""
    half_voxel = 0.5 * (bounds[3] - bounds[0]) / resolution
    vertices, faces = reference
    main_piece = max(trimesh.Trimesh(vertices, faces, process=False).split(only_watertight=False), key=lambda m: m.area)
    to_reference = cKDTree(vertices).query(ours)[0]
    to_ours = cKDTree(ours).query(main_piece.vertices)[0]
    assert to_reference.max() <= half_voxel, (to_reference.max(), half_voxel)
    assert to_ours.max() <= half_voxel, (to_ours.max(), half_voxel)


def test_the_release_script_runs_unchanged_and_gets_the_release_latents(release_folder):
    """`scripts/inference_triposg.py`'s calls, verbatim (seed 42, 50 steps, guidance 7, its mesh building)."""
    device, seed = "cpu", 42
    pipe = load_like_the_release_script(release_folder, device, torch.float32)
    img_pil = prepared_image()
    result = pipe(
        image=img_pil,
        generator=torch.Generator(device=device).manual_seed(seed),
        num_inference_steps=50,
        guidance_scale=7.0,
    )
    outputs = result.samples[0]  # the script reads `.samples[0]` of this call (kept here to check the latents)
    mesh = trimesh.Trimesh(outputs[0].astype(np.float32), np.ascontiguousarray(outputs[1]))
    assert len(mesh.faces) > 0 and outputs[0].dtype == np.float32 and outputs[1].dtype == np.int32

    assert result.preprocessed[0].method == "as-is"  # a prepared image is not re-cropped
    reference = release_latents(pipe, img_pil, 50, 7.0, 2048, torch.Generator(device=device).manual_seed(seed))
    torch.testing.assert_close(result.latents, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("flash", [False, True])
def test_release_keywords_take_the_release_meaning(release_folder, flash):
    pipe = load_like_the_release_script(release_folder)
    image = prepared_image()
    depth_args = (dict(use_flash_decoder=True, flash_octree_depth=5) if flash else
                  dict(use_flash_decoder=False, dense_octree_depth=4, hierarchical_octree_depth=5))
    output = pipe(
        image, num_inference_steps=6, num_tokens=64, timesteps=None, guidance_scale=4.0, num_shapes_per_prompt=2,
        generator=torch.Generator().manual_seed(7), latents=None, attention_kwargs=None,
        callback_on_step_end=None, callback_on_step_end_tensor_inputs=["latents"], bounds=1.005,
        return_dict=True, **depth_args,
    )
    reference = release_latents(pipe, image, 6, 4.0, 64, torch.Generator().manual_seed(7), num_shapes=2)
    assert output.latents.shape == (2, 64, 64) and len(output.samples) == 2
    torch.testing.assert_close(output.latents, reference, rtol=0, atol=1e-5)
    assert not torch.allclose(output.latents[0], output.latents[1])  # two shapes, two noises
    bounds = (-1.005,) * 3 + (1.005,) * 3
    for (vertices, _), latent in zip(output.samples, output.latents):
        within_half_a_voxel(vertices, dense_mesh(pipe.vae, latent, bounds, 32), bounds, 32)


def test_custom_timesteps_and_pixel_tensors(release_folder):
    pipe = load_like_the_release_script(release_folder)
    image = prepared_image()
    pixels = pipe.feature_extractor_dinov2(image, return_tensors="pt").pixel_values
    schedule = [1000.0, 700.0, 400.0, 100.0]
    output = pipe(pixels, timesteps=schedule, num_tokens=32, guidance_scale=3.0,
                  generator=torch.Generator().manual_seed(1), octree_resolution=16)
    reference = release_latents(pipe, image, len(schedule), 3.0, 32, torch.Generator().manual_seed(1),
                                timesteps=schedule)
    torch.testing.assert_close(output.latents, reference, rtol=0, atol=1e-5)
    assert output.preprocessed is None  # pixel values are used as they are


def test_half_precision_loop_rounds_like_the_release(release_folder):
    """fp16 on the CPU: fp32 timesteps, noise drawn in fp16, the release's step rounding: bit-identical."""
    pipe = load_like_the_release_script(release_folder, "cpu", torch.float16)
    image = prepared_image()
    output = pipe(image, num_inference_steps=5, num_tokens=32, guidance_scale=5.0,
                  generator=torch.Generator().manual_seed(3), octree_resolution=16)
    reference = release_latents(pipe, image, 5, 5.0, 32, torch.Generator().manual_seed(3))
    assert output.latents.dtype == torch.float16
    assert torch.equal(output.latents, reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU variant needs CUDA (run it on a lent device)")
def test_gpu_variant_fp16_with_a_cuda_generator(release_folder):
    pipe = load_like_the_release_script(release_folder, "cuda", torch.float16)
    image = prepared_image()
    output = pipe(image=image, generator=torch.Generator(device="cuda").manual_seed(42), num_inference_steps=20,
                  guidance_scale=7.0, num_tokens=256, flash_octree_depth=6)
    reference = release_latents(pipe, image, 20, 7.0, 256, torch.Generator(device="cuda").manual_seed(42))
    assert output.latents.device.type == "cuda" and torch.equal(output.latents, reference)
    bounds = (-1.005,) * 3 + (1.005,) * 3
    within_half_a_voxel(output.samples[0][0], dense_mesh(pipe.vae, output.latents[0], bounds, 64), bounds, 64)


def test_preprocessing_decides_by_the_image(release_folder):
    pipe = load_like_the_release_script(release_folder)
    settings = dict(num_inference_steps=2, num_tokens=16, octree_resolution=16, seed=0)
    photo = PIL.Image.new("RGB", (160, 100), (90, 140, 90))  # not square, green background: a raw photo
    PIL.ImageDraw.Draw(photo).ellipse((50, 20, 110, 80), fill=(220, 200, 30))
    assert pipe(photo, **settings).preprocessed[0].method.startswith("uniform")
    assert pipe(prepared_image(), preprocess=True, **settings).preprocessed[0].method != "as-is"
    assert pipe(prepared_image(), preprocess=False, **settings).preprocessed is None


def test_mixing_both_spellings_is_a_clear_error(release_folder):
    pipe = load_like_the_release_script(release_folder)
    with pytest.raises(ValueError, match="not both"):
        pipe(prepared_image(), octree_resolution=64, flash_octree_depth=6, num_inference_steps=1)
    with pytest.raises(ValueError, match="bounds"):
        pipe(prepared_image(), bounds=(-1.0, 1.0), num_inference_steps=1)
    with pytest.raises(ValueError, match="generators"):
        pipe(prepared_image(), num_shapes_per_prompt=2, generator=[torch.Generator()], num_inference_steps=1)
