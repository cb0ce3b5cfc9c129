"""Drop-in compatibility with the release pipeline: an official script's calls run unchanged on a folder laid out
like the release, and give the release's semantics (`official_reference`, an independent restatement).

fp32 latents must match the reference to 1e-5 and meshes must lie within half a voxel of the reference's dense
marching cubes; fp16 latents (CPU here, CUDA with a CUDA generator in the GPU variant) must match exactly.
The GPU variants (`-k cuda`) are run on a lent device by `benchmarks/gpu_official_compat.sh`.
"""

from __future__ import annotations

import re
import subprocess
import sys
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
from triposg.pipelines.pipeline_triposg import TripoSGPipeline  # the release script's import
from triposg.pipelines.random_init import add_sphere_prior, make_random_pipeline

@pytest.fixture(scope="module")
def release_folder(tmp_path_factory) -> Path:
    """A tiny pipeline saved in the release's layout: its model_index module names, its scheduler config, the
    older VAE class name, 64 latent channels and an even layer count (which the release code accepts)."""
    folder = tmp_path_factory.mktemp("release") / "TripoSG"
    pipe = make_random_pipeline(seed=3, latent_channels=64, num_layers=4, sphere_prior=False)
    # A small, nearly round surface (weak latent bumps, no inner pockets): the release's 512 cells per side stay
    # cheap here, and a column of the dense grid crosses it exactly twice.
    add_sphere_prior(pipe.vae, radius=0.3, perturbation=0.02)
    with torch.no_grad():  # the DiT's output layer starts at zero (velocity 0: every loop would return its noise)
        pipe.transformer.proj_out.weight.normal_(std=0.05, generator=torch.Generator().manual_seed(3))
    pipe.save_pretrained(folder)
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
    pipe: TripoSGPipeline = TripoSGPipeline.from_pretrained(str(folder)).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_triposg(pipe, img_pil, seed, num_inference_steps=50, guidance_scale=7.0):
    """What an official user's script does with a prepared image, line for line: the release script's call (its
    defaults: 50 steps, guidance 7; octree depths left out) and its mesh building."""
    outputs = pipe(
        image=img_pil,
        generator=torch.Generator(device=pipe.device).manual_seed(seed),
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
    ).samples[0]
    mesh = trimesh.Trimesh(outputs[0].astype(np.float32), np.ascontiguousarray(outputs[1]))
    return mesh


def record_extraction(pipe) -> list:
    """Spy on `pipe.latents_to_meshes` (the script reads only the mesh): records (latents, resolution) per call."""
    calls, extract = [], pipe.latents_to_meshes

    def spy(latents, octree_resolution, *args, **kwargs):
        calls.append((latents.clone(), octree_resolution))
        return extract(latents, octree_resolution, *args, **kwargs)

    pipe.latents_to_meshes = spy
    return calls


