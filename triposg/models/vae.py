"""TripoSG's SDF VAE (paper §3.3): a 3DShape2VecSet-style set autoencoder, loadable from the release.

Encoder: the latent queries are M of the input surface points (random 4·M candidates, then
farthest-point sampling), so any M works (512, 2048, 4096) without positional encoding. Point features
are `[frequency_embed(xyz), normal]`; one cross-attention block from the queries to all points, then
self-attention blocks. `quant` gives a diagonal Gaussian of 64 channels per token.

Decoder: `post_quant`, self-attention over the latent tokens (once per shape), then one cross-attention
block from embedded query xyz to the tokens and a linear head. The released network's raw output is
SDF-like (positive outside); `decode` returns it **negated**, positive inside and negative outside, the
convention every extraction path of this project uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from .embeddings import FrequencyPointEmbedding
from .fps import farthest_point_sampling
from .transformer import DiTBlock, run_block

INITIAL_LOGVAR = -6.0  # initial posterior log-variance of a fresh VAE (see initialize_weights)


class DiagonalGaussian:
    """Diagonal Gaussian over latent tokens. `parameters`: (B, M, 2·C) = [mean, logvar] on the last dim."""

    def __init__(self, parameters: torch.Tensor, deterministic: bool = False):
        self.mean, logvar = parameters.chunk(2, dim=-1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.deterministic = deterministic
        self.std = torch.zeros_like(self.mean) if deterministic else torch.exp(0.5 * self.logvar)
        self.var = self.std.pow(2)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, M, C) reparameterised sample."""
        # Draw where the generator lives (a CPU generator with a CUDA model is the common case), then move.
        device = generator.device if generator is not None else self.mean.device
        noise = torch.randn(self.mean.shape, generator=generator, device=device, dtype=self.mean.dtype)
        return self.mean + self.std * noise.to(self.mean.device)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """(B,) KL divergence to N(0, I), averaged over tokens and channels (scale-free across M)."""
        if self.deterministic:
            return torch.zeros(self.mean.shape[0], device=self.mean.device)
        kl = 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar)
        return kl.mean(dim=(1, 2))


@dataclass
class TripoSGEncoderOutput(BaseOutput):
    """`latent_dist`: the posterior. `query_indices`: (B, M) which input points became latent queries."""

    latent_dist: DiagonalGaussian
    query_indices: torch.Tensor | None = None


@dataclass
class TripoSGDecoderOutput(BaseOutput):
    """`sample`: (B, Q, 1) decoded field, positive inside and negative outside."""

    sample: torch.Tensor


@dataclass
class QueryAttention:
    """`logits`: (B, H, Q, M) query cross-attention scores; `token_points`: (B, M, 6) xyz + normal of the input
    point each token started from (the farthest-point-sampled surface point of its encoder query)."""

    logits: torch.Tensor
    token_points: torch.Tensor


class TripoSGEncoder(nn.Module):
    """Point cloud (B, N, in_dim) → (B, M, width) tokens."""

    def __init__(self, in_dim: int, width: int, heads: int, num_layers: int):
        super().__init__()
        self.proj_in = nn.Linear(in_dim, width)
        cross = DiTBlock(width, heads, 4 * width, self_attention=False, cross_attention_dim=width,
                         qk_norm=False, cross_attention_norm=True)
        self_blocks = [DiTBlock(width, heads, 4 * width, qk_norm=False) for _ in range(num_layers)]
        self.blocks = nn.ModuleList([cross, *self_blocks])
        self.norm_out = nn.LayerNorm(width)  # plain, in the weights' dtype, as released
        self.gradient_checkpointing = False

    def forward(self, point_features: torch.Tensor, query_indices: torch.Tensor) -> torch.Tensor:
        """`point_features`: (B, N, in_dim); `query_indices`: (B, M) → (B, M, width)."""
        x = self.proj_in(point_features)  # (B, N, D)
        h = torch.gather(x, 1, query_indices[..., None].expand(-1, -1, x.shape[-1]))  # (B, M, D)
        h, _ = run_block(self, self.blocks[0], h, x)
        for block in self.blocks[1:]:
            h, _ = run_block(self, block, h)
        return self.norm_out(h)


