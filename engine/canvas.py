"""Text and spans -> a canvas of token ids, and filled slots -> text.

The text between spans is tokenised as separate segments and never decoded
again: only the spans are decoded, so everything outside them comes back byte
for byte. Text is always tokenised as text: a literal ``[MASK]`` or ``</s>``
in the document is characters, not a control token (engine.models.vocab).

Word boundaries: each segment is tokenised the way the model saw such text in
training. Byte-level BPE and SentencePiece fold a word's leading space into
the word's token (" heaven"), so

- when the character just before a span is a space, that space is tokenised
  with the span (its first masked token may carry it), and taken back off the
  decoded fill, since the original space stays outside the span;
- an insertion at the start of a word (after whitespace or at the start of the
  text, before a letter or digit) tokenises the word after it with its
  leading space, as it would be after any other word, and the fill ends with
  that separating space, so the fill never glues onto the word;
- only the text that opens the document is tokenised as a document start
  (SentencePiece's word-start marker ▁ there and nowhere else, taken back off
  a fill); a span at the start of the text or of a line may not begin with a
  space the text did not have there.

WordPiece forgets whitespace; its fills are joined to their neighbours with
spaces by decode_span.

Long documents: when the canvas exceeds the model's context, the masked slots
are kept whole and the context tokens nearest to any span (in tokens) fill the
rest of the context; farther text is left out of the model's view, not out
of the result. If the masked slots alone do not fit, ContextTooLong is raised.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass

import torch

from .errors import ContextTooLong, InputError
from .models import vocab
from .types import InfillRequest, Span, TokenPiece

# A token is rarely longer than this many characters; context beyond
# context_length * _CHARS_PER_TOKEN characters from a span cannot be kept, so it
# is cut before tokenising (a 5 MB document tokenises in milliseconds, not seconds).
_CHARS_PER_TOKEN = 32


_LINE_BREAKS = "\n\r\v\f\x85\u2028\u2029"


@dataclass
class Canvas:
    ids: torch.Tensor  # LongTensor [L] on CPU, masks in the masked slots
    slots: torch.Tensor  # LongTensor [n]: canvas position of each span slot, document order
    slot_span: tuple[int, ...]  # request span index of each slot
    masked: torch.Tensor  # BoolTensor [n]: slot starts masked (False: kept by an edit)
    lead: tuple[bool, ...]  # per request span: its fill's first space is not in the text (moved or ▁)
    trail: tuple[str, ...]  # per request span: separator its fill ends with ('' or ' ')
    span_slots: tuple[tuple[int, ...], ...]  # per request span: its slot indices
    no_newline: torch.Tensor  # BoolTensor [n]: slot may not hold a line break
    no_lead_space: torch.Tensor  # BoolTensor [n]: slot may not start with whitespace


def view_tokens(model, request) -> int:
    """The most tokens the model sees for ``request``: its context, or less when
    ``request.context_tokens`` asks for a smaller view (special tokens included)."""
    if request.context_tokens is None:
        return model.context_length
    return min(model.context_length, request.context_tokens)


def moves_space(tokenizer) -> bool:
    """True when a word's leading space costs no token of its own (byte-level
    BPE, SentencePiece, and WordPiece, which ignores spaces): then the space
    before a span is best tokenised with the span (engine.models.vocab.moves_space;
    a loaded model holds the answer in ``model.vocab.moves_space``)."""
    return vocab.moves_space(tokenizer)


def drops_spaces(tokenizer) -> bool:
    """WordPiece tokenisers forget whitespace; their decoder joins words itself."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return type(getattr(backend, "decoder", None)).__name__ == "WordPiece"


def _span_source(text: str, start: int, end: int, move: bool) -> tuple[str, bool]:
    """The text a span is tokenised as, and whether its leading space moved in."""
    moved = move and start > 0 and text[start - 1] == " "
    return ((" " if moved else "") + text[start:end]), moved


def _at_word_start(text: str, span: Span) -> bool:
    """An insertion between whitespace (or the text's start) and a word."""
    return (span.is_insertion and span.end < len(text) and text[span.end].isalnum()
            and (span.start == 0 or text[span.start - 1].isspace()))


