"""The denoising loop: a generator of StepEvents (plain data) over one request.

stream_infill -> infill, as in MLX-LM's generate_step -> generate: the loop
owns the canvas and the model calls; every per-step decision is delegated to
the request's sampling policy (engine.policies) and the pure functions of
engine.select and engine.schedules.

Candidates: stream_candidates runs N samples of one request (one seed each)
in lockstep, sharing every forward pass through the batch dimension of
``model.logits`` (models that set ``batches``); each candidate keeps its own
generator, UTF-8 guard and canvas rules, so it makes exactly the random draws,
and the choices, of a separate run with its seed.

Context cache (``request.cache``, engine.models.kvcache): with "dual" the
masked slots are decoded block by block (``block_length``; one block when
None); the first step of a block is a full forward pass that also keeps every
layer's keys and values, each further step runs only the block's slots (their
canvas positions need not be contiguous) against that cache.

Auto length (issue 23; Span.is_auto): on a model that grows its canvas
(``grows_canvas``, DreamOn) the span runs DreamOn's own loop
(engine.dreamon.stream_dreamon, ``_dreamon_steps``), whose canvas changes
length every step; on any other model it goes to ``_auto_length``.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from time import perf_counter

import torch

from . import canvas as canvas_mod
from . import policies
from . import schedules
from . import select as sel
from . import utf8
from .dreamon import ALGORITHMS as DREAMON_ALGS
from .errors import Cancelled, InputError, OutOfMemory
from .models.base import DEFAULT_THRESHOLD  # noqa: F401 - the threshold sampler's default, importable from here
from .models.serial import model_lock
from .policies import POLICIES, Policy, Step
from .schedules import MAX_STEPS
from .types import Commit, InfillRequest, InfillResult, LengthTried, Span, StepEvent, TokenPiece, check_seed



def planned_steps(request: InfillRequest) -> int:
    """The step count a run shares among its blocks: ``request.steps`` capped at MAX_STEPS."""
    return min(request.steps, MAX_STEPS)


def resolve_cache(model, request: InfillRequest) -> str:
    """The context cache a run uses: the request's, else the family's default.
    Raises InputError when the model cannot run the cache asked for."""
    modes = ("none", *model.cache_modes)
    mode = request.cache if request.cache is not None else model.default_cache
    if mode not in modes:
        raise InputError(
            f"{model.name} ({model.family} family) has no {mode!r} context cache; "
            f"use one of: {', '.join(modes)}"
        )
    return mode


def resolve_threshold(model, request: InfillRequest) -> float:
    """The threshold sampler's tau: the request's, else the family's default."""
    if request.threshold is not None:
        return float(request.threshold)
    return float(model.default_threshold)


@dataclass
class _Candidate:
    """The mutable state of one sample during a run (never leaves the loop)."""

    seed: int
    canvas: canvas_mod.Canvas
    gen: torch.Generator
    guard: utf8.Guard | None
    slot_ids: list[int]
    texts: list[str | None]
    confs: list[float | None]
    masked_slots: torch.Tensor  # CPU, document order
    rows: torch.Tensor | None = None  # slot indices of the current block still masked
    logits: torch.Tensor | None = None  # this step's constrained logits [m, V]; reused by some policies
    mass: torch.Tensor | None = None  # SEDD's log score mass per row (analytic step)
    sizes: list[int] = field(default_factory=list)  # masked slots per block
    budgets: list[int] = field(default_factory=list)  # steps per block
    planned: int = 0
    budget: int = 0  # steps of the current block
    last_block: bool = False
    step: int = 0
    nfe: int = 0
    done: bool = False


@dataclass(frozen=True)
class _Rules:
    """What every candidate's logits are constrained by (tensors on the device)."""

    special: torch.Tensor  # ids never generated
    no_newline: torch.Tensor  # BoolTensor [n] per slot
    no_lead_space: torch.Tensor
    newline_ids: torch.Tensor
    lead_space: torch.Tensor  # BoolTensor [V]


