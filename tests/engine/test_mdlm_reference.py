"""MDLMNetwork and SUBS against upstream kuleshov-group/mdlm on seeded weights.

The reference was produced by tests/reference/make_mdlm_reference.py (upstream
models/dit.py and diffusion.py in a scratch venv with a torch flash-attn
stand-in); see that script.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from engine.models.mdlm import MDLMNetwork, subs
from tests.support.dit_tiny import dit_state, mdlm_shape

REF = Path(__file__).resolve().parents[1] / "reference" / "mdlm_small.safetensors"


def _load():
    with safe_open(str(REF), "pt") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


def _network(config: dict, seed: int, conditioned: bool) -> MDLMNetwork:
    shape = mdlm_shape(config)
    net = MDLMNetwork(shape, time_conditioning=conditioned).float().eval()
    net.load_state_dict(dit_state(shape, seed, prefix="backbone."), strict=True)
    return net


@pytest.mark.parametrize("tag", ["unconditioned", "conditioned"])
def test_network_and_subs_match_upstream_within_1e_4(tag):
    meta, ref = _load()
    config = json.loads(meta["config"])
    net = _network(config, int(meta["seed"]), tag == "conditioned")
    ids, sigma = ref["input_ids"], ref["sigma"]
    with torch.no_grad():
        logits = net(ids, sigma)
    assert (logits - ref[f"logits_{tag}"]).abs().max().item() <= 1e-4
    mine = subs(logits, ids, config["vocab_size"] - 1)
    theirs = ref[f"log_p_{tag}"]
    # Upstream marks forbidden entries with -1e6, SUBS here with -inf.
    assert torch.equal(torch.isfinite(mine), theirs > -1e5)
    assert (mine.exp() - theirs.exp()).abs().max().item() <= 1e-4
    finite = torch.isfinite(mine)
    assert (mine[finite] - theirs[finite]).abs().max().item() <= 1e-4


def test_reference_is_sensitive_to_weights_and_conditioning():
    meta, ref = _load()
    config = json.loads(meta["config"])
    ids, sigma = ref["input_ids"], ref["sigma"]
    with torch.no_grad():
        other = _network(config, int(meta["seed"]) + 1, False)(ids, sigma)
    assert (other - ref["logits_unconditioned"]).abs().max().item() > 1e-2
    assert (ref["logits_conditioned"] - ref["logits_unconditioned"]).abs().max().item() > 1e-2


def test_subs_keeps_unmasked_tokens_and_never_predicts_the_mask():
    logits = torch.randn(1, 4, 6)
    xt = torch.tensor([[5, 2, 5, 0]])  # 5 is the mask
    out = subs(logits, xt, mask_id=5)
    assert torch.allclose(out.exp().sum(-1), torch.ones(1, 4))
    assert out[0, 1].argmax() == 2 and out[0, 1, 2] == 0 and out[0, 3, 0] == 0
    assert torch.isneginf(out[..., 5]).all()
