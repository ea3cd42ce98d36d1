"""DreamNetwork: official tensor names, 7B shapes, bidirectionality, config refusals, family detection."""
from __future__ import annotations

import pytest
import torch

from lacuna.engine.models.families import BY_NAME
from lacuna.engine.models.dream import DreamConfig, DreamNetwork

DREAM = BY_NAME["dream"]

SMALL = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=64, mask_token_id=63)


def _net(**over):
    torch.manual_seed(0)
    return DreamNetwork(DreamConfig.from_config({**SMALL, **over})).eval()


def test_state_dict_names_are_the_official_ones():
    keys = set(_net().state_dict())
    want = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for i in range(2):
        p = f"model.layers.{i}"
        want |= {f"{p}.self_attn.{x}_proj.{kind}" for x in "qkv" for kind in ("weight", "bias")}
        want |= {f"{p}.self_attn.o_proj.weight", f"{p}.input_layernorm.weight", f"{p}.post_attention_layernorm.weight"}
        want |= {f"{p}.mlp.{x}_proj.weight" for x in ("gate", "up", "down")}
    assert keys == want


def test_dream_7b_shapes_without_allocating():
    with torch.device("meta"):
        net = DreamNetwork(DreamConfig.dream_7b())
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["model.embed_tokens.weight"] == (152064, 3584)
    assert shapes["model.layers.27.self_attn.k_proj.weight"] == (512, 3584)  # 4 key/value heads of 128
    assert shapes["model.layers.27.mlp.gate_proj.weight"] == (18944, 3584)
    assert shapes["lm_head.weight"] == (152064, 3584)
    assert 7.6e9 < net.num_parameters() < 7.65e9  # Dream's card: 7.6B


def test_logits_at_rows_match_full_forward_and_attention_is_bidirectional():
    net = _net()
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = net(ids)
        some = net(ids, torch.tensor([0, 4, 8]))
        changed = ids.clone()
        changed[:, 8] = (changed[:, 8] + 1) % 64
        later = net(changed)
    assert full.shape == (2, 9, 64)
    torch.testing.assert_close(some, full[:, [0, 4, 8]])
    assert not torch.allclose(later[:, 0], full[:, 0])  # no causal mask


def test_config_round_trip_and_refusals():
    config = DreamConfig.from_config(SMALL)
    again = DreamConfig.from_config(config.to_config())
    assert again == config
    assert config.to_config()["model_type"] == "Dream" and "auto_map" not in config.to_config()
    for bad, word in [({"tie_word_embeddings": True}, "tie_word_embeddings"),
                      ({"rope_scaling": {"type": "yarn", "factor": 4.0}}, "rope_scaling"),
                      ({"hidden_act": "gelu"}, "hidden_act"),
                      ({"num_key_value_heads": 3}, "num_key_value_heads"),
                      ({"mask_token_id": 64}, "mask_token_id"),
                      ({"hidden_size": "wide"}, "wrong type")]:
        with pytest.raises(ValueError, match=word):
            DreamConfig.from_config({**SMALL, **bad})


def test_detect_claims_dream_configs_only():
    assert DREAM.detect({"model_type": "Dream", "architectures": ["DreamModel"]})
    assert DREAM.detect({"architectures": ["DreamModel"]})
    assert not DREAM.detect({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]})
    assert not DREAM.detect({"model_type": "llada"})


def test_quantized_modules_are_the_layer_linears():
    assert DREAM.quantizes("model.layers.3.self_attn.q_proj")
    assert DREAM.quantizes("model.layers.0.mlp.down_proj")
    assert not DREAM.quantizes("lm_head")
    assert not DREAM.quantizes("model.embed_tokens")
