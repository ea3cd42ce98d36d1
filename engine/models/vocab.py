"""What a tokenizer's ids mean as text, computed once per tokenizer.

Every model family uses this one module to decide

- which output rows may be generated (``generable_mask``): only ids that
  decode to text. Rows past ``len(tokenizer)`` (padded vocabularies), named
  special tokens, added tokens marked special, and reserved, unused or
  chat-marker slots (``[unused7]``, ``<|reserved_3|>``, ``<|im_start|>``) never
  land in a document;
- whether a tokenizer fits a model (``check_tokenizer_fits``), refused at load
  with a ModelLoadError rather than an IndexError at the first forward pass;
- how user text becomes ids (``text_encoders``): a literal ``[MASK]``,
  ``<mask>`` or ``</s>`` typed in the document is ordinary characters, never
  the control token (the Rust tokenizer's ``encode_special_tokens``);
- the bytes of every token (byte-level BPE and byte-fallback SentencePiece
  split one character over several tokens), so the sampler can keep fills
  valid UTF-8 (engine.utf8) and the canvas can decode fills exactly.

Everything is computed from the tokenizer's own vocabulary and pipeline
configuration (tokenizers' JSON), not from guesses about the text.
"""
from __future__ import annotations

import json
import re
import threading
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from ..errors import ModelLoadError
from .. import utf8

# Added or reserved slots that stand for no text: BERT's [unused7], Gemma's
# <unused7>, T5's <extra_id_7>, Llama 3's <|reserved_special_token_7|>, and
# every <|...|> chat/control marker (<|im_start|>, <|endoftext|>, <|padding|>).
_CONTROL = re.compile(
    r"^(<\|[^|<>]*\|>|\[unused\d+\]|<unused\d+>|<extra_id_\d+>|<\|?reserved[^<>]*>|\[reserved[^\[\]]*\])$"
)
_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_LINE_BREAKS = frozenset("\n\r\v\f\x85\u2028\u2029")


@lru_cache(maxsize=1)
def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte <-> printable character map (ByteLevel pre-tokenizer), inverted."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars = {b: b for b in keep}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


def _decoder_types(backend: Any) -> list[str]:
    decoder = getattr(backend, "decoder", None)
    if decoder is None:
        return []
    state = json.loads(decoder.__getstate__())
    items = state.get("decoders", [state]) if state.get("type") == "Sequence" else [state]
    return [d.get("type", "") for d in items]


def _mode(backend: Any) -> str:
    """'bytes' for byte-level BPE, 'fallback' for SentencePiece with byte
    fallback (<0xE6>), 'wordpiece', or 'text' (every token is whole text)."""
    kinds = _decoder_types(backend)
    if "ByteLevel" in kinds:
        return "bytes"
    if "ByteFallback" in kinds:
        return "fallback"
    if "WordPiece" in kinds:
        return "wordpiece"
    return "text"


def _token_bytes(token: str, mode: str, alphabet: dict[str, int]) -> bytes | None:
    if mode == "bytes":
        try:
            return bytes(alphabet[c] for c in token)
        except KeyError:  # an added token written as plain text
            return token.encode("utf-8")
    if mode == "fallback":
        m = _BYTE_TOKEN.match(token)
        if m:
            return bytes([int(m.group(1), 16)])
    if mode == "wordpiece" and token.startswith("##"):
        token = token[2:]
    return token.replace("\u2581", " ").encode("utf-8")


@lru_cache(maxsize=1)
def _byte_level_table() -> dict[int, str]:
    """str.translate table: each byte-level character to the latin-1 character of
    its byte, and every other character below U+0144 (the alphabet's range) to
    U+FFFF, which latin-1 cannot encode; characters above pass unchanged and
    cannot be encoded either. So ``token.translate(t).encode("latin-1")`` is the
    token's bytes, or fails exactly where _token_bytes falls back to UTF-8."""
    table = {c: "\uffff" for c in range(0x144)}
    table.update({ord(ch): chr(b) for ch, b in _byte_level_alphabet().items()})
    return table


def _all_token_bytes(tokens: list[str | None], mode: str) -> list[bytes | None]:
    """_token_bytes of every token (None stays None), with the per-character work
    done by str.translate and the codecs: a 150k vocabulary in tens of ms."""
    if mode == "bytes":
        table = _byte_level_table()
        out: list[bytes | None] = []
        for token in tokens:
            if token is None:
                out.append(None)
                continue
            try:
                out.append(token.translate(table).encode("latin-1"))
            except UnicodeEncodeError:  # an added token written as plain text
                out.append(token.encode("utf-8"))
        return out
    alphabet = _byte_level_alphabet()
    return [None if t is None else _token_bytes(t, mode, alphabet) for t in tokens]


