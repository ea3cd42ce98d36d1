import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ContextTooLong, InfillRequest, InputError, Span, infill, stream_infill, token_count
from engine.canvas import build, drops_spaces, moves_space

PIECES = ["the", " ", "heaven", "earth", ".", ",", "\r\n", "\n", "\t", "Café", "e\u0301", "🙂", "👩‍👩‍👧",
          "日本語", "  ", "God", "light", "x", "[[", "'", "ﬁ", "\u200b"]

texts = st.lists(st.sampled_from(PIECES), min_size=0, max_size=25).map("".join)


@st.composite
def requests(draw):
    text = draw(texts)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=1, max_size=6)))
    spans, last = [], -1
    for a, b in zip(cuts[::2], cuts[1::2] + [None]):
        if b is None:
            if a == last:
                continue  # two insertions at one point would overlap
            spans.append(Span(a, a, length=draw(st.integers(1, 4))))
            last = a
        elif a == b:
            if a == last:
                continue
            spans.append(Span(a, a, length=draw(st.integers(1, 4))))
            last = a
        else:
            spans.append(Span(a, b, length=draw(st.one_of(st.none(), st.integers(1, 4)))))
            last = -1
    draw(st.randoms()).shuffle(spans)
    return InfillRequest(text=text, spans=spans, steps=1, temperature=1.0, seed=draw(st.integers(0, 3)))


def outside_pieces(text, spans):
    out, cursor = [], 0
    for s in sorted(spans, key=lambda s: (s.start, s.end)):
        out.append(text[cursor:s.start])
        cursor = s.end
    out.append(text[cursor:])
    return out


def check_invariant(model, req):
    result = infill(model, req)
    assert outside_pieces(result.text, result.spans) == outside_pieces(req.text, req.spans)
    # Filled spans keep the request's order and do not overlap.
    ordered = sorted(range(len(req.spans)), key=lambda i: (req.spans[i].start, req.spans[i].end))
    new = [result.spans[i] for i in ordered]
    assert all(a.end <= b.start for a, b in zip(new, new[1:]))
    for i, span in enumerate(req.spans):
        assert result.spans[i].length == (span.length or result.spans[i].length)
        assert all(p.start <= p.end for p in result.pieces[i])
        assert all(result.spans[i].start <= p.start and p.end <= result.spans[i].end for p in result.pieces[i])


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_outside_text_is_kept_byte_for_byte_bpe(tiny_model, req):
    check_invariant(tiny_model, req)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_outside_text_is_kept_byte_for_byte_wordpiece(tiny_bert, req):
    check_invariant(tiny_bert, req)


def test_a_span_after_a_space_carries_the_space_in_its_first_token(tiny_model):
    tok = tiny_model.tokenizer
    text = "In the beginning God created the heaven and the earth."
    canvas = build(tiny_model, InfillRequest(text=text, spans=[Span(33, 39)]))
    before = canvas.ids[: canvas.slots[0]].tolist()
    assert tok.decode(before) == "In the beginning God created the"  # no lone trailing space token
    assert len(canvas.slots) == len(tok.encode(" heaven", add_special_tokens=False))
    assert token_count(tiny_model, text, 33, 39) == len(canvas.slots)


def test_space_probe(tiny_model):
    assert moves_space(tiny_model.tokenizer)
    assert not drops_spaces(tiny_model.tokenizer)


def test_the_moved_space_stays_outside_the_fill(tiny_model):
    text = "In the beginning God created the heaven and the earth."
    result = infill(tiny_model, InfillRequest(text=text, spans=[Span(33, 39)], steps=2))
    assert result.text.startswith("In the beginning God created the ")
    assert result.text.endswith(" and the earth.")
    assert not result.span_text(0).startswith(" ") or result.span_text(0).startswith("  ")


def test_wordpiece_joins_words_with_spaces(tiny_bert):
    assert drops_spaces(tiny_bert.tokenizer)
    text = "the heaven and the earth"
    for seed in range(6):
        req = InfillRequest(text=text, spans=[Span(3, 3, length=2)], steps=2, temperature=1.0, seed=seed)
        last = list(stream_infill(tiny_bert, req))[-1]
        fill = last.result.span_text(0)
        assert last.result.text == "the" + fill + " heaven and the earth"
        # A word piece after "the" gets a joining space; a continuation piece ("##ve") attaches.
        assert fill.startswith(" ") == last.tokens[0].startswith(" ")


def test_special_frame_is_added_for_wordpiece(tiny_bert):
    canvas = build(tiny_bert, InfillRequest(text="the earth", spans=[Span(4, 9)]))
    ids = canvas.ids.tolist()
    assert ids[0] == tiny_bert.tokenizer.cls_token_id and ids[-1] == tiny_bert.tokenizer.sep_token_id


def test_long_document_keeps_the_context_nearest_the_spans(tiny_model):
    words = [f" w{i}" for i in range(2000)]
    text = "".join(words)
    start = text.index(" w1000") + 1
    req = InfillRequest(text=text, spans=[Span(start, start + 5)], steps=2)
    canvas = build(tiny_model, req)
    assert canvas.ids.numel() == tiny_model.context_length
    decoded = tiny_model.tokenizer.decode(canvas.ids.tolist())
    assert "w999" in decoded and "w1001" in decoded and " w0 " not in decoded and "w1999" not in decoded
    result = infill(tiny_model, req)
    assert result.text[:start] == text[:start]
    assert result.text[result.spans[0].end:] == text[start + 5:]


def test_two_spans_far_apart_each_keep_nearby_context(tiny_model):
    text = "".join(f" w{i}" for i in range(3000))
    a = text.index(" w100 ") + 1
    b = text.index(" w2900 ") + 1
    canvas = build(tiny_model, InfillRequest(text=text, spans=[Span(b, b + 5), Span(a, a + 4)], steps=2))
    decoded = tiny_model.tokenizer.decode(canvas.ids.tolist())
    assert "w99" in decoded and "w101" in decoded and "w2899" in decoded and "w2901" in decoded
    assert "w1500" not in decoded


def test_too_many_masked_tokens_is_a_clear_error(tiny_model):
    with pytest.raises(ContextTooLong, match="holds"):
        infill(tiny_model, InfillRequest(text="abc", spans=[Span(1, 1, length=tiny_model.context_length + 1)]))


def test_edit_with_a_different_length_is_refused(tiny_model):
    with pytest.raises(InputError, match="keeps the span"):
        infill(tiny_model, InfillRequest(text="the heaven", spans=[Span(4, 10, length=9, strength=0.5)]))


def test_token_count_of_an_insertion_is_zero_and_of_text_positive(tiny_model):
    assert token_count(tiny_model, "a b", 1, 1) == 0
    assert token_count(tiny_model, "a heaven b", 2, 8) >= 1
    with pytest.raises(InputError):
        token_count(tiny_model, "abc", 2, 9)


def test_canvas_is_deterministic_for_a_seed(tiny_model):
    req = InfillRequest(text="The quick brown fox jumps", spans=[Span(4, 25, strength=0.5)], seed=4)
    a = build(tiny_model, req, torch.Generator().manual_seed(4))
    b = build(tiny_model, req, torch.Generator().manual_seed(4))
    assert torch.equal(a.ids, b.ids) and torch.equal(a.masked, b.masked)
