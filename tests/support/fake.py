"""A deterministic fake DiffusionModel: real tokenizer, hand-made logits.

Row for canvas position p prefers token ``preferred(p)`` with a margin that
grows with p, so the most confident slot is always the rightmost one still
masked: tests can predict the exact commit order of every sampler.
"""
from __future__ import annotations

import threading

import torch


class FakeModel:
    family = "fake"
    logit_shift = 0

    def __init__(self, tokenizer, context_length: int = 256, on_forward=None):
        self.name = "fake"
        self.tokenizer = tokenizer
        self.mask_id = tokenizer.mask_token_id
        self.vocab_size = len(tokenizer)
        self.context_length = context_length
        self.special_ids = frozenset(tokenizer.all_special_ids)
        self.prefix_ids = ()
        self.suffix_ids = ()
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.calls: list[torch.Tensor] = []
        self.on_forward = on_forward
        self.lock = threading.Lock()

    def preferred(self, position: int) -> int:
        # Skip the specials at the start of the vocabulary.
        return 10 + (position * 7) % (self.vocab_size - 10)

    def logits(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        self.calls.append(ids.clone())
        if self.on_forward is not None:
            self.on_forward(len(self.calls))
        out = torch.zeros(positions.numel(), self.vocab_size)
        for row, p in enumerate(positions.tolist()):
            out[row, self.preferred(p)] = 1.0 + 0.25 * p
            # The mask token would win if the sampler did not suppress it.
            out[row, self.mask_id] = 100.0
        return out

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])
