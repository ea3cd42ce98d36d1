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

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import RMSNorm, RotaryEmbedding, attention, merge_heads, split_heads
from .configs import official_config

# Shapes and ids of GSAI-ML/LLaDA-8B-Base (its config.json).
_LLADA_8B = {
    "d_model": 4096,
    "n_layers": 32,
    "n_heads": 32,
    "n_kv_heads": 32,
    "mlp_hidden_size": 12288,
    "vocab_size": 126464,
    "embedding_size": 126464,
    "max_sequence_length": 4096,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "mask_token_id": 126336,
    "eos_token_id": 126081,
    "pad_token_id": 126081,
}

# Architecture switches of the OLMo-style config that this implementation
# covers, with the only values it supports. A checkpoint asking for another
# value is refused rather than run with the wrong maths.
_FIXED = {
    "activation_type": "silu",
    "alibi": False,
    "attention_layer_norm": False,
    "block_type": "llama",
    "include_bias": False,
    "include_qkv_bias": False,
    "input_emb_norm": False,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "rope": True,
    "scale_logits": False,
}

# The rest of the official key set, written by to_config for fidelity.
_INERT = {
    "alibi_bias_max": 8.0,
    "attention_dropout": 0.0,
    "attention_layer_norm_with_affine": True,
    "bias_for_layer_norm": False,
    "block_group_size": 1,
    "embedding_dropout": 0.0,
    "flash_attention": False,
    "init_cutoff_factor": None,
    "init_device": "meta",
    "init_fn": "mitchell",
    "init_std": 0.02,
    "mlp_ratio": 4,
    "multi_query_attention": None,
    "precision": "amp_bf16",
    "residual_dropout": 0.0,
    "rope_full_precision": True,
    "use_cache": False,
}