def stream_infill(model, request: InfillRequest, cancel: threading.Event | None = None) -> Iterator[StepEvent]:
    """Yield one StepEvent per denoising step; the last has ``done`` and the result.

    The cancel event is checked before every forward pass; once it is set the
    generator returns without another event. Inputs are never mutated. A run
    plans at most MAX_STEPS steps (``planned_steps``), whatever the sampler.
    Raises InputError for a context cache the model does not have.
    """
    for events in _run(model, request, (request.seed,), cancel):
        yield events[0]


def stream_candidates(model, request: InfillRequest, seeds: Sequence[int],
                      cancel: threading.Event | None = None) -> Iterator[tuple[StepEvent | None, ...]]:
    """N candidates of one request, one per seed, sharing every forward pass.

    Yields, per shared step, a tuple with one entry per seed: that candidate's
    StepEvent, or None when it took no step (it finished, or finished its
    block and waits for the others: all candidates change block together, so
    they share the cache refresh; with edits, whose masked slots differ per
    seed, each then runs its own block's cached steps against its row of the
    cache). Each candidate's tokens equal those of
    ``stream_infill`` on ``replace(request, seed=seed)``: the same random
    draws from its own generator, on logits of the same canvas, under its own
    UTF-8 guard. They can differ only where batched matrix products round
    differently from unbatched ones (the last bits of float32/bf16) and that
    flips an argmax or a threshold. An event's ``nfe`` counts the passes its
    candidate took part in, as a separate run would; ``step`` its own steps.
    An auto-length span on a model that grows its canvas (DreamOn) runs the
    candidates one after another (their canvases differ in length), one
    non-None event per tuple.
    """
    if not seeds:
        raise InputError("give at least one seed")
    checked = tuple(check_seed(s, f"the seed of candidate {i + 1}") for i, s in enumerate(seeds))
    yield from _run(model, request, checked, cancel)


def infill_candidates(model, request: InfillRequest, seeds: Sequence[int],
                      cancel: threading.Event | None = None) -> tuple[InfillResult, ...]:
    """Run N candidates to the end (see stream_candidates); raises Cancelled if stopped."""
    results: list[InfillResult | None] = [None] * len(seeds)
    for events in stream_candidates(model, request, seeds, cancel):
        for c, ev in enumerate(events):
            if ev is not None and ev.result is not None:
                results[c] = ev.result
    if any(r is None for r in results):
        raise Cancelled("the infill was stopped before it finished")
    return tuple(results)  # type: ignore[arg-type]


def _run(model, request: InfillRequest, seeds: tuple[int, ...],
         cancel: threading.Event | None) -> Iterator[tuple[StepEvent | None, ...]]:
    """_steps with each step computed under the model's lock (engine.models.serial), which
    is free while the consumer holds the step's events: runs on one model from several
    threads interleave step by step, and no adapter is ever called by two threads at once.
    A request with an auto-length span (Span.is_auto) runs DreamOn's loop on a model that
    grows its canvas (``_dreamon_steps``), else ``_auto_length``."""
    if any(span.is_auto for span in request.spans):
        if not model.grows_canvas:
            yield from _auto_length(model, request, seeds, cancel)
            return
        steps = _dreamon_steps(model, request, seeds, cancel)
    else:
        if request.instruction is not None:
            from . import instruct

            # The chat frame replaces only the model's prefix/suffix ids: the canvas, the rules and
            # the spans' coordinates are the plain fill's (the in-place layouts keep the request as is).
            model, request = instruct.framed(model, request, request.instruction,
                                             instruct.template_for(model), layout=request.instruct_layout)
        steps = _steps(model, request, seeds, cancel)
    yield from _locked(model, steps)


def _locked(model, steps: Iterator[tuple[StepEvent | None, ...]]) -> Iterator[tuple[StepEvent | None, ...]]:
    lock = model_lock(model)
    try:
        while True:
            with lock:
                try:
                    events = next(steps)
                except StopIteration:
                    return
            yield events
    finally:
        steps.close()


