"""Text and spans -> a canvas of token ids, and filled slots -> text.

The text between spans is tokenised as separate segments and never decoded
again: only the spans are decoded, so everything outside them comes back byte
for byte.

Whitespace: byte-level BPE and SentencePiece tokenisers fold a word's leading
space into the word's token (" heaven"), so a context ending in a lone space
is something the model never saw in training. When the character just before
a span is a space, that space is tokenised with the span (its first masked
token may carry it), and it is taken back off the decoded fill, since the
original space stays outside the span in the result.

Long documents: when the canvas exceeds the model's context, the masked slots
are kept whole and the context tokens nearest to any span (in tokens) fill the
rest of the context; farther text is left out of the model's view, not out
of the result. If the masked slots alone do not fit, ContextTooLong is raised.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import ContextTooLong, InputError
from .types import InfillRequest, Span, TokenPiece

# A token is rarely longer than this many characters; context beyond
# context_length * _CHARS_PER_TOKEN characters from a span cannot be kept, so it
# is cut before tokenising (a 5 MB document tokenises in milliseconds, not seconds).
_CHARS_PER_TOKEN = 32


@dataclass
class Canvas:
    ids: torch.Tensor  # LongTensor [L] on CPU, masks in the masked slots
    slots: torch.Tensor  # LongTensor [n]: canvas position of each span slot, document order
    slot_span: tuple[int, ...]  # request span index of each slot
    masked: torch.Tensor  # BoolTensor [n]: slot starts masked (False: kept by an edit)
    moved_space: tuple[bool, ...]  # per request span: its leading space was tokenised with it
    span_slots: tuple[tuple[int, ...], ...]  # per request span: its slot indices


def moves_space(tokenizer) -> bool:
    """True when a word's leading space costs no token of its own (byte-level
    BPE, SentencePiece, and WordPiece, which ignores spaces): then the space
    before a span is best tokenised with the span. Probed on common words, since
    a rare one may be split either way."""
    cached = getattr(tokenizer, "_lacuna_moves_space", None)
    if cached is None:
        cached = any(
            len(tokenizer.encode(" " + word, add_special_tokens=False))
            == len(tokenizer.encode(word, add_special_tokens=False))
            for word in ("the", "a", "and", "of", "to", "in")
        )
        try:
            tokenizer._lacuna_moves_space = cached
        except AttributeError:
            pass
    return cached


def drops_spaces(tokenizer) -> bool:
    """WordPiece tokenisers forget whitespace; their decoder joins words itself."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return type(getattr(backend, "decoder", None)).__name__ == "WordPiece"


def _encode(tokenizer, text: str) -> list[int]:
    if not text:
        return []
    # The Rust tokenizer directly: no length warning for long documents (the
    # canvas windows them itself) and no Python wrapper per call.
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return backend.encode(text, add_special_tokens=False).ids
    return list(tokenizer.encode(text, add_special_tokens=False))


def _span_source(text: str, start: int, end: int, move: bool) -> tuple[str, bool]:
    """The text a span is tokenised as, and whether its leading space moved in."""
    moved = move and start > 0 and text[start - 1] == " "
    return ((" " if moved else "") + text[start:end]), moved


def token_count(model, text: str, start: int, end: int) -> int:
    """How many tokens the covered text [start, end) has under this model, as
    the canvas counts them: the default length of a mask over that text."""
    if not (0 <= start <= end <= len(text)):
        raise InputError(f"span [{start}, {end}) is outside the text ({len(text)} characters)")
    source, _ = _span_source(text, start, end, moves_space(model.tokenizer))
    if not source.strip() and start == end:
        return 0
    return max(1, len(_encode(model.tokenizer, source)))


