"""Instruction-guided fills: the request rendered as the model's own chat.

An Instruct model (LLaDA-8B-Instruct, LLaDA 1.5, LLaDA-MoE Instruct, Dream
Instruct) was fine-tuned on its chat template: a user turn, then the
assistant's answer, whose tokens were masked at a random ratio while the
prompt never was (LLaDA's GUIDELINES.md, "SFT"). Here the instruction goes in
the user turn and the document, with its spans masked, is the assistant's
answer: the fill stays native infilling, constrained by the text on both
sides, and the text outside the spans is the document's, byte for byte.

Layouts (``LAYOUTS``; the report of issue 24 compares them):

- ``"quoted"`` (default): the user turn holds the instruction and, below it,
  the text of each span being replaced ("make this more formal" needs to know
  what "this" was: a masked span alone hides it); the answer is the document
  with the spans masked.
- ``"masked"``: the user turn holds the instruction only; the answer is the
  document with the spans masked (a rewrite sees only the text around it).
- ``"answer"``: the user turn holds the instruction and the document with the
  span shown as ``PLACEHOLDER``; the answer is the span's masks alone (one
  span; the fill sees the document only through the prompt).

Rendering: the model's ``chat_template`` (tokenizer_config.json, or
chat_template.jinja beside it) is rendered by transformers'
``render_jinja_template``, the function ``apply_chat_template`` calls (a
sandboxed jinja2 environment with trim_blocks, lstrip_blocks and
raise_exception; no remote code), with the folder's special tokens
(``bos_token``, ...) as variables. The messages are rendered as sentinels and
cut there, so the template's own text (control tokens and headers) is
tokenised with its special tokens recognised, while the user's text and the
document are tokenised as plain text: a ``<|im_end|>`` typed in an
instruction is characters, never a control token, and the document is never
trimmed or rewritten by the template (LLaDA's template trims each message;
``render`` gives what it makes of the bare text). A template that always ends
with a generation prompt, whatever ``add_generation_prompt`` says (LLaDA's),
has that prompt taken off the end of the answer's turn.

The frame only replaces the model's ``prefix_ids``/``suffix_ids``
(``framed``), so engine.canvas and engine.sampler run unchanged on it.
"""
from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ContextTooLong, InputError
from .types import check_instruction as types_check_instruction
from .types import INSTRUCT_LAYOUTS, MAX_INSTRUCTION, InfillRequest, InfillResult, Span, TokenPiece

# The request's layouts, plus "answer" (the span alone as the answer), kept for the comparison
# of the layouts (``bench``, ``main``) only: it changes the canvas, so it has no live view.
LAYOUTS = (*INSTRUCT_LAYOUTS, "answer")
DEFAULT_LAYOUT = INSTRUCT_LAYOUTS[0]
PLACEHOLDER = "[…]"

# Only these stand-ins go through the template, never the user's text: nothing typed can collide.
_USER = "\ue000lacuna-user\ue001"
_ANSWER = "\ue000lacuna-answer\ue001"
_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class InstructError(InputError):
    """An instruction cannot be followed: no chat template, a template that
    hides the messages, or an unusable instruction. The message is one
    sentence naming the file or the fix."""


@dataclass(frozen=True)
class ChatTemplate:
    """A model folder's chat template: ``source`` is the jinja2 text, ``file``
    where it was read, ``tokens`` the folder's named special tokens as
    (name, token text) pairs, passed to the template as variables."""

    source: str
    file: str
    tokens: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ChatFrame:
    """The rendered chat around the assistant's answer, as text.

    ``head + user + middle + <answer> + closing`` is the conversation; ``head``,
    ``middle`` and ``closing`` are the template's (control tokens recognised),
    ``user`` the user's text (plain text)."""

    head: str
    user: str
    middle: str
    closing: str

    @property
    def before_answer(self) -> str:
        return self.head + self.user + self.middle


@dataclass(frozen=True)
class InstructCanvas:
    """A canvas in a chat layout, as plain data (no tensors).

    ``ids``: every token id the network sees [L]; ``mask_positions``: the
    canvas positions of the masked slots, document order; ``prefix`` /
    ``suffix``: the ids before the first and after the last masked slot (chat
    scaffolding with the document text on that side); ``document``: (start,
    end) canvas positions of the document's tokens ((0, 0) in the "answer"
    layout, where the document is in the prompt); ``span_positions[i]``: the
    canvas positions of request span i's slots, whose characters in the
    document are ``spans[i]`` ([start, end) character offsets)."""

    ids: tuple[int, ...]
    mask_positions: tuple[int, ...]
    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    document: tuple[int, int]
    span_positions: tuple[tuple[int, ...], ...]
    spans: tuple[tuple[int, int], ...]
    layout: str


