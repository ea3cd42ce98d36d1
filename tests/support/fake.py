"""A deterministic fake ModelAdapter: real tokenizer, hand-made logits.

Row for canvas position p prefers token ``preferred(p)`` with a margin that
grows with p, so the most confident slot is always the rightmost one still
masked: tests can predict the exact commit order of every sampler.
"""
from __future__ import annotations

import threading

import torch

from lacuna.engine.models.base import ModelAdapter


class FakeModel(ModelAdapter):
    family = "fake"
    batches = True

    def __init__(self, tokenizer, context_length: int = 256, on_forward=None):
        super().__init__("fake", tokenizer, mask_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                         context_length=context_length, device=torch.device("cpu"), dtype=torch.float32,
                         frame=((), ()))
        self.calls: list[torch.Tensor] = []
        self.on_forward = on_forward
        self.lock = threading.Lock()

    def preferred(self, position: int) -> int:
        # Whole-text tokens only (no specials, no pieces of a character, no
        # line breaks), so the sampler's rules never override the preference.
        if not hasattr(self, "_whole"):
            from lacuna.engine.models import vocab

            profile = vocab.profile(self.tokenizer, self.vocab_size)
            skip = set(profile.newline_ids.tolist()) | set(self.special_ids)
            if profile.utf8 is not None:
                skip |= set(profile.utf8.index)
            self._whole = [i for i in range(10, self.vocab_size) if profile.generable[i] and i not in skip]
        return self._whole[(position * 7) % len(self._whole)]

    def logits(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """ids [L] -> [P, V]; a batch [B, L] -> [B, P, V] (one call, B rows)."""
        self.calls.append(ids.clone())
        if self.on_forward is not None:
            self.on_forward(len(self.calls))
        out = torch.zeros(positions.numel(), self.vocab_size)
        for row, p in enumerate(positions.tolist()):
            out[row, self.preferred(p)] = 1.0 + 0.25 * p
            # The mask token would win if the sampler did not suppress it.
            out[row, self.mask_id] = 100.0
        if ids.dim() == 2:
            return out.unsqueeze(0).expand(ids.shape[0], -1, -1).clone()
        return out

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])
