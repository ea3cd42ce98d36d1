"""LLaDA-MoE's network in plain torch (Zhu et al. 2025, "LLaDA-MoE: A Sparse MoE
Diffusion Language Model", arXiv:2509.24389).

Reads the official checkpoints (inclusionAI/LLaDA-MoE-7B-A1B-Base, -Instruct)
with their own tensor names and without their remote code. The forward pass
follows ``modeling_lladamoe.py`` as shipped with the checkpoints (an OLMoE
derivative; public copies in ZHZisZZ/dllm ``dllm/pipelines/llada/models`` and
InfiniTensor/InfiniLM), with the causal mask removed:

    h = embed_tokens(ids)
    for each layer i:  n = input_layernorm(h)
                       q, k = q_norm(q_proj(n)), k_norm(k_proj(n))     # per head, when qk_layernorm
                       h = h + o_proj(Attn(rope(q), rope(k), v_proj(n)))
                       m = post_attention_layernorm(h)
                       h = h + FFN_i(m) (+ shared_expert(m) on MoE layers that have one)
    logits = lm_head(norm(h))

FFN_i is a dense SwiGLU MLP where ``moe_layer_freq[i] == 0`` and a sparse
mixture of SwiGLU experts elsewhere. Routing, exactly as upstream:

    p = softmax(gate(m)) in float32         # over all num_experts
    p = p + expert_bias                     # only with moe_router_enable_expert_bias
    w, e = top_k(p, num_experts_per_tok)    # the weights are the (biased) probabilities,
    out = sum_j w_j * expert_{e_j}(m)       # not renormalised (upstream pins norm_topk_prob off)

Rotary embeddings cover the first ``head_dim * partial_rotary_factor``
channels of each head. LLaDA-MoE predicts each position from its own output
(no logit shift). Its mask id, 156895, is not in config.json (model card).
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

_FIXED = {
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "rope_scaling": None,
}

_INERT = {
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "output_router_logits": False,
    "router_aux_loss_coef": 0.01,
    "use_cache": False,
}


@dataclass
class LLaDAMoEConfig:
    """The hyper-parameters LLaDA-MoE's forward pass depends on (official key names).

    ``moe_layer_freq`` has one entry per layer: 0 for a dense MLP
    (``dense_intermediate_size``), anything else for a mixture of experts.
    ``shared_expert_intermediate_size`` None means no shared expert.
    ``clip_qkv`` None means no clamping of q, k and v.
    """

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
    def from_config(cls, d: dict) -> "LLaDAMoEConfig":
        """Build from an official config.json dict (model_type "llada" with MoE keys).

        Raises ValueError naming the key when the config asks for a variant this
        implementation does not compute or a shape is inconsistent.
        """
        for key, wanted in _FIXED.items():
            if key in d and d[key] != wanted:
                raise ValueError(f"LLaDA-MoE config has {key}={d[key]!r}; only {wanted!r} is supported")
        score = d.get("moe_router_score_function")
        if score not in (None, "softmax"):
            raise ValueError(f"LLaDA-MoE config has moe_router_score_function={score!r}; only softmax is supported")
        values: dict[str, Any] = {}
        optional = {"shared_expert_intermediate_size", "clip_qkv", "pad_token_id", "bos_token_id", "eos_token_id"}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            if f.name in optional and f.name in d:
                values[f.name] = d[f.name]
            elif d.get(f.name) is not None:
                values[f.name] = d[f.name]
        if "num_key_value_heads" not in values:
            values["num_key_value_heads"] = values.get("num_attention_heads", cls.num_attention_heads)
        freq = values.get("moe_layer_freq")
        layers = int(values.get("num_hidden_layers", cls.num_hidden_layers))
        if freq is None:
            values["moe_layer_freq"] = [1] * layers
        elif not isinstance(freq, list) or len(freq) != layers:
            raise ValueError(f"LLaDA-MoE config: moe_layer_freq must list one entry per layer ({layers}), got {freq!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        values["extra"] = {k: v for k, v in d.items() if k not in known}
        try:
            config = cls(**{k: (v if k == "extra" else _convert(cls, k, v)) for k, v in values.items()})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"LLaDA-MoE config has a value of the wrong type ({exc})") from exc
        config.check()
        return config

    def check(self) -> None:
        """Raise ValueError when the shapes cannot form a network."""
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                     "vocab_size", "num_experts", "num_experts_per_tok", "expert_intermediate_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LLaDA-MoE config has {name}={getattr(self, name)}; it must be positive")
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
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"LLaDA-MoE config: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"LLaDA-MoE config: num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if not 0 < self.partial_rotary_factor <= 1:
            raise ValueError(
                f"LLaDA-MoE config has partial_rotary_factor={self.partial_rotary_factor}; it must be in (0, 1]"
            )
        if self.rotary_dim % 2 or self.rotary_dim == 0:
            raise ValueError(f"LLaDA-MoE config: rotary dimension {self.rotary_dim} must be even and positive")
        if not 0 <= self.mask_token_id < self.vocab_size:
            raise ValueError(f"LLaDA-MoE config: mask_token_id {self.mask_token_id} is outside the vocabulary")

    def to_config(self) -> dict:
        """An official-style config.json dict (model_type "llada", architectures LLaDAMoEModelLM).

        The released config.json carries no mask_token_id; this one does, which
        the upstream config class accepts and ignores. No ``auto_map``."""
        return official_config(self, _FIXED, _INERT, architectures=["LLaDAMoEModelLM"], model_type="llada")

    @classmethod
    def llada_moe_7b(cls, **overrides: Any) -> "LLaDAMoEConfig":
        """LLaDA-MoE-7B-A1B's shapes, with any field overridden (e.g. num_hidden_layers for a CPU bench)."""
        values = {**_LLADA_MOE_7B, **overrides}
        values["moe_layer_freq"] = overrides.get("moe_layer_freq", [1] * int(values["num_hidden_layers"]))
        return cls(**values)