def token_count(model, text: str, start: int, end: int) -> int:
    """How many tokens the covered text [start, end) has under this model, as
    the canvas counts them: the default length of a mask over that text."""
    if not (0 <= start <= end <= len(text)):
        raise InputError(f"span [{start}, {end}) is outside the text ({len(text)} characters)")
    source, moved = _span_source(text, start, end, model.vocab.moves_space)
    if not source.strip() and start == end:
        return 0
    at_start = (start - 1 if moved else start) == 0
    return max(1, len(vocab.encode(model.tokenizer, source, at_start)))


def build(model, request: InfillRequest, generator: torch.Generator | None = None) -> Canvas:
    tok = model.tokenizer
    text = request.text
    move = model.vocab.moves_space
    wordpiece = drops_spaces(tok)
    order = sorted(range(len(request.spans)), key=lambda i: (request.spans[i].start, request.spans[i].end))
    starts = Counter(s.start for s in request.spans)
    view = view_tokens(model, request)
    reach = view * _CHARS_PER_TOKEN

    contexts: list[list[int]] = []  # tokens of the text before each span, then the tail
    span_tokens: list[list[int] | None] = [None] * len(request.spans)  # original ids (edits)
    span_words: list[list[int] | None] = [None] * len(request.spans)
    lengths = [0] * len(request.spans)
    lead = [False] * len(request.spans)
    trail = [""] * len(request.spans)
    bare_start = [False] * len(request.spans)  # first token may not bring a space
    cursor = 0
    carry = ""  # separator moved into the next segment
    for k, i in enumerate(order):
        span = request.spans[i]
        source, moved = _span_source(text, span.start, span.end, move)
        left_end = span.start - 1 if moved else span.start
        segment = text[cursor:left_end]
        segment_at_start = k == 0 and cursor == 0
        if k == 0 and len(segment) > reach:
            segment, segment_at_start = segment[-reach:], False
        elif len(segment) > 2 * reach:
            segment = segment[:reach] + segment[-reach:]
        contexts.append(vocab.encode(tok, carry + segment, segment_at_start) if (carry or segment) else [])
        source_at_start = k == 0 and left_end == 0
        prepended = source_at_start and not source.startswith(" ") and model.vocab.prepends_space
        lead[i] = moved or prepended
        if not wordpiece and not lead[i] and not text[span.start:span.end][:1].isspace():
            bare_start[i] = span.start == 0 or text[span.start - 1] in _LINE_BREAKS
        carry = ""
        if not wordpiece and move and _at_word_start(text, span) and starts[span.end] == 1:
            trail[i] = carry = " "
        # The covered text's own tokens matter only for its default length and for edits.
        need = span.length is None or span.strength < 1.0
        original, words = vocab.encode_words(tok, source, source_at_start) if need else ([], [])
        if span.strength < 1.0:
            if not original:
                raise InputError(f"span [{span.start}, {span.end}) has no tokens to edit")
            if span.length is not None and span.length != len(original):
                raise InputError(
                    f"an edit (strength < 1) keeps the span's {len(original)} tokens; "
                    f"length {span.length} was given"
                )
            span_tokens[i], span_words[i] = original, words
        lengths[i] = span.length if span.length is not None else max(1, len(original))
        cursor = span.end
    contexts.append(vocab.encode(tok, carry + text[cursor : cursor + reach]) if (carry or cursor < len(text)) else [])

    masked_total = sum(lengths)
    frame = len(model.prefix_ids) + len(model.suffix_ids)
    budget = view - frame - masked_total
    if budget < 0:
        need = f"the masked spans need {masked_total} token{'s' if masked_total != 1 else ''}"
        if view < model.context_length and masked_total <= model.context_length - frame:
            raise ContextTooLong(
                f"{need} but context_tokens {view} leaves room for {max(0, view - frame)}"
                + (f" ({model.name} adds {frame} special tokens)" if frame else "")
                + f"; raise context_tokens to at least {masked_total + frame} or mask less text")
        taken = f", {frame} of them its special tokens" if frame else ""
        raise ContextTooLong(
            f"{need} but {model.name} holds {model.context_length} tokens{taken}; mask less text "
            "or use a model with a longer context"
        )
    contexts = _keep_nearest(contexts, budget)

    ids: list[int] = list(model.prefix_ids)
    slots: list[int] = []
    slot_span: list[int] = []
    masked: list[bool] = []
    no_newline: list[bool] = []
    no_lead_space: list[bool] = []
    span_slots: list[tuple[int, ...]] = [()] * len(request.spans)
    for k, i in enumerate(order):
        ids.extend(contexts[k])
        span = request.spans[i]
        keep = _kept_slots(span, span_tokens[i], span_words[i], generator)
        allow_nl = request.allow_newlines
        if allow_nl is None:
            allow_nl = any(c in _LINE_BREAKS for c in text[span.start:span.end])
        first = len(slots)
        for j in range(lengths[i]):
            slots.append(len(ids))
            slot_span.append(i)
            no_newline.append(not allow_nl)
            no_lead_space.append(j == 0 and bare_start[i])
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
        lead=tuple(lead),
        trail=tuple(trail),
        span_slots=tuple(span_slots),
        no_newline=torch.tensor(no_newline, dtype=torch.bool),
        no_lead_space=torch.tensor(no_lead_space, dtype=torch.bool),
    )


