"""The denoising loop: a generator of StepEvents (plain data) over one request.

stream_infill -> infill, as in MLX-LM's generate_step -> generate: the loop
owns the canvas and the model calls; every per-step decision is delegated to
the pure functions of engine.select and engine.schedules.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from time import perf_counter

import torch

from . import canvas as canvas_mod
from . import schedules
from . import select as sel
from . import utf8
from .models import vocab
from .errors import Cancelled, OutOfMemory
from .types import Commit, InfillRequest, InfillResult, StepEvent

_SCORED = {"low_confidence", "margin", "entropy", "random"}


def stream_infill(model, request: InfillRequest, cancel: threading.Event | None = None) -> Iterator[StepEvent]:
    """Yield one StepEvent per denoising step; the last has ``done`` and the result.

    The cancel event is checked before every forward pass; once it is set the
    generator returns without another event. Inputs are never mutated.
    """
    t0 = perf_counter()
    device = model.device
    canvas = canvas_mod.build(model, request, torch.Generator().manual_seed(request.seed))
    gen = torch.Generator(device=device).manual_seed(request.seed)
    ids = canvas.ids.to(device)
    slots = canvas.slots.to(device)
    n = slots.numel()
    slot_ids: list[int] = canvas.ids[canvas.slots].tolist()
    texts: list[str | None] = [None if m else model.token_text(t) for m, t in zip(canvas.masked.tolist(), slot_ids)]
    confs: list[float | None] = [None] * n
    slot_span = canvas.slot_span
    # Never generated: the mask, the model's specials, and every id that is no text (engine.models.vocab).
    profile = vocab.profile(model.tokenizer, model.vocab_size)
    blocked = set(profile.blocked_ids.tolist()) | set(model.special_ids) | {model.mask_id}
    special = torch.tensor(sorted(i for i in blocked if 0 <= i < model.vocab_size), dtype=torch.long, device=device)
    no_newline = canvas.no_newline.to(device)
    no_lead_space = canvas.no_lead_space.to(device)
    newline_ids = profile.newline_ids.to(device)
    lead_space = profile.lead_space.to(device)
    guard = None
    if profile.utf8 is not None:
        guard = utf8.Guard(profile.utf8, canvas.span_slots, slot_span,
                           [None if m else t for m, t in zip(canvas.masked.tolist(), slot_ids)])

    masked_slots = torch.nonzero(canvas.masked).squeeze(1)  # CPU, document order
    sizes = schedules.blocks(masked_slots.numel(), request.block_length)
    ancestral = request.sampler.startswith("ancestral")
    budgets = schedules.steps_per_block(sizes, request.steps, cap=not ancestral)
    planned = sum(budgets)
    use_cache = request.sampler in ("ancestral", "ancestral_analytic")
    # SEDD's analytic update needs scores (unnormalised); on other models it is plain ancestral.
    analytic = request.sampler == "ancestral_analytic" and getattr(model, "scores", False)

    step = nfe = 0
    start = 0
    for size, budget in zip(sizes, budgets):
        rows = masked_slots[start : start + size].to(device)  # slot indices of this block, still masked
        start += size
        cached = mass = None
        for s in range(budget):
            if rows.numel() == 0:
                break
            if cancel is not None and cancel.is_set():
                return
            if cached is None:
                logits = _forward(model, ids, slots[rows])
                nfe += 1
                mass = torch.logsumexp(logits, dim=-1) if analytic else None
                logits = sel.suppress(logits, special)
                sel.forbid_in_rows(logits, no_newline[rows], newline_ids)
                if guard is not None:
                    guard.restrict(logits, rows.tolist())
                sel.avoid_in_rows(logits, no_lead_space[rows], lead_space)
                logits = sel.filter_top_k_top_p(logits, request.top_k, request.top_p)
            else:
                logits = cached
            tokens = sel.sample_tokens(logits, request.temperature, gen)
            probs = sel.probabilities(logits)
            conf = sel.token_confidence(probs, tokens)
            steps_left = budget - s
            k = schedules.commit_count(rows.numel(), steps_left)
            if ancestral:
                p = schedules.unmask_probability(s, budget)
                if mass is not None and steps_left > 1:
                    p = _tweedie_reveal(model, ids, mass, rows.numel() * p)
                chosen = sel.pick_bernoulli(torch.ones_like(conf, dtype=torch.bool), p, gen)
            elif request.sampler == "threshold":
                chosen = sel.pick_threshold(conf, torch.ones_like(conf, dtype=torch.bool), request.threshold, at_least=k)
            else:
                scores = _scores(request.sampler, probs, conf, gen)
                chosen = sel.pick_top(scores, torch.ones_like(conf, dtype=torch.bool), k)
            # MDLM's cache: with nothing committed the canvas is unchanged and the
            # model is not time-conditioned, so the next step may reuse these logits.
            cached = logits if (use_cache and chosen.numel() == 0) else None

            new_rows = rows[chosen]
            new_tokens = tokens[chosen]
            if guard is not None and chosen.numel():
                # Slots committed together must still join into valid UTF-8.
                fixed = guard.commit(new_rows.tolist(), new_tokens.tolist(), logits[chosen])
                new_tokens = torch.tensor(fixed, dtype=torch.long, device=device)
                conf = conf.clone()
                conf[chosen] = sel.token_confidence(probs[chosen], new_tokens)
            ids[slots[new_rows]] = new_tokens
            keep = torch.ones(rows.numel(), dtype=torch.bool, device=device)
            keep[chosen] = False
            rows = rows[keep]

            committed = []
            for slot, token, c in zip(new_rows.tolist(), new_tokens.tolist(), conf[chosen].tolist()):
                text = model.token_text(token)
                slot_ids[slot], texts[slot], confs[slot] = token, text, c
                committed.append(Commit(slot, slot_span[slot], token, text, c))
            step += 1
            done = start >= masked_slots.numel() and rows.numel() == 0
            result = _result(model, request, canvas, slot_ids, confs, nfe, step, t0) if done else None
            yield StepEvent(
                step=step, steps=planned, nfe=nfe, elapsed=perf_counter() - t0,
                committed=tuple(committed), tokens=tuple(texts), confidence=tuple(confs),
                slot_span=slot_span, done=done, result=result,
            )


def _forward(model, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    try:
        return model.logits(ids, positions)
    except torch.OutOfMemoryError as exc:
        if model.device.type == "cuda":
            torch.cuda.empty_cache()
        raise OutOfMemory(
            f"{model.name} ran out of memory on {model.device} with {ids.numel()} tokens; "
            "mask less text, use a shorter document window, or a smaller model or dtype"
        ) from exc


def _tweedie_reveal(model, ids: torch.Tensor, mass: torch.Tensor, expected: float) -> torch.Tensor:
    """Per-row reveal chances of SEDD's analytic step: sigma now from the
    canvas's masked fraction, sigma next from that fraction once the
    schedule's ``expected`` reveals are made (engine.select.tweedie_reveal)."""
    length = ids.numel()
    masked = int((ids == model.mask_id).sum())
    return sel.tweedie_reveal(mass, model.sigma_at(masked / length), model.sigma_at((masked - expected) / length))


def _scores(sampler: str, probs: torch.Tensor, conf: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    if sampler == "low_confidence":
        return conf
    if sampler == "margin":
        return sel.margin(probs)
    if sampler == "entropy":
        return sel.neg_entropy(probs)
    if sampler == "random":
        return sel.random_scores(conf.numel(), gen, conf.device)
    raise AssertionError(sampler)


def _result(model, request, canvas, slot_ids, confs, nfe, steps, t0) -> InfillResult:
    text, spans, pieces = canvas_mod.assemble(model, request, canvas, slot_ids, confs)
    return InfillResult(
        text=text, spans=spans, pieces=pieces, nfe=nfe, steps=steps,
        seconds=perf_counter() - t0, seed=request.seed, revision=request.revision,
    )


def infill(model, request: InfillRequest, cancel: threading.Event | None = None) -> InfillResult:
    """Run to the end and return the result; raises Cancelled if stopped."""
    result = None
    for event in stream_infill(model, request, cancel):
        result = event.result
    if result is None:
        raise Cancelled("the infill was stopped before it finished")
    return result
