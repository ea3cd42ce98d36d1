"""Auto length (engine.length): proposals, the ELBO score, ranked fills, EOS padding.

The scoring properties run on the bundled starter (a trained LLaDA, so
"the original beats a shuffle" means something); the counting and ranking
tests run on the deterministic fake (with the starter's tokenizer, which
loads in a fraction of the time a tiny Hugging Face model takes to build),
whose forward passes are counted."""
import math
import threading
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine import Cancelled, InfillRequest, InputError, Span, infill, load_model, resources
from lacuna.engine.length import (
    DEFAULT_ALPHA, DEFAULT_SAMPLES, DEFAULT_WINDOW, INSERTION_LENGTHS, AutoResult, covered_ids, infill_auto, infill_eos_padded, lengths_for, propose_lengths,
    score_fill,
)
from tests.support.fake import FakeModel

STARTER = resources.path("models", "starter")
pytestmark = pytest.mark.skipif(not (STARTER / "model.safetensors").is_file(),
                                reason="the starter model is not in this checkout")

MEETING = "The meeting has been moved to Thursday afternoon, so please bring your umbrella."
# Held-out-style sentences and a multi-token span of each (training/evaluate's kind of example).
SENTENCES = [
    (MEETING, "Thursday afternoon"),
    ("Use the source-specific Fortran_PREPROCESS property if a single file needs to be preprocessed.",
     "if a single file needs"),
    ("Our new Cabinet-level Domestic Council Committee on Aging has these recommendations at the top of its "
     "agenda.", "these recommendations at the top"),
    ("For example, you can add cross-file references in a portable way (which works for all output types) "
     "using the ref role.", "in a portable way"),
]


@pytest.fixture(scope="module")
def starter():
    return load_model("starter", device="cpu", dtype="float32")


@pytest.fixture
def fake(starter):
    return FakeModel(starter.tokenizer)


def _select(text: str, words: str, **kw) -> InfillRequest:
    s = text.index(words)
    return InfillRequest(text=text, spans=[Span(s, s + len(words))], **kw)


# proposals --------------------------------------------------------------------
def test_a_one_word_selection_tries_one_to_three_tokens_and_its_own_count():
    # the issue's examples: "Thursday" is 4 starter tokens, "umbrella" 5
    assert propose_lengths(covered=4, words=1) == (1, 2, 3, 4)
    assert propose_lengths(covered=5, words=1) == (1, 2, 3, 5)
    assert propose_lengths(covered=1, words=1) == (1, 2, 3)


def test_the_issue_words_get_a_one_token_proposal_on_the_starter(starter):
    for word, count in (("Thursday", 4), ("umbrella", 5)):
        req = _select(MEETING, word)
        assert len(covered_ids(starter, MEETING, req.spans[0].start, req.spans[0].end)) == count
        assert lengths_for(starter, req, 0) == (1, 2, 3, count)


def test_an_insertion_tries_a_geometric_set_capped_by_the_room():
    assert propose_lengths() == INSERTION_LENGTHS
    assert propose_lengths(room=5) == (1, 2, 4, 5)
    with pytest.raises(InputError, match="no room"):
        propose_lengths(room=0)


def test_about_n_is_a_band_around_n_and_a_range_keeps_its_ends():
    assert propose_lengths(about=8) == (4, 6, 8, 10, 12)
    assert propose_lengths(lower=3, upper=30)[0] == 3 and propose_lengths(lower=3, upper=30)[-1] == 30
    with pytest.raises(InputError, match="low <= high"):
        propose_lengths(lower=5, upper=2)


@settings(max_examples=200, deadline=None)
@given(covered=st.one_of(st.none(), st.integers(1, 300)), words=st.integers(1, 60),
       about=st.one_of(st.none(), st.integers(1, 500)), room=st.one_of(st.none(), st.integers(1, 600)),
       limit=st.integers(2, 6))