@dataclass
class LLaDAConfig:
    """The hyper-parameters LLaDA's forward pass depends on (official key names).

    ``embedding_size`` is the row count of ``wte`` and of the head (the logits
    width); ``vocab_size`` is the tokenizer's size and may be smaller.
    """

    d_model: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int = 32
    mlp_hidden_size: int = 12288
    vocab_size: int = 126464
    embedding_size: int = 126464
    max_sequence_length: int = 4096
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5
    mask_token_id: int = 126336
    eos_token_id: int = 126081
    pad_token_id: int = 126081
    weight_tying: bool = False  # iLLaDA: the head reuses wte (no model.transformer.ff_out)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # other keys, kept for to_config

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_config(cls, d: dict) -> "LLaDAConfig":
        """Build from an official config.json dict.

        Raises ValueError naming the key when the config asks for an
        architecture variant this implementation does not compute (ALiBi,
        biases, tied head, another block type, ...) or a shape is inconsistent.
        """
        for key, wanted in _FIXED.items():
            if key in d and d[key] != wanted and not (key == "include_qkv_bias" and d[key] is None):
                raise ValueError(f"LLaDA config has {key}={d[key]!r}; only {wanted!r} is supported")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            if f.name in d and d[f.name] is not None:
                values[f.name] = d[f.name]
        if "n_kv_heads" not in values:
            mqa = d.get("multi_query_attention")
            values["n_kv_heads"] = 1 if mqa else values.get("n_heads", cls.n_heads)
        if "mlp_hidden_size" not in values and "mlp_ratio" in d:
            values["mlp_hidden_size"] = int(d["mlp_ratio"]) * int(values.get("d_model", cls.d_model))
        if "embedding_size" not in values:
            values["embedding_size"] = values.get("vocab_size", cls.vocab_size)
        known = {f.name for f in dataclasses.fields(cls)}
        values["extra"] = {k: v for k, v in d.items() if k not in known}
        if not isinstance(values.get("weight_tying", False), bool):
            raise ValueError(f"LLaDA config has weight_tying={values['weight_tying']!r}; it must be true or false")
        try:
            config = cls(**{k: (v if k in ("extra", "weight_tying") else type(getattr(cls, k))(v))
                            for k, v in values.items()})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"LLaDA config has a value of the wrong type ({exc})") from exc
        config.check()
        return config

    def check(self) -> None:
        """Raise ValueError when the shapes cannot form a network."""
        for name in ("d_model", "n_layers", "n_heads", "n_kv_heads", "mlp_hidden_size", "embedding_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LLaDA config has {name}={getattr(self, name)}; it must be positive")
        if self.d_model % self.n_heads:
            raise ValueError(f"LLaDA config: d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"LLaDA config: n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"LLaDA config: head dimension {self.head_dim} must be even for rotary embeddings")
        if self.embedding_size < self.vocab_size:
            raise ValueError(
                f"LLaDA config: embedding_size {self.embedding_size} is smaller than vocab_size {self.vocab_size}"
            )
        if not 0 <= self.mask_token_id < self.embedding_size:
            raise ValueError(f"LLaDA config: mask_token_id {self.mask_token_id} is outside the embedding")

    def to_config(self) -> dict:
        """An official-style config.json dict (model_type "llada", the LLaDA-8B key set).

        No ``auto_map``: Lacuna ships no modelling code beside the weights."""
        return official_config(self, _FIXED, _INERT, mlp_ratio=max(1, self.mlp_hidden_size // self.d_model),
                               architectures=["LLaDAModelLM"], model_type="llada")

    @classmethod
    def llada_8b(cls, **overrides: Any) -> "LLaDAConfig":
        """LLaDA-8B's exact shapes, with any field overridden (e.g. n_layers for a CPU bench)."""
        return cls(**{**_LLADA_8B, **overrides})


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

    def forward(
        self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: [B, L, d_model] -> [B, L, d_model]."""
        q, k, v = self.qkv(x, rotary, positions)
        x = x + self.attn_out(merge_heads(attention(q, k, v)))
        m = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(m)) * self.up_proj(m))


class _Transformer(nn.Module):
    def __init__(self, config: LLaDAConfig):
        super().__init__()
        self.wte = nn.Embedding(config.embedding_size, config.d_model)
        self.blocks = nn.ModuleList(LLaDABlock(config) for _ in range(config.n_layers))
        self.ln_f = RMSNorm(config.d_model, config.rms_norm_eps)
        if not config.weight_tying:
            self.ff_out = nn.Linear(config.d_model, config.embedding_size, bias=False)


class LLaDANetwork(nn.Module):
    """LLaDA's mask predictor: token ids [B, L] -> logits [B, L, embedding_size].

    State-dict keys are the official ones (``model.transformer.wte.weight``,
    ``model.transformer.blocks.{i}.q_proj.weight``, ..., the untied head
    ``model.transformer.ff_out.weight``, absent when ``weight_tying``), so a checkpoint loads with
    ``load_state_dict`` unchanged. Trainable: plain modules, autograd works.
    """

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        config.check()
        self.config = config
        self.model = nn.Module()
        self.model.transformer = _Transformer(config)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        if not any(p.is_meta for p in self.parameters()):
            self.reset_parameters()

    @property
    def transformer(self) -> _Transformer:
        return self.model.transformer

    def reset_parameters(self, std: float = 0.02) -> None:
        """Fresh weights for training from scratch: normal(0, std) for matrices,
        with output projections scaled by 1/sqrt(2 n_layers) (GPT-2's residual
        scaling), ones for norms."""
        out_std = std / math.sqrt(2 * self.config.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                last = name.rsplit(".", 1)[-1]
                is_residual_out = last in ("attn_out", "ff_out") and ".blocks." in name
                nn.init.normal_(module.weight, mean=0.0, std=out_std if is_residual_out else std)
            elif isinstance(module, RMSNorm):
                module.reset_parameters()

    def hidden(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: LongTensor [B, L] -> final normed hidden states [B, L, d_model].

        positions: optional LongTensor [L], the rotary positions of the ids
        (default 0..L-1)."""
        t = self.transformer
        x = t.wte(input_ids)
        for block in t.blocks:
            x = block(x, self.rotary, positions)
        return t.ln_f(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., d_model] -> logits [..., embedding_size]: the untied output layer
        ``ff_out``, or ``wte``'s matrix when the config ties them (iLLaDA)."""
        t = self.transformer
        if self.config.weight_tying:
            return F.linear(hidden, t.wte.weight)
        return t.ff_out(hidden)

    def forward(self, input_ids: torch.Tensor, logits_at: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: LongTensor [B, L].

        Returns logits [B, L, V] (V = embedding_size), or with ``logits_at``
        (LongTensor [P] of positions) only those rows, [B, P, V]: the head is
        most of the cost on small models, so the sampler asks only for the
        masked positions."""
        h = self.hidden(input_ids)
        if logits_at is not None:
            h = h[:, logits_at]
        return self.head(h)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# family entry points (engine.models.loader) ----------------------------------
FAMILY = "llada"


def detect(config: dict) -> bool:
    """True for LLaDA and iLLaDA configs (model_type "llada" / LLaDAModelLM), not LLaDA-MoE."""
    model_type = str(config.get("model_type", "")).lower()
    architectures = config.get("architectures") or []
    return model_type == "llada" or (not model_type and "LLaDAModelLM" in architectures)


def quantized_module(name: str) -> bool:
    """True for the layers 8-bit/4-bit loading quantises: the Linear layers inside
    the blocks. Embedding, head and norms stay 16-bit (engine.hub.fit counts the same)."""
    return ".blocks." in f".{name}." and name.rsplit(".", 1)[-1] in (
        "q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out")


def load(name: str, path, config: dict, device: torch.device, dtype: torch.dtype, quantization: str | None = None):
    """A DiffusionModel for a LLaDA checkpoint folder in the official layout.

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
                            keep=lambda module: not quantized_module(module))
    return NativeAdapter(name, FAMILY, network, tokenizer, cfg.mask_token_id, cfg.max_sequence_length,
                         logit_shift=0, path=str(path), extra_special_ids=(cfg.eos_token_id, cfg.pad_token_id),
                         quantization=quantization)