def _auto_length(model, request: InfillRequest, seeds: tuple[int, ...],
                 cancel: threading.Event | None) -> Iterator[tuple[StepEvent | None, ...]]:
    """The run of a request with auto-length spans on a model that does not grow its canvas.

    engine.length.infill_auto proposes lengths for each auto span, fills each and
    ranks the fills by the model's own score (with the first seed); the run at the
    winning lengths is then streamed for every seed, so the live view shows it
    (one run more than the ranking made: the same fill, the runs being
    deterministic). Each final result carries the lengths tried
    (InfillResult.lengths, best first), and its nfe and seconds count the ranking."""
    from . import length

    auto = {i: span.length for i, span in enumerate(request.spans) if span.is_auto}
    ranked = length.infill_auto(model, replace(request, seed=seeds[0]), auto, cancel=cancel)
    won = ranked.result.spans
    fixed = length.with_lengths(request, {i: won[i].length for i in auto})  # as the ranking ran it
    per_span = {c.span: tuple(LengthTried(t.length, t.score, t.result) for t in c.ranked) for c in ranked.choices}
    tried = tuple(per_span.get(i, ()) for i in range(len(request.spans)))
    for events in _locked(model, _steps(model, fixed, seeds, cancel)):
        yield tuple(e if e is None or e.result is None else replace(e, result=replace(
            e.result, lengths=tried, nfe=e.result.nfe + ranked.nfe, seconds=e.result.seconds + ranked.seconds))
            for e in events)


@dataclass(frozen=True)
class _RunContext:
    """What every step of a run shares (fixed for the run)."""

    model: object
    request: InfillRequest
    policy: Policy
    slots: torch.Tensor  # canvas position of each masked slot, on the device
    slot_span: tuple[int, ...]
    tau: float
    analytic: bool  # the policy's analytic step, on a model that gives scores
    t0: float


def _steps(model, request: InfillRequest, seeds: tuple[int, ...],
           cancel: threading.Event | None) -> Iterator[tuple[StepEvent | None, ...]]:
    t0 = perf_counter()
    device = model.device
    policy = POLICIES[request.sampler]
    cache_mode = resolve_cache(model, request)
    # Never generated: the mask, the model's specials, and every id that is no text (engine.models.vocab).
    profile = model.vocab.profile
    # Only edits (strength < 1) draw from the seed while building the canvas.
    edits = any(span.strength < 1.0 for span in request.spans)
    shared = None if edits else canvas_mod.build(model, request, None)
    cands = [_new_candidate(model, request, seed, shared, profile) for seed in seeds]
    first = cands[0].canvas  # every seed has the same layout
    ids = torch.stack([c.canvas.ids for c in cands]).to(device)  # [B, L]
    slots = first.slots.to(device)
    blocked = set(profile.blocked_ids.tolist()) | set(model.special_ids) | {model.mask_id}
    rules = _Rules(
        special=torch.tensor(sorted(i for i in blocked if 0 <= i < model.vocab_size), dtype=torch.long, device=device),
        no_newline=first.no_newline.to(device), no_lead_space=first.no_lead_space.to(device),
        newline_ids=profile.newline_ids.to(device), lead_space=profile.lead_space.to(device),
    )
    run = _RunContext(
        model=model, request=request, policy=policy, slots=slots, slot_span=first.slot_span,
        tau=resolve_threshold(model, request),
        # SEDD's analytic update needs scores (unnormalised); on other models it is plain ancestral.
        analytic=policy.analytic and model.scores, t0=t0,
    )
    forward = _forward_path(model, cache_mode, len(cands) > 1 and model.batches, ids, slots)
    # Edits mask a different number of slots per seed, so each candidate has its
    # own blocks and step budgets; block i of every candidate runs together.
    for c in cands:
        c.sizes = schedules.blocks(c.masked_slots.numel(), request.block_length)
        c.budgets = schedules.steps_per_block(c.sizes, planned_steps(request), cap=policy.caps_steps)
        c.planned = sum(c.budgets)

    for i in range(max(len(c.sizes) for c in cands)):
        for c in cands:
            start = sum(c.sizes[:i])
            c.rows = c.masked_slots[start : start + c.sizes[i]].to(device) if i < len(c.sizes) else slots[:0]
            c.budget = c.budgets[i] if i < len(c.sizes) else 0
            c.last_block = i >= len(c.sizes) - 1
            c.logits = None
        forward.start_block(cands)
        for s in range(max(c.budget for c in cands)):
            if not any(c.rows.numel() and s < c.budget for c in cands):
                break
            if cancel is not None and cancel.is_set():
                return
            need = [b for b, c in enumerate(cands) if c.rows.numel() and s < c.budget and c.logits is None]
            if need:
                # ``per`` (and the pass's full logits, forward.logits) stay referenced until the
                # next pass: the peak engine.hub.fit.sampler_bytes was measured against.
                per = forward(cands, need)
                for b, raw in zip(need, per):
                    c = cands[b]
                    c.nfe += 1
                    c.mass = torch.logsumexp(raw, dim=-1) if run.analytic else None
                    c.logits = _constrain(raw.float(), c, rules, request)
            events: list[StepEvent | None] = [None] * len(cands)
            for b, c in enumerate(cands):
                if c.rows.numel() and s < c.budget:
                    events[b] = _step(run, c, ids[b], s)
            yield tuple(events)