def test_property_proposals_are_few_sorted_in_room_and_keep_the_anchor(covered, words, about, room, limit):
    got = propose_lengths(covered=covered, words=words, about=about, room=room, limit=limit)
    assert got == tuple(sorted(set(got))) and 1 <= len(got) <= limit
    assert all(1 <= n <= (room or math.inf) for n in got)
    anchor = about if about is not None else covered
    if anchor is not None:
        assert min(anchor, room or anchor) in got


def test_unknown_length_specs_and_edits_are_refused_in_one_sentence(fake):
    req = _select(MEETING, "Thursday")
    with pytest.raises(InputError, match="unknown length"):
        lengths_for(fake, req, 0, "long")
    with pytest.raises(InputError, match="unknown length score"):
        infill_auto(fake, req, score="bleu")
    with pytest.raises(InputError, match="no span 3"):
        infill_auto(fake, req, {3: "auto"})
    edit = replace(req, spans=(Span(req.spans[0].start, req.spans[0].end, strength=0.5),))
    with pytest.raises(InputError, match="edit"):
        infill_auto(fake, edit, {0: "auto"})
    # unnamed, an edit keeps its own length beside an auto insertion
    mixed = replace(edit, spans=(*edit.spans, Span(0, 0, length=1)))
    assert [c.span for c in infill_auto(fake, mixed).choices] == [1]
    assert lengths_for(fake, req, 0, "~6") == lengths_for(fake, req, 0, 6) == propose_lengths(about=6)


# scoring ----------------------------------------------------------------------
def test_the_original_words_score_above_the_same_tokens_shuffled(starter):
    gen = torch.Generator().manual_seed(0)
    for text, words in SENTENCES:
        req = _select(text, words)
        ids = covered_ids(starter, text, req.spans[0].start, req.spans[0].end)
        assert len(ids) >= 4
        order = torch.randperm(len(ids), generator=gen).tolist()
        shuffled = tuple(ids[i] for i in order) if order != sorted(order) else ids[::-1]
        assert score_fill(starter, req, 0, ids).bound > score_fill(starter, req, 0, shuffled).bound


def test_the_bound_of_one_token_is_its_log_probability_with_it_masked(starter):
    from lacuna.engine import canvas

    req = _select(MEETING, "meeting")
    (tok,) = covered_ids(starter, MEETING, req.spans[0].start, req.spans[0].end)
    got = score_fill(starter, req, 0, (tok,))
    c = canvas.build(starter, req)
    logp = torch.log_softmax(starter.logits(c.ids, c.slots), -1)[0, tok]
    assert got.rows == 1 and got.length == 1
    assert got.bound == pytest.approx(float(logp), abs=1e-4)


def test_two_tokens_are_scored_exactly_over_every_mask(starter):
    from lacuna.engine import canvas

    text, words = MEETING, "afternoon"
    req = _select(text, words)
    a, b = covered_ids(starter, text, req.spans[0].start, req.spans[0].end)[:2]
    req = replace(req, spans=(Span(req.spans[0].start, req.spans[0].end, length=2),))
    c = canvas.build(starter, req)
    (p, q) = c.slots.tolist()

    def lp(ids, pos, tok):
        return float(torch.log_softmax(starter.logits(ids, torch.tensor([pos])), -1)[0, tok])

    both = c.ids.clone()
    only_b, only_a = c.ids.clone(), c.ids.clone()
    only_b[q] = b
    only_a[p] = a
    # l = 1 (probability 1/2, weight 2/1, each position 1/2) and l = 2 (probability 1/2, weight 1)
    want = 0.5 * (lp(only_b, p, a) + lp(only_a, q, b)) + 0.5 * (lp(both, p, a) + lp(both, q, b))
    got = score_fill(starter, req, 0, (a, b))
    assert got.rows == 3
    assert got.bound == pytest.approx(want, abs=1e-4)


