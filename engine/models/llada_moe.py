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

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import MaskPredictor, RMSNorm, RotaryEmbedding, SwiGLU, attention, merge_heads, split_heads
from .families import BY_NAME
from .kvcache import CacheStep
from .llada_moe_config import LLADA_MOE_MASK_ID, LLaDAMoEConfig


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

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None,
                cache: CacheStep | None = None, layer: int = 0) -> torch.Tensor:
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
        return self.o_proj(merge_heads(attention(q, k, v, cache=cache, layer=layer)))


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

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None = None,
                cache: CacheStep | None = None, layer: int = 0) -> torch.Tensor:
        """x: [B, L, hidden] -> [B, L, hidden]; ``cache``: this pass's context cache, this layer its ``layer``."""
        x = x + self.self_attn(self.input_layernorm(x), rotary, positions, cache, layer)
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


class LLaDAMoENetwork(MaskPredictor):
    """LLaDA-MoE's mask predictor: token ids [B, L] -> logits [B, L, vocab_size] (no shift).

    State-dict keys are the official ones: ``model.embed_tokens.weight``,
    ``model.layers.{i}.self_attn.{q,k,v,o}_proj.weight`` (and ``q_norm``/``k_norm``),
    ``model.layers.{i}.mlp.gate.weight``, ``model.layers.{i}.mlp.experts.{j}.{gate,up,down}_proj.weight``
    (``model.layers.{i}.mlp.{gate,up,down}_proj.weight`` on dense layers),
    ``model.layers.{i}.shared_expert.*``, ``model.layers.{i}.{input,post_attention}_layernorm.weight``,
    ``model.norm.weight``, ``lm_head.weight``.
    """

    def __init__(self, config: LLaDAMoEConfig):
        super().__init__(config)
        self.model = _Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(config.rotary_dim, config.rope_theta)
        self._ready()

    def reset_parameters(self, std: float = 0.02) -> None:
        """Fresh weights: normal(0, std) for matrices (output projections scaled by
        1/sqrt(2 n_layers)), zero biases and expert biases, ones for norms."""
        self._init_weights(std, self.config.num_hidden_layers, ("o_proj", "down_proj"))
        for module in self.modules():
            if isinstance(module, SparseMoE) and module.expert_bias is not None:
                module.expert_bias.zero_()

    def trunk(self) -> tuple[nn.Module, nn.ModuleList, nn.Module]:
        return self.model.embed_tokens, self.model.layers, self.model.norm

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., hidden_size] -> logits [..., vocab_size]."""
        return self.lm_head(hidden)

    def active_parameters(self) -> int:
        """Parameters one token is multiplied through: all but the experts it was not
        routed to and the embedding table (a lookup). 1.40e9 for the 7B-A1B shapes,
        the model card's "1.4B active"."""
        c = self.config
        per_expert = 3 * c.hidden_size * c.expert_intermediate_size
        idle = sum(c.num_experts - c.num_experts_per_tok for i in range(c.num_hidden_layers) if c.is_moe(i))
        return self.num_parameters() - idle * per_expert - c.vocab_size * c.hidden_size


# family entry points (engine.models.loader) ----------------------------------
FAMILY = BY_NAME["llada_moe"]
quantized_module = FAMILY.quantizes  # engine.bench.native reads it


def load(name: str, path, config: dict, device: torch.device, dtype: torch.dtype, quantization: str | None = None):
    """A NativeAdapter for a LLaDA-MoE checkpoint folder in the official layout.

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
                            keep=lambda module: not FAMILY.quantizes(module))
    return NativeAdapter(name, FAMILY, network, tokenizer, cfg.mask_token_id, context,
                         path=str(path), extra_special_ids=(cfg.eos_token_id, cfg.pad_token_id),
                         quantization=quantization)
