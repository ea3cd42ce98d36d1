"""The diffusion transformer (DiT) shared by MDLM and SEDD, in plain torch.

Meaning and parameter names follow kuleshov-group/mdlm ``models/dit.py`` and
louaaron/Score-Entropy-Discrete-Diffusion ``model/transformer.py`` (both after
Peebles & Xie 2023, "Scalable Diffusion Models with Transformers"), so their
checkpoints load by name:

- ``vocab_embed.embedding`` [V, D]: a bare parameter, not an nn.Embedding.
- ``sigma_map.mlp.{0,2}``: a 256-dim [cos, sin] timestep embedding of sigma
  (GLIDE's, max period 10000) through Linear-SiLU-Linear to ``cond_dim``;
  the blocks see ``c = silu(sigma_map(sigma))``.
- ``rotary_emb.inv_freq`` [D/H/2]: stored rotary frequencies (base 10000),
  applied half-split (rotate_half) to q and k only.
- ``blocks.{i}``: adaLN-modulated pre-norm blocks. ``adaLN_modulation(c)``
  splits into shift, scale, gate for attention, then shift, scale, gate for
  the MLP; modulate(x) = x * (1 + scale) + shift; the residual adds
  ``gate * branch``. ``attn_qkv`` packs q, k, v as (three h d); attention is
  bidirectional SDPA (upstream uses flash-attn's varlen kernel, same math).
  The MLP is Linear(D, 4D) - GELU(tanh) - Linear(4D, D), with biases.
- ``norm*`` / ``norm_final``: LayerNorm with a weight and no bias, computed
  in float32.
- ``output_layer``: adaLN (shift, scale) then Linear(D, V) with bias.

Dropout is left out: the engine only runs inference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import apply_rotary, attention, merge_heads
from .kvcache import CacheStep

FREQUENCY_DIM = 256  # width of the sinusoidal sigma embedding in both references
ROTARY_BASE = 10_000


@dataclass(frozen=True)
class DiTShape:
    """Sizes of a DiT: hidden width D, heads H, blocks, adaLN width, vocabulary V."""

    hidden_size: int
    n_heads: int
    n_blocks: int
    cond_dim: int
    vocab_size: int
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        if self.hidden_size % self.n_heads:
            raise ValueError(f"hidden size {self.hidden_size} is not a multiple of {self.n_heads} heads")
        if (self.hidden_size // self.n_heads) % 2:
            raise ValueError("rotary embedding needs an even head dimension")

    def parameter_count(self) -> int:
        """Parameters of the network (the stored inv_freq buffer excluded)."""
        d, c, v, r = self.hidden_size, self.cond_dim, self.vocab_size, self.mlp_ratio
        block = 2 * d + 3 * d * d + d * d + (d * r * d + r * d) + (r * d * d + d) + (c * 6 * d + 6 * d)
        sigma = FREQUENCY_DIM * c + c + c * c + c
        final = d + (d * v + v) + (c * 2 * d + 2 * d)
        return v * d + sigma + self.n_blocks * block + final


class FloatLayerNorm(nn.Module):
    """LayerNorm without bias, normalised in float32 and scaled by its weight.

    x: [B, L, D] any float dtype -> [B, L, D] in x's dtype."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.float(), [self.dim]) * self.weight.float()
        return y.to(x.dtype)


