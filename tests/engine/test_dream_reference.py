"""DreamNetwork against upstream modeling_dream.py: stored float32 logits, seeded weights.

The reference was produced by tests/reference/make_dream_reference.py in a
scratch venv with upstream's pinned transformers (4.46.2); see that script.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from engine.models.dream import DreamConfig, DreamNetwork
from tests.reference.recipe import seeded_network

REF = Path(__file__).resolve().parents[1] / "reference" / "dream_small.safetensors"


def _load():
    with safe_open(str(REF), "pt") as f:
        return f.metadata(), f.get_tensor("input_ids"), f.get_tensor("logits")


def _network(config: dict, seed: int) -> DreamNetwork:
    return seeded_network(DreamNetwork, DreamConfig, config, seed)


def test_matches_upstream_within_1e_4():
    meta, ids, expected = _load()
    net = _network(json.loads(meta["config"]), int(meta["seed"]))
    with torch.no_grad():
        got = net(ids)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


def test_logits_at_selects_rows_of_the_full_forward():
    meta, ids, expected = _load()
    net = _network(json.loads(meta["config"]), int(meta["seed"]))
    rows = torch.tensor([0, 5, 31])
    with torch.no_grad():
        got = net(ids, logits_at=rows)
    assert (got - expected[:, rows]).abs().max().item() <= 1e-4


def test_reference_is_sensitive_to_the_weights():
    # Guards the tests above against a reference that any network would match.
    meta, ids, expected = _load()
    net = _network(json.loads(meta["config"]), int(meta["seed"]) + 1)
    with torch.no_grad():
        assert (net(ids) - expected).abs().max().item() > 1e-2


def test_reference_is_sensitive_to_the_q_k_v_biases():
    meta, ids, expected = _load()
    net = _network(json.loads(meta["config"]), int(meta["seed"]))
    with torch.no_grad():
        for layer in net.model.layers:
            layer.self_attn.k_proj.bias.zero_()
        assert (net(ids) - expected).abs().max().item() > 1e-3