class TripoSGDecoder(nn.Module):
    """Latent tokens and query points → raw field values (SDF-like, positive outside)."""

    def __init__(self, query_dim: int, width: int, heads: int, num_layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            [DiTBlock(width, heads, 4 * width, qk_norm=False) for _ in range(num_layers)]
            + [DiTBlock(width, heads, 4 * width, self_attention=False, cross_attention_dim=width,
                        qk_norm=False, cross_attention_norm=True)]
        )
        self.proj_query = nn.Linear(query_dim, width)
        self.norm_out = nn.LayerNorm(width)  # plain, in the weights' dtype, as released
        self.proj_out = nn.Linear(width, 1)
        self.gradient_checkpointing = False

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, M, width) → (B, M, width) after the self-attention stack (run once per shape)."""
        for block in self.blocks[:-1]:
            tokens, _ = run_block(self, block, tokens)
        return tokens

    def query(self, tokens: torch.Tensor, query_features: torch.Tensor) -> torch.Tensor:
        """`tokens`: (B, M, width) decoded; `query_features`: (B, Q, query_dim) → (B, Q, 1) raw values."""
        h, _ = run_block(self, self.blocks[-1], self.proj_query(query_features), tokens)
        return self.proj_out(self.norm_out(h))

    def query_attention_logits(self, tokens: torch.Tensor, query_features: torch.Tensor) -> torch.Tensor:
        """Scores of the query cross-attention: which tokens each query reads. → (B, H, Q, M)."""
        block = self.blocks[-1]
        return block.attn2.attention_logits(block.norm2(self.proj_query(query_features)), tokens)


class TripoSGVAEModel(ModelMixin, ConfigMixin):
    """The SDF VAE. Defaults = the release (encoder 512 wide × 8, decoder 1024 wide × 16, 64 channels).

    Config:
        in_channels: xyz (3); normals are appended to the embedded points.
        latent_channels: channels per latent token (the DiT's `in_channels`).
        num_attention_heads, width_encoder, width_decoder, num_layers_encoder, num_layers_decoder: sizes.
        embedding_type, embed_frequency, embed_include_pi: the point embedding (only "frequency").
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 64,
        num_attention_heads: int = 8,
        width_encoder: int = 512,
        width_decoder: int = 1024,
        num_layers_encoder: int = 8,
        num_layers_decoder: int = 16,
        embedding_type: str = "frequency",
        embed_frequency: int = 8,
        embed_include_pi: bool = False,
    ):
        super().__init__()
        if embedding_type != "frequency":
            raise ValueError(f"embedding_type={embedding_type!r} is not supported; use 'frequency'")
        self.embedder = FrequencyPointEmbedding(in_channels, embed_frequency, embed_include_pi)
        embed_dim = self.embedder.out_dim
        self.encoder = TripoSGEncoder(embed_dim + in_channels, width_encoder, num_attention_heads, num_layers_encoder)
        self.quant = nn.Linear(width_encoder, 2 * latent_channels)
        self.post_quant = nn.Linear(latent_channels, width_decoder)
        self.decoder = TripoSGDecoder(embed_dim, width_decoder, num_attention_heads, num_layers_decoder)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # Start with a quiet posterior (std e^(-3) ≈ 0.05). With log-variance 0 the sampled noise (std 1)
        # drowns the latent means (std ≈ 0.8 at init): the decoder learns to ignore the latents and fits the
        # average field, and the small KL weight keeps them there (measured: 600 steps, sign accuracy 52 %).
        with torch.no_grad():
            self.quant.bias[self.config.latent_channels:].fill_(INITIAL_LOGVAR)
        # Zero output layer (as DiT's final layer): the field starts at 0 instead of values ~1 from a
        # Xavier-initialised projection of a unit-variance LayerNorm output, ten times the TSDF range.
        nn.init.zeros_(self.decoder.proj_out.weight)

    def select_queries(
        self, xyz: torch.Tensor, num_tokens: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Pick M query points per shape: 4·M random candidates, then FPS down to M.

        `xyz`: (B, N, 3) → (B, M) indices into N.
        """
        b, n, _ = xyz.shape
        if num_tokens > n:
            raise ValueError(f"num_tokens={num_tokens} exceeds the {n} input points; give more surface points")
        num_candidates = min(n, 4 * num_tokens)
        candidates = torch.stack(
            [torch.randperm(n, generator=generator)[:num_candidates] for _ in range(b)]
        ).to(xyz.device)  # (B, 4M)
        candidate_xyz = torch.gather(xyz, 1, candidates[..., None].expand(-1, -1, 3))
        chosen = farthest_point_sampling(candidate_xyz, num_tokens, generator=generator)  # (B, M)
        return torch.gather(candidates, 1, chosen)

    def encode(
        self,
        points: torch.Tensor,
        num_tokens: int = 2048,
        generator: torch.Generator | None = None,
        query_indices: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> TripoSGEncoderOutput | tuple:
        """Encode surface points into a latent distribution.

        Args:
            points: (B, N, 6) xyz + normals (xyz in the unit cube).
            num_tokens: M latent tokens.
            generator: seeds the query selection.
            query_indices: (B, M) explicit query indices (skips the random + FPS selection).
        Returns:
            `.latent_dist` over (B, M, latent_channels) and `.query_indices`.
        """
        if points.ndim != 3 or points.shape[-1] != 2 * self.config.in_channels:
            raise ValueError(f"points must be (B, N, {2 * self.config.in_channels}) xyz + normals, got {tuple(points.shape)}")
        xyz, normals = points.split(self.config.in_channels, dim=-1)
        if query_indices is None:
            query_indices = self.select_queries(xyz, num_tokens, generator)
        features = torch.cat([self.embedder(xyz), normals], dim=-1)  # (B, N, 54)
        tokens = self.encoder(features, query_indices)
        dist = DiagonalGaussian(self.quant(tokens))
        if not return_dict:
            return (dist,)
        return TripoSGEncoderOutput(latent_dist=dist, query_indices=query_indices)

    def decode_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, M, latent_channels) latents → (B, M, width_decoder) tokens ready for `query` (once per shape)."""
        return self.decoder.decode_tokens(self.post_quant(latents))

    def query(self, tokens: torch.Tensor, xyz: torch.Tensor, chunk_size: int = 50_000) -> torch.Tensor:
        """Field at query points from decoded tokens. `xyz`: (B, Q, 3) → (B, Q, 1), positive inside."""
        values = [
            self.decoder.query(tokens, self.embedder(chunk)) for chunk in xyz.split(chunk_size, dim=1)
        ]
        return -torch.cat(values, dim=1)

    def query_attention_logits(self, tokens: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores of the query cross-attention for decoded `tokens` and query points `xyz`
        (B, Q, 3) → (B, H, Q, M): where each query reads the shape from (diagnostics, the routing loss)."""
        return self.decoder.query_attention_logits(tokens, self.embedder(xyz))

    def decode(
        self,
        latents: torch.Tensor,
        sampled_points: torch.Tensor,
        return_dict: bool = True,
        num_chunks: int = 50_000,
        to_cpu: bool = False,
        chunk_size: int | None = None,
    ) -> TripoSGDecoderOutput | tuple:
        """Decode latents (B, M, C) at `sampled_points` (B, Q, 3) → `.sample` (B, Q, 1), positive inside.

        The release's signature: `num_chunks` is the number of query points per chunk (`chunk_size` is the same,
        by its clearer name), `to_cpu` gathers the values on the CPU (large grids on a small GPU). With
        `enable_slicing` the batch is decoded `slicing_length` shapes at a time."""
        per_chunk = chunk_size if chunk_size is not None else num_chunks
        if per_chunk < 1:
            raise ValueError(f"num_chunks (query points per chunk) must be positive, got {per_chunk}")
        if latents.shape[0] != sampled_points.shape[0]:
            raise ValueError(f"latents are a batch of {latents.shape[0]} but sampled_points of {sampled_points.shape[0]}")
        step = self.slicing_length if self.use_slicing else latents.shape[0]
        slices = []
        for start in range(0, latents.shape[0], step):
            tokens = self.decode_tokens(latents[start:start + step])
            chunks = [-self.decoder.query(tokens, self.embedder(chunk))
                      for chunk in sampled_points[start:start + step].split(per_chunk, dim=1)]
            slices.append(torch.cat([c.cpu() for c in chunks] if to_cpu else chunks, dim=1))
        sample = torch.cat(slices, dim=0)
        if not return_dict:
            return (sample,)
        return TripoSGDecoderOutput(sample=sample)

    # ---- the release's switches (diffusers' AutoencoderKL names) ----

    use_slicing = False
    slicing_length = 1

    def enable_slicing(self, slicing_length: int = 1) -> None:
        """Decode a batch `slicing_length` shapes at a time (less memory for large batches)."""
        if slicing_length < 1:
            raise ValueError(f"slicing_length must be positive, got {slicing_length}")
        self.use_slicing, self.slicing_length = True, slicing_length

    def disable_slicing(self) -> None:
        self.use_slicing = False

    def set_flash_decoder(self) -> None:
        """The release's switch to its fast decoder (an approximate top-k cross-attention). Here decoding is
        always exact; the fast path (the decoder stack and keys/values once per shape, bf16 on CPUs with native
        bf16, surface tracking) is what the pipeline uses anyway. Kept so release scripts run; it changes nothing."""
        self.flash_decoder_requested = True

    def forward(
        self,
        points: torch.Tensor,
        sampled_points: torch.Tensor,
        num_tokens: int = 2048,
        sample_posterior: bool = True,
        generator: torch.Generator | None = None,
        return_query_attention: bool = False,
        latent_noise: float | torch.Tensor = 0.0,
    ) -> tuple[torch.Tensor, DiagonalGaussian] | tuple[torch.Tensor, DiagonalGaussian, QueryAttention]:
        """Autoencode: (B, N, 6) surface points, (B, Q, 3) queries → ((B, Q, 1) field, posterior).

        With `return_query_attention`, a third item holds the query cross-attention scores and the input points
        (xyz + normal) the tokens were built from (training-time routing and anchor losses). `latent_noise`: std of
        Gaussian noise added to the latents before decoding, one value or (B,) per object (a decoder fine-tune that
        makes latents which miss a little, like a flow model's samples, still decode to the shape)."""
        encoded = self.encode(points, num_tokens, generator)
        posterior = encoded.latent_dist
        latents = posterior.sample(generator) if sample_posterior else posterior.mode()
        if isinstance(latent_noise, torch.Tensor) or latent_noise > 0:  # nothing to do (and no sync) when off
            std = torch.as_tensor(latent_noise, dtype=latents.dtype, device=latents.device).reshape(-1, 1, 1)
            device = generator.device if generator is not None else latents.device  # a CPU generator for a GPU model
            noise = torch.randn(latents.shape, generator=generator, device=device, dtype=latents.dtype)
            latents = latents + std * noise.to(latents.device)
        tokens = self.decode_tokens(latents)
        field = self.query(tokens, sampled_points)
        if not return_query_attention:
            return field, posterior
        token_points = torch.gather(points, 1, encoded.query_indices[..., None].expand(-1, -1, points.shape[-1]))
        return field, posterior, QueryAttention(self.query_attention_logits(tokens, sampled_points), token_points)
