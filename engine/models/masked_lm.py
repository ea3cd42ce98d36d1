"""Adapter for transformers' AutoModelForMaskedLM models (BERT, RoBERTa,
ModernBERT, DistilBERT and masked-diffusion LMs built on them)."""
from __future__ import annotations

from typing import Any

import torch

from . import vocab
from .base import ModelAdapter
from .serial import model_lock


class MaskedLMAdapter(ModelAdapter):
    """Wraps a loaded masked LM and its fast tokenizer behind ModelAdapter.

    The vocabulary projection is the costliest part of a small model's forward
    pass, and the sampler needs logits only at the still-masked positions, so a
    pre-hook on the output embedding gathers those positions first. Every
    family above ends in a position-wise head followed by that Linear, so the
    hook is exact. The hook reads the positions from the adapter, so a forward
    pass holds the model's lock (engine.models.serial): the sampler already
    does, and ``logits`` takes it too for callers that do not.
    """

    family = "bert"
    # Candidates of one request share a forward pass (engine.sampler batches them).
    batches = True

    def __init__(self, name: str, model: torch.nn.Module, tokenizer: Any, path: str | None = None):
        if tokenizer.mask_token_id is None:
            raise ValueError(f"{name}: the tokenizer has no mask token, so it cannot infill")
        param = next(model.parameters())
        super().__init__(name, tokenizer, mask_id=tokenizer.mask_token_id,
                         vocab_size=model.get_output_embeddings().out_features,
                         context_length=_context_length(model.config, tokenizer), device=param.device,
                         dtype=param.dtype, path=path)
        self.model = model.eval()
        self.network = self.model  # the torch module, as every family names it
        vocab.check_tokenizer_fits(name, tokenizer, self.vocab_size, self.mask_id, self.prefix_ids + self.suffix_ids)
        self._positions: torch.Tensor | None = None
        model.get_output_embeddings().register_forward_pre_hook(self._gather)

    def _gather(self, module, args):
        if self._positions is None:
            return None
        hidden = args[0]
        return (hidden[:, self._positions, :],)

    @torch.inference_mode()
    def logits(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """ids [L] -> float32 [P, V]; ids [B, L] (canvases of one layout, no
        padding) -> [B, P, V]."""
        with model_lock(self):
            self._positions = positions
            try:
                out = self.model(input_ids=ids if ids.dim() == 2 else ids.unsqueeze(0)).logits
            finally:
                self._positions = None
        return out.float() if ids.dim() == 2 else out[0].float()

    def __repr__(self) -> str:
        return f"<MaskedLMAdapter {self.name} on {self.device} {self.dtype}>"


def _context_length(config: Any, tokenizer: Any) -> int:
    limits = []
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        # RoBERTa reserves padding_idx + 1 position slots before the first token.
        offset = (config.pad_token_id + 1) if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
        limits.append(int(positions) - offset)
    max_len = getattr(tokenizer, "model_max_length", None)
    if max_len and max_len < 1_000_000:
        limits.append(int(max_len))
    return min(limits) if limits else 512
