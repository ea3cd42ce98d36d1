"""Immutable plain data that crosses threads: requests, step events, results.

Nothing here holds a tensor or a Qt object; every field is a Python scalar,
string or tuple, so an event can be handed to another thread as is.
"""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field

from .errors import InputError
from .policies import POLICIES

SAMPLERS = POLICIES.names  # the sampling policies (engine.policies), by current name

# Context caches (engine.models.kvcache): "none" recomputes every token at every
# step (the reference); "dual" is Fast-dLLM's dual cache. None in a request:
# the model family's default (``model.default_cache``).
CACHES = ("none", "dual")
# How an instruction wraps the canvas (engine.instruct): "quoted" (the user turn holds the
# instruction and the text being replaced; the answer is the document with the span masked)
# or "masked" (the user turn holds the instruction alone). The first is the default.
INSTRUCT_LAYOUTS = ("quoted", "masked")
MAX_INSTRUCTION = 2000  # characters: an instruction is a line, not a document
AUTO = "auto"  # a span length the model chooses (Span.length)
_ABOUT = re.compile(r"~([0-9]+)")


@dataclass(frozen=True)
class Span:
    """A character range ``[start, end)`` of the text to fill.

    ``length`` is how many tokens to generate, one of:

    - a positive int N: exactly N tokens;
    - None: as many as the covered text has (an insertion needs another form);
    - ``"auto"`` (AUTO): the model chooses;
    - ``"~N"``: about N tokens, the model chooses near N (engine.length tries
      a band around N; a model that grows its canvas starts from N masks);
    - a pair ``(low, high)`` of ints, 1 <= low <= high: the model chooses
      within that range of tokens.

    The last three are "auto" lengths (``is_auto``), the issue-23 forms also
    spelt ``[[?]]`` and ``[[~N]]`` in the CLI's markup (engine.markup).
    ``start == end`` is an insertion. ``strength < 1`` re-masks only that
    fraction of the covered tokens (an edit), which keeps its own length.
    In an InfillResult, ``length`` is the number of tokens generated (0 when a
    model that grows and shrinks its canvas deleted the whole span).
    Raises InputError, one sentence, for any other value.
    """

    start: int
    end: int
    length: int | str | tuple[int, int] | None = None
    strength: float = 1.0

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            _integer(f"span {name}", getattr(self, name))
        if self.start < 0:
            raise InputError(f"span start {_show(self.start)} is negative")
        if self.end < self.start:
            raise InputError(f"span end {_show(self.end)} is before its start {_show(self.start)}")
        object.__setattr__(self, "length", _length(self.length))
        if self.start == self.end and self.length is None:
            raise InputError(f"the insertion at {_show(self.start)} needs a length: a number of tokens "
                             f"of at least 1, or {AUTO!r} to let the model choose")
        if not (_is_real(self.strength) and 0.0 < self.strength <= 1.0):
            raise InputError(f"span strength must be in (0, 1], got {_show(self.strength)}")
        if self.strength < 1.0 and self.start == self.end:
            raise InputError("an insertion has nothing to edit: its strength must be 1")
        if self.strength < 1.0 and self.is_auto:
            raise InputError("an edit (strength < 1) keeps the covered text's own length: "
                             "give it no length, or a strength of 1 to let the model choose one")
        _plain(self, ints=("start", "end"), floats=("strength",))

    @classmethod
    def filled(cls, start: int, end: int, tokens: int) -> "Span":
        """Where a fill lies in a result: ``[start, end)`` holding ``tokens``
        generated tokens (>= 0; 0 only where a growing canvas deleted the span).
        Built by the engine, never from user input."""
        if tokens == 0:
            span = cls(start, end, length=None if end > start else 1)
            object.__setattr__(span, "length", 0)
            return span
        return cls(start, end, length=tokens)

    @property
    def is_auto(self) -> bool:
        """True when the model chooses the length ("auto", about N, or a range)."""
        return isinstance(self.length, (str, tuple))

    @property
    def about(self) -> int | None:
        """N of an "about N tokens" length ("~N"), else None."""
        return int(self.length[1:]) if isinstance(self.length, str) and self.length != AUTO else None

    @property
    def length_range(self) -> tuple[int, int] | None:
        """(low, high) of a range length, else None."""
        return self.length if isinstance(self.length, tuple) else None

    @property
    def is_insertion(self) -> bool:
        return self.start == self.end