@dataclass(frozen=True)
class VocabProfile:
    """Per-id facts for one tokenizer and a model with ``n_rows`` output rows.

    Tensors are on the CPU. ``blocked_ids`` (LongTensor [b]) are the rows never
    generated; ``newline_ids`` (LongTensor) the generable ids whose text holds a
    line break; ``lead_space`` (BoolTensor [n_rows]) the ids whose text starts
    with whitespace. ``token_bytes[i]`` is id i's bytes (byte modes only, else
    None): joined, they are the decoded text. ``utf8`` is None when every
    generable token is whole text."""

    n_rows: int
    mode: str
    generable: torch.Tensor
    blocked_ids: torch.Tensor
    newline_ids: torch.Tensor
    lead_space: torch.Tensor
    token_bytes: tuple[bytes | None, ...] | None
    utf8: utf8.Table | None


def _special_like(tokenizer: Any) -> set[int]:
    """Named specials, added tokens marked special, and control-looking added tokens."""
    out = {int(i) for i in getattr(tokenizer, "all_special_ids", []) if i is not None}
    for i, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False) or _CONTROL.match(str(added)):
            out.add(int(i))
    return out


def profile(tokenizer: Any, n_rows: int) -> VocabProfile:
    """The VocabProfile of ``tokenizer`` for a model with ``n_rows`` output
    rows; computed once per tokenizer (about 0.3 s for a 150k vocabulary,
    then free)."""
    cache = _memo(tokenizer).setdefault("profiles", {})
    if n_rows in cache:
        return cache[n_rows]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    mode = _mode(backend) if backend is not None else "text"
    tokens: list[str | None] = [None] * n_rows
    for token, i in tokenizer.get_vocab().items():
        if 0 <= i < n_rows:
            tokens[i] = token
    for i in _special_like(tokenizer):
        if 0 <= i < n_rows:
            tokens[i] = None
    by_id = _all_token_bytes([None if t is None or _CONTROL.match(t) else t for t in tokens], mode)
    generable: list[int] = []
    lead_space: list[int] = []
    newline: list[int] = []
    partial: dict[int, bytes] = {}
    split = mode in ("bytes", "fallback")
    for i, raw in enumerate(by_id):
        if not raw:  # no text, or decodes to nothing
            by_id[i] = None
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if not split or b"\n" in raw or b"\r" in raw:
                by_id[i] = None
                continue
            partial[i] = raw
            generable.append(i)
            continue
        generable.append(i)
        if text[0].isspace():
            lead_space.append(i)
        if not _LINE_BREAKS.isdisjoint(text):
            newline.append(i)
    mask = torch.zeros(n_rows, dtype=torch.bool)
    mask[torch.tensor(generable, dtype=torch.long)] = True
    table = None
    if partial:
        table = utf8.Table.build(partial)
        for i in table.dead:  # bytes no valid text can hold (0xFF, an orphan 0x80 run...)
            mask[i] = False
            by_id[i] = None
        if table.ids.numel() == 0:
            table = None
    lead = torch.zeros(n_rows, dtype=torch.bool)
    lead[torch.tensor(lead_space, dtype=torch.long)] = True
    result = VocabProfile(
        n_rows=n_rows, mode=mode, generable=mask,
        blocked_ids=torch.nonzero(~mask).squeeze(1),
        newline_ids=torch.tensor(newline, dtype=torch.long),
        lead_space=lead,
        token_bytes=tuple(by_id) if split else None,
        utf8=table,
    )
    cache[n_rows] = result
    return result


def generable_mask(tokenizer: Any, n_rows: int) -> torch.Tensor:
    """BoolTensor [n_rows]: True for the ids a model may generate into text."""
    return profile(tokenizer, n_rows).generable


def text_ids(tokenizer: Any) -> set[int]:
    """Every id that encoding user text can produce: the base vocabulary and
    added tokens that are ordinary text (specials are encoded as characters)."""
    blocked = _special_like(tokenizer)
    ids = set(tokenizer.get_vocab().values()) - blocked
    return ids


