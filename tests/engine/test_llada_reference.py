"""LLaDANetwork against upstream modeling_llada.py: stored float32 logits, seeded weights.

The reference was produced by tests/reference/make_llada_reference.py in a
scratch venv with upstream's pinned transformers (4.38.2); see that script.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from engine.models.llada import LLaDAConfig, LLaDANetwork
from tests.reference.recipe import seeded_network

REF = Path(__file__).resolve().parents[1] / "reference" / "llada_small.safetensors"


def _load():
    with safe_open(str(REF), "pt") as f:
        meta = f.metadata()
        return meta, f.get_tensor("input_ids"), f.get_tensor("logits")


def _network(config: dict, seed: int) -> LLaDANetwork:
    return seeded_network(LLaDANetwork, LLaDAConfig, config, seed)


def test_matches_upstream_within_1e_4():
    meta, ids, expected = _load()
    net = _network(json.loads(meta["config"]), int(meta["seed"]))
    with torch.no_grad():
        got = net(ids)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


def test_reference_is_sensitive_to_the_weights():
    # Guards the test above against a reference that any network would match.
    meta, ids, expected = _load()
    net = _network(json.loads(meta["config"]), int(meta["seed"]) + 1)
    with torch.no_grad():
        assert (net(ids) - expected).abs().max().item() > 1e-2