def test_scores_are_deterministic_under_a_seed(starter):
    text, words = SENTENCES[1]
    req = _select(text, words)
    ids = covered_ids(starter, text, req.spans[0].start, req.spans[0].end)
    first = score_fill(starter, req, 0, ids, seed=3)
    assert first.rows == DEFAULT_SAMPLES  # 2**5 - 1 subsets are more than that: Monte Carlo
    assert score_fill(starter, req, 0, ids, seed=3) == first


class _Uniform(FakeModel):
    """Every token equally likely everywhere: a fill's per-token score is the same at any length."""

    def logits(self, ids, positions):
        self.calls.append(ids.clone())
        shape = (ids.shape[0], positions.numel(), self.vocab_size) if ids.dim() == 2 else (
            positions.numel(), self.vocab_size)
        return torch.zeros(shape)


def test_per_token_normalisation_makes_lengths_comparable_and_the_sum_does_not(starter):
    model = _Uniform(starter.tokenizer)
    text = "one two three four five six seven eight nine ten"
    per_token, total = [], []
    for n in (1, 2, 5, 9):
        req = InfillRequest(text=text, spans=[Span(4, 4, length=n)])
        ids = (model.preferred(0),) * n
        per_token.append(score_fill(model, req, 0, ids, alpha=1.0).score)
        total.append(score_fill(model, req, 0, ids, alpha=0.0).score)
    assert per_token == pytest.approx([-math.log(model.vocab_size)] * 4)
    assert total == sorted(total, reverse=True) and total[0] > total[-1]


def test_a_fill_that_does_not_match_the_canvas_is_refused(fake):
    req = _select(MEETING, "Thursday")
    with pytest.raises(InputError, match="slots"):
        score_fill(fake, replace(req, spans=(Span(req.spans[0].start, req.spans[0].end, length=2),)), 0, (5,))


# ranked fills -----------------------------------------------------------------
def test_every_length_is_an_ordinary_run_and_the_best_comes_first(fake):
    req = _select(MEETING, "Thursday", steps=8)
    auto = infill_auto(fake, req)
    assert isinstance(auto, AutoResult) and len(auto.choices) == 1
    ranked = auto.choices[0].ranked
    assert sorted(c.length for c in ranked) == list(lengths_for(fake, req, 0))
    assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)
    assert auto.result == ranked[0].result and auto.length == (ranked[0].length,)
    for c in ranked:
        alone = infill(fake, replace(req, spans=(Span(req.spans[0].start, req.spans[0].end, length=c.length),)))
        assert c.result.text == alone.text and c.result.spans[0].length == c.length
        assert c.score == pytest.approx(c.bound / c.length ** DEFAULT_ALPHA)


def test_the_cost_is_counted_in_forward_passes_and_equal_canvases_share_the_scoring_pass(fake):
    req = _select(MEETING, "Thursday", steps=8)
    auto = infill_auto(fake, req)
    assert len(fake.calls) == auto.nfe
    lengths = [c.length for c in auto.choices[0].ranked]
    # a short text: every length has its own canvas length, one scoring pass each
    assert auto.scoring_nfe == len(lengths)
    assert auto.nfe == sum(c.result.nfe for c in auto.choices[0].ranked) + auto.scoring_nfe

    long_text = ("word " * 400) + MEETING
    longest = max(lengths)
    for view, scored in ((96, 96), (None, longest + DEFAULT_WINDOW)):
        fake.calls.clear()
        auto = infill_auto(fake, _select(long_text, "Thursday", steps=8, context_tokens=view))
        # the view is full at every length, so every scored canvas has one length: one pass for all
        assert auto.scoring_nfe == 1 and len(fake.calls) == auto.nfe
        copies = sum(min(2 ** n - 1, DEFAULT_SAMPLES) for n in lengths)
        assert tuple(fake.calls[-1].shape) == (copies, scored)


def test_the_path_score_costs_no_extra_pass(fake):
    auto = infill_auto(fake, _select(MEETING, "Thursday", steps=8), score="path")
    assert auto.scoring_nfe == 0 and len(fake.calls) == auto.nfe
    assert all(c.bound is None and c.path <= 0 for c in auto.choices[0].ranked)