def check_tokenizer_fits(name: str, tokenizer: Any, n_rows: int, mask_id: int,
                         frame_ids: tuple[int, ...] = ()) -> None:
    """Raise ModelLoadError unless the mask id, the frame tokens ([CLS] ...
    [SEP]) and every text token are rows of the model's output (``n_rows``)."""
    if mask_id is None or not (0 <= int(mask_id) < n_rows):
        raise ModelLoadError(
            f"{name}: the tokenizer's mask token (id {mask_id}) is not one of the model's {n_rows} tokens; "
            "the tokenizer does not belong to this model"
        )
    outside = sorted(i for i in set(frame_ids) | text_ids(tokenizer) if i >= n_rows)
    if outside:
        raise ModelLoadError(
            f"{name}: the tokenizer has {len(outside)} token ids the model cannot read (from id {outside[0]}; "
            f"the model has {n_rows} rows); the tokenizer does not belong to this model"
        )
    if not (tokenizer.get_vocab() and _encoders(tokenizer)[1].encode("a b", add_special_tokens=False).ids):
        raise ModelLoadError(f"{name}: the tokenizer turns text into no tokens, so it cannot be used")


# ---------------------------------------------------------------- encoding

def _edit_pipeline(state: dict, inner: bool) -> dict:
    """Mark every non-text added token special (so encode_special_tokens turns
    it into characters); for ``inner``, also stop the pipeline from adding a
    word-start space: text inside a document continues what is before it."""
    for added in state.get("added_tokens", []):
        if added.get("special") or _CONTROL.match(added.get("content", "")):
            added["special"] = True
    if not inner:
        return state

    def fix(node):
        if isinstance(node, dict):
            kind = node.get("type")
            if kind in ("Metaspace",):
                if "prepend_scheme" in node:
                    node["prepend_scheme"] = "never"
                if "add_prefix_space" in node:
                    node["add_prefix_space"] = False
            if kind == "ByteLevel" and "add_prefix_space" in node:
                node["add_prefix_space"] = False
            for key in ("normalizers", "pretokenizers", "decoders"):
                if isinstance(node.get(key), list):
                    node[key] = [fix(n) for n in node[key] if not _adds_lead_space(n)]
        return node

    for key in ("normalizer", "pre_tokenizer", "decoder"):
        node = state.get(key)
        if node is not None and _adds_lead_space(node):
            state[key] = None
        else:
            state[key] = fix(node)
    return state


def _adds_lead_space(node: Any) -> bool:
    """A pipeline step that only adds (Prepend) or removes (Strip) a word-start space."""
    if not isinstance(node, dict):
        return False
    if node.get("type") == "Prepend":
        return True
    return node.get("type") == "Strip" and node.get("content") == " " and node.get("stop", 0) == 0


def _encoders(tokenizer: Any):
    """(at_start, inner): Rust tokenizers for text at the start of a document
    and for text that continues other text. Both encode special-token strings
    as characters. Computed once per tokenizer."""
    cached = _memo(tokenizer).get("encoders")
    if cached is not None:
        return cached
    backend = tokenizer.backend_tokenizer
    cached = _encoders_sharing_model(backend) or _encoders_from_json(backend)
    for t in cached:
        t.encode_special_tokens = True
        t.no_truncation()
        t.no_padding()
    _memo(tokenizer)["encoders"] = cached
    return cached


def _encoders_from_json(backend: Any):
    """_encoders by a round trip of the whole tokenizer through JSON (seconds for
    a 150k vocabulary: its merges and vocabulary are copied twice)."""
    from tokenizers import Tokenizer

    base = json.loads(backend.to_str())
    at_start = Tokenizer.from_str(json.dumps(_edit_pipeline(json.loads(json.dumps(base)), inner=False)))
    inner = Tokenizer.from_str(json.dumps(_edit_pipeline(base, inner=True)))
    return at_start, inner


_PIPELINE = ("normalizer", "pre_tokenizer", "decoder")


def _encoders_sharing_model(backend: Any):
    """_encoders without copying the vocabulary: each encoder shares the
    backend's model (immutable once loaded) and gets its own pipeline and added
    tokens, edited as JSON (a few hundred bytes) exactly as _encoders_from_json
    edits them. Added tokens are added in id order as tokenizers' own
    deserialisation does; None when an id comes out different (then the JSON
    round trip is used)."""
    from tokenizers import AddedToken, Tokenizer

    try:
        pipeline = {key: _component_state(getattr(backend, key)) for key in _PIPELINE}
        added = sorted(backend.get_added_tokens_decoder().items())
    except (AttributeError, TypeError, ValueError):
        return None
    states = [{"id": i, "content": t.content, "single_word": t.single_word, "lstrip": t.lstrip,
               "rstrip": t.rstrip, "normalized": t.normalized, "special": t.special} for i, t in added]
    out = []
    for inner in (False, True):
        state = _edit_pipeline({"added_tokens": json.loads(json.dumps(states)),
                                **json.loads(json.dumps(pipeline))}, inner=inner)
        shell = Tokenizer.from_str(json.dumps({
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            **{key: state[key] for key in _PIPELINE}, "post_processor": None,
            "model": {"type": "WordLevel", "vocab": {}, "unk_token": "[UNK]"}}))
        tok = Tokenizer(backend.model)
        for key in _PIPELINE:
            if state[key] is not None:
                setattr(tok, key, getattr(shell, key))
        if backend.post_processor is not None:
            tok.post_processor = backend.post_processor
        for entry in state["added_tokens"]:
            token = AddedToken(entry["content"], single_word=entry["single_word"], lstrip=entry["lstrip"],
                               rstrip=entry["rstrip"], normalized=entry["normalized"], special=entry["special"])
            (tok.add_special_tokens if entry["special"] else tok.add_tokens)([token])
            if tok.token_to_id(entry["content"]) != entry["id"]:
                return None
        out.append(tok)
    return tuple(out)