def _forward_path(model, cache_mode: str, batched: bool, ids: torch.Tensor, slots: torch.Tensor) -> _Forward:
    """How a run gets its logits, chosen once per run: the dual context cache,
    one pass shared by the batch of candidates, or one pass per candidate."""
    if cache_mode == "dual":
        return _DualCache(model, ids, slots)
    if batched:
        return _Batched(model, ids, slots)
    return _Forward(model, ids, slots)


class _Forward:
    """One forward pass per candidate that needs logits (``model.logits`` on its row).

    Called with the candidates and the indices of those that need logits, it
    returns their raw logits [m_b, V], one tensor per index, in that order."""

    def __init__(self, model, ids: torch.Tensor, slots: torch.Tensor) -> None:
        self.model, self.ids, self.slots = model, ids, slots
        self.logits: torch.Tensor | None = None  # the last pass over the whole batch, [B, H, V]

    def start_block(self, cands: list[_Candidate]) -> None:
        """A new block begins (each candidate's ``rows`` are set)."""

    def __call__(self, cands: list[_Candidate], need: list[int]) -> list[torch.Tensor]:
        model, ids, slots = self.model, self.ids, self.slots
        return [_guarded(model, ids, lambda: model.logits(ids[b], slots[cands[b].rows])) for b in need]

    def _rows_of(self, logits: torch.Tensor, want: torch.Tensor, cands, need) -> list[torch.Tensor]:
        # each candidate takes its rows out of a pass over the union of their positions
        return [logits[b, torch.searchsorted(want, self.slots[cands[b].rows])] for b in need]

    def _union(self, cands, need) -> torch.Tensor:
        return torch.unique(torch.cat([self.slots[cands[b].rows] for b in need]))


class _Batched(_Forward):
    """One forward pass over the whole batch, at the union of the positions asked for."""

    def __call__(self, cands, need):
        want = self._union(cands, need)
        self.logits = _guarded(self.model, self.ids, lambda: self.model.logits(self.ids, want))
        return self._rows_of(self.logits, want, cands, need)


