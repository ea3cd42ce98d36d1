import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lacuna.engine import ContextTooLong, InfillRequest, InputError, Span, infill, stream_infill, token_count
from lacuna.engine.canvas import build, drops_spaces, moves_space
from lacuna.engine.models import vocab

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
        # An insertion at the start of a word never glues onto that word.
        text = req.text
        if (span.is_insertion and span.end < len(text) and text[span.end].isalnum()
                and (span.start == 0 or text[span.start - 1].isspace())
                and sum(s.start == span.end for s in req.spans) == 1):
            fill = result.span_text(i)
            assert not (fill and fill[-1].isalnum()), (fill, text)
        assert result.spans[i].length == (span.length or result.spans[i].length)
        assert all(p.start <= p.end for p in result.pieces[i])
        assert all(result.spans[i].start <= p.start and p.end <= result.spans[i].end for p in result.pieces[i])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_outside_text_is_kept_byte_for_byte_bpe(tiny_model, req):
    check_invariant(tiny_model, req)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


@settings(max_examples=40, deadline=None)
@given(view=st.integers(8, 200), at=st.integers(0, 1999), length=st.integers(1, 6))
@example(view=9, at=999, length=1)  # found in CI: the neighbour " w1000" is cut to " w100"
@example(view=17, at=999, length=1)
@example(view=22, at=1000, length=6)
def test_context_tokens_caps_the_view_and_keeps_the_nearest_text(tiny_model, view, at, length):
    text = "".join(f" w{i}" for i in range(2000))
    start = text.index(f" w{at}") + 1
    end = start + len(f"w{at}")
    req = InfillRequest(text=text, spans=[Span(start, end, length=length)], steps=1, context_tokens=view)
    canvas = build(tiny_model, req)
    assert canvas.ids.numel() == min(view, tiny_model.context_length)
    decoded = tiny_model.tokenizer.decode(canvas.ids.tolist())
    if view >= length + 16:  # room for a whole word on each side (" w1000" is three tokens)
        assert (at == 0 or f"w{at - 1}" in decoded) and (at == 1999 or f"w{at + 1}" in decoded)
    result = infill(tiny_model, req)
    assert result.text[:start] == text[:start] and result.text[result.spans[0].end:] == text[end:]


def test_masks_beyond_a_limited_view_are_a_clear_error(tiny_model, tiny_bert):
    req = InfillRequest(text="a b c d", spans=[Span(2, 3, length=10)], context_tokens=6)
    with pytest.raises(ContextTooLong, match=r"need 10 tokens but context_tokens 6 leaves room for 6; "
                                             r"raise context_tokens to at least 10"):
        infill(tiny_model, req)
    # a BERT's [CLS] and [SEP] count against the view, never below zero room
    req = InfillRequest(text="the heaven", spans=[Span(4, 10, length=1)], context_tokens=1)
    with pytest.raises(ContextTooLong, match=r"need 1 token but context_tokens 1 leaves room for 0 "
                                             r"\(.* adds 2 special tokens\); raise context_tokens to at least 3"):
        infill(tiny_bert, req)
    # masks the whole model cannot hold: raising context_tokens would not help, so it is not offered
    req = InfillRequest(text="abc", spans=[Span(1, 1, length=tiny_model.context_length + 1)], context_tokens=8)
    with pytest.raises(ContextTooLong, match="use a model with a longer context"):
        infill(tiny_model, req)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "512"])
def test_context_tokens_must_be_a_positive_integer(bad):
    with pytest.raises(InputError, match="context_tokens"):
        InfillRequest(text="abc", spans=[Span(0, 1)], context_tokens=bad)


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


# ------------------------------------------------------------ issue 8 kinds

GENESIS = "In the beginning God created the heaven and the earth."
MODELS = ["tiny_model", "tiny_sp", "tiny_roberta"]  # byte-level BPE, SentencePiece + byte fallback


@pytest.mark.parametrize("fixture", MODELS + ["tiny_bert"])
def test_an_insertion_before_a_word_does_not_glue_onto_it(fixture, request):
    model = request.getfixturevalue(fixture)
    at = GENESIS.index("heaven")
    for seed in range(4):
        req = InfillRequest(text=GENESIS, spans=[Span(at, at, length=2)], steps=1, temperature=1.0, seed=seed)
        result = infill(model, req)
        fill = result.span_text(0)
        assert result.text.startswith("In the beginning God created the ")
        assert result.text.endswith("heaven and the earth.")
        if fill.strip():
            assert fill[-1].isspace() or not fill[-1].isalnum(), (seed, fill)


