"""Transformer pieces shared by the native families (LLaDA, Dream, LLaDA-MoE).

Plain torch only, so that no repository's modelling code is ever imported.
Numerics follow the reference implementations: RMSNorm and rotary embeddings
run in float32 whatever the weight dtype (OLMo/LLaDA ``RMSLayerNorm`` and
``RotaryEmbedding`` in GSAI-ML/LLaDA-8B-Base ``modeling_llada.py``; Qwen2
``Qwen2RMSNorm`` for Dream), and attention is fully bidirectional.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import kvcache

# SDPA grew grouped-query support (enable_gqa) in torch 2.5.
try:
    _SDPA_GQA = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)
except ValueError:  # an odd local version string
    _SDPA_GQA = False


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (Zhang & Sennrich 2019) with a weight and no bias.

    x: [..., dim] in any float dtype -> same shape and dtype. The statistic is
    taken in float32 and the result cast back before the weight is applied,
    as LLaDA's RMSLayerNorm and Qwen2RMSNorm do.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[..., d] -> [..., d]: (x1, x2) -> (-x2, x1) on the two halves of the last dim."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al. 2021, RoFormer), half-split layout.

    inv_freq[j] = theta ** (-2j / head_dim); angles = position * inv_freq,
    duplicated to the full head dim. Applied in float32 to q and k, then cast
    back (``rope_full_precision`` in LLaDA). Holds no weights, so it adds
    nothing to a state dict.
    """

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head dimension, got {head_dim}")
        self.head_dim = head_dim
        self.theta = float(theta)
        self._cache: tuple[torch.device, int, torch.Tensor, torch.Tensor] | None = None

    def _inv_freq(self, device: torch.device) -> torch.Tensor:
        exponent = torch.arange(0, self.head_dim, 2, device=device, dtype=torch.float32) / self.head_dim
        return 1.0 / (self.theta**exponent)

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions: LongTensor [L] -> (cos, sin), each float32 [L, head_dim]."""
        device = positions.device
        length = int(positions.max().item()) + 1 if positions.numel() else 0
        cache = self._cache
        if cache is None or cache[0] != device or cache[1] < length:
            span = max(length, 1)
            t = torch.arange(span, device=device, dtype=torch.float32)
            freqs = torch.outer(t, self._inv_freq(device))
            angles = torch.cat((freqs, freqs), dim=-1)
            cache = (device, span, angles.cos(), angles.sin())
            self._cache = cache
        return cache[2][positions], cache[3][positions]

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q: [B, H, L, D], k: [B, Hkv, L, D]; positions: LongTensor [L] (default 0..L-1).

        Returns rotated (q, k) in their own dtypes."""
        if positions is None:
            positions = torch.arange(q.shape[-2], device=q.device)
        cos, sin = self.cos_sin(positions)
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [..., L, D]; cos, sin: float32 [L, D] -> x rotated, in x's dtype."""
    x32 = x.float()
    return (x32 * cos + rotate_half(x32) * sin).to(x.dtype)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bidirectional scaled dot-product attention with grouped-query support.

    q: [B, H, Lq, D]; k, v: [B, Hkv, Lk, D] with H a multiple of Hkv (each
    key/value head serves H/Hkv consecutive query heads, as
    ``repeat_interleave`` in the references). attn_mask: optional bool
    [B or 1, 1, Lq, Lk] (True = may attend) or additive float mask.
    Returns [B, H, Lq, D]. No causal mask: every position sees every other.

    Lq may differ from Lk, so a context cache (keys and values of positions
    not recomputed this step) can be concatenated onto k and v by the caller.
    Inside ``kvcache.active(step)`` the dual context cache supplies k and v
    (engine.models.kvcache: each call is the next layer of the pass).
    """
    step = kvcache.current()
    if step is not None:
        k, v = step.kv(k, v)
    heads, kv_heads = q.shape[1], k.shape[1]
    if heads != kv_heads:
        if heads % kv_heads:
            raise ValueError(f"{heads} query heads cannot share {kv_heads} key/value heads")
        if _SDPA_GQA:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, enable_gqa=True)
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, L, heads * D] -> [B, heads, L, D]."""
    b, length, width = x.shape
    return x.view(b, length, heads, width // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, L, D] -> [B, L, H * D]."""
    b, heads, length, dim = x.shape
    return x.transpose(1, 2).reshape(b, length, heads * dim)