class _DualCache(_Forward):
    """Fast-dLLM's dual cache (engine.models.kvcache): the first step of a block
    is a full pass that keeps every layer's keys and values; each further step
    runs only the block's slots against them."""

    def start_block(self, cands):
        self.context = None
        # What a cached step runs: the canvas positions of the block's slots.
        # Edits mask different slots per seed; then each candidate runs its own
        # block against its row of the cache, as its separate run would.
        self.blocks = [self.slots[c.rows] for c in cands]
        same = all(torch.equal(self.blocks[0], x) for x in self.blocks[1:])
        self.block = self.blocks[0] if same else None

    def __call__(self, cands, need):
        model, ids, slots, context = self.model, self.ids, self.slots, self.context
        want = self._union(cands, need)
        if context is None:
            self.logits, self.context = _guarded(model, ids, lambda: model.prefill(ids, want))
        elif self.block is not None:
            self.logits = _guarded(model, ids, lambda: model.logits_cached(ids, self.block, want, context))
        else:
            return [_guarded(model, ids, lambda: model.logits_cached(
                ids[b : b + 1], self.blocks[b], slots[cands[b].rows], context.row(b))[0]) for b in need]
        return self._rows_of(self.logits, want, cands, need)


def _new_candidate(model, request: InfillRequest, seed: int, canvas: canvas_mod.Canvas | None,
                   profile) -> _Candidate:
    if canvas is None:
        canvas = canvas_mod.build(model, request, torch.Generator().manual_seed(seed))
    slot_ids: list[int] = canvas.ids[canvas.slots].tolist()
    masked = canvas.masked.tolist()
    guard = None
    if profile.utf8 is not None:
        guard = utf8.Guard(profile.utf8, canvas.span_slots, canvas.slot_span,
                           [None if m else t for m, t in zip(masked, slot_ids)])
    return _Candidate(
        seed=seed, canvas=canvas, guard=guard,
        gen=torch.Generator(device=model.device).manual_seed(seed),
        slot_ids=slot_ids,
        texts=[None if m else model.token_text(t) for m, t in zip(masked, slot_ids)],
        confs=[None] * canvas.slots.numel(),
        masked_slots=torch.nonzero(canvas.masked).squeeze(1),
    )


def _constrain(logits: torch.Tensor, c: _Candidate, rules: _Rules, request: InfillRequest) -> torch.Tensor:
    """The canvas rules on one candidate's logits [m, V] (row r: slot c.rows[r])."""
    rows = c.rows
    logits = sel.suppress(logits, rules.special)
    sel.forbid_in_rows(logits, rules.no_newline[rows], rules.newline_ids)
    if c.guard is not None:
        c.guard.restrict(logits, rows.tolist())
    sel.avoid_in_rows(logits, rules.no_lead_space[rows], rules.lead_space)
    return sel.filter_top_k_top_p(logits, request.top_k, request.top_p)


def _step(run: _RunContext, c: _Candidate, ids: torch.Tensor, s: int) -> StepEvent:
    """Step ``s`` of the block of one candidate, on its logits; commits into ``ids`` (its row of the batch)."""
    model, request = run.model, run.request
    logits, rows, budget = c.logits, c.rows, c.budget
    tokens = sel.sample_tokens(logits, request.temperature, c.gen)
    probs = sel.probabilities(logits)
    conf = sel.token_confidence(probs, tokens)
    reveal = None if c.mass is None else functools.partial(_tweedie_reveal, model, ids, c.mass)
    chosen = run.policy.rule(Step(
        probs=probs, confidence=conf, eligible=torch.ones_like(conf, dtype=torch.bool),
        commit=schedules.commit_count(rows.numel(), budget - s), step=s, steps=budget, tau=run.tau,
        generator=c.gen, reveal=reveal,
    ))
    # With nothing committed the canvas is unchanged, and the models are not
    # time-conditioned: a policy may reuse these logits for the next step.
    if not (run.policy.reuses_logits and chosen.numel() == 0):
        c.logits = None

    new_rows = rows[chosen]
    new_tokens = tokens[chosen]
    if c.guard is not None and chosen.numel():
        # Slots committed together must still join into valid UTF-8.
        fixed = c.guard.commit(new_rows.tolist(), new_tokens.tolist(), logits[chosen])
        new_tokens = torch.tensor(fixed, dtype=torch.long, device=rows.device)
        conf = conf.clone()
        conf[chosen] = sel.token_confidence(probs[chosen], new_tokens)
    ids[run.slots[new_rows]] = new_tokens
    keep = torch.ones(rows.numel(), dtype=torch.bool, device=rows.device)
    keep[chosen] = False
    c.rows = rows[keep]

    committed = []
    for slot, token, p in zip(new_rows.tolist(), new_tokens.tolist(), conf[chosen].tolist()):
        text = model.token_text(token)
        c.slot_ids[slot], c.texts[slot], c.confs[slot] = token, text, p
        committed.append(Commit(slot, run.slot_span[slot], token, text, p))
    c.step += 1
    c.done = c.last_block and c.rows.numel() == 0
    result = _result(model, request, c, run.t0) if c.done else None
    return StepEvent(
        step=c.step, steps=c.planned, nfe=c.nfe, elapsed=perf_counter() - run.t0,
        committed=tuple(committed), tokens=tuple(c.texts), confidence=tuple(c.confs),
        slot_span=run.slot_span, done=c.done, result=result,
    )