def check_windows_of_the_dense_surface(vae, latent, vertices, bounds, resolution, width: int = 8) -> float:
    """Our vertices against the reference's dense marching cubes at `resolution`, in three columns of `width`
    cells through the centre (one along each axis; each crosses the surface twice): every reference vertex within
    half a voxel of ours, and each of ours inside a column within half a voxel of the reference's there.
    Returns the largest distance found."""
    half_voxel = 0.5 * (bounds[3] - bounds[0]) / resolution
    lo, spacing = np.array(bounds[:3]), (np.array(bounds[3:]) - np.array(bounds[:3])) / resolution
    centre, largest = resolution // 2, 0.0
    for axis in range(3):
        window = [(centre - width // 2, centre + width // 2)] * 3
        window[axis] = (0, resolution)
        reference, _ = dense_mesh(vae, latent, bounds, resolution, tuple(window))
        box_lo = lo + np.array([first for first, _ in window]) * spacing + 1e-4
        box_hi = lo + np.array([last for _, last in window]) * spacing - 1e-4
        ours = vertices[np.all((vertices >= box_lo) & (vertices <= box_hi), axis=1)]
        assert len(reference) > 0 and len(ours) > 0
        to_ours = cKDTree(vertices).query(reference)[0].max()
        to_reference = cKDTree(reference).query(ours)[0].max()
        assert max(to_ours, to_reference) <= half_voxel, (axis, to_ours, to_reference, half_voxel)
        largest = max(largest, to_ours, to_reference)
    return largest


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


RELEASE_SCRIPT_CASES = [
    pytest.param("cpu", torch.float32, id="cpu-fp32"),
    # The GPU variant (the release script's own device and dtype), for a session lent a CUDA device:
    # `bash benchmarks/gpu_official_compat.sh`.
    pytest.param("cuda", torch.float16, id="cuda-fp16", marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="the GPU variant needs CUDA (run it on a lent device)")),
]


@pytest.mark.parametrize("device, dtype", RELEASE_SCRIPT_CASES)
def test_the_release_script_runs_unchanged_and_gets_the_release_result(release_folder, device, dtype):
    """The release script's loading line and `run_triposg` as written (seed 42, 50 steps, guidance 7, 2048
    tokens, no octree arguments: 512 cells per side), against the restatement: fp32 latents to 1e-5, fp16 latents
    bit for bit, the mesh within half a voxel of the dense marching cubes at 512."""
    pipe: TripoSGPipeline = TripoSGPipeline.from_pretrained(str(release_folder)).to(device, dtype)
    extraction = record_extraction(pipe)
    img_pil = prepared_image()
    mesh = run_triposg(pipe, img_pil, seed=42)

    assert len(mesh.faces) > 0 and mesh.is_watertight
    (latents, resolution), = extraction
    assert resolution == 512  # the release's flash_octree_depth=9
    reference = release_latents(pipe, img_pil, 50, 7.0, 2048, torch.Generator(device=pipe.device).manual_seed(42))
    assert latents.device.type == device and latents.dtype == dtype
    noise = torch.randn(latents.shape, generator=torch.Generator(device=pipe.device).manual_seed(42),
                        device=pipe.device, dtype=dtype)
    assert (latents - noise).abs().mean() > 0.1  # the sampling moved the noise: the comparison below has teeth
    print(f"{device} {dtype}: latents max |ours - restatement| = {(latents - reference).abs().max().item():.3g}")
    if dtype == torch.float32:
        torch.testing.assert_close(latents, reference, rtol=0, atol=1e-5)
    else:
        assert torch.equal(latents, reference)
    bounds = (-1.005,) * 3 + (1.005,) * 3
    distance = check_windows_of_the_dense_surface(pipe.vae, latents[0], np.asarray(mesh.vertices), bounds, 512)
    print(f"{device} {dtype}: mesh max distance to the dense surface = {distance:.3g} (half a voxel: {1.005 / 512:.3g})")


def test_a_prepared_image_is_used_as_it_is(release_folder):
    pipe = load_like_the_release_script(release_folder)
    output = pipe(image=prepared_image(), num_inference_steps=1, num_tokens=16, octree_resolution=16,
                  generator=torch.Generator().manual_seed(0))
    assert output.preprocessed[0].method == "as-is"  # not re-cropped
    samples = output.samples[0]
    assert samples[0].dtype == np.float32 and samples[1].dtype == np.int32  # as the release returns them


@pytest.mark.parametrize("flash", [False, True])
def test_release_keywords_take_the_release_meaning(release_folder, flash):
    pipe = load_like_the_release_script(release_folder)
    image = prepared_image()
    depth_args = (dict(use_flash_decoder=True, flash_octree_depth=5) if flash else
                  dict(use_flash_decoder=False, dense_octree_depth=4, hierarchical_octree_depth=5,
                        max_num_expanded_coords=1e8))
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


def test_the_gpu_check_script_runs_the_gpu_variants():
    """`benchmarks/gpu_official_compat.sh` (for a session lent a GPU; it cannot run here) is valid bash, and its
    `-k` selects exactly the CUDA variants of this file."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_official_compat.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    selection = re.search(r'-k "([^"]+)"', script.read_text()).group(1)
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider", "-k", selection, __file__],
        capture_output=True, text=True, cwd=Path(__file__).parent,
    ).stdout
    selected = sorted(line.split("::", 1)[1] for line in collected.splitlines() if "::" in line)
    assert selected == ["test_gpu_variant_fp16_with_a_cuda_generator",
                        "test_the_release_script_runs_unchanged_and_gets_the_release_result[cuda-fp16]"], collected
