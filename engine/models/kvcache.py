"""Context cache for masked-diffusion decoding: Fast-dLLM's dual cache.

Source: Wu et al., "Fast-dLLM: Training-free Acceleration of Diffusion LLM by
Enabling KV Cache and Parallel Decoding" (arXiv:2505.22618), and its
reference loop NVlabs/Fast-dLLM llada/generate.py (generate_with_dual_cache);
this is our own implementation for canvases whose block is any set of
positions.

How a run uses it (engine.sampler):

1. Refresh, at the first step of every block: one full forward pass over the
   canvas [B, L] that also keeps each layer's keys and values ([B, H_kv, L, D],
   keys after rotary). Its logits serve that step.
2. Every further step of the block runs only the block's tokens (the block's
   slots, at their true canvas positions for rotary, not necessarily
   contiguous) through the network. In each layer their fresh keys/values
   overwrite their cached entries, and their queries attend to all L cached
   keys/values. The cost per step is that of K tokens instead of L, plus
   attention over L keys.

Where it is exact and where it approximates:

* The refresh step is the plain forward pass (the same logits as
  ``cache="none"``, to float rounding).
* A cached step is exact when nothing outside the run changed since the
  refresh in a way the cached positions could see: e.g. a step that
  committed nothing (the ancestral sampler), or a block that covers the whole
  canvas.
* Otherwise it approximates: tokens committed inside the block since the
  refresh change the block's own keys/values (those are recomputed), but the
  cached keys/values of every other position were computed when those block
  tokens were still masks; in layers above the first they are stale until the
  next refresh. The first layer's keys/values depend only on a token and its
  position, so context positions are exact there.
  Fast-dLLM reports this costs little because attention to distant positions
  changes slowly within a block. Measured (docs/benchmarks.md): on the
  interim LLaDA-layout starter 98.8% (one block) and 99.5% (blocks of 4) of
  greedy tokens equal the plain loop's on held-out spans; on random tiny
  networks, whose distributions are flat, 60% (LLaDA) and 100% (Dream).
* The DiT families (engine.models.dit, through engine.models.dit_adapter)
  condition every layer on a noise level sigma (adaLN). MDLM's mdlm-owt
  zeroes it, so everything above holds for it as for LLaDA. SEDD's sigma
  follows the canvas's masked fraction, so after commits the cached keys and
  values were also computed at the refresh's sigma while the block runs at
  the sigma now: even its first layer's context entries drift (the refresh
  and a block over the whole canvas stay exact). For a short hole in a long
  canvas sigma barely moves (a 32-token hole in 1,024 tokens: 0.032 to 0);
  the agreement with the plain loop is measured per family in
  docs/benchmarks.md ("A real pretrained model on a laptop CPU").

Memory: 2 x layers x L x H_kv x D values per candidate, in the model's dtype
(LLaDA-8B, 4096 tokens, bf16: 2 GiB; the starter: a few MB), alive for one
block.

Not done: Elastic-Cache's adaptive refresh (refresh only when attention
drifts) and dKV-Cache's delayed caching (running only the still-masked and
newly committed slots of a block); the cache for the transformers families
(ModernBERT, RoBERTa: their forward runs every position).

The cache reaches a family's layers explicitly: the adapter builds a
CacheStep, the network's ``hidden`` (LLaDA, Dream, LLaDA-MoE) or forward
(the DiT of MDLM and SEDD) hands it with its index to each layer, and
engine.models.blocks.attention stores or reads that layer's keys and values.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class DualCache:
    """Per-layer keys and values of every canvas position: lists of
    [B, H_kv, L, D] tensors, index = layer."""

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def row(self, b: int) -> "DualCache":
        """Candidate b's cache: views [1, H_kv, L, D] of each layer, so a cached
        step on them writes through to this cache."""
        return DualCache([k[b : b + 1] for k in self.keys], [v[b : b + 1] for v in self.values])


@dataclass
class CacheStep:
    """What attention does in one forward pass; the network hands it to each layer.

    ``record``: a refresh, store each layer's k/v in ``cache``. ``run``: a
    cached step over these canvas positions [R]; their k/v replace the cached
    ones and queries attend to the whole cache.
    """

    cache: DualCache
    record: bool = False
    run: torch.Tensor | None = None

    def kv(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys/values ([B, H_kv, L, D]) the queries of layer ``layer`` attend to;
        k, v: this pass's [B, H_kv, R, D]."""
        if self.record:
            if layer != len(self.cache.keys):
                raise ValueError(f"layer {layer} recorded out of order (the cache holds {len(self.cache.keys)})")
            self.cache.keys.append(k)
            self.cache.values.append(v)
            return k, v
        ck, cv = self.cache.keys[layer], self.cache.values[layer]
        ck.index_copy_(2, self.run, k.to(ck.dtype))
        cv.index_copy_(2, self.run, v.to(cv.dtype))
        return ck, cv


def run_positions(block: torch.Tensor, positions: torch.Tensor, logit_shift: int, length: int) -> torch.Tensor:
    """The canvas positions a cached step must run: the block, and for a
    shifted family (Dream: position i is predicted from the output at i-1)
    also the positions whose outputs predict the wanted ones. Sorted, unique."""
    if logit_shift:
        sources = (positions - logit_shift).clamp_min(0)
        block = torch.cat([block, sources])
    return torch.unique(block.clamp(0, length - 1))
