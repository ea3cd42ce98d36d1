"""Per-step math on the logits of the still-masked slots: pure torch functions.

Each takes logits [m, V] (float32, one row per still-masked slot) and returns
small tensors; none touches the model or the canvas, so all are tested with
hand-made logits.
"""
from __future__ import annotations

import math

import torch

NEG_INF = float("-inf")


def suppress(logits: torch.Tensor, token_ids: torch.Tensor | None) -> torch.Tensor:
    """Forbid tokens (mask, pad, bos/eos, unk...) inside a span."""
    if token_ids is None or token_ids.numel() == 0:
        return logits
    logits = logits.clone()
    logits[:, token_ids] = NEG_INF
    return logits


def forbid_in_rows(logits: torch.Tensor, rows: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """In place: -inf for ``token_ids`` (LongTensor [t]) in the rows where
    ``rows`` (BoolTensor [m]) is True; e.g. line breaks in a one-line span."""
    if token_ids.numel() and bool(rows.any()):
        index = torch.nonzero(rows).squeeze(1)
        logits[index.unsqueeze(1), token_ids.to(logits.device).unsqueeze(0)] = NEG_INF
    return logits


def avoid_in_rows(logits: torch.Tensor, rows: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """In place: -inf where ``token_mask`` (BoolTensor [V]) is True, in the rows
    where ``rows`` (BoolTensor [m]) is True, unless that would leave a row with
    no token at all (then the row is left as it was)."""
    if not bool(rows.any()):
        return logits
    index = torch.nonzero(rows).squeeze(1)
    sub = logits[index].masked_fill(token_mask.to(logits.device), NEG_INF)
    ok = torch.isfinite(sub).any(dim=1)
    logits[index[ok]] = sub[ok]
    return logits


def filter_top_k_top_p(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the top_k tokens (0: all) and the smallest set of tokens whose
    probability reaches top_p (1: all); the rest get -inf. The most likely
    token always survives."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, NEG_INF)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token when the mass before it already reaches top_p.
        drop = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop[:, 0] = False
        logits = logits.masked_fill(drop.scatter(1, order, drop), NEG_INF)
    return logits


def sample_tokens(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """x0 per row: argmax at temperature 0, else Gumbel-max in float64, an
    exact sample from softmax(logits / temperature)."""
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
    return (logits.double() / temperature + gumbel).argmax(dim=-1)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1)


def token_confidence(probs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """p(x0) per row: LLaDA's low_confidence score and the reported confidence."""
    return probs.gather(1, tokens.unsqueeze(1)).squeeze(1)


def margin(probs: torch.Tensor) -> torch.Tensor:
    """p1 - p2 per row (Dream's topk_margin)."""
    top2 = torch.topk(probs, 2, dim=-1).values
    return top2[:, 0] - top2[:, 1]


def neg_entropy(probs: torch.Tensor) -> torch.Tensor:
    """-H per row (Dream's entropy): higher is more certain."""
    return (probs * torch.log(probs.clamp_min(1e-30))).sum(dim=-1)


def random_scores(n: int, generator: torch.Generator | None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform scores: LLaDA's random remasking picks positions at random."""
    return torch.rand(n, generator=generator, device=device)


def pick_top(scores: torch.Tensor, eligible: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k best-scoring eligible rows (fewer if fewer are eligible)."""
    k = min(k, int(eligible.sum()))
    if k <= 0:
        return torch.empty(0, dtype=torch.long, device=scores.device)
    masked = scores.masked_fill(~eligible, NEG_INF)
    return torch.topk(masked, k).indices


def pick_threshold(scores: torch.Tensor, eligible: torch.Tensor, tau: float, at_least: int = 1) -> torch.Tensor:
    """Every eligible row with score >= tau, and at least ``at_least`` rows
    (the best ones) so each step makes progress (Fast-dLLM's parallel decoding)."""
    over = eligible & (scores >= tau)
    chosen = torch.nonzero(over).squeeze(1)
    if chosen.numel() >= at_least:
        return chosen
    return pick_top(scores, eligible, at_least)


def pick_bernoulli(eligible: torch.Tensor, p: float | torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Each eligible row independently with probability p (MDLM's ddpm step);
    p is one float or one per row."""
    draw = torch.rand(eligible.shape, generator=generator, device=eligible.device) < p
    return torch.nonzero(draw & eligible).squeeze(1)


def tweedie_reveal(log_mass: torch.Tensor, sigma_now: float, sigma_next: float) -> torch.Tensor:
    """SEDD's analytic (Tweedie tau-leaping) step on an absorbing graph, per
    masked row: the chance it leaves the mask while the total noise falls
    from sigma_now to sigma_next.

    log_mass [m]: log of the summed scores over the real tokens (the
    logsumexp of a row of log scores, mask column excluded). Upstream
    (louaaron/Score-Entropy-Discrete-Diffusion, sampling.AnalyticPredictor
    with graph_lib.Absorbing.staggered_score and transp_transition) gives
    token y the weight (e^dsigma - 1) s_y and the mask the rest, so the
    reveal chance is (e^dsigma - 1) * sum_y s_y, clamped to [0, 1] (a
    negative weight for the mask never wins its categorical draw). Which
    token is revealed is proportional to s_y: the softmax of the log scores.
    """
    dsigma = max(float(sigma_now) - float(sigma_next), 0.0)
    return (math.expm1(dsigma) * log_mass.float().exp()).clamp(0.0, 1.0)