class SigmaEmbedding(nn.Module):
    """sigma [B] -> [B, cond_dim]: GLIDE's [cos, sin] embedding, then an MLP."""

    def __init__(self, cond_dim: int, frequency_dim: int = FREQUENCY_DIM):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(
            nn.Linear(frequency_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim)
        )

    @staticmethod
    def sinusoid(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
        """t [B] (float, may be fractional) -> float32 [B, dim] = [cos(t f), sin(t f)]."""
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        emb = self.sinusoid(sigma, self.frequency_dim)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class StoredRotary(nn.Module):
    """Rotary embedding (Su et al. 2021) whose frequencies are a stored buffer.

    Checkpoints carry ``inv_freq``; it is kept in float32 whatever the model's
    dtype, so positions stay exact in bf16 runs."""

    def __init__(self, head_dim: int, base: float = ROTARY_BASE):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq)

    def _apply(self, fn, recurse=True):
        # Module.to(dtype) would cast this buffer too; keep its float32 values
        # and follow only device moves.
        kept = self.inv_freq
        out = super()._apply(fn, recurse)
        if kept.dtype == torch.float32 and self.inv_freq.dtype != torch.float32:
            self.inv_freq = kept.to(self.inv_freq.device)
        return out

    def cos_sin(self, length: int, device: torch.device,
                positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 (cos, sin), each [L, head_dim], for positions 0..L-1, or for
        ``positions`` (LongTensor [L]: the canvas positions of a context cache's
        block, not necessarily contiguous); integer positions are exact in
        float32, so both give the same angles."""
        if positions is None:
            t = torch.arange(length, device=device, dtype=torch.float32)
        else:
            t = positions.to(device=device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq.float().to(device))
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos(), angles.sin()


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """One adaLN transformer block: x [B, L, D], c [B, cond] -> [B, L, D]."""

    def __init__(self, dim: int, n_heads: int, cond_dim: int, mlp_ratio: int = 4):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = FloatLayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = FloatLayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate="tanh"), nn.Linear(mlp_ratio * dim, dim)
        )
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, c: torch.Tensor,
                cache: CacheStep | None = None, layer: int = 0) -> torch.Tensor:
        b, length, dim = x.shape
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c)[:, None].chunk(6, dim=2)
        h = _modulate(self.norm1(x), shift_a, scale_a)
        # (three h d) packing: [B, L, 3, H, d] -> three [B, H, L, d]
        qkv = self.attn_qkv(h).view(b, length, 3, self.n_heads, dim // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k, v = apply_rotary(qkv[0], cos, sin), apply_rotary(qkv[1], cos, sin), qkv[2]
        attn = merge_heads(attention(q, k, v, cache=cache, layer=layer))
        x = x + gate_a * self.attn_out(attn)
        return x + gate_m * self.mlp(_modulate(self.norm2(x), shift_m, scale_m))


class DiTFinalLayer(nn.Module):
    """adaLN (shift, scale) on a float32 LayerNorm, then the vocabulary projection."""

    def __init__(self, dim: int, vocab_size: int, cond_dim: int):
        super().__init__()
        self.norm_final = FloatLayerNorm(dim)
        self.linear = nn.Linear(dim, vocab_size)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, dim=2)
        return self.linear(_modulate(self.norm_final(x), shift, scale))


class DiT(nn.Module):
    """The DiT backbone: (indices [B, L] long, sigma [B] float) -> [B, L, V].

    ``positions`` (LongTensor [P], optional) keeps only those positions
    before the output layer, which is position-wise, so the result
    [B, P, V] equals the full output's columns exactly; the vocabulary
    projection is most of a small model's cost and the sampler needs only the
    masked positions. Sigma is used as given (the families decide whether it
    is zeroed).

    ``at`` (LongTensor [L], optional): the canvas positions of ``indices``
    for the rotary embedding (default 0..L-1). A cached step of the dual
    context cache (engine.models.kvcache) runs only a block's tokens at
    their canvas positions with ``cache`` (a kvcache.CacheStep), which every
    block hands to engine.models.blocks.attention: it takes the whole
    canvas's keys and values from the cache."""

    def __init__(self, shape: DiTShape):
        super().__init__()
        self.shape = shape
        d = shape.hidden_size
        self.vocab_embed = _Embedding(shape.vocab_size, d)
        self.sigma_map = SigmaEmbedding(shape.cond_dim)
        self.rotary_emb = StoredRotary(d // shape.n_heads)
        self.blocks = nn.ModuleList(
            DiTBlock(d, shape.n_heads, shape.cond_dim, shape.mlp_ratio) for _ in range(shape.n_blocks)
        )
        self.output_layer = DiTFinalLayer(d, shape.vocab_size, shape.cond_dim)

    def forward(self, indices: torch.Tensor, sigma: torch.Tensor, positions: torch.Tensor | None = None,
                at: torch.Tensor | None = None, cache: CacheStep | None = None) -> torch.Tensor:
        x = self.vocab_embed(indices)
        c = F.silu(self.sigma_map(sigma))
        cos, sin = self.rotary_emb.cos_sin(indices.shape[1], indices.device, at)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, c, cache, i)
        if positions is not None:
            x = x[:, positions]
        return self.output_layer(x, c)


class _Embedding(nn.Module):
    """A bare [V, D] parameter named ``embedding`` (the references' EmbeddingLayer)."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab_size, dim))
        nn.init.normal_(self.embedding, std=0.02)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return self.embedding[indices]
