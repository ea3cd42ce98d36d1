"""Each native network against its upstream code on seeded weights: stored float32 outputs.

One case per (family, variant). The references were produced by
tests/reference/make_<family>_reference.py in scratch venvs with upstream's own
code and pinned transformers (LLaDA 4.38.2, Dream 4.46.2, LLaDA-MoE; MDLM and
SEDD with a torch flash-attn stand-in); see those scripts. Every case is also
checked against a network with other weights, so a reference any network
would match proves nothing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors import safe_open

from lacuna.engine.models.dream import DreamConfig, DreamNetwork
from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork
from lacuna.engine.models.llada_moe import LLaDAMoEConfig, LLaDAMoENetwork
from lacuna.engine.models.mdlm import MDLMNetwork, subs
from lacuna.engine.models.sedd import SEDDNetwork
from tests.reference.recipe import seeded_network
from tests.support.dit_tiny import dit_state, mdlm_shape, sedd_shape

REFERENCE = Path(__file__).resolve().parents[2] / "reference"


def _read(name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    with safe_open(str(REFERENCE / f"{name}_small.safetensors"), "pt") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


@dataclass(frozen=True)
class Case:
    """``network(seed_offset)`` builds the seeded network; ``run(net, ref)`` its output on the
    stored inputs; ``expected`` names the stored output."""

    id: str
    file: str
    network: Callable[[dict, dict, int], torch.nn.Module]
    run: Callable[[torch.nn.Module, dict], torch.Tensor]
    expected: str


def _native(network, config_class, key: str = "config", name: str | None = None):
    def build(meta: dict, ref: dict, offset: int):
        config = json.loads(meta[key])
        config = config[name] if name else config
        return seeded_network(network, config_class, config, int(meta["seed"]) + offset)
    return build


def _mdlm(conditioned: bool):
    def build(meta: dict, ref: dict, offset: int):
        shape = mdlm_shape(json.loads(meta["config"]))
        net = MDLMNetwork(shape, time_conditioning=conditioned).float().eval()
        net.load_state_dict(dit_state(shape, int(meta["seed"]) + offset, prefix="backbone."), strict=True)
        return net
    return build


def _sedd(scale: bool):
    def build(meta: dict, ref: dict, offset: int):
        shape = sedd_shape(json.loads(meta["config"]))
        net = SEDDNetwork(shape, scale_by_sigma=scale).float().eval()
        net.load_state_dict(dit_state(shape, int(meta["seed"]) + offset), strict=True)
        return net
    return build


def _ids(net, ref):
    return net(ref["input_ids"])


def _ids_sigma(net, ref):
    return net(ref["input_ids"], ref["sigma"])


CASES = [
    Case("llada", "llada", _native(LLaDANetwork, LLaDAConfig), _ids, "logits"),
    Case("dream", "dream", _native(DreamNetwork, DreamConfig), _ids, "logits"),
    Case("llada_moe-released", "llada_moe", _native(LLaDAMoENetwork, LLaDAMoEConfig, "configs", "released"),
         _ids, "logits_released"),
    Case("llada_moe-variants", "llada_moe", _native(LLaDAMoENetwork, LLaDAMoEConfig, "configs", "variants"),
         _ids, "logits_variants"),
    Case("mdlm-unconditioned", "mdlm", _mdlm(False), _ids_sigma, "logits_unconditioned"),
    Case("mdlm-conditioned", "mdlm", _mdlm(True), _ids_sigma, "logits_conditioned"),
    Case("sedd-scaled", "sedd", _sedd(True), _ids_sigma, "log_score_scaled"),
    Case("sedd-unscaled", "sedd", _sedd(False), _ids_sigma, "log_score_unscaled"),
]


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request):
    meta, ref = _read(request.param.file)
    return request.param, meta, ref


def test_matches_upstream_within_1e_4(case):
    c, meta, ref = case
    with torch.no_grad():
        got = c.run(c.network(meta, ref, 0), ref)
    assert got.shape == ref[c.expected].shape
    assert (got - ref[c.expected]).abs().max().item() <= 1e-4


def test_reference_is_sensitive_to_the_weights(case):
    c, meta, ref = case
    with torch.no_grad():
        assert (c.run(c.network(meta, ref, 1), ref) - ref[c.expected]).abs().max().item() > 1e-2


# What one family adds to the comparison: each optional path must change the stored output.

def test_dream_logits_at_selects_rows_of_the_full_forward():
    meta, ref = _read("dream")
    net = _native(DreamNetwork, DreamConfig)(meta, ref, 0)
    rows = torch.tensor([0, 5, 31])
    with torch.no_grad():
        got = net(ref["input_ids"], logits_at=rows)
    assert (got - ref["logits"][:, rows]).abs().max().item() <= 1e-4


def test_dream_reference_is_sensitive_to_the_q_k_v_biases():
    meta, ref = _read("dream")
    net = _native(DreamNetwork, DreamConfig)(meta, ref, 0)
    with torch.no_grad():
        for layer in net.model.layers:
            layer.self_attn.k_proj.bias.zero_()
        assert (net(ref["input_ids"]) - ref["logits"]).abs().max().item() > 1e-3


@pytest.mark.parametrize("knob", ["expert_bias", "shared_expert"])
def test_llada_moe_reference_is_sensitive_to_the_expert_bias_and_the_shared_expert(knob):
    meta, ref = _read("llada_moe")
    net = _native(LLaDAMoENetwork, LLaDAMoEConfig, "configs", "variants")(meta, ref, 0)
    with torch.no_grad():
        for layer in net.model.layers[1:]:
            if knob == "expert_bias":
                layer.mlp.expert_bias.zero_()
            else:
                layer.shared_expert.down_proj.weight.zero_()
        assert (net(ref["input_ids"]) - ref["logits_variants"]).abs().max().item() > 1e-3


@pytest.mark.parametrize("tag", ["unconditioned", "conditioned"])
def test_mdlm_subs_matches_upstream(tag):
    meta, ref = _read("mdlm")
    config = json.loads(meta["config"])
    with torch.no_grad():
        logits = _mdlm(tag == "conditioned")(meta, ref, 0)(ref["input_ids"], ref["sigma"])
    mine = subs(logits, ref["input_ids"], config["vocab_size"] - 1)
    theirs = ref[f"log_p_{tag}"]
    # Upstream marks forbidden entries with -1e6, SUBS here with -inf.
    assert torch.equal(torch.isfinite(mine), theirs > -1e5)
    assert (mine.exp() - theirs.exp()).abs().max().item() <= 1e-4
    finite = torch.isfinite(mine)
    assert (mine[finite] - theirs[finite]).abs().max().item() <= 1e-4


def test_mdlm_reference_is_sensitive_to_the_conditioning():
    _, ref = _read("mdlm")
    assert (ref["logits_conditioned"] - ref["logits_unconditioned"]).abs().max().item() > 1e-2


def test_mdlm_subs_keeps_unmasked_tokens_and_never_predicts_the_mask():
    logits = torch.randn(1, 4, 6)
    xt = torch.tensor([[5, 2, 5, 0]])  # 5 is the mask
    out = subs(logits, xt, mask_id=5)
    assert torch.allclose(out.exp().sum(-1), torch.ones(1, 4))
    assert out[0, 1].argmax() == 2 and out[0, 1, 2] == 0 and out[0, 3, 0] == 0
    assert torch.isneginf(out[..., 5]).all()


def test_sedd_each_position_scores_its_own_token_zero():
    meta, ref = _read("sedd")
    net = _sedd(True)(meta, ref, 0)
    ids = ref["input_ids"]
    positions = torch.tensor([0, 6, 23])
    with torch.no_grad():
        part = net(ids, ref["sigma"], positions)
    assert torch.equal(part.gather(-1, ids[:, positions, None]), torch.zeros(2, 3, 1))
    assert (part - ref["log_score_scaled"][:, positions]).abs().max().item() <= 1e-4
