"""Dream's network in plain torch (Ye et al. 2025, "Dream 7B: Diffusion Large Language Models").

Reads the official checkpoints (Dream-org/Dream-v0-Base-7B, -Instruct-7B, and
models of the same architecture such as apple/DiffuCoder-7B-Base/-Instruct)
with their own tensor names and without their remote code. The forward pass
follows ``modeling_dream.py`` as shipped with the checkpoints (vendored in
NVlabs/Fast-dLLM ``dream/model`` and ZHZisZZ/dllm; pinned to transformers
4.46.2): Qwen2.5 blocks with the causal mask removed,

    h = embed_tokens(ids)
    for each layer:  n = input_layernorm(h)
                     h = h + o_proj(Attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   # q/k/v biased
                     m = post_attention_layernorm(h)
                     h = h + down_proj(silu(gate_proj(m)) * up_proj(m))
    logits = lm_head(norm(h))                                                           # untied head

with grouped-query attention, RMSNorm in float32 and rotary embeddings over the
whole head (theta 1e6 in the 7B models). ``DreamNetwork.forward`` returns the
logits UNSHIFTED, as upstream does: Dream was trained so that the output at
position i - 1 predicts the token at i; the adapter applies that shift.
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

# Shapes and ids of Dream-org/Dream-v0-Base-7B (its config.json; Qwen2.5-7B shapes).
_DREAM_7B = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 131072,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "mask_token_id": 151666,
    "pad_token_id": 151643,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
}

# Switches of the Qwen2-style config with the only values this implementation
# computes; a config asking for another value is refused, not run wrongly.
# (Upstream's SDPA attention ignores sliding windows, so those keys are inert.)
_FIXED = {
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "rope_scaling": None,
    "use_mrope": False,
}

# The rest of the official key set, written by to_config for fidelity.
_INERT = {
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "max_window_layers": 28,
    "sliding_window": None,
    "torch_dtype": "bfloat16",
    "use_cache": False,
    "use_sliding_window": False,
}


@dataclass
class DreamConfig:
    """The hyper-parameters Dream's forward pass depends on (official key names).

    ``vocab_size`` is the row count of ``embed_tokens`` and of ``lm_head``
    (152064 in the 7B models; the tokenizer itself has 151667 ids).
    """

    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_hidden_layers: int = 28
    num_attention_heads: int = 28
    num_key_value_heads: int = 4
    vocab_size: int = 152064
    max_position_embeddings: int = 131072
    rope_theta: float = 1000000.0
    rms_norm_eps: float = 1e-6
    mask_token_id: int = 151666
    pad_token_id: int = 151643
    bos_token_id: int = 151643
    eos_token_id: int = 151643
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # other keys, kept for to_config

    @property
    def head_dim(self) -> int:
        # Upstream derives it from hidden_size and ignores any "head_dim" key.
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_config(cls, d: dict) -> "DreamConfig":
        """Build from an official config.json dict.

        Raises ValueError naming the key when the config asks for a variant this
        implementation does not compute (tied head, scaled or multimodal rotary,
        another activation) or when a shape is inconsistent.
        """
        for key, wanted in _FIXED.items():
            if key in d and d[key] != wanted:
                raise ValueError(f"Dream config has {key}={d[key]!r}; only {wanted!r} is supported")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name != "extra" and d.get(f.name) is not None:
                values[f.name] = d[f.name]
        if "num_key_value_heads" not in values:
            values["num_key_value_heads"] = values.get("num_attention_heads", cls.num_attention_heads)
        known = {f.name for f in dataclasses.fields(cls)}
        values["extra"] = {k: v for k, v in d.items() if k not in known}
        try:
            config = cls(**{k: (v if k == "extra" else type(getattr(cls, k))(v)) for k, v in values.items()})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Dream config has a value of the wrong type ({exc})") from exc
        config.check()
        return config

    def check(self) -> None:
        """Raise ValueError when the shapes cannot form a network."""
        for name in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "vocab_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Dream config has {name}={getattr(self, name)}; it must be positive")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"Dream config: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"Dream config: num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"Dream config: head dimension {self.head_dim} must be even for rotary embeddings")
        if not 0 <= self.mask_token_id < self.vocab_size:
            raise ValueError(f"Dream config: mask_token_id {self.mask_token_id} is outside the vocabulary")

    def to_config(self) -> dict:
        """An official-style config.json dict (model_type "Dream", the Dream-7B key set).

        No ``auto_map``: Lacuna ships no modelling code beside the weights."""
        out: dict[str, Any] = {}
        out.update(_FIXED)
        out.update(_INERT)
        out.update({k: v for k, v in self.extra.items() if k != "auto_map"})
        for f in dataclasses.fields(self):
            if f.name != "extra":
                out[f.name] = getattr(self, f.name)
        out["architectures"] = ["DreamModel"]
        out["model_type"] = "Dream"
        return dict(sorted(out.items()))

    @classmethod
    def dream_7b(cls, **overrides: Any) -> "DreamConfig":
        """Dream-7B's exact shapes, with any field overridden (e.g. num_hidden_layers for a CPU bench)."""
        return cls(**{**_DREAM_7B, **overrides})


