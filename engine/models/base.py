"""The one protocol every model family implements: token ids in, logits out.

Sampling lives in engine.sampler; a model only maps a canvas of ids to logits
at the positions asked for. That keeps families interchangeable and lets tests
drive the sampler with a deterministic fake.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class DiffusionModel(Protocol):
    name: str
    family: str
    tokenizer: Any  # a transformers fast tokenizer
    mask_id: int
    vocab_size: int
    context_length: int  # tokens, special tokens included
    special_ids: frozenset[int]  # never generated inside a span
    prefix_ids: tuple[int, ...]  # special tokens the model expects around a canvas
    suffix_ids: tuple[int, ...]
    logit_shift: int  # 1 when position i is predicted from the output at i-1 (Dream)
    device: torch.device
    dtype: torch.dtype

    def logits(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """ids: LongTensor [L] on self.device; positions: LongTensor [P].

        Returns float32 logits [P, vocab] for those positions (already
        accounting for any logit shift). A model whose ``batches`` is True
        also takes ids [B, L] (B canvases of one layout, e.g. the candidates
        of a request) and returns [B, P, vocab]."""
        ...

    def token_text(self, token_id: int) -> str:
        """The text of one token on its own, for the live view."""
        ...


@runtime_checkable
class CachedModel(Protocol):
    """Optional: a model that runs with a context cache (engine.models.kvcache).

    ``cache_modes`` lists the caches it has besides "none"; ``default_cache``
    is the one a request with ``cache=None`` gets; ``default_threshold`` the
    threshold sampler's tau for the family.
    """

    cache_modes: tuple[str, ...]
    default_cache: str
    default_threshold: float

    def prefill(self, ids: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """A full forward pass over ids [B, L] that also keeps every layer's keys
        and values. Returns (float32 logits [B, P, vocab] at positions [P],
        the cache)."""
        ...

    def logits_cached(self, ids: torch.Tensor, block: torch.Tensor, positions: torch.Tensor,
                      cache: Any) -> torch.Tensor:
        """Run only the tokens at canvas positions ``block`` [K] (their true
        rotary positions; need not be contiguous) through the network,
        attending to the cached keys/values of every other position; the
        block's fresh keys/values replace their cached ones. Returns float32
        logits [B, P, vocab] at ``positions`` [P] (a subset of ``block``)."""
        ...