# ---------------------------------------------------------------------------- templates
def read_chat_template(folder: str | os.PathLike) -> ChatTemplate | None:
    """The chat template of a model folder, or None when it has none (a base
    model). Read as transformers reads it: ``chat_template.jinja`` when the
    folder has one, else tokenizer_config.json's ``chat_template`` (a string,
    or a list of {name, template} of which "default" is used). Raises
    InstructError when the file exists but cannot be read."""
    folder = Path(folder)
    config_file = folder / "tokenizer_config.json"
    config = _read_json(config_file)
    tokens: dict[str, str] = {}
    for source in (config, _read_json(folder / "special_tokens_map.json")):
        for key in _SPECIAL_KEYS:
            value = source.get(key)
            text = value.get("content") if isinstance(value, dict) else value
            if isinstance(text, str):
                tokens[key] = text
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        try:
            return ChatTemplate(jinja_file.read_text(encoding="utf-8"), str(jinja_file), tuple(tokens.items()))
        except (OSError, UnicodeDecodeError):
            raise InstructError(f"{jinja_file} cannot be read as UTF-8 text; download the model again") from None
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if not isinstance(template, str) or not template.strip():
        return None
    return ChatTemplate(template, str(config_file), tuple(tokens.items()))


def require_chat_template(folder: str | os.PathLike) -> ChatTemplate:
    """read_chat_template, or InstructError saying which models follow instructions."""
    template = read_chat_template(folder)
    if template is None:
        raise InstructError(no_template_message(folder))
    return template


def no_template_message(folder: str | os.PathLike | None = None) -> str:
    """The one sentence a base model gives (also the disabled option's tooltip)."""
    if folder is None:
        where = "This model has no chat template, so it"
    else:
        where = f"{Path(folder) / 'tokenizer_config.json'} has no chat_template, so this model"
    return (f"{where} cannot follow instructions; pick an instruction-tuned model "
            f"({', '.join(instruct_models())}).")


