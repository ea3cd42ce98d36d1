"""The one class every model is typed against: token ids in, logits out.

Sampling lives in engine.sampler; a model only maps a canvas of ids to logits
at the positions asked for. That keeps families interchangeable and lets tests
drive the sampler with a deterministic fake (tests/support/fake.py).

``ModelAdapter`` declares a model's identity, its capabilities (with the
defaults of a model that has none: no batching, no context cache) and the
facts about its tokenizer's vocabulary that the sampler and canvas read; the
three adapters (engine.models.native, masked_lm, dit_adapter) and the test
fake subclass it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from . import vocab
from .families import Family

# The threshold sampler's tau for a family that declares none: Fast-dLLM's
# (Wu et al. 2025, arXiv:2505.22618, its generate_with_dual_cache default).
DEFAULT_THRESHOLD = 0.9


class ModelAdapter(ABC):
    """A loaded model behind one interface.

    Identity: ``name``, ``family``, ``path`` (folder or None), ``device``,
    ``dtype``, ``context_length`` (tokens, special tokens included), the
    ``tokenizer`` (a fast tokenizer), ``mask_id``, ``vocab_size`` (rows of the
    logits), ``special_ids`` (never generated inside a span), ``prefix_ids`` /
    ``suffix_ids`` (special tokens the model expects around a canvas) and
    ``vocab`` (engine.models.vocab.VocabFacts of the tokenizer, built once here).

    Capabilities, read by engine.sampler (class defaults; ``family``, a
    record of engine.models.families, sets them for a native family):

    - ``batches``: ``logits`` also takes ids [B, L], B canvases of one layout.
    - ``cache_modes``: the context caches it runs besides "none"
      (engine.models.kvcache); ``default_cache`` the one a request with
      ``cache=None`` gets; a model with a mode implements ``prefill`` and
      ``logits_cached``.
    - ``default_threshold``: the threshold sampler's tau for the family.
    - ``scores``: ``logits`` returns unnormalised log scores (SEDD).
    - ``logit_shift``: 1 when position i is predicted from the output at
      i - 1 (Dream); the adapter applies it, callers never do.
    - ``grows_canvas``: the model decides a span's length while denoising
      (DreamOn's expand and delete tokens, engine.dreamon); the adapter then
      has ``network``, ``expand_id`` and ``delete_id``, and engine.sampler runs an auto-length
      span through DreamOn's loop.
    """

    family: str = "unknown"
    batches: bool = False
    cache_modes: tuple[str, ...] = ()
    default_cache: str = "none"
    default_threshold: float = DEFAULT_THRESHOLD
    scores: bool = False
    logit_shift: int = 0
    grows_canvas: bool = False
    # The live view's text of the mask token (None: the tokenizer's own spelling).
    mask_text: str | None = None

    def __init__(self, name: str, tokenizer: Any, *, mask_id: int, vocab_size: int, context_length: int,
                 device: torch.device, dtype: torch.dtype, path: str | None = None,
                 special_ids: frozenset[int] | None = None,
                 frame: tuple[tuple[int, ...], tuple[int, ...]] | None = None, family: Family | None = None):
        if family is not None:  # a native family: its record declares what the adapter can do
            self.family, self.logit_shift, self.scores = family.name, family.logit_shift, family.scores
            self.batches, self.cache_modes = family.batches, family.cache_modes
            self.default_cache, self.grows_canvas = family.default_cache, family.grows_canvas
        self.name = name
        self.path = path
        self.tokenizer = tokenizer
        self.mask_id = int(mask_id)
        self.vocab_size = int(vocab_size)
        self.context_length = int(context_length)
        self.device = device
        self.dtype = dtype
        if special_ids is None:
            special_ids = frozenset(int(i) for i in tokenizer.all_special_ids if i is not None)
        self.special_ids = frozenset(special_ids)
        self.prefix_ids, self.suffix_ids = frame if frame is not None else special_frame(tokenizer)
        self._wordpiece = decoder_kind(tokenizer) == "WordPiece"
        self._texts: dict[int, str] = {}
        # at load, off the GUI thread, not at the first infill
        self.vocab: vocab.VocabFacts | None = vocab.facts(tokenizer, self.vocab_size) if tokenizer is not None else None

    @abstractmethod
    def logits(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """ids: LongTensor [L] on self.device; positions: LongTensor [P].

        Returns float32 logits [P, vocab_size] for those positions (the logit
        shift already applied). A model whose ``batches`` is True also takes
        ids [B, L] and returns [B, P, vocab_size]."""

    def prefill(self, ids: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """A full forward pass over ids [B, L] that also keeps every layer's keys
        and values. Returns (float32 logits [B, P, vocab_size] at positions
        [P], the cache). Only for a model with ``cache_modes``."""
        raise NotImplementedError(f"{type(self).__name__} runs no context cache")

    def logits_cached(self, ids: torch.Tensor, block: torch.Tensor, positions: torch.Tensor,
                      cache: Any) -> torch.Tensor:
        """Run only the tokens at canvas positions ``block`` [K] (their true
        rotary positions; need not be contiguous), attending to the cached
        keys/values of every other position; the block's fresh keys/values
        replace their cached ones. Returns float32 logits [B, P, vocab_size]
        at ``positions`` [P] (a subset of ``block``)."""
        raise NotImplementedError(f"{type(self).__name__} runs no context cache")

    def token_text(self, token_id: int) -> str:
        """The text of one token on its own, for the live view (cached):
        WordPiece pieces lose their ``##`` or gain the space that separates words."""
        text = self._texts.get(token_id)
        if text is None:
            if token_id == self.mask_id and self.mask_text is not None:
                text = self.mask_text
            else:
                text = self.tokenizer.decode([token_id], clean_up_tokenization_spaces=False)
                if self._wordpiece:
                    text = text[2:] if text.startswith("##") else " " + text
            self._texts[token_id] = text
        return text

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.family} {self.name} on {self.device} {self.dtype}>"


def special_frame(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The special tokens the tokenizer wraps around a text (e.g. [CLS] ... [SEP]),
    found by encoding a probe with and without them."""
    bare = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a", add_special_tokens=True)
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return tuple(full[:i]), tuple(full[i + len(bare) :])
    return (), ()


def decoder_kind(tokenizer: Any) -> str:
    """The class name of the tokenizer's decoder ("WordPiece", "ByteLevel", ...), or ""."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    return type(decoder).__name__ if decoder is not None else ""