def _component_state(component: Any) -> Any:
    return None if component is None else json.loads(component.__getstate__())


def encode(tokenizer: Any, text: str, at_start: bool = False) -> list[int]:
    """Token ids of ``text`` as plain text (no special tokens added, none
    recognised). ``at_start``: the text opens the document (SentencePiece
    prepends its word-start marker there, and only there)."""
    return encode_words(tokenizer, text, at_start)[0]


def encode_words(tokenizer: Any, text: str, at_start: bool = False) -> tuple[list[int], list[int]]:
    """(ids, word index of each id) of ``text`` as plain text; the words are
    the tokenizer's pre-tokens, so a word never shares a token with another
    and a multi-token character never spans two words."""
    if not text:
        return [], []
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        ids = list(tokenizer.encode(text, add_special_tokens=False))
        return ids, list(range(len(ids)))
    enc = _encoders(tokenizer)[0 if at_start else 1].encode(text, add_special_tokens=False)
    words = [w if w is not None else -1 for w in enc.word_ids]
    return list(enc.ids), words


def decode(tokenizer: Any, ids: list[int]) -> str:
    """Text of ids inside a document (no word-start space removed)."""
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        return tokenizer.decode(ids, clean_up_tokenization_spaces=False)
    return _encoders(tokenizer)[1].decode(ids, skip_special_tokens=False)


def prepends_space(tokenizer: Any) -> bool:
    """True when the tokenizer marks the first word of a document with a
    word-start space the text does not have (SentencePiece's ▁)."""
    memo = _memo(tokenizer)
    if "prepends" not in memo:
        memo["prepends"] = decode(tokenizer, encode(tokenizer, "a", at_start=True)).startswith(" ")
    return memo["prepends"]


def moves_space(tokenizer: Any) -> bool:
    """True when a word's leading space costs no token of its own (byte-level
    BPE, SentencePiece, and WordPiece, which ignores spaces): then the space
    before a span is best tokenised with the span. Probed on common words, since
    a rare one may be split either way."""
    memo = _memo(tokenizer)
    if "moves_space" not in memo:
        memo["moves_space"] = any(len(encode(tokenizer, " " + word)) == len(encode(tokenizer, word))
                                  for word in ("the", "a", "and", "of", "to", "in"))
    return memo["moves_space"]


@dataclass(frozen=True)
class VocabFacts:
    """What the sampler and the canvas read of one tokenizer with a model of
    ``profile.n_rows`` output rows, built once when the model loads (off the
    GUI thread) and held by its adapter (engine.models.base.ModelAdapter.vocab).

    ``profile``: the per-id VocabProfile; ``prepends_space``: the tokenizer
    marks a document's first word with a space the text lacks (SentencePiece);
    ``moves_space``: a word's leading space costs no token of its own."""

    profile: VocabProfile
    prepends_space: bool
    moves_space: bool


def facts(tokenizer: Any, n_rows: int) -> VocabFacts:
    """The VocabFacts of ``tokenizer`` for a model of ``n_rows`` output rows
    (the encoders of ``encode`` are built on the way)."""
    return VocabFacts(profile(tokenizer, n_rows), prepends_space(tokenizer), moves_space(tokenizer))


# Per tokenizer, what the functions above computed: kept beside the tokenizer (which may be the
# caller's own object, shared with other code) rather than written into it, and gone with it.
_MEMOS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_MEMOS_LOCK = threading.Lock()


def _memo(tokenizer: Any) -> dict[str, Any]:
    with _MEMOS_LOCK:
        memo = _MEMOS.get(tokenizer)
        if memo is None:
            memo = _MEMOS[tokenizer] = {}
        return memo


def forget(tokenizer: Any) -> None:
    """Drop what was computed for ``tokenizer`` (tests measure a fresh computation)."""
    with _MEMOS_LOCK:
        _MEMOS.pop(tokenizer, None)