def _kept_slots(span: Span, original: list[int] | None, words: list[int] | None,
                generator: torch.Generator | None) -> set[int]:
    """For an edit, which of the span's own tokens stay. Whole words (the
    tokenizer's pre-tokens) are re-masked, in a random order, until at least
    ``strength`` of the tokens are masked: never a piece of a word, hence never
    a piece of a character (pre-tokenizers split on character boundaries)."""
    if original is None:
        return set()
    n = len(original)
    groups: dict[int, list[int]] = {}
    for j, w in enumerate(words):
        groups.setdefault(w if w >= 0 else -1 - j, []).append(j)
    units = list(groups.values())
    want = max(1, round(span.strength * n))
    masked: set[int] = set()
    for u in torch.randperm(len(units), generator=generator).tolist():
        if len(masked) >= want:
            break
        masked.update(units[u])
    return set(range(n)) - masked


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


def decode_span(model, token_ids: list[int], lead: bool, left: str, right: str,
                trail: str = "") -> tuple[str, list[tuple[int, int]]]:
    """Decode one span's tokens as a whole; return its text and each token's
    character range in it (for per-token tints). ``lead``: a leading space of
    the fill is not the text's (see Canvas.lead); ``trail``: separator to end
    the fill with. ``left``/``right`` are the characters around the span in
    the original text ('' at the ends)."""
    tok = model.tokenizer
    table = model.vocab.profile.token_bytes
    pieces = [table[t] if (table is not None and 0 <= t < len(table)) else None for t in token_ids]
    if table is not None and all(p is not None for p in pieces):
        text, bounds = _decode_bytes(pieces)
    else:
        text, bounds = _decode_tokens(tok, token_ids)
    strip = 1 if lead and text.startswith(" ") else 0
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
    return text + trail, bounds


def _decode_bytes(pieces: list[bytes]) -> tuple[str, list[tuple[int, int]]]:
    """Join token bytes and decode once; a token's range runs between the
    characters that start inside it (a token holding only the tail of a
    character gets an empty range). The sampler's UTF-8 guard makes the bytes
    valid; "replace" only keeps a foreign kept token from raising."""
    data = b"".join(pieces)
    text = data.decode("utf-8", errors="replace")
    if len(text.encode("utf-8")) != len(data):  # replacement chars: no exact byte map
        starts = None
    else:
        starts = [i for i, b in enumerate(data) if b & 0xC0 != 0x80]
    bounds, offset = [], 0
    for k, piece in enumerate(pieces):
        end = offset + len(piece)
        if starts is None:
            bounds.append((0, len(text)) if k == len(pieces) - 1 else (0, 0))
        else:
            bounds.append((bisect_left(starts, offset), bisect_left(starts, end)))
        offset = end
    return text, bounds


def _decode_tokens(tok, token_ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    text = vocab.decode(tok, token_ids) if not drops_spaces(tok) else tok.decode(
        token_ids, clean_up_tokenization_spaces=False)
    bounds = []
    previous = 0
    for k in range(1, len(token_ids) + 1):
        if k < len(token_ids):
            prefix = token_ids[:k]
            part = vocab.decode(tok, prefix) if not drops_spaces(tok) else tok.decode(
                prefix, clean_up_tokenization_spaces=False)
            end = len(part)
        else:
            end = len(text)
        end = max(previous, min(end, len(text)))
        bounds.append((previous, end))
        previous = end
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
        fills[i] = decode_span(model, ids, canvas.lead[i], left, right, canvas.trail[i])
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
