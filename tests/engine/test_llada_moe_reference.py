"""LLaDAMoENetwork against upstream modeling_lladamoe.py: stored float32 logits, seeded weights.

The reference was produced by tests/reference/make_llada_moe_reference.py in a
scratch venv with transformers 4.46.2; see that script. Two configs: the
released model's structure, and one that switches on every optional path.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from engine.models.llada_moe import LLaDAMoEConfig, LLaDAMoENetwork
from tests.reference.recipe import seeded_network

REF = Path(__file__).resolve().parents[1] / "reference" / "llada_moe_small.safetensors"


def _load(name: str):
    with safe_open(str(REF), "pt") as f:
        meta = f.metadata()
        return json.loads(meta["configs"])[name], int(meta["seed"]), f.get_tensor("input_ids"), f.get_tensor(f"logits_{name}")


def _network(config: dict, seed: int) -> LLaDAMoENetwork:
    return seeded_network(LLaDAMoENetwork, LLaDAMoEConfig, config, seed)


@pytest.mark.parametrize("name", ["released", "variants"])
def test_matches_upstream_within_1e_4(name):
    config, seed, ids, expected = _load(name)
    net = _network(config, seed)
    with torch.no_grad():
        got = net(ids)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", ["released", "variants"])
def test_reference_is_sensitive_to_the_weights(name):
    config, seed, ids, expected = _load(name)
    net = _network(config, seed + 1)
    with torch.no_grad():
        assert (net(ids) - expected).abs().max().item() > 1e-2


def test_reference_is_sensitive_to_the_expert_bias_and_the_shared_expert():
    # Each optional path must change the stored logits, or the comparison proves nothing about it.
    config, seed, ids, expected = _load("variants")
    for knob in ("expert_bias", "shared_expert"):
        net = _network(config, seed)
        with torch.no_grad():
            for layer in net.model.layers[1:]:
                if knob == "expert_bias":
                    layer.mlp.expert_bias.zero_()
                else:
                    layer.shared_expert.down_proj.weight.zero_()
            assert (net(ids) - expected).abs().max().item() > 1e-3, knob