def build(model, request: InfillRequest, generator: torch.Generator | None = None) -> Canvas:
    tok = model.tokenizer
    text = request.text
    move = moves_space(tok)
    order = sorted(range(len(request.spans)), key=lambda i: (request.spans[i].start, request.spans[i].end))
    reach = model.context_length * _CHARS_PER_TOKEN

    contexts: list[list[int]] = []  # tokens of the text before each span, then the tail
    span_tokens: list[list[int] | None] = [None] * len(request.spans)  # original ids (edits)
    lengths = [0] * len(request.spans)
    moved = [False] * len(request.spans)
    cursor = 0
    for k, i in enumerate(order):
        span = request.spans[i]
        source, moved[i] = _span_source(text, span.start, span.end, move)
        left_end = span.start - 1 if moved[i] else span.start
        segment = text[cursor:left_end]
        if k == 0 and len(segment) > reach:
            segment = segment[-reach:]
        elif len(segment) > 2 * reach:
            segment = segment[:reach] + segment[-reach:]
        contexts.append(_encode(tok, segment))
        # The covered text's own tokens matter only for its default length and for edits.
        original = _encode(tok, source) if (span.length is None or span.strength < 1.0) else []
        if span.strength < 1.0:
            if not original:
                raise InputError(f"span [{span.start}, {span.end}) has no tokens to edit")
            if span.length is not None and span.length != len(original):
                raise InputError(
                    f"an edit (strength < 1) keeps the span's {len(original)} tokens; "
                    f"length {span.length} was given"
                )
            span_tokens[i] = original
        lengths[i] = span.length if span.length is not None else max(1, len(original))
        cursor = span.end
    contexts.append(_encode(tok, text[cursor : cursor + reach]))

    masked_total = sum(lengths)
    frame = len(model.prefix_ids) + len(model.suffix_ids)
    budget = model.context_length - frame - masked_total
    if budget < 0:
        raise ContextTooLong(
            f"the masked spans need {masked_total} tokens but {model.name} holds "
            f"{model.context_length - frame}; mask less text or use a model with a longer context"
        )
    contexts = _keep_nearest(contexts, budget)

    ids: list[int] = list(model.prefix_ids)
    slots: list[int] = []
    slot_span: list[int] = []
    masked: list[bool] = []
    span_slots: list[tuple[int, ...]] = [()] * len(request.spans)
    for k, i in enumerate(order):
        ids.extend(contexts[k])
        span = request.spans[i]
        keep = _kept_slots(span, span_tokens[i], generator)
        first = len(slots)
        for j in range(lengths[i]):
            slots.append(len(ids))
            slot_span.append(i)
            if j in keep:
                ids.append(span_tokens[i][j])
                masked.append(False)
            else:
                ids.append(model.mask_id)
                masked.append(True)
        span_slots[i] = tuple(range(first, len(slots)))
    ids.extend(contexts[-1])
    ids.extend(model.suffix_ids)
    return Canvas(
        ids=torch.tensor(ids, dtype=torch.long),
        slots=torch.tensor(slots, dtype=torch.long),
        slot_span=tuple(slot_span),
        masked=torch.tensor(masked, dtype=torch.bool),
        moved_space=tuple(moved),
        span_slots=tuple(span_slots),
    )


def _kept_slots(span: Span, original: list[int] | None, generator: torch.Generator | None) -> set[int]:
    """For an edit, which of the span's own tokens stay (the rest are re-masked)."""
    if original is None:
        return set()
    n = len(original)
    remask = max(1, round(span.strength * n))
    order = torch.randperm(n, generator=generator).tolist()
    return set(order[remask:])


