"""How many tokens to commit at each step: pure functions, no torch."""
from __future__ import annotations

import math

# The most denoising steps a run plans, whatever the request asks (engine.sampler.planned_steps;
# the CLI caps --steps with a note). Capped policies already stop at one step per masked token;
# uncapped ones would run every step asked for (a typed 10**9 is days of Bernoulli draws) and
# change next to nothing past this.
MAX_STEPS = 1024


def split_evenly(total: int, steps: int) -> list[int]:
    """``total`` tokens over ``steps`` steps, the remainder to the early steps
    (LLaDA's schedule). Steps beyond ``total`` would commit nothing, so there
    are at most ``total`` of them."""
    if total <= 0:
        return []
    steps = max(1, min(steps, total))
    base, extra = divmod(total, steps)
    return [base + (1 if s < extra else 0) for s in range(steps)]


def blocks(total: int, block_length: int | None) -> list[int]:
    """Sizes of the semi-autoregressive blocks over ``total`` masked slots."""
    if total <= 0:
        return []
    if block_length is None or block_length >= total:
        return [total]
    full, rest = divmod(total, block_length)
    return [block_length] * full + ([rest] if rest else [])


def steps_per_block(block_sizes: list[int], steps: int, cap: bool = True) -> list[int]:
    """Share ``steps`` among blocks in proportion to their size, at least two
    per block (one step per block ruins quality, Fast-dLLM PR #82) unless the
    block has a single token, and (with ``cap``) never more steps than tokens.
    Ancestral sampling is uncapped (engine.policies.Policy.caps_steps): its
    extra steps are what reusing unchanged logits saves."""
    if not block_sizes:
        return []
    total = sum(block_sizes)
    shares = [max(1, round(steps * size / total)) for size in block_sizes]
    # Rounding may drift from the requested total; give or take from the largest blocks.
    drift = steps - sum(shares)
    order = sorted(range(len(block_sizes)), key=lambda b: -block_sizes[b])
    k = 0
    while drift != 0 and k < 4 * len(order):
        b = order[k % len(order)]
        if drift > 0:
            shares[b] += 1
            drift -= 1
        elif shares[b] > 1:
            shares[b] -= 1
            drift += 1
        k += 1
    if not cap:
        return [max(2, share) for share in shares]
    return [min(size, max(2, share)) for size, share in zip(block_sizes, shares)]


def commit_count(remaining: int, steps_left: int) -> int:
    """Tokens to commit now so that ``remaining`` finish in ``steps_left``
    steps; the same sequence split_evenly gives, computed on the fly."""
    if remaining <= 0:
        return 0
    return math.ceil(remaining / max(1, steps_left))


def unmask_probability(step: int, steps: int) -> float:
    """MDLM's linear schedule, t = 1 - step/steps: a masked token is revealed
    between t and s = t - 1/steps with probability (t - s) / t."""
    t = 1.0 - step / steps
    s = 1.0 - (step + 1) / steps
    return (t - s) / t if t > 0 else 1.0
