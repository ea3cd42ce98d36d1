"""Sampling policies are named records (engine.policies, issue 22 part 3): each
fact a record states is what the sampler does, old names still work, and a
new policy is one record, with no branch on its name anywhere."""
from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lacuna.engine.sampler

from lacuna import engine
import lacuna.engine.types
from lacuna import engine
from lacuna.engine import SAMPLERS, InfillRequest, InputError, Span, stream_infill
from lacuna.engine.policies import POLICIES, Policy, Registry
from tests.support.fake import FakeModel

TEXT = "In the beginning God created the heaven and the earth."
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake(tiny_model):
    return FakeModel(tiny_model.tokenizer)


def _commits(model, **kw):
    req = InfillRequest(**{"text": TEXT, "spans": [Span(54, 54, length=6)], "steps": 6, **kw})
    return [tuple(c.index for c in e.committed) for e in stream_infill(model, req)]


# ---- the registry ---------------------------------------------------------------------------
def test_the_request_offers_exactly_the_registered_policies():
    assert SAMPLERS == POLICIES.names == tuple(p.name for p in POLICIES)
    assert len(set(SAMPLERS)) == len(SAMPLERS)
    assert all(p.label and p.source for p in POLICIES)


@pytest.mark.parametrize("old, new", [("ancestral_nocache", "ancestral_recompute")])
def test_an_older_name_is_stored_as_the_current_one(fake, old, new):
    request = InfillRequest(TEXT, (Span(54, 54, length=6),), sampler=old)
    assert request.sampler == new
    assert dataclasses.replace(request, sampler=new) == request
    assert new in SAMPLERS and old not in SAMPLERS and old in POLICIES
    assert _commits(fake, sampler=old, seed=5) == _commits(fake, sampler=new, seed=5)


@given(st.one_of(st.text(max_size=30), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)))
def test_property_a_sampler_is_a_known_name_or_one_clear_error(name):
    try:
        request = InfillRequest("hello", (Span(0, 5),), sampler=name)
    except InputError as exc:
        assert name not in POLICIES
        assert "\n" not in str(exc) and str(exc).startswith("unknown sampler")
        return
    assert request.sampler in SAMPLERS and POLICIES.find(name) is POLICIES[request.sampler]


def test_a_registry_refuses_two_records_of_one_name():
    rule = POLICIES["low_confidence"].rule
    with pytest.raises(ValueError, match="two records"):
        Registry([Policy("a", "A", rule), Policy("b", "B", rule, aliases=("a",))])


# ---- each fact a record states is what the sampler does ----------------------------------------
@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_caps_steps_says_whether_extra_steps_run(fake, policy):
    events = list(stream_infill(fake, InfillRequest(TEXT, (Span(54, 54, length=6),), steps=24,
                                                    sampler=policy.name, temperature=1.0, seed=1)))
    assert events[-1].steps == (6 if policy.caps_steps else 24)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_reuses_logits_says_whether_a_step_that_commits_nothing_costs_a_pass(fake, policy):
    events = list(stream_infill(fake, InfillRequest(TEXT, (Span(54, 54, length=6),), steps=40,
                                                    sampler=policy.name, temperature=1.0, seed=1)))
    idle = [e for e in events if not e.committed]
    if policy.caps_steps:
        assert not idle  # nothing to reuse: every step commits
    else:
        assert idle and (events[-1].nfe < len(events)) == policy.reuses_logits


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_uses_seed_says_whether_a_greedy_fill_depends_on_the_seed(fake, policy):
    orders = {tuple(_commits(fake, sampler=policy.name, seed=seed)) for seed in range(6)}
    assert (len(orders) > 1) == policy.uses_seed


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_uses_threshold_says_whether_tau_changes_the_fill(fake, policy):
    # the fake's confidence grows to the right: tau 0 commits every slot at once, tau 1 one at a time
    low, high = (_commits(fake, sampler=policy.name, threshold=t, seed=3) for t in (0.0, 1.0))
    assert (low != high) == policy.uses_threshold


# ---- a new policy is one record ------------------------------------------------------------------
def _leftmost(step):
    return step.eligible.nonzero().squeeze(1)[: step.commit]


def test_a_new_policy_is_one_record(fake, monkeypatch):
    extended = Registry((*POLICIES, Policy("leftmost", "Left to right", _leftmost, source="this test")))
    for module in (engine.types, engine.sampler):
        monkeypatch.setattr(module, "POLICIES", extended)
    assert _commits(fake, sampler="leftmost", steps=3) == [(0, 1), (2, 3), (4, 5)]


@pytest.mark.parametrize("path", ["engine/sampler.py", "app/seeds.py", "engine/cli.py"])
def test_no_code_outside_the_registry_names_a_policy(path):
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    names = {n for p in POLICIES for n in (p.name, *p.aliases)}
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert not strings & (names - {"low_confidence"})  # the CLI's default is a name, not a branch


def test_the_registry_loads_without_torch():
    # the settings panel and the seed rule read it at GUI start-up, before torch is imported
    code = "import sys, engine.policies, engine.types; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
