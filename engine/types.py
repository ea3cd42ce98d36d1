"""Immutable plain data that crosses threads: requests, step events, results.

Nothing here holds a tensor or a Qt object; every field is a Python scalar,
string or tuple, so an event can be handed to another thread as is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import InputError

SAMPLERS = (
    "low_confidence",
    "margin",
    "entropy",
    "random",
    "threshold",
    "ancestral",
    "ancestral_nocache",
    "ancestral_analytic",
)

# Context caches (engine.models.kvcache): "none" recomputes every token at every
# step (the reference); "dual" is Fast-dLLM's dual cache. None in a request:
# the model family's default (``model.default_cache``).
CACHES = ("none", "dual")


@dataclass(frozen=True)
class Span:
    """A character range ``[start, end)`` of the text to fill.

    ``length`` is the number of tokens to generate (None: as many as the covered
    text has). ``start == end`` is an insertion and needs a length.
    ``strength < 1`` re-masks only that fraction of the covered tokens (an edit).
    """

    start: int
    end: int
    length: int | None = None
    strength: float = 1.0

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"span {name} must be an integer, got {value!r}")
        if self.start < 0:
            raise InputError(f"span start {self.start} is negative")
        if self.end < self.start:
            raise InputError(f"span end {self.end} is before its start {self.start}")
        if self.length is not None and (
            not isinstance(self.length, int) or isinstance(self.length, bool) or self.length < 1
        ):
            raise InputError(f"span length must be a positive integer, got {self.length!r}")
        if self.start == self.end and self.length is None:
            raise InputError(f"the insertion at {self.start} needs a length of at least 1 token")
        if not (isinstance(self.strength, (int, float)) and 0.0 < self.strength <= 1.0):
            raise InputError(f"span strength must be in (0, 1], got {self.strength!r}")
        if self.strength < 1.0 and self.start == self.end:
            raise InputError("an insertion has nothing to edit: its strength must be 1")

    @property
    def is_insertion(self) -> bool:
        return self.start == self.end


@dataclass(frozen=True)
class InfillRequest:
    """Everything a run needs, snapshotted: the text, its spans and the settings.

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "spans", tuple(self.spans))
        if not isinstance(self.text, str):
            raise InputError("text must be a string")
        if not self.spans:
            raise InputError("nothing to fill: give at least one span")
        for span in self.spans:
            if not isinstance(span, Span):
                raise InputError(f"spans must be Span objects, got {span!r}")
            if span.end > len(self.text):
                raise InputError(
                    f"span [{span.start}, {span.end}) is outside the text ({len(self.text)} characters)"
                )
        ordered = sorted(self.spans, key=lambda s: (s.start, s.end))
        for a, b in zip(ordered, ordered[1:]):
            if b.start < a.end or (a.start == b.start and a.is_insertion and b.is_insertion):
                raise InputError(f"spans [{a.start}, {a.end}) and [{b.start}, {b.end}) overlap")
        if self.sampler not in SAMPLERS:
            raise InputError(f"unknown sampler {self.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise InputError(f"steps must be a positive integer, got {self.steps!r}")
        if not (self.temperature >= 0.0 and math.isfinite(self.temperature)):
            raise InputError(f"temperature must be >= 0, got {self.temperature!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise InputError(f"top_k must be >= 0 (0 = off), got {self.top_k!r}")
        if not (0.0 < self.top_p <= 1.0):
            raise InputError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.block_length is not None and (not isinstance(self.block_length, int) or self.block_length < 1):
            raise InputError(f"block_length must be a positive integer, got {self.block_length!r}")
        if self.threshold is not None and not (
            isinstance(self.threshold, (int, float)) and not isinstance(self.threshold, bool)
            and 0.0 <= self.threshold <= 1.0
        ):
            raise InputError(f"threshold must be in [0, 1], got {self.threshold!r}")
        if self.cache is not None and self.cache not in CACHES:
            raise InputError(f"unknown cache {self.cache!r}; choose one of: {', '.join(CACHES)}")
        if self.context_tokens is not None and (
            not isinstance(self.context_tokens, int) or isinstance(self.context_tokens, bool)
            or self.context_tokens < 1
        ):
            raise InputError(f"context_tokens must be a positive integer, got {self.context_tokens!r}")
        if not isinstance(self.seed, int):
            raise InputError(f"seed must be an integer, got {self.seed!r}")
        if self.allow_newlines not in (None, True, False):
            raise InputError(f"allow_newlines must be None, True or False, got {self.allow_newlines!r}")


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
class InfillResult:
    """The filled text. ``spans[i]`` is where request span i now lies in
    ``text`` (its ``length`` is the number of tokens generated);
    ``pieces[i]`` are its tokens' character ranges in ``text``."""

    text: str
    spans: tuple[Span, ...]
    pieces: tuple[tuple[TokenPiece, ...], ...]
    nfe: int
    steps: int
    seconds: float
    seed: int
    revision: int = 0

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

    @property
    def masked(self) -> int:
        return sum(t is None for t in self.tokens)