def _guarded(model, ids: torch.Tensor, forward):
    try:
        return forward()
    except torch.OutOfMemoryError as exc:
        if model.device.type == "cuda":
            torch.cuda.empty_cache()
        raise OutOfMemory(
            f"{model.name} ran out of memory on {model.device} with {ids.shape[0]} x {ids.shape[-1]} tokens; "
            "mask less text, use fewer candidates, a shorter document window, or a smaller model or dtype"
        ) from exc


def _tweedie_reveal(model, ids: torch.Tensor, mass: torch.Tensor, expected: float) -> torch.Tensor:
    """Per-row reveal chances of SEDD's analytic step: sigma now from the
    canvas's masked fraction, sigma next from that fraction once the
    schedule's ``expected`` reveals are made (engine.select.tweedie_reveal)."""
    length = ids.numel()
    masked = int((ids == model.mask_id).sum())
    return sel.tweedie_reveal(mass, model.sigma_at(masked / length), model.sigma_at((masked - expected) / length))


def _result(model, request, c: _Candidate, t0: float) -> InfillResult:
    text, spans, pieces = canvas_mod.assemble(model, request, c.canvas, c.slot_ids, c.confs)
    return InfillResult(
        text=text, spans=spans, pieces=pieces, nfe=c.nfe, steps=c.step,
        seconds=perf_counter() - t0, seed=c.seed, revision=request.revision,
    )


# DreamOn: a canvas that grows and shrinks (engine.dreamon) ------------------------
# A policy's rule -> DreamOn's confidence (``alg``, in engine.dreamon.ALGORITHMS' order:
# maskgit_plus, topk_margin, entropy) that ranks the masks the same way: the most probable
# token, top-1 minus top-2, the lowest entropy. Keyed by rule, as no code outside
# engine.policies names a policy (a ``dreamon`` field on Policy would be its home).
DREAMON_ALGORITHMS = dict(zip((policies._most_confident, policies._largest_margin, policies._lowest_entropy),
                              DREAMON_ALGS))
DREAMON_START = 4  # masks an auto insertion starts from
DREAMON_MAX = 64  # tokens an auto span may grow to (DreamOn's README runs max_new_tokens=64)


def dreamon_plan(span: Span, covered: int) -> tuple[int, int]:
    """(masks the canvas starts from, the most tokens the span may hold) for an
    auto-length span: "auto" starts from the covered text's own token count
    (``covered``; DREAMON_START for an insertion) and may grow to
    max(DREAMON_MAX, twice that); "~N" starts from N, up to 2N; a range
    (low, high) starts from low, up to high (DreamOn may still delete below low)."""
    if span.length_range is not None:
        return span.length_range
    if span.about is not None:
        return span.about, 2 * span.about
    start = covered if covered > 0 else DREAMON_START
    return start, max(DREAMON_MAX, 2 * start)


