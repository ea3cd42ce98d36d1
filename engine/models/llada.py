"""LLaDA's network in plain torch (Nie et al. 2025, "Large Language Diffusion Models").

Reads the official checkpoints (GSAI-ML/LLaDA-8B-Base, -Instruct, LLaDA-1.5,
iLLaDA) with their own tensor names, without their remote code. The forward
pass follows ``modeling_llada.py`` (an OLMo derivative, block_type "llama")
as shipped with the checkpoints and vendored in NVlabs/Fast-dLLM:

    h = wte(ids)
    for each block:  h = h + attn_out(Attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))),  n = attn_norm(h)
                     h = h + ff_out(silu(ff_proj(m)) * up_proj(m)),                            m = ff_norm(h)
    logits = ff_out_head(ln_f(h))        # untied head, model.transformer.ff_out

with RMSNorm and rotary embeddings in float32, no biases, and no causal mask.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import MaskPredictor, RMSNorm, RotaryEmbedding, attention, merge_heads, split_heads, swiglu
from .families import BY_NAME
from .kvcache import CacheStep
from .llada_config import LLaDAConfig


class LLaDABlock(nn.Module):
    """One "llama" block of LLaDA: pre-norm attention and SwiGLU MLP, residuals, no biases."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        d, hd = config.d_model, config.head_dim
        self.n_heads = config.n_heads
        self.n_kv_heads = config.n_kv_heads
        self.attn_norm = RMSNorm(d, config.rms_norm_eps)
        self.q_proj = nn.Linear(d, config.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, config.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, config.n_kv_heads * hd, bias=False)
        self.attn_out = nn.Linear(config.n_heads * hd, d, bias=False)
        self.ff_norm = RMSNorm(d, config.rms_norm_eps)
        self.ff_proj = nn.Linear(d, config.mlp_hidden_size, bias=False)
        self.up_proj = nn.Linear(d, config.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(config.mlp_hidden_size, d, bias=False)

    def qkv(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None):
        """x: [B, L, d_model] -> q [B, H, L, D], k and v [B, Hkv, L, D], q and k rotated."""
        n = self.attn_norm(x)
        q = split_heads(self.q_proj(n), self.n_heads)
        k = split_heads(self.k_proj(n), self.n_kv_heads)
        v = split_heads(self.v_proj(n), self.n_kv_heads)
        q, k = rotary(q, k, positions)
        return q, k, v

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None = None,
                cache: CacheStep | None = None, layer: int = 0) -> torch.Tensor:
        """x: [B, L, d_model] -> [B, L, d_model]; ``cache``: this pass's context cache, this block its ``layer``."""
        q, k, v = self.qkv(x, rotary, positions)
        x = x + self.attn_out(merge_heads(attention(q, k, v, cache=cache, layer=layer)))
        return x + swiglu(self.ff_norm(x), self.ff_proj, self.up_proj, self.ff_out)


class _Transformer(nn.Module):
    def __init__(self, config: LLaDAConfig):
        super().__init__()
        self.wte = nn.Embedding(config.embedding_size, config.d_model)
        self.blocks = nn.ModuleList(LLaDABlock(config) for _ in range(config.n_layers))
        self.ln_f = RMSNorm(config.d_model, config.rms_norm_eps)
        if not config.weight_tying:
            self.ff_out = nn.Linear(config.d_model, config.embedding_size, bias=False)


class LLaDANetwork(MaskPredictor):
    """LLaDA's mask predictor: token ids [B, L] -> logits [B, L, embedding_size].

    State-dict keys are the official ones (``model.transformer.wte.weight``,
    ``model.transformer.blocks.{i}.q_proj.weight``, ..., the untied head
    ``model.transformer.ff_out.weight``, absent when ``weight_tying``), so a checkpoint loads with
    ``load_state_dict`` unchanged. Trainable: plain modules, autograd works.
    """

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.model = nn.Module()
        self.model.transformer = _Transformer(config)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        self._ready()

    @property
    def transformer(self) -> _Transformer:
        return self.model.transformer

    def reset_parameters(self, std: float = 0.02) -> None:
        """Fresh weights for training from scratch: normal(0, std) for matrices,
        with output projections scaled by 1/sqrt(2 n_layers) (GPT-2's residual
        scaling), ones for norms."""
        self._init_weights(std, self.config.n_layers, ("attn_out", "ff_out"), scope=".blocks.")

    def trunk(self) -> tuple[nn.Module, nn.ModuleList, nn.Module]:
        t = self.transformer
        return t.wte, t.blocks, t.ln_f

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., d_model] -> logits [..., embedding_size]: the untied output layer
        ``ff_out``, or ``wte``'s matrix when the config ties them (iLLaDA)."""
        t = self.transformer
        if self.config.weight_tying:
            return F.linear(hidden, t.wte.weight)
        return t.ff_out(hidden)


# family entry points (engine.models.loader) ----------------------------------
FAMILY = BY_NAME["llada"]
quantized_module = FAMILY.quantizes  # engine.bench.native reads it


def load(name: str, path, config: dict, device: torch.device, dtype: torch.dtype, quantization: str | None = None):
    """A NativeAdapter for a LLaDA checkpoint folder in the official layout.

    Raises ModelLoadError for an unsupported config, a missing or unreadable
    tokenizer.json, or weights whose names or shapes do not match."""
    from pathlib import Path

    from ..errors import ModelLoadError
    from .native import NativeAdapter, build_network, load_tokenizer

    path = Path(path)
    try:
        cfg = LLaDAConfig.from_config(config)
    except ValueError as exc:
        raise ModelLoadError(f"{name}: {exc}") from None
    tokenizer = load_tokenizer(path, config, name, cfg.max_sequence_length)
    network = build_network(lambda: LLaDANetwork(cfg), path, device, dtype, quantization,
                            keep=lambda module: not FAMILY.quantizes(module))
    return NativeAdapter(name, FAMILY, network, tokenizer, cfg.mask_token_id, cfg.max_sequence_length,
                         path=str(path), extra_special_ids=(cfg.eos_token_id, cfg.pad_token_id),
                         quantization=quantization)
