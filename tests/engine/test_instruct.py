"""Instruction-guided fills (issue 24, engine): the chat is the model's own
template, as transformers renders it; the fill stays in place."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lacuna.engine import InfillRequest, Span, load_model
from lacuna.engine import instruct
from lacuna.engine.canvas import build as plain_canvas
from tests.support.tiny_instruct import (
    build_tiny_dream_instruct,
    build_tiny_llada_instruct,
    real_dream_tokenizers,
    reference_tokenizer,
)

LLADA, DREAM = "llada-8b-instruct", "dream-v0-instruct-7b"
REAL = "tests/data/real_checkpoints"
# What LLaDA's template appends after every conversation, add_generation_prompt or not.
LLADA_FORCED = "<|start_header_id|>assistant<|end_header_id|>\n\n"
TEXT = "The quick brown fox jumps over the lazy dog."


def _template(folder: str) -> instruct.ChatTemplate:
    return instruct.require_chat_template(f"{REAL}/{folder}")


def _messages(user: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


# ------------------------------------------------------------------ the rendered prompt, as text
def _check_text(folder: str, reference, user: str, answer: str) -> None:
    frame = instruct.chat_frame(_template(folder), user)
    messages = _messages(user, answer)
    # The text up to the end of the answer: the canvas's frame around the document.
    cont = reference.apply_chat_template(messages, continue_final_message=True, tokenize=False)
    assert frame.before_answer + answer == cont
    # The whole conversation: the closing is the template's end of turn.
    whole = reference.apply_chat_template(messages, tokenize=False)
    assert whole == frame.before_answer + answer + frame.closing + (LLADA_FORCED if folder == LLADA else "")
    prompt = reference.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
    assert prompt == frame.before_answer


@pytest.mark.parametrize("folder", [LLADA, DREAM])
def test_rendered_chat_is_apply_chat_templates(folder):
    reference = reference_tokenizer(folder)
    _check_text(folder, reference, "Make this more formal.\n\nquick brown", TEXT)
    frame = instruct.chat_frame(_template(folder), "x")
    assert frame.closing == {LLADA: "<|eot_id|>", DREAM: "<|im_end|>\n"}[folder]


_words = st.text(st.characters(blacklist_categories=("Cs", "Co", "Cc")), min_size=1, max_size=40)


@pytest.mark.parametrize("folder", [LLADA, DREAM])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=_words, answer=_words)
def test_rendered_chat_matches_on_any_text(folder, user, answer):
    # LLaDA's template trims each message; Lacuna strips the instruction itself and never
    # lets the template touch the document, so they agree on text without outer whitespace.
    user, answer = user.strip() or "x", answer.strip() or "y"
    _check_text(folder, _reference(folder), user, answer)


_REFERENCES: dict[str, object] = {}


def _reference(folder: str):
    if folder not in _REFERENCES:
        _REFERENCES[folder] = reference_tokenizer(folder)
    return _REFERENCES[folder]


# ------------------------------------------------------------------ token for token (Dream's real tokenizer)
@pytest.fixture(scope="module")
def dream_tokenizers(tmp_path_factory):
    return real_dream_tokenizers(tmp_path_factory.mktemp("dream-tokenizer"))


@pytest.mark.parametrize("user, answer", [
    ("Make this more formal.\n\nquick brown", TEXT),
    ("Traduis en français, s'il te plaît.", "Le vif renard brun — 42 sauts, déjà!\nFin."),
])
def test_dream_chat_ids_are_apply_chat_templates(dream_tokenizers, user, answer):
    ours, theirs = dream_tokenizers
    frame = instruct.chat_frame(_template(DREAM), user)
    messages = _messages(user, answer)
    assert instruct.chat_ids(ours, frame, answer) == tuple(
        theirs.apply_chat_template(messages, tokenize=True, return_dict=False))
    before, _ = instruct.frame_ids(ours, frame)
    assert before == tuple(theirs.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=True,
                                                      return_dict=False))


def test_a_control_token_typed_in_the_instruction_stays_text(dream_tokenizers):
    ours, _ = dream_tokenizers
    frame = instruct.chat_frame(_template(DREAM), "Say <|im_end|> twice")
    before, _ = instruct.frame_ids(ours, frame)
    im_end = ours.convert_tokens_to_ids("<|im_end|>")
    # The template writes two (the system turn's and the user turn's); the typed one is characters.
    assert before.count(im_end) == 2
    assert ours.decode(list(before)).count("<|im_end|>") == 3


# ------------------------------------------------------------------ tiny models in the Instruct layouts
@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    return {"llada": build_tiny_llada_instruct(tmp_path_factory.mktemp("tiny-llada-instruct")),
            "dream": build_tiny_dream_instruct(tmp_path_factory.mktemp("tiny-dream-instruct"))}


@pytest.fixture(scope="module", params=["llada", "dream"])
def tiny(request, tiny_folders):
    folder = tiny_folders[request.param]
    model = load_model(str(folder), device="cpu", dtype="float32")
    return model, instruct.require_chat_template(folder)


class _Spy:
    """Records every canvas the network is given (ids [L] or [B, L])."""

    def __init__(self, model):
        self.model, self.seen = model, []
        self.original = model.logits

    def __enter__(self):
        def logits(ids, positions):
            self.seen.append(tuple((ids if ids.dim() == 1 else ids[0]).tolist()))
            return self.original(ids, positions)
        self.model.logits = logits
        return self

    def __exit__(self, *exc):
        del self.model.logits


@pytest.mark.parametrize("layout", instruct.LAYOUTS)
def test_the_instruction_changes_what_the_network_sees_and_nothing_outside_the_span(tiny, layout):
    model, template = tiny
    span = Span(4, 15)  # "quick brown"
    request = InfillRequest(text=TEXT, spans=(span,), steps=3, seed=2, cache="none")
    seen = {}
    for instruction in ("Make this more formal.", "Translate it into French."):
        with _Spy(model) as spy:
            result = instruct.infill(model, request, instruction, template, layout)
        canvas = instruct.build_canvas(model, request, instruction, template, layout)
        assert spy.seen[0] == canvas.ids  # the network's first pass sees the chat canvas
        seen[instruction] = canvas.ids
        assert result.text[: span.start] == TEXT[: span.start]
        assert result.text[result.spans[0].end:] == TEXT[span.end:]
        assert len(canvas.mask_positions) == len(result.pieces[0]) == result.spans[0].length
    assert len(set(seen.values())) == 2


def test_the_document_sits_in_the_answer_as_a_plain_canvas_would_hold_it(tiny):
    model, template = tiny
    text = "Dear team,\nthe report is late. We will send it soon — sorry!\nBest, Ana"
    spans = (Span(11, 30), Span(len(text) - 3, len(text) - 3, length=4))
    request = InfillRequest(text=text, spans=spans, steps=4, seed=0)
    plain = plain_canvas(model, request)
    lead, tail = len(model.prefix_ids), len(model.suffix_ids)
    document = tuple(plain.ids.tolist())[lead: plain.ids.numel() - tail]
    for layout in ("quoted", "masked"):
        canvas = instruct.build_canvas(model, request, "Shorter, please.", template, layout)
        start, end = canvas.document
        assert canvas.ids[start:end] == document  # the same tokens, masks where the spans were
        assert canvas.mask_positions == tuple(start + p - lead for p in plain.slots.tolist())
        assert canvas.ids[len(canvas.prefix)] == canvas.ids[len(canvas.ids) - len(canvas.suffix) - 1] == model.mask_id
        closing = instruct.frame_ids(model.tokenizer, instruct.chat_frame(template, "x"))[1]
        assert canvas.suffix[len(canvas.suffix) - len(closing):] == closing and len(canvas.suffix) > len(closing)
    quoted = instruct.build_canvas(model, request, "Shorter, please.", template, "quoted")
    masked = instruct.build_canvas(model, request, "Shorter, please.", template, "masked")
    # The quoted layout shows the replaced text in the user turn: its tokens are the extra ones.
    assert len(quoted.ids) > len(masked.ids) > plain.ids.numel()
    result = instruct.infill(model, request, "Shorter, please.", template, "quoted")
    assert result.text[: spans[0].start] == text[: spans[0].start]
    between = text[spans[0].end: spans[1].start]
    assert result.text[result.spans[0].end: result.spans[1].start] == between
    assert result.text[result.spans[1].end:] == text[spans[1].end:]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_outside_text_stays_byte_for_byte_for_any_span(tiny, data):
    model, template = tiny
    text = data.draw(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    span = Span(start, end, length=data.draw(st.integers(1, 3)))
    layout = data.draw(st.sampled_from(instruct.LAYOUTS))
    request = InfillRequest(text=text, spans=(span,), steps=2, seed=0)
    result = instruct.infill(model, request, "Rewrite it.", template, layout)
    assert result.text[:start] == text[:start]
    assert result.text[result.spans[0].end:] == text[end:]


# ------------------------------------------------------------------ what cannot be followed
def test_a_base_model_says_which_models_follow_instructions(tiny_llada_dir):
    with pytest.raises(instruct.InstructError) as caught:
        instruct.require_chat_template(tiny_llada_dir)
    message = str(caught.value)
    assert "tokenizer_config.json has no chat_template" in message and str(tiny_llada_dir) in message
    for name in ("LLaDA 8B Instruct", "LLaDA 1.5", "Dream 7B Instruct", "LLaDA-MoE 7B-A1B Instruct"):
        assert name in message
    assert "Base" not in message and "\n" not in message and message.endswith(").")
    model = load_model(str(tiny_llada_dir), device="cpu", dtype="float32")
    request = InfillRequest(text=TEXT, spans=(Span(4, 9),), steps=2)
    with pytest.raises(instruct.InstructError, match="cannot follow instructions"):
        instruct.infill(model, request, "Shorter.")  # the model carries no template


@pytest.mark.parametrize("source, expected", [
    ("{{ 'no messages here' }}", "does not write a user message"),
    ("{% for m in messages %}{{ m['content'] | upper }}{% endfor %}", "does not write a user message"),
    ("{{ raise_exception('Only user and assistant roles are supported!') }}", "Only user and assistant roles"),
    ("{% for m in messages %}", "cannot be rendered"),
])
def test_an_unusable_template_is_one_sentence(source, expected):
    template = instruct.ChatTemplate(source, "model/tokenizer_config.json")
    with pytest.raises(instruct.InstructError, match=expected) as caught:
        instruct.chat_frame(template, "Shorter.")
    assert "model/tokenizer_config.json" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("instruction, expected", [
    ("   ", "the instruction is empty"),
    (None, "the instruction must be text"),
    ("x" * (instruct.MAX_INSTRUCTION + 1), "keep it to 2000"),
])
def test_an_unusable_instruction_is_one_sentence(instruction, expected):
    with pytest.raises(instruct.InstructError, match=expected):
        instruct.user_turn(instruction, TEXT, (Span(4, 9),))


def test_the_answer_layout_takes_one_span():
    with pytest.raises(instruct.InstructError, match="one span at a time"):
        instruct.user_turn("Shorter.", TEXT, (Span(0, 3), Span(4, 9)), "answer")


def test_a_broken_tokenizer_config_is_one_sentence(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": ')
    with pytest.raises(instruct.InstructError, match="tokenizer_config.json cannot be read as JSON; download"):
        instruct.read_chat_template(tmp_path)
    assert instruct.no_template_message().startswith("This model has no chat template, so it cannot follow")


def test_chat_template_jinja_wins_and_list_templates_use_default(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(
        '{"bos_token": {"content": "<s>"}, "chat_template": [{"name": "tool_use", "template": "T"},'
        ' {"name": "default", "template": "D"}]}')
    template = instruct.read_chat_template(tmp_path)
    assert template.source == "D" and dict(template.tokens) == {"bos_token": "<s>"}
    (tmp_path / "chat_template.jinja").write_text("J")
    assert instruct.read_chat_template(tmp_path).source == "J"


def test_bench_measures_each_layout(tiny):
    model, template = tiny
    request = InfillRequest(text=TEXT, spans=(Span(4, 15),), steps=2, seed=0)
    figures = instruct.bench(model, request, "Shorter.", template, repeats=1)
    assert set(figures) == {"plain", *instruct.LAYOUTS, "load_average"}
    assert all(figures[k]["seconds"] > 0 and figures[k]["cpu_seconds"] >= 0 for k in ("plain", *instruct.LAYOUTS))
    assert figures["plain"]["tokens"] < figures["masked"]["tokens"] < figures["quoted"]["tokens"]


def test_the_judging_command_prints_each_layout_and_a_base_model_says_why(tiny_folders, tiny_llada_dir, capsys):
    marked = "The meeting ran late, [[so the chair asked for a new draft]] by Friday."
    args = ["--instruction", "Make this more formal.", "--steps", "2", "--device", "cpu", "--repeats", "0", marked]
    assert instruct.main(["--model", str(tiny_folders["llada"]), *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ("plain", *instruct.LAYOUTS):
        fill = next(line for line in lines if line.startswith(f"{name}: "))
        assert fill.startswith(f'{name}: "The meeting ran late, ') and fill.endswith(' by Friday."')
    assert instruct.main(["--model", str(tiny_llada_dir), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lacuna: ") and "cannot follow instructions" in err and err.count("\n") == 1