@dataclass(frozen=True)
class InfillRequest:
    """Everything a run needs, snapshotted: the text, its spans and the settings.

    ``sampler``: a policy of engine.policies.POLICIES, by name; an older name
    (an alias, such as "ancestral_nocache") is stored as the current one.
    ``block_length``: semi-autoregressive blocks over the masked tokens in
    document order (None: one block). ``threshold``: confidence above which the
    ``threshold`` sampler commits a token (None: the model family's default,
    ``model.default_threshold``, else 0.9). ``cache``: one of CACHES, or None
    for the family's default (engine.models.kvcache says where the dual cache
    is exact and where it approximates). ``top_k == 0`` and ``top_p == 1``
    disable those filters. ``revision`` is opaque to the engine (the editor's
    document revision, echoed back so stale results can be recognised).
    ``allow_newlines``: whether a fill may contain line breaks (None: only in
    spans whose covered text has one; an insertion has none).
    ``instruction``: what an Instruct model should do with the spans ("make this
    more formal"; None: a plain fill). The run is then the model's own chat, the
    instruction in the user turn and the document, spans masked, as the
    assistant's answer (engine.instruct; ``instruct_layout``: one of
    INSTRUCT_LAYOUTS); the text outside the spans stays byte for byte. A model
    without a chat template refuses it with InputError.
    ``context_tokens``: the most tokens the model sees (masks, context and the
    model's own special tokens together; None: the model's whole context). A
    smaller view is faster, a larger one gives the model more text around the
    spans (``lacuna-cli bench speed --views`` measures the trade-off).
    """

    text: str
    spans: tuple[Span, ...]
    steps: int = 16
    sampler: str = "low_confidence"
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    block_length: int | None = None
    threshold: float | None = None
    seed: int = 0
    revision: int = 0
    allow_newlines: bool | None = None
    cache: str | None = None
    context_tokens: int | None = None
    instruction: str | None = None
    instruct_layout: str = "quoted"

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InputError(f"text must be a string, got {type(self.text).__name__}")
        if isinstance(self.spans, (str, bytes)) or not hasattr(self.spans, "__iter__"):
            raise InputError(f"spans must be a sequence of Span objects, got {_show(self.spans)}")
        object.__setattr__(self, "spans", tuple(self.spans))
        if not self.spans:
            raise InputError("nothing to fill: give at least one span")
        for span in self.spans:
            if not isinstance(span, Span):
                raise InputError(f"spans must be Span objects, got {_show(span)}")
            if span.end > len(self.text):
                raise InputError(
                    f"span [{_show(span.start)}, {_show(span.end)}) is outside the text ({len(self.text)} characters)"
                )
        ordered = sorted(self.spans, key=lambda s: (s.start, s.end))
        for a, b in zip(ordered, ordered[1:]):
            if b.start < a.end or (a.start == b.start and a.is_insertion and b.is_insertion):
                raise InputError(f"spans [{a.start}, {a.end}) and [{b.start}, {b.end}) overlap")
        check_text(self.text)
        policy = POLICIES.find(self.sampler)
        if policy is None:
            raise InputError(f"unknown sampler {_show(self.sampler)}; choose one of: {', '.join(SAMPLERS)}")
        object.__setattr__(self, "sampler", policy.name)  # an old name (an alias) reads as the current one
        if not _is_integer(self.steps) or self.steps < 1:
            raise InputError(f"steps must be a positive integer, got {_show(self.steps)}")
        if not (_is_real(self.temperature) and self.temperature >= 0.0 and math.isfinite(float(self.temperature))):
            raise InputError(f"temperature must be a finite number >= 0, got {_show(self.temperature)}")
        if not _is_integer(self.top_k) or self.top_k < 0:
            raise InputError(f"top_k must be an integer >= 0 (0 = off), got {_show(self.top_k)}")
        if not (_is_real(self.top_p) and 0.0 < self.top_p <= 1.0):
            raise InputError(f"top_p must be in (0, 1], got {_show(self.top_p)}")
        if self.block_length is not None and (not _is_integer(self.block_length) or self.block_length < 1):
            raise InputError(f"block_length must be a positive integer, got {_show(self.block_length)}")
        if self.threshold is not None and not (_is_real(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise InputError(f"threshold must be in [0, 1], got {_show(self.threshold)}")
        if self.cache is not None and (not isinstance(self.cache, str) or self.cache not in CACHES):
            raise InputError(f"unknown cache {_show(self.cache)}; choose one of: {', '.join(CACHES)}")
        if self.context_tokens is not None and (not _is_integer(self.context_tokens) or self.context_tokens < 1):
            raise InputError(f"context_tokens must be a positive integer, got {_show(self.context_tokens)}")
        check_seed(self.seed)
        _integer("revision", self.revision)
        if self.instruction is not None:
            check_instruction(self.instruction)
        if not isinstance(self.instruct_layout, str) or self.instruct_layout not in INSTRUCT_LAYOUTS:
            raise InputError(f"unknown instruct_layout {_show(self.instruct_layout)}; "
                             f"choose one of: {', '.join(INSTRUCT_LAYOUTS)}")
        if self.allow_newlines is not None and not isinstance(self.allow_newlines, bool):
            raise InputError(f"allow_newlines must be None, True or False, got {_show(self.allow_newlines)}")
        _plain(self, ints=("steps", "top_k", "block_length", "seed", "revision", "context_tokens"),
               floats=("temperature", "top_p", "threshold"))


# What torch.Generator.manual_seed accepts: a signed or an unsigned 64-bit integer.
SEED_MIN, SEED_MAX = -(1 << 63), (1 << 64) - 1


def check_seed(seed: object, what: str = "seed") -> int:
    """``seed`` as an int, or InputError unless it is an integer (not a bool) in
    [SEED_MIN, SEED_MAX], the range torch.Generator.manual_seed takes."""
    value = _integer(what, seed)
    if not SEED_MIN <= value <= SEED_MAX:
        raise InputError(f"{what} {_show(value)} is out of range: use an integer from {SEED_MIN} to {SEED_MAX}")
    return value


def check_instruction(instruction: object) -> str:
    """``instruction`` without its surrounding whitespace; InputError (one sentence) unless it
    is text of 1 to MAX_INSTRUCTION characters that are all characters."""
    if not isinstance(instruction, str):
        raise InputError(f"the instruction must be text, got {_show(instruction)}")
    if not instruction.strip():
        raise InputError("the instruction is empty; type what the fill should do, e.g. 'make it more formal'")
    if len(instruction) > MAX_INSTRUCTION:
        raise InputError(f"the instruction has {len(instruction)} characters; keep it to {MAX_INSTRUCTION} "
                         "(put the text to work on in the document)")
    check_text(instruction)
    return instruction.strip()


def check_text(text: str) -> None:
    """InputError naming the first unpaired surrogate (U+D800..U+DFFF) in ``text``, if any."""
    if text.isascii():
        return
    # UTF-8 encoding stops at exactly these code points, and runs about 3x faster than a
    # regular expression (0.13 s for 45M characters); chunks bound the copy it makes.
    for at in range(0, len(text), _CHUNK):
        try:
            text[at : at + _CHUNK].encode("utf-8")
        except UnicodeEncodeError as exc:
            where = at + exc.start
            raise InputError(
                f"the text holds an unpaired surrogate, U+{ord(text[where]):04X}, at character {where}: "
                "it is not a character and cannot be encoded; delete it, or reopen the file in its right encoding"
            ) from None


_CHUNK = 1 << 20


def _length(value: object) -> int | str | tuple[int, int] | None:
    """A span length in its stored form (plain int, "auto", "~N", or an (int, int) pair), or InputError."""
    if value is None or (isinstance(value, str) and value == AUTO):
        return value
    if _is_integer(value):
        if value < 1:
            raise InputError(f"span length must be a positive integer, {AUTO!r}, '~N' or (low, high), "
                             f"got {_show(value)}")
        return int(value)
    if isinstance(value, str):
        about = _ABOUT.fullmatch(value)
        if about is None or int(about.group(1)) < 1:
            raise InputError(f"span length {_show(value)} is not a length: write {AUTO!r}, '~N' for about "
                             f"N tokens (N at least 1, digits 0-9), a positive integer, or (low, high)")
        return f"~{int(about.group(1))}"
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_integer(v) for v in value):
        low, high = int(value[0]), int(value[1])
        if not 1 <= low <= high:
            raise InputError(f"span length range {_show(value)} must have 1 <= low <= high tokens")
        return (low, high)
    raise InputError(f"span length must be a positive integer, {AUTO!r}, '~N' (about N tokens) or a "
                     f"range (low, high), got {_show(value)}")


def _is_integer(value: object) -> bool:
    # bool is an int subclass, but True as a step count or a seed is a mistake, not 1
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    """A number that is not a bool, not NaN, and fits a float (10**400 does not)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return not math.isnan(float(value))
    except (OverflowError, ValueError, TypeError):
        return False


def _integer(what: str, value: object) -> int:
    if not _is_integer(value):
        raise InputError(f"{what} must be an integer, got {_show(value)}")
    return int(value)  # type: ignore[call-overload]


def _plain(obj: object, ints: tuple[str, ...], floats: tuple[str, ...]) -> None:
    """Store checked numbers as Python int and float (a numpy scalar passes the checks),
    so what crosses threads is plain data."""
    for names, kind in ((ints, int), (floats, float)):
        for name in names:
            value = getattr(obj, name)
            if value is not None and type(value) is not kind:
                object.__setattr__(obj, name, kind(value))


def _show(value: object) -> str:
    """A short repr for a message: a huge or hostile value must not flood the error line."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - any object may come through the API
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Commit:
    """One token decided in a step. ``index`` is its slot among the run's masked
    tokens (document order); ``span`` is the index of its span in the request."""

    index: int
    span: int
    token_id: int
    text: str
    confidence: float


@dataclass(frozen=True)
class TokenPiece:
    """Where one generated token lies in a result's text, with its confidence
    (None for tokens an edit kept from the original)."""

    start: int
    end: int
    confidence: float | None


@dataclass(frozen=True)
class LengthTried:
    """One length tried for an auto-length span (engine.length): ``length``
    tokens, ``score`` its rank key (higher is better: the model's own
    likelihood bound per token, length-normalised), ``result`` the whole fill
    with this span at that length (the other spans as in the winner)."""

    length: int
    score: float
    result: InfillResult


@dataclass(frozen=True)
class InfillResult:
    """The filled text. ``spans[i]`` is where request span i now lies in
    ``text`` (its ``length`` is the number of tokens generated: for an
    auto-length span, the length chosen, 0 when DreamOn deleted it all);
    ``pieces[i]`` are its tokens' character ranges in ``text``. ``lengths[i]``:
    for an auto-length span on a model that does not grow its canvas, the
    lengths tried, best first (empty for other spans, or all empty)."""

    text: str
    spans: tuple[Span, ...]
    pieces: tuple[tuple[TokenPiece, ...], ...]
    nfe: int
    steps: int
    seconds: float
    seed: int
    revision: int = 0
    lengths: tuple[tuple[LengthTried, ...], ...] = ()

    def span_text(self, i: int) -> str:
        s = self.spans[i]
        return self.text[s.start : s.end]


@dataclass(frozen=True)
class StepEvent:
    """The state of a run after one denoising step.

    ``slot_span[j]`` is the request span of masked slot j (fixed for a run);
    ``tokens[j]`` is the slot's token text, None while it is still masked;
    ``confidence[j]`` the probability it was committed with (None: masked, or
    kept unchanged by an edit). ``committed`` lists the slots decided in this
    step. The last event of a finished run has ``done`` set and carries the
    ``result``.

    A model that grows and shrinks its canvas (``grows_canvas``, DreamOn)
    changes ``len(tokens)`` between events: ``deleted`` lists the slots
    removed in this step (indices as the slots stood at its start, so a
    commit of the delete token is in ``committed`` too), ``expanded`` the
    slots that became two masks (indices after the deletions; in ``tokens``
    the pair of slot j starts at j plus the expansions before j). Commit
    indices are as the slots stood at the start of the step
    (app.editor.preview.new_slots maps them to ``tokens``). Both are empty for
    a fixed canvas.
    """

    step: int
    steps: int
    nfe: int
    elapsed: float
    committed: tuple[Commit, ...]
    tokens: tuple[str | None, ...]
    confidence: tuple[float | None, ...]
    slot_span: tuple[int, ...]
    done: bool = False
    result: InfillResult | None = field(default=None, compare=False)
    expanded: tuple[int, ...] = ()
    deleted: tuple[int, ...] = ()

    @property
    def masked(self) -> int:
        return sum(t is None for t in self.tokens)
