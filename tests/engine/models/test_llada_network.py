"""LLaDANetwork: official tensor names, shapes, bidirectionality, positions-only logits."""
from __future__ import annotations

import pytest
import torch

from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork

SMALL = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden_size=48, vocab_size=60,
             embedding_size=64, max_sequence_length=128, mask_token_id=59, eos_token_id=1, pad_token_id=1)


def _net(**over):
    torch.manual_seed(0)
    return LLaDANetwork(LLaDAConfig.from_config({**SMALL, **over})).eval()


def test_state_dict_names_are_the_official_ones():
    keys = set(_net().state_dict())
    per_block = ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out", "attn_norm", "ff_norm"]
    want = {"model.transformer.wte.weight", "model.transformer.ln_f.weight", "model.transformer.ff_out.weight"}
    want |= {f"model.transformer.blocks.{i}.{p}.weight" for i in range(2) for p in per_block}
    assert keys == want


def test_llada_8b_shapes_without_allocating():
    with torch.device("meta"):
        net = LLaDANetwork(LLaDAConfig.llada_8b())
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["model.transformer.wte.weight"] == (126464, 4096)
    assert shapes["model.transformer.blocks.31.ff_proj.weight"] == (12288, 4096)
    assert shapes["model.transformer.ff_out.weight"] == (126464, 4096)
    assert 8.0e9 < net.num_parameters() < 8.1e9


def test_logits_at_positions_match_full_forward_and_attention_is_bidirectional():
    net = _net()
    ids = torch.randint(0, 60, (2, 9))
    with torch.no_grad():
        full = net(ids)
        some = net(ids, torch.tensor([0, 4, 8]))
        changed = ids.clone()
        changed[:, 8] = (changed[:, 8] + 1) % 60
        later = net(changed)
    assert full.shape == (2, 9, 64)
    torch.testing.assert_close(some, full[:, [0, 4, 8]])
    # A change at the last position moves the logits at the first: no causal mask.
    assert not torch.allclose(later[:, 0], full[:, 0])


def test_trainable():
    net = _net().train()
    ids = torch.randint(0, 60, (2, 7))
    loss = torch.nn.functional.cross_entropy(net(ids).flatten(0, 1), ids.flatten())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_config_round_trip_and_refusals():
    config = LLaDAConfig.from_config(SMALL)
    written = config.to_config()
    assert written["model_type"] == "llada" and written["architectures"] == ["LLaDAModelLM"]
    assert "auto_map" not in written
    assert LLaDAConfig.from_config(written) == config
    with pytest.raises(ValueError, match="alibi"):
        LLaDAConfig.from_config({**SMALL, "alibi": True})
    with pytest.raises(ValueError, match="block_type"):
        LLaDAConfig.from_config({**SMALL, "block_type": "sequential"})
    with pytest.raises(ValueError, match="n_kv_heads"):
        LLaDAConfig.from_config({**SMALL, "n_kv_heads": 3})


def test_tied_head_reuses_the_embedding():
    # iLLaDA ties its head to wte: no model.transformer.ff_out tensor.
    net = _net(weight_tying=True)
    assert "model.transformer.ff_out.weight" not in net.state_dict()
    ids = torch.randint(0, 60, (1, 5))
    with torch.no_grad():
        h = net.hidden(ids)
        torch.testing.assert_close(net(ids), h @ net.transformer.wte.weight.T)