def test_an_insertion_needs_no_token_count_and_two_auto_masks_each_get_a_length(fake):
    at = MEETING.index("so please")
    req = InfillRequest(text=MEETING, spans=[Span(at, at, length=1), Span(4, 11)], steps=8)
    auto = infill_auto(fake, req)
    assert [c.span for c in auto.choices] == [1, 0]  # document order
    assert sorted(c.length for c in auto.choices[1].ranked) == list(INSERTION_LENGTHS)
    assert auto.result.spans[1].length == auto.choices[0].best.length
    assert auto.result.spans[0].length == auto.choices[1].best.length


def test_auto_is_deterministic_and_stops_when_cancelled(fake):
    req = _select(MEETING, "Thursday", steps=8)
    def seen(auto):  # a result's seconds are wall time; everything else must repeat
        return [(c.length, c.score, c.path, c.result.text, c.result.nfe) for c in auto.choices[0].ranked]

    assert seen(infill_auto(fake, req)) == seen(infill_auto(fake, req))
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        infill_auto(fake, req, cancel=stop)


def test_auto_on_the_starter_ranks_its_tried_fills(starter):
    req = _select(MEETING, "Thursday", steps=4)
    auto = infill_auto(starter, req)
    ranked = auto.choices[0].ranked
    assert [c.length for c in sorted(ranked, key=lambda c: c.length)] == [1, 2, 3, 4]
    assert all(c.bound < 0 for c in ranked) and auto.result.text.startswith("The meeting has been moved to ")


# EOS padding ------------------------------------------------------------------
class _EndsEarly(FakeModel):
    """Prefers EOS in the last two slots of a span (by position), text elsewhere."""

    def __init__(self, tokenizer, eos_from: int):
        super().__init__(tokenizer)
        self.eos_from = eos_from

    def logits(self, ids, positions):
        out = super().logits(ids, positions)
        for row, p in enumerate(positions.tolist()):
            if p >= self.eos_from:
                out[..., row, self.tokenizer.eos_token_id] = 50.0
        return out


def test_eos_padding_trims_the_trailing_eos_and_counts_it(starter):
    text = "alpha beta gamma"
    req = InfillRequest(text=text, spans=[Span(6, 10)])
    plain = FakeModel(starter.tokenizer)
    from lacuna.engine import canvas

    slots = canvas.build(plain, replace(req, spans=(Span(6, 10, length=5),))).slots.tolist()
    model = _EndsEarly(starter.tokenizer, eos_from=slots[3])
    out = infill_eos_padded(model, req, 5)
    assert (out.length, out.eos, out.inner, out.nfe) == (3, 2, False, 5)
    assert out.text == text[:6] + out.fill + text[10:] and out.fill
    with pytest.raises(InputError, match="one span"):
        infill_eos_padded(model, InfillRequest(text=text, spans=[Span(0, 5), Span(6, 10)]), 4)


def test_eos_padding_on_the_starter_returns_a_fill_within_the_budget(starter):
    out = infill_eos_padded(starter, _select(MEETING, "Thursday"), 6)
    assert 0 <= out.length <= 6 and out.nfe == 6


@pytest.mark.parametrize("other", ["auto", "~3", (2, 5), 4, None])
def test_several_auto_spans_leave_each_other_room(other):
    """Review of issue 23: two masks, one auto and the other of any length form, fill together."""
    from lacuna.engine import InfillRequest, Span, infill, load_model

    model = load_model("starter", device="cpu")
    text = "In the beginning God created the heaven and the earth."
    at = text.index("heaven")
    request = InfillRequest(text=text, spans=(Span(21, 28, length="auto"), Span(at, at + 6, length=other)), steps=4)
    result = infill(model, request)
    assert result.text.endswith(" and the earth.") and result.lengths[0]
    assert all(t.length >= 1 for t in result.lengths[0])
