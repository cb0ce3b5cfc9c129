"""`TripoSGPipeline`: image → latent tokens by guided flow sampling → SDF → mesh.

Loads a folder laid out like the released `VAST-AI/TripoSG` checkpoint (same component names and
`model_index.json` module names). Inference only: the training stack lives in `training/`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import PIL.Image
import torch
import trimesh
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ..geometry import DEFAULT_BOUNDS, EmptySurfaceError, PostProcessor
from ..geometry.decoding import VolumeDecoder
from ..models import TripoSGDiTModel, TripoSGVAEModel
from ..models.sdf_field import DEFAULT_CHUNK_SIZE
from ..preprocessing import (
    PreprocessResult,
    composite_on_white,
    load_image,
    looks_prepared,
    prepare_as_is,
    preprocess_image,
)
from ..texturing import MeshTexturer, TexturingConfig, TexturingResult
from .generation_config import GenerationDefaults, check_guidance_interval, guided_steps
from .lora import TripoSGLoraLoaderMixin
from .official_args import as_bounds, plan_extraction
from .vae_mesh import latent_to_mesh

ImageInput = PIL.Image.Image | np.ndarray | str


@dataclass
class PreviewEvent:
    """A streamed 3D preview: the coarse mesh of the clean-latent estimate after `step` of `num_steps`.

    `mesh` is None when the estimate has no surface yet (early, very noisy steps).
    """

    step: int
    num_steps: int
    elapsed: float
    mesh: trimesh.Trimesh | None


@dataclass
class TripoSGPipelineOutput(BaseOutput):
    """`samples`: one `(vertices (V, 3) float32, faces (F, 3) int32)` per shape, as the release returns.
    `meshes`: the same as `trimesh.Trimesh`. `latents`: (B, M, C) final latents.
    `preprocessed`: what preprocessing did to each input (image, mask, method; method "as-is" for an image
    already framed on white), None when skipped (`preprocess=False` or pixel tensors).
    `timings`: seconds per stage ("preprocess", "encode", "sample", "extract", and "texture" when textured).
    `texturing`: with `texture=True`, one `TexturingResult` per mesh (the recovered camera, the share of surface seen);
    `meshes` are then the coloured meshes (sRGB vertex colours), `samples` the same geometry.
    """

    samples: list[tuple[np.ndarray, np.ndarray]]
    meshes: list[trimesh.Trimesh]
    latents: torch.Tensor
    preprocessed: list[PreprocessResult] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    texturing: list[TexturingResult] | None = None


class TripoSGPipeline(DiffusionPipeline, TripoSGLoraLoaderMixin):
    """Image-to-3D with TripoSG.

    Components (names as in the release): `vae`, `transformer`, `scheduler`, `image_encoder_dinov2`
    (transformers `Dinov2Model`), `feature_extractor_dinov2` (`BitImageProcessor`), and optionally
    `image_encoder_clip` (`CLIPVisionModelWithProjection`) with `feature_extractor_clip` for models
    with the paper's global CLIP branch (`transformer.config.use_cross_attention_2`).
    """

    model_cpu_offload_seq = "image_encoder_clip->image_encoder_dinov2->transformer->vae"
    _optional_components = ["image_encoder_clip", "feature_extractor_clip"]
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        vae: TripoSGVAEModel,
        transformer: TripoSGDiTModel,
        scheduler: Any,
        image_encoder_dinov2: Any,
        feature_extractor_dinov2: Any,
        image_encoder_clip: Any = None,
        feature_extractor_clip: Any = None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
            image_encoder_dinov2=image_encoder_dinov2,
            feature_extractor_dinov2=feature_extractor_dinov2,
            image_encoder_clip=image_encoder_clip,
            feature_extractor_clip=feature_extractor_clip,
        )

    # ------------------------------------------------------------------ loading and saving

    @property
    def generation_defaults(self) -> GenerationDefaults:
        """The settings `__call__` uses for arguments left out: the folder's `generation_config.json` when the
        pipeline was loaded from one that has it; a loaded folder without it gets the release's (50 steps, guidance
        7, 2048 tokens, octree 512: `GenerationDefaults.release()`); a pipeline built in memory, `GenerationDefaults()`
        (octree 256). Assign a `GenerationDefaults` to change them; `save_pretrained` writes them."""
        return getattr(self, "_generation_defaults", None) or GenerationDefaults()

    @generation_defaults.setter
    def generation_defaults(self, value: GenerationDefaults) -> None:
        if not isinstance(value, GenerationDefaults):
            raise TypeError(f"generation_defaults must be a GenerationDefaults, got {type(value).__name__}")
        self._generation_defaults = value

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "TripoSGPipeline":
        """`DiffusionPipeline.from_pretrained`, plus the folder's (or hub repo's) `generation_config.json`."""
        pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        pipe.generation_defaults = GenerationDefaults.from_pretrained(pretrained_model_name_or_path)
        return pipe

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """`DiffusionPipeline.save_pretrained`, plus `generation_config.json` when defaults were set."""
        super().save_pretrained(save_directory, **kwargs)
        if getattr(self, "_generation_defaults", None) is not None:
            self._generation_defaults.save(save_directory)

    # ------------------------------------------------------------------ memory switches

    def with_scheduler(self, scheduler=None) -> "TripoSGPipeline":
        """A pipeline sharing this one's weights with a scheduler of its own (`scheduler`, or a copy of this one's):
        a scheduler keeps per-run state (timesteps, step index), so concurrent runs must not share one."""
        own = scheduler if scheduler is not None else copy.deepcopy(self.scheduler)
        run = type(self)(**{**self.components, "scheduler": own})
        run.generation_defaults = self.generation_defaults  # the loaded folder's settings travel with the weights
        return run

    def enable_vae_slicing(self) -> None:
        """Decode a batch of shapes one at a time (diffusers' name; see `TripoSGVAEModel.enable_slicing`)."""
        self.vae.enable_slicing()

    def disable_vae_slicing(self) -> None:
        self.vae.disable_slicing()

    # ------------------------------------------------------------------ pieces the loop uses

    @torch.no_grad()
    def encode_image(
        self, images: list[PIL.Image.Image] | torch.Tensor, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Preprocessed RGB images (or DINOv2 pixel values (B, 3, H, W)) → DINOv2 tokens (B, S, 1024 for dinov2-large) and, when the model
        has the CLIP branch, CLIP global embeddings as one token (B, 1, D_clip); else None."""
        dtype = self.image_encoder_dinov2.dtype
        if isinstance(images, torch.Tensor):
            pixels = images
        else:
            pixels = self.feature_extractor_dinov2(images=images, return_tensors="pt").pixel_values
        local = self.image_encoder_dinov2(pixels.to(device=device, dtype=dtype)).last_hidden_state
        global_tokens = None
        if self.transformer.config.use_cross_attention_2:
            if isinstance(images, torch.Tensor):
                raise ValueError(
                    "this model also has the CLIP branch, which needs the images themselves: pass PIL images, "
                    "arrays or paths instead of a pixel tensor"
                )
            if self.image_encoder_clip is None or self.feature_extractor_clip is None:
                raise ValueError(
                    "this transformer has the CLIP branch (use_cross_attention_2=True) but the pipeline has no "
                    "image_encoder_clip / feature_extractor_clip; load a folder that includes them"
                )
            clip_pixels = self.feature_extractor_clip(images=images, return_tensors="pt").pixel_values
            clip_dtype = self.image_encoder_clip.dtype
            global_tokens = self.image_encoder_clip(clip_pixels.to(device=device, dtype=clip_dtype)).image_embeds[:, None]
        return local, global_tokens

    def prepare_latents(
        self,
        batch_size: int,
        num_tokens: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Initial noise (B, M, C) in `dtype`, drawn as diffusers' `randn_tensor` draws it: on the generator's
        device (a CPU generator gives the same noise on every device), then moved to `device`."""
        shape = (batch_size, num_tokens, self.transformer.config.in_channels)
        if latents is not None:
            if tuple(latents.shape) != shape:
                raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
            return (latents * self.scheduler.init_noise_sigma).to(device=device, dtype=dtype)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(
                f"{len(generator)} generators were given for {batch_size} shapes: pass one generator per shape "
                "(images × num_shapes_per_prompt), or a single one"
            )
        latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        return latents * self.scheduler.init_noise_sigma

    @torch.no_grad()
    def latents_to_meshes(
        self,
        latents: torch.Tensor,
        octree_resolution: int = 256,
        bounds: Sequence[float] = DEFAULT_BOUNDS,
        extraction: str | VolumeDecoder = "tracking",
        postprocess: PostProcessor | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        query_precision: str = "auto",
        **volume_kwargs,
    ) -> list[trimesh.Trimesh | None]:
        """Decode (B, M, C) latents to meshes; a shape whose field never crosses zero gives None.

        `query_precision`: "auto" (bf16 on CPUs where it is fast), "full" or "bf16". `volume_kwargs` go to the
        volume decoder (e.g. `probe_resolution` for tracking, `coarse_resolution` for hierarchical extraction).
        """
        meshes = []
        for latent in latents:
            mesh = latent_to_mesh(
                self.vae, latent, octree_resolution, bounds, extraction, chunk_size, query_precision, **volume_kwargs
            )
            meshes.append(postprocess(mesh) if postprocess is not None and mesh is not None else mesh)
        return meshes

    # ------------------------------------------------------------------ call

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput | list[ImageInput] | torch.Tensor,
        num_inference_steps: int | None = None,
        num_tokens: int | None = None,
        timesteps: Sequence[float] | None = None,
        guidance_scale: float | None = None,
        num_shapes_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        attention_kwargs: dict | None = None,
        callback_on_step_end: Callable[["TripoSGPipeline", int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        bounds: float | Sequence[float] = DEFAULT_BOUNDS,
        dense_octree_depth: int | None = None,
        hierarchical_octree_depth: int | None = None,
        max_num_expanded_coords: float | None = None,
        flash_octree_depth: int | None = None,
        use_flash_decoder: bool | None = None,
        return_dict: bool = True,
        *,
        seed: int | None = None,
        sigmas: Sequence[float] | None = None,
        guidance_interval: Sequence[float] | None = None,
        octree_resolution: int | None = None,
        extraction: str | VolumeDecoder | None = None,
        query_precision: str | None = None,
        preprocess: bool | None = None,
        background: str = "auto",
        foreground_ratio: float = 0.9,
        remove_floaters: bool = True,
        faces: int | None = None,
        preview_every: int = 0,
        preview_callback: Callable[[PreviewEvent], None] | None = None,
        preview_resolution: int = 32,
        output_type: str = "mesh",
        texture: bool | TexturingConfig = False,
    ) -> TripoSGPipelineOutput | tuple:
        """Generate `num_shapes_per_prompt` meshes per input image.

        The positional order and the arguments up to `return_dict` are the release pipeline's, with its
        meaning; the keyword-only ones after it are this package's additions (see the README, "Coming from the
        official code").

        Args:
            image: a PIL image, array, path, or a list of them; or DINOv2 pixel values (B, 3, 224, 224) as the
                release accepts (used as they are, no preprocessing).
            num_inference_steps, guidance_scale, num_tokens: left out (None), each comes from
                `generation_defaults` (the loaded folder's `generation_config.json`, else the release's 50 / 7.0 /
                2048). guidance_scale: classifier-free guidance (off when ≤ 1). num_tokens: latent tokens M.
            timesteps: a custom schedule (timesteps in (0, 1000], decreasing), used as given. sigmas: custom
                unshifted noise levels, shifted by the scheduler (keyword-only).
            guidance_interval: (start, stop), the share of the steps that are guided, [int(start·N), int(stop·N)) as
                diffusers' guiders count them; the other steps run the conditional half alone (about half the cost).
                Default from `generation_defaults` ((0, 1), every step, for the release) (keyword-only).
            num_shapes_per_prompt: shapes per image (each image's embedding repeated, new noise for each).
            generator: torch generator(s), on any device (noise is drawn on the generator's device, as diffusers
                does); a list gives one per shape. seed: builds a CPU generator (the same shape on every device).
            latents: (B·num_shapes_per_prompt, M, C) start noise.
            attention_kwargs: passed to the transformer (cross-attention scales).
            callback_on_step_end: diffusers-style `f(pipe, step, timestep, {"latents": ...}) -> dict`; a
                returned "latents" replaces the current latents.
            bounds: the box the field is sampled in: six numbers, or one number b for [-b, b]³.
            dense_octree_depth, hierarchical_octree_depth, flash_octree_depth, use_flash_decoder: the release's
                extraction arguments (2**depth cells per side): `use_flash_decoder=True` maps onto surface
                tracking (the fastest path here), False onto hierarchical refinement. max_num_expanded_coords
                (the release's memory cap on refined cells) is accepted and has no effect: the field is queried in
                fixed-size chunks here. Or, instead of them:
            octree_resolution: cells per side of the final grid (default from `generation_defaults`: 512 for a
                release folder), and extraction: "tracking" (default: probe coarse cells, follow the surface; the same
                surface as dense), "hierarchical" (refine a dense coarse grid near the surface), "dense", or a
                volume decoder of your own (`decoder(sdf_fn, bounds, resolution, device=, dtype=, progress=)` →
                `VolumeResult`, like `triposg.geometry.SurfaceTrackingDecoder(...)`).
            query_precision: the field queries' precision: "full" (the weights' own), "auto" (bf16 weights on a
                CPU where bf16 is measured faster) or "bf16"; default from `generation_defaults` ("full" for the
                release, "auto" for models checked with it, such as the embedded default).
            preprocess: True: remove the background, crop and pad (raw photos); False: use the images as they
                are; None (default): as they are when already framed (square, opaque, white outer ring, what the
                release's `prepare_image` makes), else preprocessed.
            background: how preprocessing finds the object: "auto" (alpha, rembg, plain background, then the
                offline photo cut-out), or force "alpha", "rembg", "uniform", "grabcut" or "none".
            foreground_ratio: share of the square the foreground's long side fills when preprocessing (paper 0.9).
            remove_floaters, faces: post-processing (drop small components; reduce to `faces` faces).
            preview_every, preview_callback, preview_resolution: every k steps decode the current clean-latent
                estimate into a coarse mesh and pass a `PreviewEvent` (for streaming UIs).
            output_type: "mesh" (default), or "latent" to stop after sampling (no extraction; `samples` and
                `meshes` empty, `latents` filled) and decode later with `latents_to_meshes`.
            texture: True (or a `TexturingConfig`) colours each mesh from its preprocessed image (`texture_meshes`;
                vertex colours, offline, ~1 s for 50k faces on a CPU); the results are in `texturing`.
        Returns:
            `TripoSGPipelineOutput`, or `(samples, meshes)` when `return_dict=False`.

        The stages are methods of their own: `check_inputs`, `encode_condition`, `prepare_latents`,
        `sample_latents` (the denoising loop; set `pipe.interrupt = True`, e.g. from a callback, to stop after the
        current step), `latents_to_meshes` and `texture_meshes`.
        """
        defaults = self.generation_defaults
        num_inference_steps = defaults.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = defaults.guidance_scale if guidance_scale is None else guidance_scale
        num_tokens = defaults.num_tokens if num_tokens is None else num_tokens
        query_precision = defaults.query_precision if query_precision is None else query_precision
        guidance_interval = check_guidance_interval(
            defaults.guidance_interval if guidance_interval is None else guidance_interval)
        self.check_inputs(num_inference_steps, guidance_scale, num_tokens, num_shapes_per_prompt, generator, seed,
                          callback_on_step_end_tensor_inputs, output_type, preview_every, texture)
        if texture is not False and isinstance(image, torch.Tensor):
            raise ValueError("texture=True needs the images themselves (their colours), not DINOv2 pixel values: "
                             "pass PIL images, arrays or paths")
        plan = plan_extraction(octree_resolution, extraction, defaults.octree_resolution, dense_octree_depth,
                               hierarchical_octree_depth, flash_octree_depth, use_flash_decoder)
        bounds = as_bounds(bounds)
        device = self._execution_device
        timings: dict[str, float] = {}
        if seed is not None:
            generator = torch.Generator().manual_seed(seed)
        self.interrupt = False

        # 1. Preprocess the images
        start = time.perf_counter()
        pixels, prepared = self._prepare_images(image, preprocess, foreground_ratio, background)
        timings["preprocess"] = time.perf_counter() - start

        # 2. Encode the condition
        start = time.perf_counter()
        cond, cond_2 = self.encode_condition(pixels, device, num_shapes_per_prompt, guidance_scale > 1.0)
        timings["encode"] = time.perf_counter() - start

        # 3. Timesteps, initial noise and the denoising loop
        start = time.perf_counter()
        if timesteps is not None or sigmas is not None:
            self.scheduler.set_timesteps(timesteps=timesteps, sigmas=sigmas, device=device, num_tokens=num_tokens)
        else:
            self.scheduler.set_timesteps(num_inference_steps, device=device, num_tokens=num_tokens)
        latents = self.prepare_latents(len(pixels) * num_shapes_per_prompt, num_tokens, self.transformer.dtype,
                                       device, generator, latents)

        def preview(step: int, clean_estimate: torch.Tensor) -> None:
            mesh = self.latents_to_meshes(clean_estimate[:1], preview_resolution, bounds, self.preview_extraction,
                                          query_precision=query_precision)[0]
            preview_callback(PreviewEvent(step, len(self.scheduler.timesteps), time.perf_counter() - start, mesh))

        latents = self.sample_latents(
            latents, cond, cond_2, guidance_scale, generator, attention_kwargs, callback_on_step_end,
            callback_on_step_end_tensor_inputs, preview_every if preview_callback is not None else 0, preview,
            guidance_interval,
        )
        timings["sample"] = time.perf_counter() - start
        if output_type == "latent":
            self.maybe_free_model_hooks()
            if not return_dict:
                return [], []
            return TripoSGPipelineOutput(samples=[], meshes=[], latents=latents, preprocessed=prepared, timings=timings)

        # 4. Decode the field and extract meshes
        start = time.perf_counter()
        post = PostProcessor(remove_floaters=remove_floaters, target_faces=faces)
        meshes = self.latents_to_meshes(latents, plan.resolution, bounds, plan.method, post,
                                        query_precision=query_precision, **plan.volume_kwargs)
        timings["extract"] = time.perf_counter() - start
        missing = [i for i, m in enumerate(meshes) if m is None]
        if missing:
            raise EmptySurfaceError(
                f"no surface was found for shape(s) {missing}: the decoded field never crosses zero. "
                "Try another seed, more inference steps or a different guidance scale."
            )
        samples = [(np.asarray(m.vertices, dtype=np.float32), np.ascontiguousarray(m.faces, dtype=np.int32))
                   for m in meshes]
        self.maybe_free_model_hooks()

        # 5. Colour the meshes from their images
        texturing = None
        if texture is not False:
            start = time.perf_counter()
            config = texture if isinstance(texture, TexturingConfig) else None
            texturing = self.texture_meshes(meshes, prepared if prepared is not None else pixels,
                                            num_shapes_per_prompt, config)
            meshes = [result.mesh for result in texturing]
            timings["texture"] = time.perf_counter() - start
        if not return_dict:
            return samples, meshes
        return TripoSGPipelineOutput(samples=samples, meshes=meshes, latents=latents, preprocessed=prepared,
                                     timings=timings, texturing=texturing)

    # ------------------------------------------------------------------ stages

    # The volume decoder of streamed previews (coarse grids: surface tracking is the fastest there).
    preview_extraction = "tracking"
    # Set to True (from a callback, another thread, a UI's stop button) to end the denoising loop after this step.
    interrupt = False
    OUTPUT_TYPES = ("mesh", "latent")

    def check_inputs(
        self,
        num_inference_steps: int,
        guidance_scale: float,
        num_tokens: int,
        num_shapes_per_prompt: int,
        generator,
        seed: int | None,
        callback_on_step_end_tensor_inputs: Sequence[str],
        output_type: str,
        preview_every: int,
        texture: bool | TexturingConfig = False,
    ) -> None:
        """Refuse bad arguments before any work, with the fix in the message."""
        for name, value in (("num_inference_steps", num_inference_steps), ("num_tokens", num_tokens),
                            ("num_shapes_per_prompt", num_shapes_per_prompt)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(guidance_scale, (int, float)) or guidance_scale < 0:
            raise ValueError(f"guidance_scale must be a number >= 0 (1 or less switches guidance off), got {guidance_scale!r}")
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs {unknown} are not available; choose from "
                             f"{self._callback_tensor_inputs}")
        if output_type not in self.OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {self.OUTPUT_TYPES}, got {output_type!r}")
        if not isinstance(preview_every, int) or preview_every < 0:
            raise ValueError(f"preview_every must be an integer >= 0 (0: no previews), got {preview_every!r}")
        if not isinstance(texture, (bool, TexturingConfig)):
            raise ValueError(f"texture must be True, False or a TexturingConfig, got {texture!r}")
        if texture is not False and output_type == "latent":
            raise ValueError("texture=True colours meshes, but output_type='latent' makes none: use output_type='mesh', "
                             "or call texture_meshes after latents_to_meshes")

    @torch.no_grad()
    def encode_condition(
        self, pixels: list[PIL.Image.Image] | torch.Tensor, device: torch.device, num_shapes_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`encode_image`, each image's tokens repeated `num_shapes_per_prompt` times, in the transformer's dtype;
        with guidance, zeros (the release's unconditional context) first: batch order [uncond, cond]."""
        cond, cond_2 = self.encode_image(pixels, device)
        tokens = [cond, cond_2] if cond_2 is not None else [cond]
        tokens = [t.repeat_interleave(num_shapes_per_prompt, dim=0).to(self.transformer.dtype) for t in tokens]
        if do_classifier_free_guidance:
            tokens = [torch.cat([torch.zeros_like(t), t]) for t in tokens]
        return tokens[0], tokens[1] if len(tokens) > 1 else None

    @torch.no_grad()
    def sample_latents(
        self,
        latents: torch.Tensor,
        cond: torch.Tensor,
        cond_2: torch.Tensor | None,
        guidance_scale: float,
        generator: torch.Generator | list[torch.Generator] | None = None,
        attention_kwargs: dict | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        preview_every: int = 0,
        preview: Callable[[int, torch.Tensor], None] | None = None,
        guidance_interval: Sequence[float] = (0.0, 1.0),
    ) -> torch.Tensor:
        """The denoising loop over `scheduler.timesteps` (set them first) from the noise `latents` (B, M, C), with
        guidance when `cond` holds [uncond, cond] on the steps `guidance_interval` selects (the others run the
        conditional rows alone). `preview(step, clean_estimate)` is called every `preview_every` steps but the
        last. Stops early, keeping the current latents, once `self.interrupt` is set."""
        batch = latents.shape[0]
        do_cfg = cond.shape[0] == 2 * batch
        schedule = self.scheduler.timesteps
        guided = guided_steps(len(schedule), tuple(guidance_interval)) if do_cfg else range(0)
        # The condition is the same at every step: its cross-attention keys/values are projected once (for the
        # conditional rows alone too, when some steps are unguided).
        rows = {True: (cond, cond_2), False: (cond[-batch:], cond_2[-batch:] if cond_2 is not None else None)}
        contexts = {guide: self.transformer.cache_context(*rows[guide], attention_kwargs)
                    for guide in {i in guided for i in range(len(schedule))}}
        with self.progress_bar(total=len(schedule)) as progress:
            for i, t in enumerate(schedule):
                if self.interrupt:
                    break
                guide = i in guided
                model_input = torch.cat([latents] * 2) if guide else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                # The timestep stays float32 (as released): the transformer embeds it in fp32.
                t_batch = t.expand(model_input.shape[0]).to(latents.device)
                prediction = self.transformer(
                    model_input, t_batch, encoder_hidden_states=rows[guide][0], encoder_hidden_states_2=rows[guide][1],
                    attention_kwargs=attention_kwargs, context_cache=contexts[guide],
                ).sample
                if guide:
                    uncond_pred, cond_pred = prediction.chunk(2)
                    prediction = uncond_pred + guidance_scale * (cond_pred - uncond_pred)
                step = self.scheduler.step(prediction, t, latents, generator=generator)
                latents = step.prev_sample

                if callback_on_step_end is not None:
                    local_vars = {"latents": latents}
                    callback_kwargs = {k: local_vars[k] for k in callback_on_step_end_tensor_inputs}
                    result = callback_on_step_end(self, i, t, callback_kwargs) or {}
                    latents = result.get("latents", latents)
                if preview is not None and preview_every > 0 and (i + 1) % preview_every == 0 and i < len(schedule) - 1:
                    preview(i + 1, step.pred_original_sample)
                progress.update()
        return latents

    def texture_meshes(
        self,
        meshes: Sequence[trimesh.Trimesh],
        images: Sequence[PreprocessResult | PIL.Image.Image],
        num_shapes_per_prompt: int = 1,
        config: TexturingConfig | None = None,
    ) -> list[TexturingResult]:
        """Colour each mesh from the preprocessed image it was generated from (`triposg.texturing`): mesh i from
        image i // `num_shapes_per_prompt`, as `__call__` orders them. `images`: the output's `preprocessed` (their
        masks are used), or framed images on white. Returns one `TexturingResult` per mesh (`.mesh` is coloured)."""
        if len(meshes) != len(images) * num_shapes_per_prompt:
            raise ValueError(f"{len(meshes)} meshes for {len(images)} images × {num_shapes_per_prompt} shapes each: "
                             "pass the images the meshes were generated from, in order")
        texturer = MeshTexturer(config)
        return [texturer(mesh, images[i // num_shapes_per_prompt]) for i, mesh in enumerate(meshes)]

    def _prepare_images(
        self, image: ImageInput | list[ImageInput] | torch.Tensor, preprocess: bool | None, foreground_ratio: float,
        background: str = "auto",
    ) -> tuple[list[PIL.Image.Image] | torch.Tensor, list[PreprocessResult] | None]:
        """The images to encode (framed RGB images, or the caller's pixel tensor) and what preprocessing did."""
        if isinstance(image, torch.Tensor):
            if image.ndim == 3:
                image = image[None]
            if image.ndim != 4 or image.shape[1] != 3:
                raise ValueError(
                    f"an image tensor must be DINOv2 pixel values (B, 3, H, W), got shape {tuple(image.shape)}; "
                    "pass PIL images, arrays or paths to have them preprocessed"
                )
            if preprocess:
                raise ValueError("preprocess=True needs images, not pixel values: pass PIL images, arrays or paths")
            return image, None
        images = image if isinstance(image, list) else [image]
        if not images:
            raise ValueError("no image given")
        if preprocess is False:
            return [composite_on_white(load_image(img)) for img in images], None
        prepared = []
        for img in images:
            loaded = load_image(img) if preprocess is None else img
            if preprocess is None and looks_prepared(loaded):
                prepared.append(prepare_as_is(loaded))
            else:
                prepared.append(preprocess_image(loaded, foreground_ratio=foreground_ratio, background=background))
        return [p.image for p in prepared], prepared