@pytest.mark.parametrize("fixture", MODELS)
def test_the_word_after_an_insertion_is_tokenised_as_a_word(fixture, request):
    model = request.getfixturevalue(fixture)
    tok = model.tokenizer
    at = GENESIS.index("heaven")
    canvas = build(model, InfillRequest(text=GENESIS, spans=[Span(at, at, length=2)]))
    after = canvas.ids[int(canvas.slots[-1]) + 1:].tolist()
    assert after[: len(after) - len(model.suffix_ids)] == vocab.encode(tok, " heaven and the earth.")


@pytest.mark.parametrize("fixture", MODELS + ["tiny_bert"])
@pytest.mark.parametrize("text,word", [(GENESIS, "In"), ("First line.\nSecond line follows.", "Second")])
def test_a_span_at_the_start_of_a_text_or_line_gains_no_leading_space(fixture, text, word, request):
    model = request.getfixturevalue(fixture)
    at = text.index(word)
    for seed in range(4):
        req = InfillRequest(text=text, spans=[Span(at, at + len(word), length=2)], steps=1, temperature=1.0,
                            seed=seed)
        result = infill(model, req)
        assert not result.span_text(0)[:1].isspace(), (seed, result.text)
        assert result.text[result.spans[0].end:] == text[at + len(word):]


def test_sentencepiece_marks_a_word_start_only_where_the_text_has_one(tiny_sp):
    tok = tiny_sp.tokenizer
    text = "the heaven and"
    canvas = build(tiny_sp, InfillRequest(text=text, spans=[Span(4, 8)]))  # "heav" of "heaven"
    pieces = tok.convert_ids_to_tokens(canvas.ids.tolist())
    first_after = pieces[int(canvas.slots[-1]) + 1]
    assert not first_after.startswith("\u2581")  # "en" continues the masked word
    assert pieces[0].startswith("\u2581")  # the document start is a word start, as in training


def test_an_edit_remasks_whole_words_only(tiny_model):
    text = "The old lighthouse stood in the ways of its"
    for seed in range(20):
        req = InfillRequest(text=text, spans=[Span(0, len(text), strength=0.44)], steps=2, seed=seed)
        canvas = build(tiny_model, req, torch.Generator().manual_seed(seed))
        ids, words = vocab.encode_words(tiny_model.tokenizer, text, at_start=True)
        masked = canvas.masked.tolist()
        for w in set(words):
            group = [masked[j] for j in range(len(ids)) if words[j] == w]
            assert all(group) or not any(group), (seed, w)
        assert 0.44 * len(ids) <= sum(masked) < len(ids)
        result = infill(tiny_model, req)
        kept = [vocab.decode(tiny_model.tokenizer, [i]) for i, m in zip(ids, masked) if not m]
        assert all(piece in result.text for piece in kept)


CHAR_PIECES = ["She said ", "日本語", " twice.", "naïve", " café", "🙂", " the", " heaven", "\n", "é", "語",
               "a", " ", "[MASK]", "</s>"]
char_texts = st.lists(st.sampled_from(CHAR_PIECES), min_size=1, max_size=10).map("".join)


@st.composite
def unicode_requests(draw):
    text = draw(char_texts)
    a = draw(st.integers(0, len(text)))
    b = draw(st.integers(a, len(text)))
    edit = a < b and draw(st.booleans())
    if a == b:
        span = Span(a, a, length=draw(st.integers(1, 6)))
    elif edit:
        span = Span(a, b, strength=draw(st.sampled_from([0.3, 0.5, 0.9])))
    else:
        span = Span(a, b, length=draw(st.one_of(st.none(), st.integers(1, 6))))
    return InfillRequest(text=text, spans=[span], steps=draw(st.integers(1, 3)), temperature=1.0,
                         seed=draw(st.integers(0, 50)), sampler=draw(st.sampled_from(["low_confidence", "random"])))


@pytest.mark.parametrize("fixture", MODELS)
def test_edits_over_multibyte_text_never_write_replacement_characters(fixture, request):
    model = request.getfixturevalue(fixture)
    for text in ("She said 日本語 twice.", "naïve café"):
        for seed in range(6):
            req = InfillRequest(text=text, spans=[Span(0, len(text), strength=0.5)], steps=2,
                                temperature=1.0, seed=seed)
            assert "\ufffd" not in infill(model, req).text, (text, seed)


@pytest.mark.parametrize("fixture", MODELS)
def test_fills_are_valid_text_property(fixture, request):
    model = request.getfixturevalue(fixture)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(unicode_requests())
    def check(req):
        result = infill(model, req)
        assert "\ufffd" not in result.text
        assert outside_pieces(result.text, result.spans) == outside_pieces(req.text, req.spans)

    check()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_outside_text_is_kept_byte_for_byte_sentencepiece(tiny_sp, req):
    check_invariant(tiny_sp, req)