_CONVERTERS = {
    "shared_expert_intermediate_size": int, "clip_qkv": float, "pad_token_id": int, "bos_token_id": int,
    "eos_token_id": int, "moe_layer_freq": lambda v: [int(x) for x in v],
}


def _convert(cls: type, name: str, value: Any) -> Any:
    if value is None:
        return None
    convert = _CONVERTERS.get(name)
    return convert(value) if convert is not None else type(getattr(cls, name))(value)


class SwiGLU(nn.Module):
    """down_proj(silu(gate_proj(x)) * up_proj(x)), no biases: the dense MLP, each expert and the shared expert."""

    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SparseMoE(nn.Module):
    """Top-k mixture of SwiGLU experts with a softmax router (see the module docstring).

    Keys: ``gate.weight`` [num_experts, hidden], ``experts.{j}.{gate,up,down}_proj.weight``
    and, with expert bias, the buffer ``expert_bias`` [num_experts].
    """

    def __init__(self, config: LLaDAMoEConfig):
        super().__init__()
        self.num_experts = config.num_experts
        self.top_k = config.num_experts_per_tok
        self.gate = nn.Linear(config.hidden_size, config.num_experts, bias=False)
        self.experts = nn.ModuleList(
            SwiGLU(config.hidden_size, config.expert_intermediate_size) for _ in range(config.num_experts)
        )
        if config.moe_router_enable_expert_bias:
            self.register_buffer("expert_bias", torch.zeros(config.num_experts))
        else:
            self.expert_bias = None

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, hidden] -> (weights [N, k] in x's dtype, expert ids LongTensor [N, k])."""
        probs = F.softmax(self.gate(x), dim=-1, dtype=torch.float32)
        if self.expert_bias is not None:
            probs = probs + self.expert_bias
        weights, chosen = torch.topk(probs, self.top_k, dim=-1)
        return weights.to(x.dtype), chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, L, hidden] -> [B, L, hidden].

        Tokens are grouped by expert (one sort, one host sync for the counts) and
        each expert runs once on its tokens; experts no token chose cost nothing."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        weights, chosen = self.route(flat)
        out = torch.zeros_like(flat)
        assignment = chosen.reshape(-1)
        order = torch.argsort(assignment, stable=True)
        counts = torch.bincount(assignment, minlength=self.num_experts).tolist()
        tokens = order // self.top_k
        slot_weights = weights.reshape(-1)[order]
        start = 0
        for expert_id, count in enumerate(counts):
            if count == 0:
                continue
            rows = tokens[start : start + count]
            contribution = self.experts[expert_id](flat[rows]) * slot_weights[start : start + count, None]
            out.index_add_(0, rows, contribution)
            start += count
        return out.reshape(shape)


