"""SEDDNetwork against upstream louaaron/Score-Entropy-Discrete-Diffusion on seeded weights.

The reference was produced by tests/reference/make_sedd_reference.py (upstream
model/transformer.py in a scratch venv with a torch flash-attn stand-in); see
that script.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from engine.models.sedd import SEDDNetwork
from tests.support.dit_tiny import dit_state, sedd_shape

REF = Path(__file__).resolve().parents[1] / "reference" / "sedd_small.safetensors"


def _load():
    with safe_open(str(REF), "pt") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


def _network(config: dict, seed: int, scale: bool) -> SEDDNetwork:
    shape = sedd_shape(config)
    net = SEDDNetwork(shape, scale_by_sigma=scale).float().eval()
    net.load_state_dict(dit_state(shape, seed), strict=True)
    return net


@pytest.mark.parametrize("tag", ["scaled", "unscaled"])
def test_log_score_matches_upstream_within_1e_4(tag):
    meta, ref = _load()
    net = _network(json.loads(meta["config"]), int(meta["seed"]), tag == "scaled")
    with torch.no_grad():
        got = net(ref["input_ids"], ref["sigma"])
    assert got.shape == ref[f"log_score_{tag}"].shape
    assert (got - ref[f"log_score_{tag}"]).abs().max().item() <= 1e-4


def test_reference_is_sensitive_to_the_weights():
    meta, ref = _load()
    net = _network(json.loads(meta["config"]), int(meta["seed"]) + 1, True)
    with torch.no_grad():
        assert (net(ref["input_ids"], ref["sigma"]) - ref["log_score_scaled"]).abs().max().item() > 1e-2


def test_each_position_scores_its_own_token_zero():
    meta, ref = _load()
    net = _network(json.loads(meta["config"]), int(meta["seed"]), True)
    ids = ref["input_ids"]
    positions = torch.tensor([0, 6, 23])
    with torch.no_grad():
        part = net(ids, ref["sigma"], positions)
    assert torch.equal(part.gather(-1, ids[:, positions, None]), torch.zeros(2, 3, 1))
    assert (part - ref["log_score_scaled"][:, positions]).abs().max().item() <= 1e-4