def instruct_models() -> tuple[str, ...]:
    """Names of the catalog's instruction-tuned (Instruct or chat) models."""
    from . import resources

    try:
        catalog = json.loads(resources.path("catalog.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    names = []
    for entry in catalog.get("models", ()) if isinstance(catalog, dict) else ():
        name = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        about = f"{name} {entry.get('description', '')}".lower()
        if "instruct" in about or " chat" in name.lower():
            names.append(name)
    return tuple(names)


# A template is code from the model's folder: its rendering gets this long (seconds) before it is
# refused. Jinja2 compiles a template to Python, so a trace function sees every line it runs.
RENDER_SECONDS = 2.0


class _Overrun(Exception):
    pass


def _within(seconds: float, work):
    """``work()`` under a deadline: the trace function raises _Overrun in the rendering code
    once ``seconds`` have passed (a template that loops for ever cannot hang a fill)."""
    deadline = time.monotonic() + seconds
    previous = sys.gettrace()

    def trace(frame, event, arg):
        if time.monotonic() > deadline:
            raise _Overrun
        return trace

    sys.settrace(trace)
    try:
        return work()
    finally:
        sys.settrace(previous)


def render(template: ChatTemplate, messages: list[dict[str, str]], add_generation_prompt: bool = False,
           continue_final_message: bool = False) -> str:
    """The template rendered as apply_chat_template renders it (tokenize=False),
    through transformers' own renderer (its sandboxed jinja2 environment).
    Raises InstructError, one sentence naming the file, for any failure of the
    template (its raise_exception, a jinja2 error, arithmetic it cannot do, a
    recursion) and for one that runs longer than RENDER_SECONDS."""
    from transformers.utils.chat_template_utils import render_jinja_template

    def work():
        return render_jinja_template(
            conversations=[messages], chat_template=template.source,
            add_generation_prompt=add_generation_prompt, continue_final_message=continue_final_message,
            **dict(template.tokens))

    try:
        rendered, _ = _within(RENDER_SECONDS, work)
    except _Overrun:
        raise InstructError(f"the chat template in {template.file} takes longer than {RENDER_SECONDS:g} s to "
                            "render; use the model's own tokenizer_config.json") from None
    except MemoryError:
        raise InstructError(f"the chat template in {template.file} asks for more memory than this machine "
                            "has; use the model's own tokenizer_config.json") from None
    except Exception as exc:  # noqa: BLE001 - a template is foreign code: any failure is the template's
        first = (str(exc).strip().splitlines() or ["no reason given"])[0][:160]
        raise InstructError(f"the chat template in {template.file} cannot be rendered ({first}); "
                            "use the model's own tokenizer_config.json") from None
    return rendered[0]


def chat_frame(template: ChatTemplate, user: str) -> ChatFrame:
    """The conversation [user: ``user``, assistant: <answer>] cut around the answer.

    Only stand-ins go through the template, so its scaffolding is rendered once
    per template. Raises InstructError when the template does not show both
    messages as written, in that order."""
    head, middle, closing = _scaffold(template)
    return ChatFrame(head=head, user=user, middle=middle, closing=closing)


@functools.lru_cache(maxsize=16)
def _scaffold(template: ChatTemplate) -> tuple[str, str, str]:
    whole = render(template, [{"role": "user", "content": _USER}, {"role": "assistant", "content": _ANSWER}])
    if whole.count(_USER) != 1 or whole.count(_ANSWER) != 1 or whole.index(_USER) > whole.index(_ANSWER):
        raise InstructError(f"the chat template in {template.file} does not write a user message and the "
                            "assistant's answer as given, so Lacuna cannot place the document in it; "
                            "use the model's own template")
    head, rest = whole.split(_USER)
    middle, closing = rest.split(_ANSWER)
    closing = closing[: len(closing) - len(_forced_prompt(template, closing))]
    return head, middle, closing


def _forced_prompt(template: ChatTemplate, closing: str) -> str:
    """The generation prompt a template appends whatever add_generation_prompt says
    (LLaDA's ends every conversation with an empty assistant header): it is what
    the template makes of an empty conversation. '' for templates that obey the flag."""
    user = [{"role": "user", "content": _USER}]
    if render(template, user, add_generation_prompt=True) != render(template, user, add_generation_prompt=False):
        return ""
    try:
        alone = render(template, [], add_generation_prompt=True)
    except InstructError:
        return ""
    return alone if alone and closing.endswith(alone) and len(alone) < len(closing) else ""


def user_turn(instruction: str, text: str, spans: tuple[Span, ...], layout: str = DEFAULT_LAYOUT) -> str:
    """The user's message for ``layout`` (see the module docstring). Raises
    InstructError for an empty or overlong instruction or an unknown layout."""
    instruction = check_instruction(instruction)
    if layout not in LAYOUTS:
        raise InstructError(f"unknown instruction layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    if layout == "masked":
        return instruction
    if layout == "quoted":
        quotes = [text[s.start:s.end].strip() for s in ordered if text[s.start:s.end].strip()]
        return "\n\n".join([instruction, *quotes])
    if len(spans) != 1:
        raise InstructError("the 'answer' layout fills one span at a time; select one span or use 'quoted'")
    span = spans[0]
    marked = (text[: span.start] + PLACEHOLDER + text[span.end:]).strip()
    return f"{instruction}\n\n{marked}\n\nWrite only the text that replaces {PLACEHOLDER}."


def check_instruction(instruction: object) -> str:
    """The instruction without surrounding whitespace; InputError if it is not usable
    (engine.types.check_instruction: the request and this module say the same)."""
    try:
        return types_check_instruction(instruction)
    except InputError as exc:
        raise InstructError(str(exc)) from None


def frame_ids(tokenizer: Any, frame: ChatFrame) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(ids before the answer, ids after it): the template's text with its
    control tokens recognised, the user's text as plain text."""
    from .models import vocab

    def template_text(piece: str) -> list[int]:
        return list(tokenizer.encode(piece, add_special_tokens=False)) if piece else []

    before = template_text(frame.head) + vocab.encode(tokenizer, frame.user) + template_text(frame.middle)
    return tuple(before), tuple(template_text(frame.closing))


def chat_ids(tokenizer: Any, frame: ChatFrame, answer: str) -> tuple[int, ...]:
    """The whole conversation's ids with ``answer`` (plain text) as the assistant's text."""
    from .models import vocab

    before, after = frame_ids(tokenizer, frame)
    return before + tuple(vocab.encode(tokenizer, answer)) + after


class Framed:
    """``model`` seen through a chat frame: ``prefix_ids``/``suffix_ids`` are the
    chat's, everything else (network, tokenizer, lock) is the model's own."""

    def __init__(self, model: Any, prefix_ids: tuple[int, ...], suffix_ids: tuple[int, ...]):
        from .models.serial import model_lock

        self.__dict__["_model"] = model
        self.__dict__["prefix_ids"] = tuple(prefix_ids)
        self.__dict__["suffix_ids"] = tuple(suffix_ids)
        # One model, one lock: a framed run and a plain one must not interleave inside a step.
        self.__dict__["_lacuna_model_lock"] = model_lock(model)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_model"], name)


_TEMPLATES: dict[tuple, ChatTemplate | None] = {}


def _files_state(path: str) -> tuple:
    """What a folder's template depends on: its files' sizes and modification times."""
    state = []
    for name in ("tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        try:
            st = os.stat(os.path.join(path, name))
            state.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            state.append((name, None, None))
    return tuple(state)


def template_for(model: Any) -> ChatTemplate:
    """The chat template of the folder ``model`` was loaded from (read again when its
    files change); InstructError (one sentence naming the models that follow
    instructions) if it has none."""
    path = str(model.path or "")
    key = (path, _files_state(path)) if path else ("",)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = read_chat_template(path) if path else None
    template = _TEMPLATES[key]
    if template is None:
        raise InstructError(no_template_message(path or None))
    return template


def template_of(model: Any, template: ChatTemplate | None = None) -> ChatTemplate:
    """``template``, else the chat template of the model's folder (template_for)."""
    return template if template is not None else template_for(model)


def framed(model: Any, request: InfillRequest, instruction: str, template: ChatTemplate | None = None,
           layout: str = DEFAULT_LAYOUT) -> tuple[Framed, InfillRequest]:
    """The model and request the sampler runs for an instructed fill.

    In the "quoted" and "masked" layouts the request is the same spans (the
    frame holds the chat); in "answer" it is a lone insertion of the span's
    length (``splice`` puts its fill back into the document). ``instruction``
    is the one that counts: the returned request carries none, so the sampler
    never frames it twice."""
    from .canvas import token_count
    from .models.serial import model_lock

    template = template_of(model, template)
    frame = chat_frame(template, user_turn(instruction, request.text, request.spans, layout))
    span = request.spans[0]
    with model_lock(model):  # the tokenizer is the model's: one thread at a time (engine.models.serial)
        before, after = frame_ids(model.tokenizer, frame)
        chat = len(before) + len(after)
        need = sum(s.length or token_count(model, request.text, s.start, s.end) for s in request.spans)
        if chat + need > model.context_length:
            raise ContextTooLong(
                f"the instruction and {model.name}'s chat template take {chat} of its {model.context_length} "
                f"tokens, which leaves {max(0, model.context_length - chat)} for the {need} masked; shorten the "
                "instruction" + (" or select less text (the quoted layout repeats it)" if layout == "quoted" else ""))
        if layout != "answer":
            return Framed(model, before, after), replace(request, instruction=None)
        length = span.length or token_count(model, request.text, span.start, span.end)
    inner = replace(request, text="", instruction=None, spans=(Span(0, 0, length=length),), allow_newlines=(
        request.allow_newlines if request.allow_newlines is not None
        else any(c in "\n\r\v\f\x85\u2028\u2029" for c in request.text[span.start:span.end])))
    return Framed(model, before, after), inner


def splice(request: InfillRequest, result: InfillResult) -> InfillResult:
    """An "answer"-layout result (its text is the fill alone) put back into the document."""
    span = request.spans[0]
    fill = result.text
    at = span.start
    return replace(
        result,
        text=request.text[:at] + fill + request.text[span.end:],
        spans=(Span(at, at + len(fill), length=result.spans[0].length),),
        pieces=(tuple(TokenPiece(p.start + at, p.end + at, p.confidence) for p in result.pieces[0]),),
    )


def build_canvas(model: Any, request: InfillRequest, instruction: str, template: ChatTemplate | None = None,
                 layout: str = DEFAULT_LAYOUT, seed: int | None = None) -> InstructCanvas:
    """The canvas the network sees for an instructed fill, as plain data."""
    import torch

    from . import canvas as canvas_mod
    from .models.serial import model_lock

    model_view, inner = framed(model, request, instruction, template, layout)
    seed = request.seed if seed is None else seed
    with model_lock(model):
        built = canvas_mod.build(model_view, inner, torch.Generator().manual_seed(seed))
    ids = tuple(built.ids.tolist())
    slots = built.slots.tolist()
    masked = built.masked.tolist()
    mask_positions = tuple(p for p, m in zip(slots, masked) if m)
    first, last = (min(slots), max(slots)) if slots else (len(ids), len(ids) - 1)
    document = (0, 0) if layout == "answer" else (len(model_view.prefix_ids), len(ids) - len(model_view.suffix_ids))
    span_positions = tuple(tuple(slots[j] for j in built.span_slots[i]) for i in range(len(inner.spans)))
    return InstructCanvas(
        ids=ids, mask_positions=mask_positions, prefix=ids[:first], suffix=ids[last + 1:], document=document,
        span_positions=span_positions, spans=tuple((s.start, s.end) for s in request.spans), layout=layout)


def infill(model: Any, request: InfillRequest, instruction: str, template: ChatTemplate | None = None,
           layout: str = DEFAULT_LAYOUT, cancel=None) -> InfillResult:
    """An instructed fill run to the end (engine.sampler.infill on the framed
    model); the result is in document coordinates in every layout."""
    from . import sampler

    model_view, inner = framed(model, request, instruction, template, layout)
    result = sampler.infill(model_view, inner, cancel)
    return splice(request, result) if layout == "answer" else result


# ---------------------------------------------------------------------------- bench
def bench(model: Any, request: InfillRequest, instruction: str, template: ChatTemplate | None = None,
          layouts: tuple[str, ...] = LAYOUTS, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Per fill: wall seconds, this process's CPU seconds (steadier on a shared
    machine) and canvas tokens, plain against each instruction layout, for one
    request; medians of ``repeats`` rounds, each round running every variant
    once so a change of load hits them alike. Measures only: the numbers are
    this machine's under its load (``load_average``: os.getloadavg's 1-minute
    figure at the end)."""
    from . import canvas as canvas_mod
    from . import sampler

    runs = {"plain": lambda: sampler.infill(model, request)}
    tokens = {"plain": float(canvas_mod.build(model, request).ids.numel())}
    for layout in layouts:
        runs[layout] = lambda layout=layout: infill(model, request, instruction, template, layout)
        tokens[layout] = float(len(build_canvas(model, request, instruction, template, layout).ids))
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up: first-call caches (vocabulary tables, rotary tables)
    for _ in range(repeats):
        for name, run in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    out = {name: {"tokens": tokens[name], "seconds": statistics.median(wall[name]),
                  "cpu_seconds": statistics.median(cpu[name])} for name in runs}
    out["load_average"] = {"1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")}
    return out


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise InstructError(f"{path} cannot be read as JSON; download the model again") from None
    return data if isinstance(data, dict) else {}


def main(argv: list[str] | None = None) -> int:
    """Judge instructed fills on a real model: ``python -m lacuna.engine.instruct --model
    PATH --instruction TEXT "marked [[text]]"`` prints the plain fill and each
    layout's fill of the same spans (JSON strings), then bench's canvas sizes
    and times. Returns 0, or 2 after one line on stderr for a user's error."""
    import argparse
    import sys

    from . import markup
    from .errors import LacunaError
    from .models.loader import load_model, resolve_path

    parser = argparse.ArgumentParser(prog="python -m lacuna.engine.instruct", description=main.__doc__)
    parser.add_argument("--model", required=True, help="a model folder (or catalog repository) with a chat template")
    parser.add_argument("--instruction", required=True)
    parser.add_argument("--layout", choices=LAYOUTS, action="append", help="repeatable; default: all")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of bench (0: no timing)")
    parser.add_argument("marked", help="the document with [[holes]] (engine.markup)")
    args = parser.parse_args(argv)
    try:
        text, spans = markup.parse(args.marked)
        request = InfillRequest(text=text, spans=tuple(spans), steps=args.steps, seed=args.seed)
        template = require_chat_template(resolve_path(args.model))
        model = load_model(args.model, device=args.device)
        from . import sampler

        def show(text: str) -> str:
            return json.dumps(text, ensure_ascii=False)

        print(f"plain: {show(sampler.infill(model, request).text)}")
        for layout in args.layout or LAYOUTS:
            print(f"{layout}: {show(infill(model, request, args.instruction, template, layout).text)}")
        if args.repeats > 0:
            figures = bench(model, request, args.instruction, template, tuple(args.layout or LAYOUTS), args.repeats)
            for name, row in figures.items():
                print(name, " ".join(f"{k}={v:.4g}" for k, v in row.items()))
    except LacunaError as exc:
        print(f"lacuna: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
