"""The sampler's per-step rules (engine.sampler._constrain) cost one pass over
the logits: they change the model's logits in place instead of copying them,
the ids they forbid are computed once per model, and the merged rule (specials
and line breaks in one fill) forbids exactly what the rules one by one did."""
from __future__ import annotations

import dataclasses

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import InfillRequest, Span, infill
from engine import select as sel
from engine import sampler
from engine.models import vocab
from tests.support.fake import FakeModel

TEXT = "In the beginning God created the heaven and the earth."


class KeepingFake(FakeModel):
    """Keeps every logits tensor it returns, to see what the sampler did to it."""

    def __init__(self, tokenizer):
        super().__init__(tokenizer)
        self.returned: list[torch.Tensor] = []

    def logits(self, ids, positions):
        out = super().logits(ids, positions)
        self.returned.append(out)
        return out


def test_the_rules_change_the_returned_logits_in_place(tiny_model):
    fake = KeepingFake(tiny_model.tokenizer)
    infill(fake, InfillRequest(text=TEXT, spans=[Span(33, 39, length=3)], steps=3))
    assert len(fake.returned) == 3
    # The fake puts 100 on the mask token; the sampler's copy-free rules overwrite it there.
    assert all(torch.isneginf(out[:, fake.mask_id]).all() for out in fake.returned)


def test_the_forbidden_ids_are_computed_once_per_model(tiny_model):
    fake = FakeModel(tiny_model.tokenizer)
    req = InfillRequest(text=TEXT, spans=[Span(33, 39, length=3)], steps=3)
    infill(fake, req)
    (key, first), = fake.__dict__["_lacuna_blocked"].items()
    infill(fake, dataclasses.replace(req, seed=1, spans=[Span(0, 2, length=4)]))
    (again_key, again), = fake.__dict__["_lacuna_blocked"].items()
    assert again_key == key and all(a is b for a, b in zip(again, first)), "the same tensors, not rebuilt"
    special = set(first[0].tolist())
    assert {fake.mask_id, *fake.special_ids} <= special and special <= set(first[1].tolist())


def _one_by_one(logits, special, no_newline, newline_ids):
    out = sel.suppress(logits, special)
    return sel.forbid_in_rows(out, no_newline, newline_ids)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_merged_rules_forbid_what_the_rules_one_by_one_did(tiny_model, data):
    fake = FakeModel(tiny_model.tokenizer)
    profile = vocab.profile(fake.tokenizer, fake.vocab_size)
    special, special_newline = sampler._blocked(fake, profile, torch.device("cpu"))
    rows = data.draw(st.integers(1, 6))
    no_newline = torch.tensor(data.draw(st.lists(st.booleans(), min_size=rows, max_size=rows)))
    logits = torch.randn(rows, fake.vocab_size, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    want = _one_by_one(logits, special, no_newline, profile.newline_ids)
    rules = sampler._Rules(special=special, special_newline=special_newline, no_newline=no_newline,
                           no_lead_space=torch.zeros(rows, dtype=torch.bool), newline_ids=profile.newline_ids,
                           lead_space=profile.lead_space)
    cand = sampler._Candidate(seed=0, canvas=None, gen=torch.Generator(), guard=None, slot_ids=[], texts=[],
                              confs=[], masked_slots=torch.arange(rows), rows=torch.arange(rows))
    got = sampler._constrain(logits.clone(), cand, rules, InfillRequest(text="a", spans=[Span(0, 1)]))
    assert torch.equal(got, want)
