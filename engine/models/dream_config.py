"""Dream's config (Dream-org/Dream-v0-Base-7B's config.json keys: Qwen2's), torch-free for the fit check.

The network is engine.models.dream; the keys follow ``configuration_dream.py``
shipped with the checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .configs import ModelConfig, ParamSplit

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
FIXED = {
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "rope_scaling": None,
    "use_mrope": False,
}

# The rest of the official key set, written by to_config for fidelity.
INERT = {
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "max_window_layers": 28,
    "sliding_window": None,
    "torch_dtype": "bfloat16",
    "use_cache": False,
    "use_sliding_window": False,
}



@dataclass
class DreamConfig(ModelConfig):
    """The hyper-parameters Dream's forward pass depends on (official key names).

    ``vocab_size`` is the row count of ``embed_tokens`` and of ``lm_head``
    (152064 in the 7B models; the tokenizer itself has 151667 ids).
    """

    LABEL = "Dream"
    FIXED = FIXED
    INERT = INERT
    POSITIVE = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size")
    MULTIPLES = (("hidden_size", "num_attention_heads"), ("num_attention_heads", "num_key_value_heads"))
    SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")

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
    def _derive(cls, values: dict[str, Any], d: dict[str, Any]) -> None:
        if "num_key_value_heads" not in values:
            values["num_key_value_heads"] = values.get("num_attention_heads", cls.num_attention_heads)

    def _check_more(self, strict: bool) -> None:
        if self.head_dim % 2:
            raise ValueError(f"Dream config: head dimension {self.head_dim} must be even for rotary embeddings")
        if strict and not 0 <= self.mask_token_id < self.vocab_size:
            raise ValueError(f"Dream config: mask_token_id {self.mask_token_id} is outside the vocabulary")

    def _identity(self) -> dict[str, Any]:
        return {"architectures": ["DreamModel"], "model_type": "Dream"}

    def parameter_split(self) -> ParamSplit:
        """q/k/v (with their biases), o_proj and the SwiGLU MLP quantised, the q/k/v biases
        themselves kept 16-bit (bitsandbytes keeps a layer's bias in the compute dtype);
        norms, embed_tokens and the untied lm_head kept."""
        d, hd, heads, kv = self.hidden_size, self.head_dim, self.num_attention_heads, self.num_key_value_heads
        quantized = (d * heads * hd + 2 * d * kv * hd) + heads * hd * d + 3 * d * self.intermediate_size
        kept = (heads * hd + 2 * kv * hd) + 2 * d
        layers = self.num_hidden_layers
        return ParamSplit(layers * quantized, layers * kept + 2 * self.vocab_size * d + d)

    @classmethod
    def dream_7b(cls, **overrides: Any) -> "DreamConfig":
        """Dream-7B's exact shapes, with any field overridden (e.g. num_hidden_layers for a CPU bench)."""
        return cls(**{**_DREAM_7B, **overrides})