def _dreamon_settings(model, request: InfillRequest, max_new: int):
    from .dreamon import DreamOnSettings

    if len(request.spans) != 1:
        raise InputError(f"{model.name} grows one span per run: give the auto span alone, "
                         f"without the other {len(request.spans) - 1} span(s)")
    if request.instruction is not None:
        raise InputError(f"{model.name} runs an auto-length span without an instruction: "
                         "remove the instruction, or give the span a number of tokens")
    if request.block_length is not None:
        raise InputError(f"{model.name} fills an auto-length span one token at a time, without blocks: "
                         "leave block_length unset")
    alg = DREAMON_ALGORITHMS.get(POLICIES[request.sampler].rule)
    if alg is None:
        usable = ", ".join(p.name for p in POLICIES if p.rule in DREAMON_ALGORITHMS)
        raise InputError(f"the {request.sampler!r} sampler cannot grow a canvas: use one of "
                         f"{usable} for an auto-length span on {model.name}")
    resolve_cache(model, request)  # refuses a cache the family has not
    return DreamOnSettings(
        max_new_tokens=max_new, alg=alg, temperature=float(request.temperature),
        top_p=float(request.top_p) if request.top_p < 1 else None, top_k=request.top_k or None,
        number_transfer_tokens=1)


def _dreamon_steps(model, request: InfillRequest, seeds: tuple[int, ...],
                   cancel: threading.Event | None) -> Iterator[tuple[StepEvent | None, ...]]:
    """One auto span through DreamOn's loop (engine.dreamon.stream_dreamon), seed after seed.

    Per network call a StepEvent whose slots are the span's current tokens
    (their number changes), ``committed`` indices relative to the span, and
    ``expanded``/``deleted`` as StepEvent documents; one token is committed
    per step (DreamOn's tested setting; ``request.steps`` does not apply) and
    ``steps`` is an estimate, the steps so far plus the masks left. A run that
    reaches DreamOn's step cap with masks left drops them and ends with one
    more event (no commits) carrying the result. ``nfe`` counts network calls.
    """
    from .dreamon import DreamOnTokens, stream_dreamon

    t0 = perf_counter()
    span = request.spans[0]
    covered = 0 if span.is_insertion else canvas_mod.token_count(model, request.text, span.start, span.end)
    first, max_new = dreamon_plan(span, covered)
    settings = _dreamon_settings(model, request, max_new)
    # The window is cut for the largest canvas the run may reach, then the span starts from ``first`` masks.
    canvas = canvas_mod.build(model, replace(request, spans=(Span(span.start, span.end, length=max_new),)))
    ids = canvas.ids.tolist()
    prefix_len = int(canvas.slots[0])
    suffix_len = len(ids) - prefix_len - max_new
    ids = ids[:prefix_len] + [model.mask_id] * first + ids[prefix_len + max_new:]
    tokens = DreamOnTokens(model.mask_id, model.expand_id, model.delete_id)
    view = canvas_mod.view_tokens(model, request)
    hook = _dreamon_hook(model, tokens, bool(canvas.no_newline.all()))
    for b, seed in enumerate(seeds):
        gen = torch.Generator(device=model.device).manual_seed(seed)
        confs: list[float | None] = [None] * first
        middle: tuple[int, ...] = tuple(ids[prefix_len:len(ids) - suffix_len])
        runner = stream_dreamon(model.network, ids, tokens, settings, gen, None, hook, view)
        step = 0
        while True:
            if cancel is not None and cancel.is_set():
                return
            record = next(runner, None)
            if record is None:
                break
            step = record.step
            committed = _dreamon_commits(model, record, prefix_len, confs)
            middle = record.middle(prefix_len, suffix_len)
            done = record.masked == 0
            result = _dreamon_result(model, request, canvas, middle, confs, step, seed, t0) if done else None
            yield _only(b, len(seeds), _dreamon_event(model, record, prefix_len, middle, confs, committed,
                                                      step, done, result, t0))
        if tokens.mask_id in middle:  # DreamOn's step cap: what is still masked is left out
            confs = [c for c, t in zip(confs, middle) if t != tokens.mask_id]
            middle = tuple(t for t in middle if t != tokens.mask_id)
            result = _dreamon_result(model, request, canvas, middle, confs, step, seed, t0)
            yield _only(b, len(seeds), StepEvent(
                step=step, steps=step, nfe=step, elapsed=perf_counter() - t0, committed=(),
                tokens=tuple(model.token_text(t) for t in middle), confidence=tuple(confs),
                slot_span=(0,) * len(middle), done=True, result=result))


