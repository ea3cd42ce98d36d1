"""LLaDAMoENetwork: official tensor names, routing against a dense reading of the rule, config refusals."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine.models.families import BY_NAME
from lacuna.engine.models.llada_moe import LLaDAMoEConfig, LLaDAMoENetwork, SparseMoE

LLADA_MOE = BY_NAME["llada_moe"]

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
             dense_intermediate_size=48, expert_intermediate_size=16, num_experts=4, num_experts_per_tok=2,
             moe_layer_freq=[0, 1], vocab_size=64, mask_token_id=63, shared_expert_intermediate_size=24)


def test_state_dict_names_are_the_official_ones():
    keys = set(LLaDAMoENetwork(LLaDAMoEConfig.from_config(
        {**SMALL, "moe_router_enable_expert_bias": True})).state_dict())
    assert "model.layers.0.mlp.gate_proj.weight" in keys  # dense layer 0
    assert "model.layers.0.shared_expert.gate_proj.weight" not in keys  # shared experts sit on MoE layers
    assert {"model.layers.1.mlp.gate.weight", "model.layers.1.mlp.expert_bias",
            "model.layers.1.mlp.experts.3.down_proj.weight", "model.layers.1.shared_expert.up_proj.weight",
            "model.layers.1.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm.weight",
            "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} <= keys


def test_7b_a1b_shapes_without_allocating():
    with torch.device("meta"):
        net = LLaDAMoENetwork(LLaDAMoEConfig.llada_moe_7b())
    assert 7.0e9 < net.num_parameters() < 7.5e9  # "7B" in all
    assert 1.35e9 < net.active_parameters() < 1.45e9  # "1.4B active" on the model card


def _dense_reading(moe: SparseMoE, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, weighted by the top-k of softmax(+bias), zero elsewhere."""
    flat = x.reshape(-1, x.shape[-1])
    probs = F.softmax(moe.gate(flat), dim=-1, dtype=torch.float32)
    if moe.expert_bias is not None:
        probs = probs + moe.expert_bias
    top, idx = probs.topk(moe.top_k, dim=-1)
    weights = torch.zeros_like(probs).scatter(1, idx, top)
    outs = torch.stack([e(flat) for e in moe.experts], dim=1)  # [N, E, d]
    return (outs * weights[..., None]).sum(1).reshape(x.shape)


@settings(max_examples=25, deadline=None)
@given(experts=st.integers(1, 6), data=st.data(), tokens=st.integers(1, 12), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_sparse_dispatch_equals_the_dense_reading_of_the_routing_rule(experts, data, tokens, bias, seed):
    top_k = data.draw(st.integers(1, experts))
    cfg = LLaDAMoEConfig.from_config({**SMALL, "num_experts": experts, "num_experts_per_tok": top_k,
                                      "moe_router_enable_expert_bias": bias})
    torch.manual_seed(seed)
    moe = SparseMoE(cfg)
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.3)
    if bias:
        moe.expert_bias.normal_(std=0.1)
    x = torch.randn(2, tokens, cfg.hidden_size)
    with torch.no_grad():
        torch.testing.assert_close(moe(x), _dense_reading(moe, x), atol=1e-5, rtol=1e-5)


def test_partial_rotary_leaves_the_tail_channels_unrotated():
    net = LLaDAMoENetwork(LLaDAMoEConfig.from_config({**SMALL, "partial_rotary_factor": 0.5}))
    attn = net.model.layers[0].self_attn
    assert attn.rotary_dim == 4 and attn.head_dim == 8
    ids = torch.randint(0, 64, (1, 6))
    with torch.no_grad():
        assert net(ids).shape == (1, 6, 64)


def test_config_refusals():
    for bad, word in [({"moe_layer_freq": [1]}, "moe_layer_freq"),
                      ({"moe_router_score_function": "sigmoid"}, "softmax"),
                      ({"num_experts_per_tok": 5}, "num_experts_per_tok"),
                      ({"tie_word_embeddings": True}, "tie_word_embeddings"),
                      ({"partial_rotary_factor": -1}, "partial_rotary_factor"),
                      ({"num_experts": "many"}, "wrong type")]:
        with pytest.raises(ValueError, match=word):
            LLaDAMoEConfig.from_config({**SMALL, **bad})


def test_config_round_trip_and_released_mask_id_default():
    config = LLaDAMoEConfig.from_config(SMALL)
    assert LLaDAMoEConfig.from_config(config.to_config()) == config
    released = {k: v for k, v in SMALL.items() if k != "mask_token_id"}
    assert LLaDAMoEConfig.from_config({**released, "vocab_size": 157184}).mask_token_id == 156895


def test_detect_claims_moe_configs_and_leaves_dense_llada_alone():
    assert LLADA_MOE.detect({"model_type": "llada", "architectures": ["LLaDAMoEModelLM"]})
    assert LLADA_MOE.detect({"model_type": "llada", "num_experts": 64, "moe_layer_freq": [1] * 16})
    assert LLADA_MOE.detect({"model_type": "lladamoe"})
    assert not LLADA_MOE.detect({"model_type": "llada", "architectures": ["LLaDAModelLM"], "d_model": 4096})
    assert not LLADA_MOE.detect({"model_type": "Dream"})


def test_router_stays_in_16_bit_when_quantised():
    assert LLADA_MOE.quantizes("model.layers.2.mlp.experts.17.up_proj")
    assert LLADA_MOE.quantizes("model.layers.2.self_attn.o_proj")
    assert not LLADA_MOE.quantizes("model.layers.2.mlp.gate")
    assert not LLADA_MOE.quantizes("lm_head")