class LLaDAMoEAttention(nn.Module):
    """Bidirectional grouped-query attention with optional per-head q/k RMSNorm, biases and clipping."""

    def __init__(self, config: LLaDAMoEConfig):
        super().__init__()
        d, hd = config.hidden_size, config.head_dim
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = hd
        self.rotary_dim = config.rotary_dim
        self.clip = config.clip_qkv
        bias = config.attention_bias
        self.q_proj = nn.Linear(d, self.heads * hd, bias=bias)
        self.k_proj = nn.Linear(d, self.kv_heads * hd, bias=bias)
        self.v_proj = nn.Linear(d, self.kv_heads * hd, bias=bias)
        self.o_proj = nn.Linear(self.heads * hd, d, bias=bias)
        if config.qk_layernorm:
            self.q_norm = RMSNorm(hd, config.rms_norm_eps)
            self.k_norm = RMSNorm(hd, config.rms_norm_eps)
        else:
            self.q_norm = self.k_norm = None

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None) -> torch.Tensor:
        """x: [B, L, hidden] (already normed) -> [B, L, hidden]."""
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = split_heads(q, self.heads)
        k = split_heads(k, self.kv_heads)
        v = split_heads(v, self.kv_heads)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.clip is not None:
            q, k, v = (t.clamp(-self.clip, self.clip) for t in (q, k, v))
        if self.rotary_dim == self.head_dim:
            q, k = rotary(q, k, positions)
        else:
            r = self.rotary_dim
            q_rot, k_rot = rotary(q[..., :r], k[..., :r], positions)
            q = torch.cat((q_rot, q[..., r:]), dim=-1)
            k = torch.cat((k_rot, k[..., r:]), dim=-1)
        return self.o_proj(merge_heads(attention(q, k, v)))


class LLaDAMoELayer(nn.Module):
    """One decoder layer: pre-norm attention, then a dense or sparse MLP (plus the shared expert)."""

    def __init__(self, config: LLaDAMoEConfig, index: int):
        super().__init__()
        moe = config.is_moe(index)
        self.self_attn = LLaDAMoEAttention(config)
        self.mlp = SparseMoE(config) if moe else SwiGLU(config.hidden_size, config.dense_intermediate_size)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        if moe and config.shared_expert_intermediate_size is not None:
            self.shared_expert = SwiGLU(config.hidden_size, config.shared_expert_intermediate_size)
        else:
            self.shared_expert = None

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, L, hidden] -> [B, L, hidden]."""
        x = x + self.self_attn(self.input_layernorm(x), rotary, positions)
        m = self.post_attention_layernorm(x)
        y = self.mlp(m)
        if self.shared_expert is not None:
            y = y + self.shared_expert(m)
        return x + y


class _Backbone(nn.Module):
    def __init__(self, config: LLaDAMoEConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LLaDAMoELayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class LLaDAMoENetwork(nn.Module):
    """LLaDA-MoE's mask predictor: token ids [B, L] -> logits [B, L, vocab_size] (no shift).

    State-dict keys are the official ones: ``model.embed_tokens.weight``,
    ``model.layers.{i}.self_attn.{q,k,v,o}_proj.weight`` (and ``q_norm``/``k_norm``),
    ``model.layers.{i}.mlp.gate.weight``, ``model.layers.{i}.mlp.experts.{j}.{gate,up,down}_proj.weight``
    (``model.layers.{i}.mlp.{gate,up,down}_proj.weight`` on dense layers),
    ``model.layers.{i}.shared_expert.*``, ``model.layers.{i}.{input,post_attention}_layernorm.weight``,
    ``model.norm.weight``, ``lm_head.weight``.
    """

    def __init__(self, config: LLaDAMoEConfig):
        super().__init__()
        config.check()
        self.config = config
        self.model = _Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(config.rotary_dim, config.rope_theta)
        if not any(p.is_meta for p in self.parameters()):
            self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        """Fresh weights: normal(0, std) for matrices (output projections scaled by
        1/sqrt(2 n_layers)), zero biases and expert biases, ones for norms."""
        out_std = std / math.sqrt(2 * self.config.num_hidden_layers)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                residual_out = name.endswith(("o_proj", "down_proj"))
                nn.init.normal_(module.weight, mean=0.0, std=out_std if residual_out else std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                module.reset_parameters()
            elif isinstance(module, SparseMoE) and module.expert_bias is not None:
                module.expert_bias.zero_()

    def hidden(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: LongTensor [B, L] -> final normed hidden states [B, L, hidden_size]."""
        m = self.model
        x = m.embed_tokens(input_ids)
        for layer in m.layers:
            x = layer(x, self.rotary, positions)
        return m.norm(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., hidden_size] -> logits [..., vocab_size]."""
        return self.lm_head(hidden)

    def forward(self, input_ids: torch.Tensor, logits_at: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: LongTensor [B, L] -> logits [B, L, V], or [B, P, V] for ``logits_at`` (LongTensor [P])."""
        h = self.hidden(input_ids)
        if logits_at is not None:
            h = h[:, logits_at]
        return self.head(h)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def active_parameters(self) -> int:
        """Parameters one token is multiplied through: all but the experts it was not
        routed to and the embedding table (a lookup). 1.40e9 for the 7B-A1B shapes,
        the model card's "1.4B active"."""
        c = self.config
        per_expert = 3 * c.hidden_size * c.expert_intermediate_size
        idle = sum(c.num_experts - c.num_experts_per_tok for i in range(c.num_hidden_layers) if c.is_moe(i))
        return self.num_parameters() - idle * per_expert - c.vocab_size * c.hidden_size


