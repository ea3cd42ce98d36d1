"""Absorbing-state masking for masked-diffusion training (pure numpy).

Per sequence of length L a mask ratio t is drawn from a mixture weighted
toward the editor's real use (a few masked tokens in a long context) while
keeping the full range up to 100% masked for long spans:

* with probability ``low_frac`` (default 0.5): t ~ U(1/L, ``low_max``) (0.15),
* otherwise: t ~ U(1/L, 1).

k = max(1, round(t * L)) tokens are masked, either at uniformly random
positions or (with probability ``span_frac`` when t <= 0.5) as contiguous runs
of whole words (1 to 8 words, a word being a token that starts with a space or
a newline plus the tokens that continue it), as users mask words and phrases.

Loss weighting (MDLM/LLaDA's 1/t): the cross-entropy of a sequence is summed
over its masked positions and divided by k = t * L, i.e. weighted 1/t and
normalised by L. Because k >= 1 the weight can never explode for small t;
sequences with few masks simply contribute their mean masked-token loss.
"""

from __future__ import annotations

import numpy as np

MAX_SPAN_WORDS = 8


def sample_ratios(rng: np.random.Generator, n: int, length: int,
                  low_frac: float = 0.5, low_max: float = 0.15) -> np.ndarray:
    lo = 1.0 / length
    low = rng.random(n) < low_frac
    hi_t = rng.uniform(lo, 1.0, n)
    low_t = rng.uniform(lo, max(lo, low_max), n)
    return np.where(low, low_t, hi_t)


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


def span_lengths(rng: np.random.Generator) -> int:
    """Number of words in one masked span: 1..8, weighted toward short spans."""
    w = np.array([0.35, 0.2, 0.12, 0.1, 0.08, 0.06, 0.05, 0.04])
    return int(rng.choice(np.arange(1, MAX_SPAN_WORDS + 1), p=w / w.sum()))


def mask_one(rng: np.random.Generator, is_start: np.ndarray, t: float, span: bool) -> np.ndarray:
    """Boolean mask for one sequence. ``is_start`` is the per-position word-start
    flag. Exactly k = max(1, round(t*L)) positions when ``span`` is False; at
    least k (whole words, may overshoot by part of one span) when True."""
    length = is_start.shape[0]
    k = int(min(length, max(1, round(t * length))))
    if not span:
        m = np.zeros(length, dtype=bool)
        m[rng.choice(length, size=k, replace=False)] = True
        return m
    word = np.cumsum(is_start) - 1  # word index of each position (-1 before the first start)
    n_words = int(word[-1]) + 1
    m = np.zeros(length, dtype=bool)
    if n_words <= 0:
        m[rng.choice(length, size=k, replace=False)] = True
        return m
    count = 0
    for _ in range(4 * length):
        if count >= k:
            break
        w0 = int(rng.integers(0, n_words))
        w1 = w0 + span_lengths(rng)
        m |= (word >= w0) & (word < w1)
        count = int(m.sum())
    if count == 0:
        m[rng.choice(length, size=k, replace=False)] = True
    return m


def make_masks(rng: np.random.Generator, ids: np.ndarray, is_start_table: np.ndarray,
               low_frac: float = 0.5, low_max: float = 0.15, span_frac: float = 0.5
               ) -> tuple[np.ndarray, np.ndarray]:
    """Masks for a batch ``ids`` [B, L]. Returns (mask [B, L] bool, t [B])."""
    b, length = ids.shape
    t = sample_ratios(rng, b, length, low_frac, low_max)
    span = rng.random(b) < span_frac
    starts = is_start_table[ids]
    masks = np.stack([mask_one(rng, starts[i], float(t[i]), bool(span[i] and t[i] <= 0.5))
                      for i in range(b)])
    return masks, t


def loss_weights(masks: np.ndarray) -> np.ndarray:
    """Per-position weight 1/k for the masked positions of each row (k = row's
    mask count), so each sequence contributes its mean masked-token loss."""
    k = masks.sum(axis=1, keepdims=True).clip(min=1)
    return np.where(masks, 1.0 / k, 0.0)
