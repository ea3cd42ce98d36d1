"""MDLM (Sahoo et al. 2024, "Simple and Effective Masked Diffusion Language
Models"): kuleshov-group/mdlm-owt, loaded natively from its Hub checkpoint.

Network: the DiT of engine.models.dit under a ``backbone.`` prefix (the Hub
model's ``MDLM.backbone``). ``network(input_ids [B, L], sigma [B]) -> logits
[B, L, V]`` before SUBS, as kuleshov-group/mdlm ``models/dit.py``; with
``time_conditioning`` false (mdlm-owt) sigma is zeroed first, as
``Diffusion._process_sigma`` does.

Adapter: SUBS (``Diffusion._subs_parameterization`` in ``diffusion.py``): the
mask column gets -inf, the rest is log-normalised, and unmasked positions
copy themselves. Tokenizer: GPT-2's, with the mask at id 50257 (= V - 1).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelLoadError
from .dit import DiT, DiTShape
from .dit_adapter import (
    DiTAdapter, build_dit, check_vocabulary, load_gpt2_tokenizer, loglinear_sigma, tokenizer_repo_for,
)
from .families import BY_NAME
from .kvcache import CacheStep

log = logging.getLogger(__name__)

FAMILY = BY_NAME["mdlm"]
# MDLMConfig's defaults in the Hub repo's configuration_mdlm.py.
_DEFAULTS = {"vocab_size": 50258, "model_length": 1024, "hidden_dim": 768, "cond_dim": 128,
             "n_blocks": 12, "n_heads": 12, "time_conditioning": False}


def shape_from_config(config: dict) -> DiTShape:
    def get(key: str) -> int:
        value = config.get(key, _DEFAULTS[key])
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelLoadError(f"MDLM config.json: {key} must be a positive integer, got {value!r}")
        return value

    try:
        return DiTShape(hidden_size=get("hidden_dim"), n_heads=get("n_heads"), n_blocks=get("n_blocks"),
                        cond_dim=get("cond_dim"), vocab_size=get("vocab_size"))
    except ValueError as exc:
        raise ModelLoadError(f"MDLM config.json: {exc}") from exc


class MDLMNetwork(nn.Module):
    """``backbone``: the DiT. forward(input_ids [B, L], sigma [B], positions=None,
    at=None, cache=None) -> logits [B, L or P, V] before SUBS (``at``, ``cache``: see DiT)."""

    def __init__(self, shape: DiTShape, time_conditioning: bool = False):
        super().__init__()
        self.time_conditioning = bool(time_conditioning)
        self.backbone = DiT(shape)

    def forward(self, input_ids: torch.Tensor, sigma: torch.Tensor, positions: torch.Tensor | None = None,
                at: torch.Tensor | None = None, cache: CacheStep | None = None) -> torch.Tensor:
        if not self.time_conditioning:
            sigma = torch.zeros_like(sigma)
        return self.backbone(input_ids, sigma, positions, at, cache)


def subs(logits: torch.Tensor, xt: torch.Tensor, mask_id: int, inplace: bool = False) -> torch.Tensor:
    """SUBS parameterisation: logits [..., V] and the noisy ids xt [...] ->
    log p(x0) [..., V] (float32). The mask is never predicted; a position that
    is not masked keeps its token with probability 1. ``inplace``: float32
    ``logits`` may be overwritten (the adapter's own copy), which saves a
    [..., V] float32 copy: over the whole vocabulary that is most of a small
    model's working memory."""
    out = logits.float()
    if out is logits and not inplace:
        out = out.clone()
    out[..., mask_id] = float("-inf")
    out -= torch.logsumexp(out, dim=-1, keepdim=True)  # log_softmax, in place
    unmasked = xt != mask_id
    out[unmasked] = float("-inf")
    out[unmasked, xt[unmasked]] = 0.0
    return out


class MDLMAdapter(DiTAdapter):
    """SUBS over the MDLM network. Its dual context cache is Fast-dLLM's, as for
    LLaDA: mdlm-owt ignores sigma, so a cached step approximates only through
    the context's keys and values going stale after commits (engine.models.kvcache)."""

    FAMILY = FAMILY

    def sigma(self, ids: torch.Tensor) -> torch.Tensor:
        # mdlm-owt is not time-conditioned (the network zeroes sigma); a model
        # that is sees the log-linear sigma of each canvas's masked fraction.
        rows = 1 if ids.dim() == 1 else ids.shape[0]
        if not self.network.time_conditioning:
            return torch.zeros(rows)
        return torch.tensor([loglinear_sigma(f) for f in self._fractions(ids)], dtype=torch.float32)

    def _sampling_logits(self, out: torch.Tensor, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return subs(out, ids[:, positions], self.mask_id, inplace=True)  # out: the adapter's float32 copy


def load(name: str, path: Path, config: dict, device: torch.device, dtype: torch.dtype,
         quantization: str | None = None) -> MDLMAdapter:
    """Build the network on the meta device and fill it from the checkpoint."""
    if quantization not in (None, "none", "bf16", "fp16", "fp32"):
        raise ModelLoadError(f"{name}: MDLM is small (170M) and runs unquantised; drop the {quantization} option")
    path = Path(path)
    shape = shape_from_config(config)
    length = config.get("model_length", _DEFAULTS["model_length"])
    if not isinstance(length, int) or length < 4:
        raise ModelLoadError(f"{name}: config.json model_length must be an integer >= 4, got {length!r}")
    tokenizer = load_gpt2_tokenizer(name, path, tokenizer_repo_for(name))
    mask_id = shape.vocab_size - 1
    check_vocabulary(name, tokenizer, mask_id)
    conditioned = bool(config.get("time_conditioning", False))
    network = build_dit(name, lambda: MDLMNetwork(shape, conditioned), path, device, dtype)
    log.info("MDLM %s: %d blocks x %d, vocabulary %d", name, shape.n_blocks, shape.hidden_size, shape.vocab_size)
    return MDLMAdapter(name, network, tokenizer, mask_id, length, path=str(path))
