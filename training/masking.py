"""Masks and loss weights for masked-diffusion training (pure numpy).

Each training sequence draws one of three corruption kinds from a
:class:`Mixture`:

* ``absorb``: LLaDA's pre-training objective (Nie et al. 2025, "Large
  Language Diffusion Models", Algorithm 1; GSAI-ML/LLaDA ``forward_process``):
  t ~ U(eps, 1), every token independently replaced by the mask token with
  probability t, cross-entropy on the masked tokens weighted 1/t and
  normalised by the length L.
* ``span_low``: whole words in contiguous runs of 1-8 words, covering a
  ratio t ~ U(1/L, ``low_max``) of the tokens: what an editor does most (a
  word or a phrase masked in a long text).
* ``span_high``: the same runs, covering t ~ U(``low_max``, 1): long passages
  to rewrite, little context left.

For the span kinds t is the covered ratio k/L (k masked tokens), so the 1/t
weight of the absorbing objective becomes 1/k per masked token: each such
sequence contributes its mean masked-token loss. A word is a token that
starts with a space, a newline or punctuation plus the tokens that continue it
(byte-level BPE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SPAN_WORDS = 8
_SPAN_WEIGHTS = np.array([0.35, 0.2, 0.12, 0.1, 0.08, 0.06, 0.05, 0.04])


@dataclass(frozen=True)
class Mixture:
    """Probabilities of the three corruption kinds (they need not sum to 1;
    they are normalised) and their parameters."""

    absorb: float = 1.0
    span_low: float = 0.0
    span_high: float = 0.0
    low_max: float = 0.15
    eps: float = 1e-3

    def probabilities(self) -> np.ndarray:
        p = np.array([self.absorb, self.span_low, self.span_high], dtype=float)
        if (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"mixture weights must be >= 0 and not all 0, got {p.tolist()}")
        return p / p.sum()


# The mixtures compared in the starter's pilot runs (MODEL_CARD.md).
MIXTURES = {
    "absorb": Mixture(1.0, 0.0, 0.0),
    "mixed": Mixture(0.4, 0.3, 0.3),
    "spans": Mixture(0.0, 0.5, 0.5),
    # the shipped starter's: mostly what an editor does (a few words masked in
    # a long text), which is also what teaches a small model to use context
    # first; the absorbing rows keep every mask ratio covered
    "edit": Mixture(0.3, 0.5, 0.2),
    # the editor's regime with more of it per step: 0.7 x 15% of the tokens on
    # average are low-ratio span targets, against 0.5 x 7.5% for "edit"
    "dense": Mixture(0.2, 0.7, 0.1, low_max=0.3),
}


def word_start_table(tokens: list[str], special_ids: set[int]) -> np.ndarray:
    """For each vocab id: does this token start a word? (byte-level BPE:
    'Ġ' = leading space, 'Ċ' = newline; punctuation starts its own unit.)"""
    table = np.zeros(len(tokens), dtype=bool)
    for i, t in enumerate(tokens):
        if i in special_ids or not t:
            table[i] = True
            continue
        c = t[0]
        table[i] = c in ("Ġ", "Ċ") or not (c.isalnum() or c == "'")
    return table


def span_mask(rng: np.random.Generator, is_start: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask [L] of runs of 1-8 whole words covering at least ``k``
    tokens (it may overshoot by part of the last run). ``is_start`` [L] is
    the word-start flag of each position."""
    length = is_start.shape[0]
    k = int(min(length, max(1, k)))
    if k >= length:
        return np.ones(length, dtype=bool)
    word = np.cumsum(is_start) - 1  # word index per position (-1 before the first start)
    n_words = int(word[-1]) + 1
    m = np.zeros(length, dtype=bool)
    if n_words <= 0:
        m[rng.choice(length, size=k, replace=False)] = True
        return m
    covered_words = np.zeros(n_words + MAX_SPAN_WORDS, dtype=bool)
    sizes = np.bincount(word[word >= 0], minlength=n_words)  # tokens per word
    count = 0
    for _ in range(4 * n_words):
        if count >= k:
            break
        w0 = int(rng.integers(0, n_words))
        w1 = min(n_words, w0 + int(rng.choice(MAX_SPAN_WORDS, p=_SPAN_WEIGHTS / _SPAN_WEIGHTS.sum())) + 1)
        new = ~covered_words[w0:w1]
        count += int(sizes[w0:w1][new].sum())
        covered_words[w0:w1] = True
    m = covered_words[np.clip(word, 0, None)] & (word >= 0)
    if not m.any():
        m[rng.choice(length, size=k, replace=False)] = True
    return m


def make_masks(rng: np.random.Generator, ids: np.ndarray, is_start_table: np.ndarray,
               mixture: Mixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks for a batch ``ids`` [B, L] (int token ids).

    Returns (mask [B, L] bool, weight [B, L] float32, kind [B] int: 0 absorb,
    1 span_low, 2 span_high). ``weight`` is 1/(t L) on masked positions and
    0 elsewhere, so ``sum(ce * weight) / B`` is LLaDA's loss for the absorbing
    rows and the mean masked-token loss for the span rows."""
    b, length = ids.shape
    kind = rng.choice(3, size=b, p=mixture.probabilities())
    masks = np.zeros((b, length), dtype=bool)
    weights = np.zeros((b, length), dtype=np.float32)
    starts = is_start_table[ids]
    lo = 1.0 / length
    for i in range(b):
        if kind[i] == 0:
            t = rng.uniform(mixture.eps, 1.0)
            m = rng.random(length) < t
            w = 1.0 / (t * length)
        else:
            t = (rng.uniform(lo, max(lo, mixture.low_max)) if kind[i] == 1
                 else rng.uniform(min(mixture.low_max, 1.0), 1.0))
            m = span_mask(rng, starts[i], int(round(t * length)))
            w = 1.0 / max(1, int(m.sum()))
        masks[i] = m
        weights[i, m] = w
    return masks, weights, kind