class DreamAttention(nn.Module):
    """Bidirectional grouped-query attention with q/k/v biases and an unbiased output projection."""

    def __init__(self, config: DreamConfig):
        super().__init__()
        d, hd = config.hidden_size, config.head_dim
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.q_proj = nn.Linear(d, self.heads * hd, bias=True)
        self.k_proj = nn.Linear(d, self.kv_heads * hd, bias=True)
        self.v_proj = nn.Linear(d, self.kv_heads * hd, bias=True)
        self.o_proj = nn.Linear(self.heads * hd, d, bias=False)

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None) -> torch.Tensor:
        """x: [B, L, hidden] (already normed) -> [B, L, hidden]."""
        q = split_heads(self.q_proj(x), self.heads)
        k = split_heads(self.k_proj(x), self.kv_heads)
        v = split_heads(self.v_proj(x), self.kv_heads)
        q, k = rotary(q, k, positions)
        return self.o_proj(merge_heads(attention(q, k, v)))


class DreamMLP(nn.Module):
    """SwiGLU feed-forward: down_proj(silu(gate_proj(x)) * up_proj(x)), no biases."""

    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DreamLayer(nn.Module):
    """One Qwen2 decoder layer run without a causal mask: pre-norm attention and MLP, residuals."""

    def __init__(self, config: DreamConfig):
        super().__init__()
        self.self_attn = DreamAttention(config)
        self.mlp = DreamMLP(config.hidden_size, config.intermediate_size)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, L, hidden] -> [B, L, hidden]."""
        x = x + self.self_attn(self.input_layernorm(x), rotary, positions)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Backbone(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DreamLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class DreamNetwork(nn.Module):
    """Dream's mask predictor: token ids [B, L] -> logits [B, L, vocab_size], unshifted.

    State-dict keys are the official ones (``model.embed_tokens.weight``,
    ``model.layers.{i}.self_attn.{q,k,v,o}_proj.*``,
    ``model.layers.{i}.mlp.{gate,up,down}_proj.weight``,
    ``model.layers.{i}.{input,post_attention}_layernorm.weight``,
    ``model.norm.weight``, ``lm_head.weight``), so a checkpoint loads with
    ``load_state_dict`` unchanged. Row i of the logits is upstream's row i:
    it predicts the token at i + 1 (the adapter shifts).
    """

    def __init__(self, config: DreamConfig):
        super().__init__()
        config.check()
        self.config = config
        self.model = _Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        if not any(p.is_meta for p in self.parameters()):
            self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        """Fresh weights for training from scratch: normal(0, std) for matrices
        (output projections scaled by 1/sqrt(2 n_layers)), zero biases, ones for norms."""
        out_std = std / math.sqrt(2 * self.config.num_hidden_layers)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                residual_out = name.endswith(("o_proj", "down_proj"))
                nn.init.normal_(module.weight, mean=0.0, std=out_std if residual_out else std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                module.reset_parameters()

    def hidden(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: LongTensor [B, L] -> final normed hidden states [B, L, hidden_size].

        positions: optional LongTensor [L], the rotary positions of the ids (default 0..L-1)."""
        m = self.model
        x = m.embed_tokens(input_ids)
        for layer in m.layers:
            x = layer(x, self.rotary, positions)
        return m.norm(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., hidden_size] -> logits [..., vocab_size] (the untied lm_head)."""
        return self.lm_head(hidden)

    def forward(self, input_ids: torch.Tensor, logits_at: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: LongTensor [B, L].

        Returns the unshifted logits [B, L, V], or with ``logits_at`` (LongTensor
        [P] of rows) only those rows, [B, P, V]."""
        h = self.hidden(input_ids)
        if logits_at is not None:
            h = h[:, logits_at]
        return self.head(h)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
