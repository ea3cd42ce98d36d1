"""Dream at the very start of a document (issue 20): Dream predicts position i from
output row i - 1, so a mask at canvas position 0 has no row of its own (upstream's shift
gives it row 0, the one predicting position 1, and never masks position 0: its canvas
starts with the prompt). A loaded Dream starts every canvas with a start token."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lacuna.engine import InfillRequest, Span, canvas, infill, load_model

SEEDS = range(12)
TEXT = "In the beginning God created the heaven and the earth."


@pytest.fixture(scope="module")
def dream(tiny_dream_dir):
    return load_model(str(tiny_dream_dir), device="cpu", dtype="float32")


def _reseeded(model, seed: int):
    """``model`` with fresh random weights (another random tiny Dream, same tokenizer)."""
    other = copy.copy(model)
    other.network = copy.deepcopy(model.network)
    torch.manual_seed(seed)
    with torch.no_grad():
        other.network.reset_parameters(std=0.2)
    return other


def _first_two_slots(model, request: InfillRequest) -> tuple[torch.Tensor, torch.Tensor]:
    c = canvas.build(model, request, None)
    rows = model.logits(c.ids, c.slots[:2])
    return torch.softmax(rows[0], -1), torch.softmax(rows[1], -1)


def _agreeing(model, request: InfillRequest) -> int:
    agree = 0
    for seed in SEEDS:
        a, b = _first_two_slots(_reseeded(model, seed), request)
        agree += bool(torch.allclose(a, b))
    return agree


def test_a_span_at_the_start_gets_two_distributions(dream, tiny_dream_dir):
    # issue 20's input: 12 of 12 random tiny Dreams gave the first two slots one distribution
    config = json.loads((tiny_dream_dir / "config.json").read_text())
    assert dream.prefix_ids == (config["bos_token_id"],)
    at_start = InfillRequest(TEXT, (Span(0, 2, length=2),), steps=2)
    later = InfillRequest(TEXT, (Span(3, 6, length=2),), steps=2)  # one word later
    assert _agreeing(dream, at_start) == 0
    assert _agreeing(dream, later) == 0
    # the same check on a canvas without the start token sees the fault: it can fail
    bare = copy.copy(dream)
    bare.prefix_ids = ()
    assert _agreeing(bare, at_start) == len(SEEDS)


def test_an_insertion_before_the_first_word_reads_the_start_tokens_row(dream):
    # a second input: an insertion at 0, the first slot predicted from the start token's output
    request = InfillRequest(TEXT, (Span(0, 0, length=3),), steps=3)
    c = canvas.build(dream, request, None)
    assert c.ids[0].item() == dream.prefix_ids[0] and c.slots.tolist() == [1, 2, 3]
    with torch.no_grad():
        rows = dream.network(c.ids[None])[0, :, : dream.vocab_size]
    torch.testing.assert_close(dream.logits(c.ids, c.slots), rows[[0, 1, 2]])
    result = infill(dream, request)
    assert result.text.endswith(TEXT) and result.spans[0].start == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(["the", "earth", "God", "light", ",", " and", "\n"]), min_size=1, max_size=12),
       width=st.integers(0, 6), view=st.one_of(st.none(), st.integers(6, 24)))
def test_no_masked_slot_is_ever_canvas_position_zero(dream, words, width, view):
    text = " ".join(words)
    width = min(width, len(text))
    span = Span(0, width) if width else Span(0, 0, length=2)
    request = InfillRequest(text, (span,), context_tokens=view)
    c = canvas.build(dream, request, None)
    assert c.ids[0].item() == dream.prefix_ids[0]
    assert int(c.slots.min()) >= 1
