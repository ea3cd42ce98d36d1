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
        accounting for any logit shift)."""
        ...

    def token_text(self, token_id: int) -> str:
        """The text of one token on its own, for the live view."""
        ...