# family entry points (engine.models.loader) ----------------------------------
FAMILY = "llada_moe"
_MOE_KEYS = ("num_experts", "expert_intermediate_size", "moe_layer_freq")


def detect(config: dict) -> bool:
    """True for LLaDA-MoE configs: model_type "llada" (as released) or "lladamoe"/"llada_moe"
    with mixture-of-experts keys, or the LLaDAMoEModelLM architecture."""
    model_type = str(config.get("model_type", "")).lower()
    architectures = [str(a) for a in config.get("architectures") or []]
    if any(a.startswith("LLaDAMoE") for a in architectures):
        return True
    if model_type in ("lladamoe", "llada_moe", "llada-moe"):
        return True
    return model_type == "llada" and any(key in config for key in _MOE_KEYS)


def quantized_module(name: str) -> bool:
    """True for the layers 8-bit/4-bit loading quantises: attention projections, experts,
    shared experts and dense MLPs. The router (``mlp.gate``), embedding, lm_head and
    norms stay 16-bit: the routing decision is what a coarse weight would flip."""
    if ".layers." not in f".{name}.":
        return False
    return name.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def load(name: str, path, config: dict, device: torch.device, dtype: torch.dtype, quantization: str | None = None):
    """A DiffusionModel for a LLaDA-MoE checkpoint folder in the official layout.

    The mask id is the config's ``mask_token_id`` when it has one (the
    released config.json has none), else the tokenizer's mask token, else
    the released models' 156895. Raises ModelLoadError for an unsupported
    config, a missing or unreadable tokenizer.json, or weights whose names or
    shapes do not match."""
    from pathlib import Path

    from ..errors import ModelLoadError
    from .native import NativeAdapter, build_network, load_tokenizer

    path = Path(path)
    tokenizer = load_tokenizer(path, config, name, 0)
    mask_id = config.get("mask_token_id")
    if mask_id is None:
        mask_id = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else LLADA_MOE_MASK_ID
    values = {**config, "mask_token_id": mask_id}
    if values.get("moe_router_enable_expert_bias"):
        from .weights import checkpoint_tensors

        # Upstream's expert_bias buffer starts at zero, so a checkpoint without one routes as if unbiased.
        values["moe_router_enable_expert_bias"] = any(n.endswith("mlp.expert_bias") for n in checkpoint_tensors(path))
    try:
        cfg = LLaDAMoEConfig.from_config(values)
    except ValueError as exc:
        raise ModelLoadError(f"{name}: {exc}") from None
    if tokenizer.mask_token_id != cfg.mask_token_id:
        token = tokenizer.convert_ids_to_tokens(cfg.mask_token_id)
        if token is None:
            raise ModelLoadError(f"{name}: the tokenizer has no token with the mask id {cfg.mask_token_id}")
        tokenizer.mask_token = token
    context = cfg.max_position_embeddings
    tokenizer.model_max_length = context
    network = build_network(lambda: LLaDAMoENetwork(cfg), path, device, dtype, quantization,
                            keep=lambda module: not quantized_module(module))
    return NativeAdapter(name, FAMILY, network, tokenizer, cfg.mask_token_id, context, logit_shift=0,
                         path=str(path), extra_special_ids=(cfg.eos_token_id, cfg.pad_token_id),
                         quantization=quantization)