def _keep_nearest(contexts: list[list[int]], budget: int) -> list[list[int]]:
    """Keep the ``budget`` context tokens nearest (in tokens) to any span.

    contexts[0] precedes the first span, contexts[-1] follows the last; the
    ones between touch a span on both sides."""
    total = sum(len(c) for c in contexts)
    if total <= budget:
        return contexts
    distances = []
    last = len(contexts) - 1
    for k, seg in enumerate(contexts):
        m = len(seg)
        j = torch.arange(m)
        if k == 0:
            d = m - j
        elif k == last:
            d = j + 1
        else:
            d = torch.minimum(j + 1, m - j)
        distances.append(d)
    flat = torch.cat(distances).to(torch.float64)
    # Ties go to the earlier token, deterministically.
    flat += torch.arange(flat.numel(), dtype=torch.float64) / (flat.numel() + 1)
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    if budget > 0:
        keep[torch.topk(flat, budget, largest=False).indices] = True
    out, offset = [], 0
    for seg in contexts:
        mask = keep[offset : offset + len(seg)].tolist()
        out.append([t for t, k in zip(seg, mask) if k])
        offset += len(seg)
    return out


def decode_span(model, token_ids: list[int], moved_space: bool, left: str, right: str) -> tuple[str, list[tuple[int, int]]]:
    """Decode one span's tokens as a whole; return its text and each token's
    character range in it (for per-token tints). ``left``/``right`` are the
    characters around the span in the original text ('' at the ends)."""
    tok = model.tokenizer
    text = tok.decode(token_ids, clean_up_tokenization_spaces=False)
    strip = 1 if moved_space and text.startswith(" ") else 0
    bounds = []
    previous = 0
    for k in range(1, len(token_ids) + 1):
        # Prefix decoding is exact for byte-level tokens once whole characters
        # are complete; clamp so partial characters never produce negative ranges.
        prefix = len(tok.decode(token_ids[:k], clean_up_tokenization_spaces=False)) if k < len(token_ids) else len(text)
        prefix = max(previous, min(prefix, len(text)))
        bounds.append((previous, prefix))
        previous = prefix
    text = text[strip:]
    bounds = [(max(0, a - strip), max(0, b - strip)) for a, b in bounds]
    if drops_spaces(tok):
        # Tokenisers that drop whitespace (WordPiece) decode words without the
        # space that joins them to their neighbours; supply it. A fill that
        # opens with a continuation piece ("##ing") attaches to its left.
        if text.startswith("##"):
            text = text[2:]
            bounds = [(max(0, a - 2), max(0, b - 2)) for a, b in bounds]
        elif text and left and left[-1].isalnum() and text[0].isalnum():
            text = " " + text
            bounds = [(a + 1, b + 1) for a, b in bounds]
        if text and right and right[0].isalnum() and text[-1].isalnum():
            text = text + " "
    return text, bounds


def assemble(model, request: InfillRequest, canvas: Canvas, slot_ids: list[int],
             confidences: list[float | None]) -> tuple[str, tuple[Span, ...], tuple[tuple[TokenPiece, ...], ...]]:
    """Replace each span by its decoded fill; outside text is copied verbatim."""
    text = request.text
    fills: dict[int, tuple[str, list[tuple[int, int]]]] = {}
    for i, span in enumerate(request.spans):
        ids = [slot_ids[s] for s in canvas.span_slots[i]]
        left = text[span.start - 1] if span.start > 0 else ""
        right = text[span.end] if span.end < len(text) else ""
        fills[i] = decode_span(model, ids, canvas.moved_space[i], left, right)
    order = sorted(range(len(request.spans)), key=lambda i: (request.spans[i].start, request.spans[i].end))
    parts: list[str] = []
    new_spans: list[Span | None] = [None] * len(request.spans)
    pieces: list[tuple[TokenPiece, ...]] = [()] * len(request.spans)
    cursor = 0
    length = 0
    for i in order:
        span = request.spans[i]
        outside = text[cursor : span.start]
        parts.append(outside)
        length += len(outside)
        fill, bounds = fills[i]
        new_spans[i] = Span(length, length + len(fill), length=len(canvas.span_slots[i]))
        pieces[i] = tuple(
            TokenPiece(length + a, length + b, confidences[s])
            for (a, b), s in zip(bounds, canvas.span_slots[i])
        )
        parts.append(fill)
        length += len(fill)
        cursor = span.end
    parts.append(text[cursor:])
    return "".join(parts), tuple(new_spans), tuple(pieces)