def _only(b: int, n: int, event: StepEvent) -> tuple[StepEvent | None, ...]:
    return tuple(event if k == b else None for k in range(n))


def _dreamon_hook(model, tokens, no_newline: bool):
    """DreamOn's logits hook: Lacuna's never-generated ids (the mask, the specials, ids that
    are no text, and line breaks where the span may hold none), except expand and delete."""
    profile = model.vocab.profile
    blocked = set(profile.blocked_ids.tolist()) | set(model.special_ids) | {model.mask_id}
    blocked |= set(model.prefix_ids) | set(model.suffix_ids)
    if no_newline:
        blocked |= set(profile.newline_ids.tolist())
    blocked -= {tokens.expand_id, tokens.delete_id}
    forbidden = torch.tensor(sorted(i for i in blocked if 0 <= i < model.vocab_size), dtype=torch.long,
                             device=model.device)

    def hook(logits: torch.Tensor, canvas: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        return sel.suppress(logits, forbidden)

    return hook


def _dreamon_commits(model, record, prefix_len: int, confs: list[float | None]) -> tuple[Commit, ...]:
    """The step's commits as Commits (indices relative to the span, as the step began);
    updates ``confs`` into the frame after the step's deletions and expansions."""
    commits = []
    for (pos, token), p in zip(record.committed, record.probability):
        index = pos - prefix_len
        confs[index] = p
        commits.append(Commit(index, 0, token, model.token_text(token), p))
    for pos in sorted(record.deleted, reverse=True):
        del confs[pos - prefix_len]
    for pos in sorted(record.expanded, reverse=True):
        confs[pos - prefix_len : pos - prefix_len + 1] = [None, None]
    return tuple(commits)


def _dreamon_event(model, record, prefix_len: int, middle: tuple[int, ...], confs: list[float | None],
                   committed: tuple[Commit, ...], step: int, done: bool, result, t0: float) -> StepEvent:
    texts = tuple(None if t == model.mask_id else model.token_text(t) for t in middle)
    return StepEvent(
        step=step, steps=step + record.masked, nfe=step, elapsed=perf_counter() - t0, committed=committed,
        tokens=texts, confidence=tuple(confs), slot_span=(0,) * len(middle), done=done, result=result,
        expanded=tuple(p - prefix_len for p in record.expanded),
        deleted=tuple(p - prefix_len for p in record.deleted))


def _dreamon_result(model, request: InfillRequest, canvas, middle: tuple[int, ...], confs, step: int,
                    seed: int, t0: float) -> InfillResult:
    span, text = request.spans[0], request.text
    fill, bounds = "", []
    if middle:  # an empty span inserts nothing, not even the separator an insertion ends with
        left = text[span.start - 1] if span.start > 0 else ""
        right = text[span.end] if span.end < len(text) else ""
        fill, bounds = canvas_mod.decode_span(model, list(middle), canvas.lead[0], left, right, canvas.trail[0])
    pieces = tuple(TokenPiece(span.start + a, span.start + b, c) for (a, b), c in zip(bounds, confs))
    return InfillResult(
        text=text[:span.start] + fill + text[span.end:], spans=(Span.filled(span.start, span.start + len(fill),
                                                                           len(middle)),),
        pieces=(pieces,), nfe=step, steps=step, seconds=perf_counter() - t0, seed=seed, revision=request.revision)


def infill(model, request: InfillRequest, cancel: threading.Event | None = None) -> InfillResult:
    """Run to the end and return the result; raises Cancelled if stopped."""
    result = None
    for event in stream_infill(model, request, cancel):
        result = event.result
    if result is None:
        raise Cancelled("the infill was stopped before it finished")
    return result
