import copy
import threading

import pytest
import torch

from engine import Cancelled, InfillRequest, Span, infill, stream_infill
from engine.canvas import build
from tests.support.fake import FakeModel

TEXT = "In the beginning God created the heaven and the earth."


@pytest.fixture
def fake(tiny_model):
    return FakeModel(tiny_model.tokenizer)


def run(model, **kwargs):
    req = InfillRequest(**{"text": TEXT, "spans": [Span(54, 54, length=6)], "steps": 6, **kwargs})
    return list(stream_infill(model, req))


def test_low_confidence_commits_the_most_confident_slot_first(fake):
    events = run(fake)
    # The fake's confidence grows with position: slots resolve right to left.
    order = [c.index for e in events for c in e.committed]
    assert order == [5, 4, 3, 2, 1, 0]
    assert [e.nfe for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[-1].done and events[-1].result is not None
    assert not any(e.done for e in events[:-1])


def test_tokens_are_the_models_preferred_and_specials_never_land(fake):
    events = run(fake)
    canvas = build(fake, InfillRequest(text=TEXT, spans=[Span(54, 54, length=6)]))
    expected = [fake.preferred(p) for p in canvas.slots.tolist()]
    got = {c.index: c.token_id for e in events for c in e.committed}
    assert [got[i] for i in range(6)] == expected
    assert not set(got.values()) & fake.special_ids


def test_events_carry_the_state_of_every_slot(fake):
    events = run(fake, steps=3)
    assert [e.masked for e in events] == [4, 2, 0]
    assert all(e.steps == 3 for e in events)
    last = events[-1]
    assert all(t is not None for t in last.tokens)
    assert all(0.0 < c <= 1.0 for c in last.confidence)
    assert last.slot_span == (0,) * 6
    assert [e.step for e in events] == [1, 2, 3]
    assert all(b.elapsed >= a.elapsed for a, b in zip(events, events[1:]))


def test_fewer_steps_than_masks_commits_several_per_step(fake):
    events = run(fake, steps=4)
    assert [len(e.committed) for e in events] == [2, 2, 1, 1]


def test_blocks_resolve_in_document_order(fake):
    events = run(fake, steps=6, block_length=3)
    first_block = {c.index for e in events[:3] for c in e.committed}
    assert first_block == {0, 1, 2}


def test_threshold_commits_all_confident_slots_at_once(fake):
    # The fake is certain (mask suppressed, preferred token far ahead) only for later positions.
    events = run(fake, sampler="threshold", threshold=0.5)
    assert len(events) < 6
    assert sum(len(e.committed) for e in events) == 6


def test_ancestral_cache_saves_forward_passes_and_matches_the_uncached_tokens(fake):
    cached = run(fake, sampler="ancestral", steps=24, temperature=1.0, seed=3)
    uncached = run(FakeModel(fake.tokenizer), sampler="ancestral_nocache", steps=24, temperature=1.0, seed=3)
    assert cached[-1].steps == 24  # more steps than tokens is allowed here
    assert len(cached) == len(uncached) > 6
    assert cached[-1].nfe < uncached[-1].nfe == len(uncached)
    assert sum(e.nfe == p.nfe for p, e in zip(cached, cached[1:])) > 0  # steps that cost nothing
    assert cached[-1].result.text == uncached[-1].result.text


def test_same_seed_same_output_different_seed_differs(tiny_model):
    req = InfillRequest(text=TEXT, spans=[Span(33, 39), Span(54, 54, length=8)], steps=8, temperature=1.0, seed=7)
    a, b = infill(tiny_model, req), infill(tiny_model, req)
    assert a.text == b.text
    others = {infill(tiny_model, InfillRequest(**{**req.__dict__, "seed": s})).text for s in range(5)}
    assert len(others) > 1


def test_cancel_stops_before_the_next_forward_pass_and_mutates_nothing(tiny_model):
    cancel = threading.Event()
    fake = FakeModel(tiny_model.tokenizer, on_forward=lambda n: cancel.set() if n == 2 else None)
    req = InfillRequest(text=TEXT, spans=[Span(33, 39)], steps=2)
    snapshot = copy.deepcopy(req)
    events = list(stream_infill(fake, InfillRequest(text=TEXT, spans=[Span(54, 54, length=6)], steps=6), cancel))
    assert len(fake.calls) == 2 and len(events) == 2 and not events[-1].done
    cancel2 = threading.Event()
    cancel2.set()
    with pytest.raises(Cancelled):
        infill(tiny_model, req, cancel2)
    assert req == snapshot


def test_random_sampler_reports_true_confidence(fake):
    events = run(fake, sampler="random", seed=1)
    assert sorted(c.index for e in events for c in e.committed) == list(range(6))
    for e in events:
        for c in e.committed:
            assert 0.0 < c.confidence < 1.0


@pytest.mark.parametrize("sampler", ["low_confidence", "margin", "entropy", "random", "threshold", "ancestral"])
def test_every_sampler_fills_every_slot_with_a_real_model(tiny_model, sampler):
    req = InfillRequest(text=TEXT, spans=[Span(0, 2), Span(33, 39)], steps=3, sampler=sampler, temperature=0.7)
    result = infill(tiny_model, req)
    assert result.text.endswith(" the beginning God created the " + result.span_text(1) + " and the earth.")
    assert result.nfe <= result.steps


def test_edit_strength_keeps_part_of_the_span(tiny_model):
    span = Span(0, 38, strength=0.25)
    req = InfillRequest(text="The quick brown fox jumps over the lazy dog.", spans=[span], steps=4)
    events = list(stream_infill(tiny_model, req))
    first = events[0]
    kept = [t for t, c in zip(first.tokens, first.confidence) if t is not None and c is None]
    n = len(first.tokens)
    assert len(kept) == n - max(1, round(0.25 * n))
    assert events[-1].result.spans[0].length == n


def test_logits_gather_matches_the_full_forward(tiny_model):
    ids = torch.randint(5, tiny_model.vocab_size, (40,))
    positions = torch.tensor([3, 17, 39])
    full = tiny_model.model(input_ids=ids.unsqueeze(0)).logits[0, positions].float()
    assert torch.allclose(tiny_model.logits(ids, positions), full, atol=1e-5)


def test_out_of_memory_is_a_clear_error_and_mutates_nothing(tiny_model):
    from engine import OutOfMemory

    def boom(n):
        raise torch.OutOfMemoryError("CUDA out of memory")

    fake = FakeModel(tiny_model.tokenizer, on_forward=boom)
    req = InfillRequest(text=TEXT, spans=[Span(33, 39)], steps=2)
    with pytest.raises(OutOfMemory, match="ran out of memory"):
        infill(fake, req)
    assert req.text == TEXT
