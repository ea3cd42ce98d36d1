"""The config base: reading config.json dicts, refusing what cannot form a network, counting for the fit check."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lacuna.engine.hub import fit
from lacuna.engine.models.dream import DreamConfig, DreamNetwork
from lacuna.engine.models.families import BY_NAME
from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork
from lacuna.engine.models.llada_moe import LLaDAMoEConfig, LLaDAMoENetwork


def _counts(family: str, config):
    network = {"llada": LLaDANetwork, "dream": DreamNetwork, "llada_moe": LLaDAMoENetwork}[family]
    with torch.device("meta"):
        net = network(config)
    total = sum(t.numel() for t in [*net.parameters(), *net.buffers()])
    quantised = sum(m.weight.numel() for name, m in net.named_modules()
                    if isinstance(m, nn.Linear) and BY_NAME[family].quantizes(name))
    return total, quantised


@settings(max_examples=25, deadline=None)
@given(family=st.sampled_from(["llada", "dream", "llada_moe"]), heads=st.sampled_from([2, 4]),
       kv_div=st.sampled_from([1, 2]), head_dim=st.sampled_from([4, 8]), layers=st.integers(1, 3),
       ff=st.integers(1, 40), vocab=st.integers(8, 80), flags=st.lists(st.booleans(), min_size=3, max_size=3))
def test_the_split_counts_every_parameter_the_network_builds(family, heads, kv_div, head_dim, layers, ff, vocab,
                                                             flags):
    d = heads * head_dim
    if family == "llada":
        config = LLaDAConfig(d_model=d, n_layers=layers, n_heads=heads, n_kv_heads=heads // kv_div, mlp_hidden_size=ff,
                             vocab_size=vocab, embedding_size=vocab + 3, mask_token_id=vocab - 1,
                             weight_tying=flags[0])
    elif family == "dream":
        config = DreamConfig(hidden_size=d, intermediate_size=ff, num_hidden_layers=layers, num_attention_heads=heads,
                             num_key_value_heads=heads // kv_div, vocab_size=vocab, mask_token_id=vocab - 1)
    else:
        config = LLaDAMoEConfig(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                                num_key_value_heads=heads // kv_div, dense_intermediate_size=ff + 1,
                                expert_intermediate_size=ff, num_experts=4, num_experts_per_tok=2,
                                moe_layer_freq=[int(i % 2 == 0 or flags[0]) for i in range(layers)],
                                shared_expert_intermediate_size=ff if flags[1] else None,
                                attention_bias=flags[2], qk_layernorm=flags[1],
                                moe_router_enable_expert_bias=flags[2], vocab_size=vocab, mask_token_id=vocab - 1)
    total, quantised = _counts(family, config)
    split = config.parameter_split()
    assert (split.total, split.quantized) == (total, quantised)
    assert fit.family_split(config.to_config()) == (family, split)  # the dict the checkpoint ships


@pytest.mark.parametrize("config_type", [LLaDAConfig, DreamConfig, LLaDAMoEConfig])
def test_unknown_keys_are_kept_aside_and_written_back(config_type):
    base = config_type().to_config()
    config = config_type.from_dict({**base, "some_future_key": [1, 2], "auto_map": {"x": "y"}})
    assert config.extra["some_future_key"] == [1, 2]
    written = config.to_config()
    assert written["some_future_key"] == [1, 2] and "auto_map" not in written
    assert config_type.from_dict(written) == config


@pytest.mark.parametrize("config_type, key, message", [
    (LLaDAConfig, "n_heads", "n_heads=0; it must be positive"),
    (DreamConfig, "num_attention_heads", "num_attention_heads=0; it must be positive"),
    (LLaDAMoEConfig, "num_experts", "num_experts=0; it must be positive"),
])
def test_one_place_refuses_shapes_that_cannot_form_a_network(config_type, key, message):
    with pytest.raises(ValueError, match=f"{config_type.LABEL} config has {message}"):
        config_type.from_dict({**config_type().to_config(), key: 0})
    assert config_type.split_from_dict({**config_type().to_config(), key: 0}) is None


def test_divisibility_and_types_are_refused_with_the_key():
    with pytest.raises(ValueError, match="d_model 100 is not a multiple of n_heads 32"):
        LLaDAConfig.from_dict({"d_model": 100})
    with pytest.raises(ValueError, match="num_attention_heads 28 is not a multiple of num_key_value_heads 5"):
        DreamConfig.from_dict({"num_key_value_heads": 5})
    with pytest.raises(ValueError, match="Dream config has a value of the wrong type"):
        DreamConfig.from_dict({"hidden_size": "wide"})


def test_the_fit_check_counts_a_config_whose_ids_it_does_not_check():
    # the loader refuses a mask id outside the vocabulary; the fit check only counts shapes
    config = {**LLaDAConfig(d_model=64, n_heads=4, n_kv_heads=4, n_layers=1, mlp_hidden_size=32, vocab_size=100,
                            embedding_size=100, mask_token_id=99).to_config(), "mask_token_id": 5000}
    with pytest.raises(ValueError, match="mask_token_id 5000 is outside"):
        LLaDAConfig.from_dict(config)
    assert LLaDAConfig.split_from_dict(config) is not None
    assert LLaDAConfig.split_from_dict({"n_layers": 2, "n_heads": 4, "vocab_size": 10}) is None  # no d_model
