"""Transformer pieces shared by the native families (LLaDA, Dream, LLaDA-MoE; the DiT's attention).

Plain torch only, so that no repository's modelling code is ever imported.
Numerics follow the reference implementations: RMSNorm and rotary embeddings
run in float32 whatever the weight dtype (OLMo/LLaDA ``RMSLayerNorm`` and
``RotaryEmbedding`` in GSAI-ML/LLaDA-8B-Base ``modeling_llada.py``; Qwen2
``Qwen2RMSNorm`` for Dream), and attention is fully bidirectional.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .kvcache import CacheStep

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
    cache: CacheStep | None = None,
    layer: int = 0,
) -> torch.Tensor:
    """Bidirectional scaled dot-product attention with grouped-query support.

    q: [B, H, Lq, D]; k, v: [B, Hkv, Lk, D] with H a multiple of Hkv (each
    key/value head serves H/Hkv consecutive query heads, as
    ``repeat_interleave`` in the references). attn_mask: optional bool
    [B or 1, 1, Lq, Lk] (True = may attend) or additive float mask.
    Returns [B, H, Lq, D]. No causal mask: every position sees every other.

    Lq may differ from Lk: with ``cache`` (engine.models.kvcache) this
    layer's keys and values are stored in, or read back merged from, the
    dual context cache at index ``layer``.
    """
    if cache is not None:
        k, v = cache.kv(layer, k, v)
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


def swiglu(x: torch.Tensor, gate: nn.Linear, up: nn.Linear, down: nn.Linear) -> torch.Tensor:
    """down(silu(gate(x)) * up(x)) (Shazeer 2020, "GLU Variants Improve Transformer"):
    the feed-forward of LLaDA, Dream and LLaDA-MoE. x: [..., d] -> [..., d]."""
    return down(F.silu(gate(x)) * up(x))


class SwiGLU(nn.Module):
    """SwiGLU with Qwen2/OLMoE's names ``gate_proj``, ``up_proj``, ``down_proj``, no biases:
    Dream's MLP, and LLaDA-MoE's dense MLP, experts and shared expert."""

    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swiglu(x, self.gate_proj, self.up_proj, self.down_proj)


class MaskPredictor(nn.Module):
    """What a native network offers its adapter (engine.models.native):
    ``hidden(input_ids [B, L], positions=None, cache=None) -> [B, L, d]``
    (final normed hidden states; ``positions`` [L] are the ids' rotary
    positions, default 0..L-1; ``cache`` a kvcache.CacheStep handed to each
    layer with its index) and ``head(h [..., d]) -> [..., V]``. ``forward``
    runs the head only at the rows asked for: the head is most of a small
    model's cost.

    A subclass builds its modules under their official names, sets
    ``rotary``, and ends its ``__init__`` with ``self._ready()``; ``trunk``
    names its embedding, its layers (each called as ``layer(x, rotary,
    positions, cache, index)``) and its final norm.
    """

    def __init__(self, config) -> None:
        super().__init__()
        config.check()
        self.config = config

    def _ready(self) -> None:
        # Built on the meta device the loader fills every weight; built for real, it starts fresh.
        if not any(p.is_meta for p in self.parameters()):
            self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        raise NotImplementedError

    def trunk(self) -> tuple[nn.Module, nn.ModuleList, nn.Module]:
        """(token embedding, layers, final norm)."""
        raise NotImplementedError

    def hidden(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None,
               cache: CacheStep | None = None) -> torch.Tensor:
        """input_ids: LongTensor [B, L] -> final normed hidden states [B, L, d]."""
        embed, layers, norm = self.trunk()
        x = embed(input_ids)
        for i, layer in enumerate(layers):
            x = layer(x, self.rotary, positions, cache, i)
        return norm(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, input_ids: torch.Tensor, logits_at: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: LongTensor [B, L] -> logits [B, L, V] (unshifted), or with
        ``logits_at`` (LongTensor [P] of rows) only those rows, [B, P, V]."""
        h = self.hidden(input_ids)
        if logits_at is not None:
            h = h[:, logits_at]
        return self.head(h)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _init_weights(self, std: float, layers: int, residual_out: tuple[str, ...], scope: str = "") -> None:
        """Fresh weights for training from scratch: normal(0, std) for matrices, the
        residual output projections (``residual_out``, inside ``scope``) scaled by
        1/sqrt(2 layers) (GPT-2's residual scaling), zero biases, ones for norms."""
        out_std = std / math.sqrt(2 * layers)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                residual = name.rsplit(".", 1)[-1] in residual_out and scope in name
                nn.init.normal_(module.weight, mean=0.0, std=out_std if residual else std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                module.reset_parameters()
