"""The instruction through the public API and the CLI (issue 24): ``InfillRequest(instruction=...)``
runs the model's own chat, ``lacuna-cli infill --instruction`` prints it, a base model refuses it in
one sentence, and the text outside the spans stays byte for byte."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine import InfillRequest, InputError, Span, infill, load_model, stream_infill
from lacuna.engine import instruct
from lacuna.engine.cli import main

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.mark.parametrize("value, words", [
    ("", "the instruction is empty"), ("   ", "the instruction is empty"), (3, "must be text"),
    ("x" * 2001, "keep it to 2000"),
    ("fine\ud800", "unpaired surrogate"),
])
def test_an_unusable_instruction_is_refused_before_any_model_runs(value, words):
    with pytest.raises(InputError, match=words):
        InfillRequest(text=TEXT, spans=(Span(4, 9),), instruction=value)


@given(st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and s.isprintable()))
@settings(max_examples=30, deadline=None)
def test_any_printable_instruction_is_kept_as_typed(value):
    assert InfillRequest(text=TEXT, spans=(Span(4, 9),), instruction=value).instruction == value


def test_an_unknown_layout_is_one_sentence():
    with pytest.raises(InputError, match="instruct_layout .*quoted, masked"):
        InfillRequest(text=TEXT, spans=(Span(4, 9),), instruction="shorter", instruct_layout="answer")


@pytest.mark.parametrize("builder", ["llada_instruct_dir", "dream_instruct_dir"])
@pytest.mark.parametrize("layout", ["quoted", "masked"])
def test_the_api_runs_the_chat_and_keeps_the_outside_text(request, builder, layout):
    model = load_model(str(request.getfixturevalue(builder)), device="cpu", dtype="float32")
    span = Span(4, 15)
    plain = InfillRequest(text=TEXT, spans=(span,), steps=3, seed=1, cache="none")
    asked = InfillRequest(text=TEXT, spans=(span,), steps=3, seed=1, cache="none",
                          instruction="Make this more formal.", instruct_layout=layout)
    seen = []
    original = model.logits
    model.logits = lambda ids, positions: seen.append(ids.shape[-1]) or original(ids, positions)
    try:
        events = list(stream_infill(model, asked))
        first_instructed = seen[0]
        seen.clear()
        infill(model, plain)
    finally:
        del model.logits
    assert first_instructed > seen[0]  # the network saw the chat around the document
    result = events[-1].result
    assert result.text[: span.start] == TEXT[: span.start]
    assert result.text[result.spans[0].end:] == TEXT[span.end:]
    expected = instruct.build_canvas(model, plain, "Make this more formal.", instruct.template_for(model), layout)
    assert first_instructed == len(expected.ids)


def test_a_base_model_refuses_an_instruction_in_one_sentence(tiny_llada_dir):
    model = load_model(str(tiny_llada_dir), device="cpu", dtype="float32")
    request = InfillRequest(text=TEXT, spans=(Span(4, 9),), steps=2, instruction="shorter")
    with pytest.raises(InputError, match="has no chat_template, so this model cannot follow instructions"):
        infill(model, request)
    assert infill(model, InfillRequest(text=TEXT, spans=(Span(4, 9),), steps=2)).text.endswith("lazy dog.")


def test_the_cli_takes_an_instruction_and_reports_it(llada_instruct_dir, capsys):
    code = main(["infill", "--model", str(llada_instruct_dir), "--json", "--device", "cpu", "--steps", "3",
                 "--instruction", "Make it shorter.", "The [[quick brown]] fox jumps over the lazy dog."])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["instruction"] == "Make it shorter."
    assert data["text"].startswith("The ") and data["text"].endswith(" fox jumps over the lazy dog.")


def test_the_cli_says_why_a_base_model_cannot_follow(tiny_llada_dir, capsys):
    code = main(["infill", "--model", str(tiny_llada_dir), "--device", "cpu", "--steps", "2",
                 "--instruction", "shorter", "The [[quick]] fox."])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "cannot follow instructions" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
