"""LLaDA-MoE's config (inclusionAI/LLaDA-MoE-7B-A1B's config.json keys), torch-free for the fit check.

The network is engine.models.llada_moe; the keys follow
``configuration_lladamoe.py`` shipped with the checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .configs import ModelConfig, ParamSplit

# The mask id of the released models: their generate(mask_id=156895); config.json has none.
LLADA_MOE_MASK_ID = 156895

# Shapes of inclusionAI/LLaDA-MoE-7B-A1B: 16 layers of 64 experts, 8 active,
# 2048 wide (paper and model card); vocabulary 157184, rope theta 50000 and
# 8192 positions as third-party readings of its config.json give them (the
# file itself was not at hand). Only benchmarks use this; loading always reads
# the checkpoint's own config.json.
_LLADA_MOE_7B = {
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "dense_intermediate_size": 8192,
    "expert_intermediate_size": 1024,
    "shared_expert_intermediate_size": None,
    "num_experts": 64,
    "num_experts_per_tok": 8,
    "moe_layer_freq": [1] * 16,
    "vocab_size": 157184,
    "max_position_embeddings": 8192,
    "rope_theta": 50000.0,
    "partial_rotary_factor": 1.0,
    "rms_norm_eps": 1e-5,
    "qk_layernorm": True,
    "attention_bias": False,
    "moe_router_enable_expert_bias": False,
}

FIXED = {
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "rope_scaling": None,
}

INERT = {
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "output_router_logits": False,
    "router_aux_loss_coef": 0.01,
    "use_cache": False,
}



@dataclass
class LLaDAMoEConfig(ModelConfig):
    """The hyper-parameters LLaDA-MoE's forward pass depends on (official key names).

    ``moe_layer_freq`` has one entry per layer: 0 for a dense MLP
    (``dense_intermediate_size``), anything else for a mixture of experts.
    ``shared_expert_intermediate_size`` None means no shared expert.
    ``clip_qkv`` None means no clamping of q, k and v.
    """

    LABEL = "LLaDA-MoE"
    FIXED = FIXED
    INERT = INERT
    POSITIVE = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "vocab_size", "num_experts", "num_experts_per_tok", "expert_intermediate_size")
    MULTIPLES = (("hidden_size", "num_attention_heads"), ("num_attention_heads", "num_key_value_heads"))
    SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_experts", "vocab_size",
                  "expert_intermediate_size")
    NULLABLE = frozenset({"shared_expert_intermediate_size", "clip_qkv", "pad_token_id", "bos_token_id",
                          "eos_token_id"})
    CONVERTERS = {
        "shared_expert_intermediate_size": int, "clip_qkv": float, "pad_token_id": int, "bos_token_id": int,
        "eos_token_id": int, "moe_layer_freq": lambda v: [int(x) for x in v],
    }

    hidden_size: int = 2048
    num_hidden_layers: int = 16
    num_attention_heads: int = 16
    num_key_value_heads: int = 16
    dense_intermediate_size: int = 8192
    expert_intermediate_size: int = 1024
    shared_expert_intermediate_size: int | None = None
    num_experts: int = 64
    num_experts_per_tok: int = 8
    moe_layer_freq: list[int] = field(default_factory=lambda: [1] * 16)
    vocab_size: int = 157184
    max_position_embeddings: int = 8192
    rope_theta: float = 50000.0
    partial_rotary_factor: float = 1.0
    rms_norm_eps: float = 1e-5
    qk_layernorm: bool = True
    attention_bias: bool = False
    clip_qkv: float | None = None
    moe_router_enable_expert_bias: bool = False
    mask_token_id: int = LLADA_MOE_MASK_ID
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def rotary_dim(self) -> int:
        # transformers' default rope init: int(head_dim * partial_rotary_factor)
        return int(self.head_dim * self.partial_rotary_factor)

    def is_moe(self, layer: int) -> bool:
        return self.moe_layer_freq[layer] != 0

    @classmethod
    def _refuse(cls, d: dict[str, Any]) -> None:
        score = d.get("moe_router_score_function")
        if score not in (None, "softmax"):
            raise ValueError(f"LLaDA-MoE config has moe_router_score_function={score!r}; only softmax is supported")

    @classmethod
    def _derive(cls, values: dict[str, Any], d: dict[str, Any]) -> None:
        if "num_key_value_heads" not in values:
            values["num_key_value_heads"] = values.get("num_attention_heads", cls.num_attention_heads)
        freq = values.get("moe_layer_freq")
        layers = int(values.get("num_hidden_layers", cls.num_hidden_layers))
        if freq is None:
            values["moe_layer_freq"] = [1] * layers
        elif not isinstance(freq, list) or len(freq) != layers:
            raise ValueError(f"LLaDA-MoE config: moe_layer_freq must list one entry per layer ({layers}), got {freq!r}")

    def _check_more(self, strict: bool) -> None:
        if len(self.moe_layer_freq) != self.num_hidden_layers:
            raise ValueError(
                f"LLaDA-MoE config: moe_layer_freq has {len(self.moe_layer_freq)} entries "
                f"for {self.num_hidden_layers} layers"
            )
        if not all(self.is_moe(i) for i in range(self.num_hidden_layers)) and self.dense_intermediate_size <= 0:
            raise ValueError("LLaDA-MoE config: dense layers need a positive dense_intermediate_size")
        if self.shared_expert_intermediate_size is not None and self.shared_expert_intermediate_size <= 0:
            raise ValueError("LLaDA-MoE config: shared_expert_intermediate_size must be positive or null")
        if self.num_experts_per_tok > self.num_experts:
            raise ValueError(
                f"LLaDA-MoE config: num_experts_per_tok {self.num_experts_per_tok} exceeds "
                f"num_experts {self.num_experts}"
            )
        if not 0 < self.partial_rotary_factor <= 1:
            raise ValueError(
                f"LLaDA-MoE config has partial_rotary_factor={self.partial_rotary_factor}; it must be in (0, 1]"
            )
        if self.rotary_dim % 2 or self.rotary_dim == 0:
            raise ValueError(f"LLaDA-MoE config: rotary dimension {self.rotary_dim} must be even and positive")
        if strict and not 0 <= self.mask_token_id < self.vocab_size:
            raise ValueError(f"LLaDA-MoE config: mask_token_id {self.mask_token_id} is outside the vocabulary")

    def _identity(self) -> dict[str, Any]:
        # The released config.json carries no mask_token_id; this one does, which the upstream class ignores.
        return {"architectures": ["LLaDAMoEModelLM"], "model_type": "llada"}

    def parameter_split(self) -> ParamSplit:
        """Attention projections, experts, shared experts and dense MLPs quantised; attention
        biases, routers, expert biases, norms, embed_tokens and lm_head kept. Every expert
        counts: all stay in memory."""
        d, hd, heads, kv = self.hidden_size, self.head_dim, self.num_attention_heads, self.num_key_value_heads
        attention = 2 * d * heads * hd + 2 * d * kv * hd
        shared = self.shared_expert_intermediate_size
        quantized = kept = 0
        for i in range(self.num_hidden_layers):
            kept += 2 * d + (2 * hd if self.qk_layernorm else 0)
            quantized += attention
            if self.attention_bias:
                kept += 2 * heads * hd + 2 * kv * hd
            if self.is_moe(i):
                quantized += self.num_experts * 3 * d * self.expert_intermediate_size
                quantized += 3 * d * shared if shared else 0
                kept += self.num_experts * d + (self.num_experts if self.moe_router_enable_expert_bias else 0)
            else:
                quantized += 3 * d * self.dense_intermediate_size
        return ParamSplit(quantized, kept + 2 * self.vocab_size * d + d)

    @classmethod
    def llada_moe_7b(cls, **overrides: Any) -> "LLaDAMoEConfig":
        """LLaDA-MoE-7B-A1B's shapes, with any field overridden (e.g. num_hidden_layers for a CPU bench)."""
        values = {**_LLADA_MOE_7B, **overrides}
        values["moe_layer_freq"] = overrides.get("moe_layer_freq", [1] * int(values["num_hidden_layers"]))
        return cls(**values)
