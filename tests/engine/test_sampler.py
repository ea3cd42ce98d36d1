import copy
import threading

import pytest
import torch

from lacuna.engine import Cancelled, InfillRequest, Span, infill, stream_infill
from lacuna.engine.canvas import build
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


def test_ancestral_reuse_saves_forward_passes_and_matches_the_recomputed_tokens(fake):
    cached = run(fake, sampler="ancestral", steps=24, temperature=1.0, seed=3)
    uncached = run(FakeModel(fake.tokenizer), sampler="ancestral_recompute", steps=24, temperature=1.0, seed=3)
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
    # Whole words are re-masked until at least a quarter of the tokens are.
    assert max(1, round(0.25 * n)) <= n - len(kept) < n
    assert events[-1].result.spans[0].length == n


def test_logits_gather_matches_the_full_forward(tiny_model):
    ids = torch.randint(5, tiny_model.vocab_size, (40,))
    positions = torch.tensor([3, 17, 39])
    full = tiny_model.model(input_ids=ids.unsqueeze(0)).logits[0, positions].float()
    assert torch.allclose(tiny_model.logits(ids, positions), full, atol=1e-5)


def test_out_of_memory_is_a_clear_error_and_mutates_nothing(tiny_model):
    from lacuna.engine import OutOfMemory

    def boom(n):
        raise torch.OutOfMemoryError("CUDA out of memory")

    fake = FakeModel(tiny_model.tokenizer, on_forward=boom)
    req = InfillRequest(text=TEXT, spans=[Span(33, 39)], steps=2)
    with pytest.raises(OutOfMemory, match="ran out of memory"):
        infill(fake, req)
    assert req.text == TEXT


class _Prefers(FakeModel):
    """A fake whose every slot prefers one given token (to test what may not land)."""

    def __init__(self, model, token_id, rows=None):
        self.__dict__.update(model.__dict__)
        self.base = model
        self.token_id = token_id
        if rows is not None:  # more output rows than the tokenizer has ids: the facts cover them all
            from lacuna.engine.models import vocab

            self.vocab_size = rows
            self.vocab = vocab.facts(self.tokenizer, rows)

    def logits(self, ids, positions):
        out = torch.zeros(positions.numel(), self.vocab_size)
        out[:, 10:len(self.tokenizer)] = torch.linspace(0, 1, len(self.tokenizer) - 10)
        out[:, self.token_id] = 50.0
        return out

    def token_text(self, token_id):
        return self.base.token_text(token_id)


def newline_id(tok):
    return tok.convert_tokens_to_ids("Ċ")


LIGHTHOUSE = "The old lighthouse stood in the bay.\nIt was white."


def test_a_one_line_mask_is_filled_without_line_breaks(fake):
    model = _Prefers(fake, newline_id(fake.tokenizer))
    at = LIGHTHOUSE.index("lighthouse")
    req = InfillRequest(text=LIGHTHOUSE, spans=[Span(at, at + 10, length=3)], steps=3)
    assert "\n" not in infill(model, req).span_text(0)
    # A setting allows them; a mask over text with a line break allows them too.
    allowed = infill(model, InfillRequest(text=LIGHTHOUSE, spans=[Span(at, at + 10, length=3)], steps=3,
                                          allow_newlines=True))
    assert "\n" in allowed.span_text(0)
    end = LIGHTHOUSE.index("It")
    across = infill(model, InfillRequest(text=LIGHTHOUSE, spans=[Span(at, end, length=3)], steps=3))
    assert "\n" in across.span_text(0)
    never = infill(model, InfillRequest(text=LIGHTHOUSE, spans=[Span(at, end, length=3)], steps=3,
                                        allow_newlines=False))
    assert "\n" not in never.span_text(0)
    assert never.text[never.spans[0].end:] == LIGHTHOUSE[end:]


def test_a_one_token_hole_at_the_end_is_not_a_line_break(fake):
    model = _Prefers(fake, newline_id(fake.tokenizer))
    text = "In the beginning God created the heaven"
    result = infill(model, InfillRequest(text=text, spans=[Span(len(text), len(text), length=1)], steps=1))
    assert result.span_text(0) and not any(c in result.span_text(0) for c in "\n\r")


def test_ids_without_text_are_never_generated(tiny_roberta):
    tok = tiny_roberta.tokenizer
    for token in ("<|endoftext|>", "<|padding|>", "<|im_start|>", "[unused3]", "<pad>", "</s>"):
        model = _Prefers(FakeModel(tok), tok.convert_tokens_to_ids(token), rows=tiny_roberta.vocab_size)
        result = infill(model, InfillRequest(text=TEXT, spans=[Span(3, 16)], steps=2))
        assert token not in result.span_text(0) and result.span_text(0)
    padded = _Prefers(FakeModel(tok), tiny_roberta.vocab_size - 1, rows=tiny_roberta.vocab_size)
    events = list(stream_infill(padded, InfillRequest(text=TEXT, spans=[Span(3, 16)], steps=2)))
    assert all(c.token_id < len(tok) and c.text for e in events for c in e.committed)
