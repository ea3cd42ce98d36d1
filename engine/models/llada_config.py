"""LLaDA's config (GSAI-ML/LLaDA-8B-Base's config.json keys), torch-free for the fit check.

The network is engine.models.llada; the keys and the switches it supports
follow ``configuration_llada.py`` shipped with the checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .configs import ModelConfig, ParamSplit

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
FIXED = {
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
INERT = {
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
class LLaDAConfig(ModelConfig):
    """The hyper-parameters LLaDA's forward pass depends on (official key names).

    ``embedding_size`` is the row count of ``wte`` and of the head (the logits
    width); ``vocab_size`` is the tokenizer's size and may be smaller.
    """

    LABEL = "LLaDA"
    FIXED = FIXED
    INERT = INERT
    POSITIVE = ("d_model", "n_layers", "n_heads", "n_kv_heads", "mlp_hidden_size", "embedding_size")
    MULTIPLES = (("d_model", "n_heads"), ("n_heads", "n_kv_heads"))
    SHAPE_KEYS = ("d_model", "n_layers", "n_heads", "embedding_size|vocab_size")
    CONVERTERS = {"weight_tying": lambda v: v}

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

    @property
    def logits_width(self) -> int:
        return self.embedding_size

    @property
    def max_positions(self) -> int:
        return self.max_sequence_length

    @classmethod
    def _accepts(cls, key: str, value: Any) -> bool:
        return key == "include_qkv_bias" and value is None

    @classmethod
    def _derive(cls, values: dict[str, Any], d: dict[str, Any]) -> None:
        if "n_kv_heads" not in values:
            values["n_kv_heads"] = 1 if d.get("multi_query_attention") else values.get("n_heads", cls.n_heads)
        if "mlp_hidden_size" not in values and "mlp_ratio" in d:
            values["mlp_hidden_size"] = int(d["mlp_ratio"]) * int(values.get("d_model", cls.d_model))
        if "embedding_size" not in values:
            values["embedding_size"] = values.get("vocab_size", cls.vocab_size)
        if not isinstance(values.get("weight_tying", False), bool):
            raise ValueError(f"LLaDA config has weight_tying={values['weight_tying']!r}; it must be true or false")

    def _check_more(self, strict: bool) -> None:
        if self.head_dim % 2:
            raise ValueError(f"LLaDA config: head dimension {self.head_dim} must be even for rotary embeddings")
        if self.embedding_size < self.vocab_size:
            raise ValueError(
                f"LLaDA config: embedding_size {self.embedding_size} is smaller than vocab_size {self.vocab_size}"
            )
        if strict and not 0 <= self.mask_token_id < self.embedding_size:
            raise ValueError(f"LLaDA config: mask_token_id {self.mask_token_id} is outside the embedding")

    def _identity(self) -> dict[str, Any]:
        return {"mlp_ratio": max(1, self.mlp_hidden_size // self.d_model), "architectures": ["LLaDAModelLM"],
                "model_type": "llada"}

    def parameter_split(self) -> ParamSplit:
        """Blocks of q, k, v, attn_out, ff_proj, up_proj, ff_out (quantised) plus two norms;
        wte, ln_f and an untied head kept."""
        d, hd, kv, ff = self.d_model, self.head_dim, self.n_kv_heads, self.mlp_hidden_size
        linear = d * self.n_heads * hd + 2 * d * kv * hd + self.n_heads * hd * d + 3 * d * ff
        embeddings = self.embedding_size * d * (1 if self.weight_tying else 2)
        return ParamSplit(self.n_layers * linear, embeddings + (2 * self.n_layers + 1) * d)

    @classmethod
    def llada_8b(cls, **overrides: Any) -> "LLaDAConfig":
        """LLaDA-8B's exact shapes, with any field overridden (e.g. n_layers for a CPU bench)."""
        return cls(**{**_LLADA_8B, **overrides})
