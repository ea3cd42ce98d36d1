import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine import InfillRequest, ModelLoadError, Span, infill
from lacuna.engine.canvas import build
from lacuna.engine.models import vocab

SPECIAL_STRINGS = ["[MASK]", "[SEP]", "[CLS]", "[PAD]", "[UNK]", "<mask>", "</s>", "<s>", "<pad>",
                   "<|endoftext|>", "<|padding|>", "<|im_start|>", "[unused3]", "<unk>"]


def test_padded_rows_and_unnamed_specials_are_never_generable(tiny_roberta):
    tok = tiny_roberta.tokenizer
    mask = vocab.generable_mask(tok, tiny_roberta.vocab_size)
    assert tiny_roberta.vocab_size == len(tok) + 13
    assert not mask[len(tok):].any()  # padded rows decode to ''
    known = tok.get_vocab()
    for s in SPECIAL_STRINGS:
        if s in known:
            assert not mask[known[s]], s
    assert {"<|endoftext|>", "<|padding|>", "<|im_start|>", "[unused3]"} <= set(known)
    assert mask[tok.convert_tokens_to_ids("Ġthe")]


def test_generable_ids_are_exactly_those_that_decode_to_text(tiny_model):
    tok = tiny_model.tokenizer
    profile = vocab.profile(tok, tiny_model.vocab_size)
    for i in torch.nonzero(profile.generable).squeeze(1).tolist():
        assert profile.token_bytes[i], i
    # Bytes that never occur in UTF-8 (C0, C1, F5-FF) are dead ends.
    for b in (0xC0, 0xFF):
        i = tok.convert_tokens_to_ids(next(c for c, v in vocab._byte_level_alphabet().items() if v == b))
        assert not profile.generable[i]


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_bert", "tiny_sp", "tiny_roberta"])
def test_literal_special_strings_are_tokenised_as_text(fixture, request):
    model = request.getfixturevalue(fixture)
    tok = model.tokenizer
    blocked = set(vocab.profile(tok, model.vocab_size).blocked_ids.tolist())
    text = "The placeholder [MASK] marks a gap; " + " ".join(SPECIAL_STRINGS)
    ids = vocab.encode(tok, text, at_start=True)
    # WordPiece writes characters outside its vocabulary ("|") as [UNK]: text, not a control token.
    assert not set(ids) & (blocked - {tok.unk_token_id} if fixture == "tiny_bert" else blocked)
    assert tok.mask_token_id not in ids
    if fixture != "tiny_bert":  # WordPiece lowercases and forgets spaces
        assert vocab.decode(tok, ids).lstrip() == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SPECIAL_STRINGS + ["a", " ", "x[", "]", "<", ">", "日本", "é", "\n"]),
                max_size=12).map("".join))
def test_any_text_round_trips_without_control_tokens(tiny_roberta, text):
    tok = tiny_roberta.tokenizer
    blocked = set(vocab.profile(tok, tiny_roberta.vocab_size).blocked_ids.tolist())
    ids = vocab.encode(tok, text)
    assert not set(ids) & blocked
    assert vocab.decode(tok, ids) == text


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_roberta"])
def test_a_typed_mask_string_is_not_a_mask(fixture, request):
    model = request.getfixturevalue(fixture)
    text = "The placeholder [MASK] marks a gap. <mask> </s> [SEP] [CLS] [PAD]"
    start = text.index("gap")
    req = InfillRequest(text=text, spans=[Span(start, start + 3)], steps=2)
    canvas = build(model, req)
    assert int((canvas.ids == model.mask_id).sum()) == len(canvas.slots)
    result = infill(model, req)
    assert result.text[:start] == text[:start]
    assert result.text[result.spans[0].end:] == text[start + 3:]


def test_a_tokenizer_that_does_not_fit_the_model_is_refused(tiny_model):
    tok = tiny_model.tokenizer
    with pytest.raises(ModelLoadError, match="mask token"):
        vocab.check_tokenizer_fits("m", tok, tok.mask_token_id, tok.mask_token_id)
    with pytest.raises(ModelLoadError, match="cannot read"):
        vocab.check_tokenizer_fits("m", tok, len(tok) - 5, tok.mask_token_id)
    vocab.check_tokenizer_fits("m", tok, len(tok), tok.mask_token_id)
