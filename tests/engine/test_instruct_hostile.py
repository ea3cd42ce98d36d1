"""A chat template is code from a model's folder (issue 24, review): whatever it does, rendering it
ends in one sentence naming the file, within a deadline; the template is read again when its files
change; an instruction that leaves no room says so in the user's terms."""
from __future__ import annotations

import json

import pytest

from lacuna.engine import ContextTooLong, InfillRequest, Span, load_model
from lacuna.engine import instruct

MESSAGES = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "there"}]


@pytest.mark.parametrize("source", [
    "{{ 1/0 }}",                                                          # ZeroDivisionError
    "{% for i in range(10**9) %}x{% endfor %}",                           # the sandbox's OverflowError
    "{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}",               # RecursionError
    "{{ messages[0].content.__class__.__mro__ }}{{ raise_exception('no') }}",
    "{{ (messages | first).content.split(none, -5) }}{{ 'x'.rjust(-1, 'ab') }}",
])
def test_any_failure_of_a_template_is_one_sentence_naming_its_file(source):
    template = instruct.ChatTemplate(source, "/models/x/tokenizer_config.json")
    with pytest.raises(instruct.InstructError) as err:
        instruct.render(template, MESSAGES)
    message = str(err.value)
    assert message.startswith("the chat template in /models/x/tokenizer_config.json")
    assert "\n" not in message and "Error" not in message.split("(")[0]


def test_a_template_that_loops_for_ever_is_refused_at_the_deadline(monkeypatch):
    monkeypatch.setattr(instruct, "RENDER_SECONDS", 0.3)
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(instruct.InstructError, match="takes longer than 0.3 s to render"):
        instruct.render(instruct.ChatTemplate(source, "t.json"), MESSAGES)


def test_the_deadline_leaves_the_callers_trace_function_in_place(monkeypatch):
    import sys

    seen = []
    tracer = lambda frame, event, arg: seen.append(event) or None  # noqa: E731
    sys.settrace(tracer)
    try:
        with pytest.raises(instruct.InstructError):
            instruct.render(instruct.ChatTemplate("{{ 1/0 }}", "t.json"), MESSAGES)
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(None)


def test_the_template_is_read_again_when_its_file_changes(llada_instruct_dir, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(llada_instruct_dir, folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    template = config.pop("chat_template")
    config_file.write_text(json.dumps(config))
    model = load_model(str(folder), device="cpu", dtype="float32")
    with pytest.raises(instruct.InstructError, match="has no chat_template"):
        instruct.template_for(model)
    config["chat_template"] = template
    config_file.write_text(json.dumps(config) + " ")  # a new size, whatever the clock's resolution
    assert instruct.template_for(model).source == template


def test_the_helpers_find_the_models_own_template(llada_instruct_dir):
    model = load_model(str(llada_instruct_dir), device="cpu", dtype="float32")
    request = InfillRequest(text="The quick brown fox.", spans=(Span(4, 9),), steps=2, cache="none")
    result = instruct.infill(model, request, "Make it formal.")  # no template given: the folder's
    assert result.text.startswith("The ") and result.text.endswith(" brown fox.")


def test_an_explicit_instruction_is_framed_once(llada_instruct_dir):
    model = load_model(str(llada_instruct_dir), device="cpu", dtype="float32")
    asked = InfillRequest(text="The quick brown fox.", spans=(Span(4, 9),), steps=2, cache="none",
                          instruction="AAA")
    framed, inner = instruct.framed(model, asked, "BBB two other words")
    assert inner.instruction is None  # the sampler will not frame it again
    plain = InfillRequest(text="The quick brown fox.", spans=(Span(4, 9),), steps=2, cache="none")
    assert framed.prefix_ids == instruct.framed(model, plain, "BBB two other words")[0].prefix_ids


def test_an_instruction_that_leaves_no_room_says_so(llada_instruct_dir):
    model = load_model(str(llada_instruct_dir), device="cpu", dtype="float32")
    request = InfillRequest(text="The quick brown fox.", spans=(Span(4, 9),), steps=2,
                            instruction="word " * 390)
    with pytest.raises(ContextTooLong) as err:
        instruct.framed(model, request, request.instruction)
    message = str(err.value)
    assert "the instruction and" in message and "shorten the instruction" in message
    assert "-" not in message.split("take")[1].split(";")[0]  # no negative room
