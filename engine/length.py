"""Auto length: the model chooses how many tokens a mask gets (issue 23).

A masked-diffusion LM fills exactly the canvas it is given, so a mask of the
wrong length gets a fill of the wrong length. Here each auto mask is filled at
a few proposed lengths (``propose_lengths``), every fill is scored by the
model in its context (``score_fill``), and the fills come back ranked, best
first (``infill_auto``). Only the public engine API is used: each length is an
ordinary run of engine.sampler, and the score reads ``model.logits``.

The score (``score_fill``) is the lower-variance Monte Carlo estimate of the
conditional log-likelihood of the masked-diffusion ELBO that LLaDA uses
(Nie et al. 2025, "Large Language Diffusion Models", arXiv:2502.09992,
eq. (6) and its Algorithm 3; reference: ML-GSAI/LLaDA get_log_likelihood.py):
draw l uniformly from 1..n, mask l of the fill's n tokens uniformly, and
weight the masked tokens' log-probabilities by n / l. Its expectation is a
lower bound on log p(fill | context, n) in the model's own terms (the
continuous-time NELBO that MDLM trains, Sahoo et al. 2024, arXiv:2406.07524,
section 3, with the linear schedule LLaDA uses). It is chosen over
a pseudo-log-likelihood (Salazar et al. 2020, arXiv:1910.14659) because PLL
masks one token at a time: the other pieces of a word give that token away,
so PLL overrates fills that split words into many tokens (Kauf & Ivanova 2023,
arXiv:2305.10588), exactly the bias a length choice must not have. The bound
also counts the all-masked case (l = n), where a fill's tokens get no help
from each other. When the 2**n - 1 subsets number at most ``samples`` the
expectation is computed exactly over every subset; beyond that, ``samples``
masks with l stratified over 1..n (as get_log_likelihood.py stratifies it)
share one batched forward pass, drawn from a generator seeded by ``seed``.
The score sees the ``window`` context tokens nearest to the masks (the
canvas's own rule for a smaller view), a cost choice: each scored copy is a
full pass, and on a CPU a batch costs its rows.

Short against long: a sum of log-probabilities favours short fills (every
token costs), so the ranking uses the bound divided by n**alpha, GNMT's
length normalisation in its simplest form (Wu et al. 2016, arXiv:1609.08144,
section 7): alpha = 1 is nats per token, alpha = 0 the plain sum. The default
0.5 is what engine.bench.length found best on the starter's held-out split:
the sum picks too few tokens for 2-8-word spans, the per-token mean too many
for single words.

Cost: each length is one run (the family's context cache applies) and the
scores of runs with equal canvas lengths share one batched forward pass;
``AutoResult.nfe`` counts every forward pass (generation and scoring).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from time import perf_counter

import torch

from . import canvas as canvas_mod
from .errors import Cancelled, InputError, OutOfMemory
from .models import vocab
from .models.serial import model_lock
from .sampler import stream_infill
from .schedules import MAX_STEPS
from .types import InfillRequest, InfillResult, Span

AUTO = "auto"
ABOUT_BAND = (0.5, 0.75, 1.0, 1.25, 1.5)  # "about N": these multiples of N
INSERTION_LENGTHS = (1, 2, 4, 8, 16)  # tokens: a word, a phrase, a clause, a sentence, two
MAX_PROPOSALS = 5
DEFAULT_SAMPLES = 4  # Monte Carlo masks per fill; n <= 2 (at most 3 subsets) is scored exactly
DEFAULT_ALPHA = 0.5  # between the sum (0) and nats per token (1); engine.bench.length compares them
DEFAULT_WINDOW = 128  # context tokens the score sees around the masks (None: the run's whole view)


# proposals --------------------------------------------------------------------
def propose_lengths(*, covered: int | None = None, words: int | None = None, about: int | None = None,
                    lower: int | None = None, upper: int | None = None, room: int | None = None,
                    limit: int = MAX_PROPOSALS) -> tuple[int, ...]:
    """The candidate token counts of one mask, ascending, at most ``limit``.

    - ``about=N`` ("about N tokens"): N and a band around it, N * (1/2, 3/4,
      1, 5/4, 3/2) rounded: a guess that is off by half either way is still tried.
    - ``lower``/``upper`` (a range): both ends and up to ``limit - 2``
      geometrically spaced counts between them.
    - a selection (``covered`` = the covered text's own token count, ``words``
      its words): that count, and 1, 1.5 and 2 tokens per word: a common word
      is one byte-level BPE token, a rarer one 2-3, and the complaint this
      answers is a one-word selection ("Thursday", 4 starter tokens) filled
      with several words. A selection of one word tries 1, 2 and 3 tokens and
      its own count; the covered count is always tried, so a fill of the
      original's length competes.
    - an insertion (nothing covered): INSERTION_LENGTHS, 1 to 16 tokens.

    ``room`` caps every proposal (the tokens the context has left for this
    mask). Raises InputError when nothing fits, ``limit`` < 2, or the
    arguments contradict.
    """
    if limit < 2:
        raise InputError(f"propose at least 2 lengths, not {limit}")
    if about is not None:
        if about < 1:
            raise InputError(f"'about {about} tokens' needs a count of at least 1")
        picks = {max(1, round(about * f)) for f in ABOUT_BAND}
        keep = {about}
    elif lower is not None or upper is not None:
        if lower is None or upper is None or not 1 <= lower <= upper:
            raise InputError(f"a length range needs 1 <= low <= high, got {lower}..{upper}")
        picks = {lower, upper} | _geometric(lower, upper, max(0, limit - 2))
        keep = {lower, upper}
    elif covered is not None and covered >= 1:
        w = max(1, words or 1)
        picks = {covered, w, math.ceil(1.5 * w), 2 * w} | ({3} if w == 1 else set())
        keep = {covered, w}
    else:
        picks = set(INSERTION_LENGTHS)
        keep = set()
    if room is not None:
        if room < 1:
            raise InputError("the context has no room left for this mask; mask less text or shorten the others")
        picks = {min(p, room) for p in picks}
        keep = {min(k, room) for k in keep}
    return _thin(sorted(picks), keep, limit)


def _geometric(lo: int, hi: int, k: int) -> set[int]:
    if k <= 0 or hi <= lo:
        return set()
    ratio = (hi / lo) ** (1.0 / (k + 1))
    return {min(hi, max(lo, round(lo * ratio ** j))) for j in range(1, k + 1)}


def _thin(values: list[int], keep: set[int], limit: int) -> tuple[int, ...]:
    """At most ``limit`` of ``values``: those in ``keep``, then the others spread evenly."""
    if len(values) <= limit:
        return tuple(values)
    rest = [v for v in values if v not in keep]
    want = max(0, limit - len(keep & set(values)))
    picked = {rest[round(j * (len(rest) - 1) / max(1, want - 1))] for j in range(want)} if want else set()
    return tuple(sorted((keep & set(values)) | picked))


def covered_ids(model, text: str, start: int, end: int) -> tuple[int, ...]:
    """The token ids the canvas gives the covered text [start, end): what a fill
    equal to the original consists of (a space before the span travels with it,
    as engine.canvas tokenises a span)."""
    moved = canvas_mod.moves_space(model.tokenizer) and start > 0 and text[start - 1] == " "
    source = (" " if moved else "") + text[start:end]
    at_start = (start - 1 if moved else start) == 0
    return tuple(vocab.encode(model.tokenizer, source, at_start))


def lengths_for(model, request: InfillRequest, index: int, spec: object = AUTO) -> tuple[int, ...]:
    """``propose_lengths`` for span ``index`` of ``request``.

    ``spec``: "auto"; an int N or the string "~N" for about N tokens; a pair
    (low, high) for a range. Raises InputError for any other spec."""
    span = request.spans[index]
    frame = len(model.prefix_ids) + len(model.suffix_ids)
    view = canvas_mod.view_tokens(model, request)
    others = sum(_fixed_length(model, request, j) for j in range(len(request.spans)) if j != index)
    room = view - frame - others
    about = _about(spec)
    if about is not None:
        return propose_lengths(about=about, room=room)
    if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(v, int) for v in spec):
        return propose_lengths(lower=spec[0], upper=spec[1], room=room)
    if spec != AUTO:
        raise InputError(f"unknown length {spec!r}: use 'auto', about N tokens ('~N'), or a range (low, high)")
    if span.is_insertion:
        return propose_lengths(room=room)
    covered = len(covered_ids(model, request.text, span.start, span.end))
    words = len(request.text[span.start:span.end].split())
    return propose_lengths(covered=covered, words=words, room=room)


def _about(spec: object) -> int | None:
    if isinstance(spec, int) and not isinstance(spec, bool):
        return spec
    if isinstance(spec, str) and spec.startswith("~") and spec[1:].isdigit():
        return int(spec[1:])
    return None


def _fixed_length(model, request: InfillRequest, j: int) -> int:
    """The most tokens span ``j`` may take: its length, or for an auto span the longest it
    may be given (about N: N's band; a range: its top; auto: its text's count, or the
    longest insertion length), so another span's proposals leave it room."""
    span = request.spans[j]
    if isinstance(span.length, int) and not isinstance(span.length, bool):
        return span.length
    covered = max(1, len(covered_ids(model, request.text, span.start, span.end))) if span.end > span.start else 0
    if span.about is not None:
        return max(1, round(span.about * ABOUT_BAND[-1]))
    if span.length_range is not None:
        return span.length_range[1]
    if span.is_auto:
        return max(covered, max(INSERTION_LENGTHS))
    return covered or 1


# scoring ----------------------------------------------------------------------
@dataclass(frozen=True)
class FillScore:
    """The model's score of one fill in its context.

    ``bound``: the ELBO estimate of log p(fill | context, n), nats (<= 0 in
    expectation); ``score``: ``bound / n**alpha``, the ranking key (higher is
    better); ``length``: n tokens; ``rows``: the masked copies scored."""

    length: int
    bound: float
    score: float
    rows: int


def score_fill(model, request: InfillRequest, index: int, slot_ids: Sequence[int], *,
               samples: int = DEFAULT_SAMPLES, seed: int = 0, alpha: float = DEFAULT_ALPHA,
               window: int | None = DEFAULT_WINDOW) -> FillScore:
    """Score span ``index`` of a filled canvas (see the module docstring).

    ``request``: the request as run (every span's length set, or None for the
    covered text's own count); ``slot_ids``: the token id of every masked
    slot of its canvas, document order (what the run committed). The other
    spans keep their fills as context; ``window``: the context tokens nearest
    to the masks that the score sees (None: the request's whole view; fewer
    tokens make every scored copy cheaper). Deterministic for a given ``seed``.
    Costs one forward pass (``model.batches``), else one per scored copy.
    Raises InputError when ``slot_ids`` does not match the canvas."""
    (score,), _ = _score_many(model, [(request, index, tuple(slot_ids))], samples, seed, alpha, window)
    return score


@dataclass(frozen=True)
class _Copies:
    """The masked copies of one filled canvas: ids [R, L], the span's canvas
    positions [n] and its true tokens [n], which of them each copy masks
    [R, n], and each copy's weight (the probability of its mask under the
    estimator, times n / l)."""

    rows: torch.Tensor
    positions: torch.Tensor
    truth: torch.Tensor
    mask: torch.Tensor
    weights: torch.Tensor


def _canvas_rows(model, request: InfillRequest, index: int, slot_ids: tuple[int, ...],
                 samples: int, seed: int, view: int | None) -> _Copies:
    if view is not None and (request.context_tokens is None or view < request.context_tokens):
        # the masks stay whole in a smaller view (engine.canvas keeps the nearest context)
        request = replace(request, context_tokens=view)
    edits = any(s.strength < 1.0 for s in request.spans)
    canvas = canvas_mod.build(model, request, torch.Generator().manual_seed(request.seed) if edits else None)
    if len(slot_ids) != canvas.slots.numel():
        raise InputError(f"the fill has {len(slot_ids)} tokens but the canvas has {canvas.slots.numel()} slots")
    ids = canvas.ids.clone()
    ids[canvas.slots] = torch.tensor(slot_ids, dtype=torch.long)
    mine = torch.tensor(canvas.span_slots[index], dtype=torch.long)
    positions = canvas.slots[mine]
    n = positions.numel()
    if 2 ** n - 1 <= samples:  # every subset, weighted by its probability: the exact expectation
        masks, weights = [], []
        for size in range(1, n + 1):
            for subset in combinations(range(n), size):
                row = torch.zeros(n, dtype=torch.bool)
                row[list(subset)] = True
                masks.append(row)
                weights.append((1.0 / n) / math.comb(n, size) * (n / size))
    else:  # l stratified over 1..n across the copies, positions uniform
        gen = torch.Generator().manual_seed(seed)
        offset = int(torch.randint(n, (), generator=gen))
        masks, weights = [], []
        for r in range(samples):
            size = 1 + (offset + (r * n) // samples) % n
            row = torch.zeros(n, dtype=torch.bool)
            row[torch.randperm(n, generator=gen)[:size]] = True
            masks.append(row)
            weights.append((n / size) / samples)
    mask = torch.stack(masks)
    rows = ids.unsqueeze(0).repeat(mask.shape[0], 1)
    rows[:, positions] = torch.where(mask, model.mask_id, ids[positions])
    return _Copies(rows, positions, ids[positions], mask, torch.tensor(weights, dtype=torch.float64))


def _score_many(model, items: list[tuple[InfillRequest, int, tuple[int, ...]]], samples: int, seed: int,
                alpha: float, window: int | None) -> tuple[list[FillScore], int]:
    """Scores of several filled canvases; those of equal canvas length share one
    forward pass when the model batches. Returns (scores, forward passes)."""
    # One view for every item: fills of different lengths in a long text then
    # give canvases of one length, which share a pass.
    view = None if window is None else (max(len(ids) for _, _, ids in items) + window
                                        + len(model.prefix_ids) + len(model.suffix_ids))
    built = [_canvas_rows(model, req, i, ids, samples, seed, view) for req, i, ids in items]
    groups: dict[int, list[int]] = {}
    for k, c in enumerate(built):
        groups.setdefault(c.rows.shape[1], []).append(k)
    bounds = [0.0] * len(items)
    passes = 0
    device = model.device
    with model_lock(model):
        for members in groups.values():
            if model.batches:
                rows = torch.cat([built[k].rows for k in members]).to(device)
                # one pass over the union of the spans' positions; each copy reads its own
                want = torch.unique(torch.cat([built[k].positions for k in members]))
                logp = torch.log_softmax(_logits(model, rows, want.to(device)).float(), dim=-1).cpu()
                passes += 1
                at = 0
                for k in members:
                    c = built[k]
                    r = c.rows.shape[0]
                    bounds[k] = _bound(logp[at:at + r][:, torch.searchsorted(want, c.positions)], c)
                    at += r
            else:
                for k in members:
                    c = built[k]
                    logp = torch.stack([torch.log_softmax(_logits(model, row.to(device), c.positions.to(device))
                                                          .float(), -1).cpu() for row in c.rows])
                    passes += c.rows.shape[0]
                    bounds[k] = _bound(logp, c)
    scores = [FillScore(length=c.positions.numel(), bound=bounds[k],
                        score=bounds[k] / c.positions.numel() ** alpha, rows=c.rows.shape[0])
              for k, c in enumerate(built)]
    return scores, passes


def _logits(model, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    try:
        return model.logits(ids, positions)
    except torch.OutOfMemoryError:
        if model.device.type == "cuda":
            torch.cuda.empty_cache()
        rows = 1 if ids.dim() == 1 else ids.shape[0]
        raise OutOfMemory(
            f"{model.name} ran out of memory on {model.device} scoring {rows} x {ids.shape[-1]} tokens; "
            "try fewer lengths, a smaller score window or sample count, or the path score"
        ) from None


def _bound(logp: torch.Tensor, c: _Copies) -> float:
    """The estimate: sum over copies of weight * the masked tokens' log-probabilities. logp [R, n, V]."""
    picked = logp.gather(-1, c.truth.view(1, -1, 1).expand(logp.shape[0], -1, 1)).squeeze(-1)  # [R, n]
    per_copy = (picked.double() * c.mask).sum(-1)
    return float((per_copy * c.weights).sum())


# auto-length infill -------------------------------------------------------------
@dataclass(frozen=True)
class LengthChoice:
    """One length tried for a mask: the fill at that length and its scores.

    ``score``: the ranking key (higher is better: ``bound`` or ``path``,
    divided by length**alpha); ``bound``: the ELBO estimate of
    log p(fill | context, length), nats; ``path``: the sum of the log
    confidences the run committed its tokens with, nats (no extra pass; with
    one token per step it is the likelihood of the fill in the order it was
    decoded); ``result``: the whole run's result at this length."""

    length: int
    score: float
    bound: float | None
    path: float
    result: InfillResult


@dataclass(frozen=True)
class SpanLengths:
    """The lengths tried for request span ``span``, best first."""

    span: int
    ranked: tuple[LengthChoice, ...]

    @property
    def best(self) -> LengthChoice:
        return self.ranked[0]


@dataclass(frozen=True)
class AutoResult:
    """An auto-length infill. ``result``: every auto span at its winning length;
    ``choices``: per auto span (document order), the lengths tried, best first
    (span k's alternatives were run with the spans before it at their winning
    lengths and those after it at their middle proposal); ``nfe``: every
    forward pass, the runs' and the scoring's; ``runs``: infill runs made;
    ``scoring_nfe`` / ``scoring_seconds``: the part of ``nfe`` / ``seconds``
    spent scoring (0 with the path score)."""

    result: InfillResult
    choices: tuple[SpanLengths, ...]
    nfe: int
    runs: int
    seconds: float
    scoring_nfe: int = 0
    scoring_seconds: float = 0.0

    @property
    def length(self) -> tuple[int, ...]:
        return tuple(c.best.length for c in self.choices)


SCORES = ("elbo", "path")


def infill_auto(model, request: InfillRequest, lengths: Mapping[int, object] | None = None, *,
                score: str = "elbo", samples: int = DEFAULT_SAMPLES, alpha: float = DEFAULT_ALPHA,
                window: int | None = DEFAULT_WINDOW, cancel: threading.Event | None = None) -> AutoResult:
    """Fill the auto spans of ``request`` at several lengths each and rank the fills.

    ``lengths``: request span index -> "auto", about N ("~N" or an int N) or
    a range (low, high); None makes every span auto but edits. Spans not named keep
    their own length (an insertion's placeholder length is ignored when the
    span is auto). Each proposed length is one run with the request's
    settings; ``score`` "elbo" ranks by the ELBO bound (``score_fill``),
    "path" by the run's own commit confidences (no extra forward pass);
    ``samples``, ``alpha`` and ``window`` as in ``score_fill``.
    Deterministic for a given request. Raises InputError for an edit
    (strength < 1) made auto or an unknown score, Cancelled when ``cancel``
    is set, and whatever a run raises (ContextTooLong, OutOfMemory).
    """
    if score not in SCORES:
        raise InputError(f"unknown length score {score!r}; choose one of: {', '.join(SCORES)}")
    t0 = perf_counter()
    if lengths is None:
        lengths = dict.fromkeys((i for i, s in enumerate(request.spans) if s.strength == 1.0), AUTO)
    specs = dict(lengths)
    for i in specs:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(request.spans):
            raise InputError(f"there is no span {i!r}: the request has {len(request.spans)}")
        if request.spans[i].strength < 1.0:
            raise InputError(f"span {i} is an edit (strength < 1), which keeps its own length; it cannot be auto")
    order = sorted(specs, key=lambda i: (request.spans[i].start, request.spans[i].end))
    proposals = {i: lengths_for(model, request, i, specs[i]) for i in order}
    chosen = {i: proposals[i][len(proposals[i]) // 2] for i in order}
    nfe = runs = scoring_nfe = 0
    scoring_seconds = 0.0
    choices: list[SpanLengths] = []
    for i in order:
        tried: list[tuple[InfillRequest, InfillResult, tuple[int, ...], float]] = []
        for n in proposals[i]:
            req = with_lengths(request, {**chosen, i: n})
            result, slot_ids, path = _run(model, req, cancel)
            nfe += result.nfe
            runs += 1
            tried.append((req, result, slot_ids, path))
        bounds: list[float | None] = [None] * len(tried)
        if score == "elbo":
            t1 = perf_counter()
            scored, passes = _score_many(model, [(req, i, ids) for req, _, ids, _ in tried], samples,
                                         request.seed, alpha, window)
            scoring_seconds += perf_counter() - t1
            scoring_nfe += passes
            nfe += passes
            bounds = [s.bound for s in scored]
        ranked = []
        for (req, result, _, path), n, bound in zip(tried, proposals[i], bounds):
            key = (bound if bound is not None else path) / n ** alpha
            ranked.append(LengthChoice(length=n, score=key, bound=bound, path=path, result=result))
        ranked.sort(key=lambda c: (-c.score, c.length))
        chosen[i] = ranked[0].length
        choices.append(SpanLengths(span=i, ranked=tuple(ranked)))
    best = choices[-1].best.result if choices else _run(model, request, cancel)[0]
    return AutoResult(result=best, choices=tuple(choices), nfe=nfe, runs=runs, seconds=perf_counter() - t0,
                      scoring_nfe=scoring_nfe, scoring_seconds=scoring_seconds)


def with_lengths(request: InfillRequest, lengths: Mapping[int, int]) -> InfillRequest:
    """``request`` with span k at ``lengths[k]`` tokens, and at least one step per
    masked token of a given length (up to MAX_STEPS): a length tried is filled one
    token a step, so a long one is not judged by a rushed fill (the request's own
    steps when they are more)."""
    spans = tuple(Span(s.start, s.end, length=lengths[k], strength=s.strength) if k in lengths else s
                  for k, s in enumerate(request.spans))
    tokens = sum(s.length for s in spans if isinstance(s.length, int) and not isinstance(s.length, bool))
    return replace(request, spans=spans, steps=max(request.steps, min(tokens, MAX_STEPS)))


def _run(model, request: InfillRequest, cancel) -> tuple[InfillResult, tuple[int, ...], float]:
    """One run: its result, the token id of every slot, and the sum of log commit confidences."""
    edits = any(s.strength < 1.0 for s in request.spans)
    canvas = canvas_mod.build(model, request, torch.Generator().manual_seed(request.seed) if edits else None)
    slot_ids = canvas.ids[canvas.slots].tolist()
    path = 0.0
    result = None
    for event in stream_infill(model, request, cancel):
        for c in event.committed:
            slot_ids[c.index] = c.token_id
            path += math.log(max(c.confidence, 1e-45))
        result = event.result
    if result is None:
        raise Cancelled("the infill was stopped before it finished")
    return result, tuple(slot_ids), path


# EOS padding --------------------------------------------------------------------
@dataclass(frozen=True)
class EosFill:
    """A fill of up to ``budget`` tokens with the end-of-text token allowed.

    ``text``: the document with the fill (cut at its first EOS); ``length``:
    tokens kept; ``eos``: EOS tokens the model placed; ``inner``: whether text
    tokens came after the first EOS (cut off); ``nfe``: forward passes."""

    text: str
    fill: str
    length: int
    eos: int
    inner: bool
    nfe: int


def infill_eos_padded(model, request: InfillRequest, budget: int,
                      cancel: threading.Event | None = None) -> EosFill:
    """LLaDA's SFT answer to an unknown length (Nie et al. 2025, section 2.3: responses
    padded with |EOS|, generation cut at the first EOS): fill the request's one
    span with ``budget`` masks, EOS allowed, then drop everything from the first EOS.

    Greedy, one token per step, most confident first (``low_confidence``, as
    engine.bench.restore's bare-network restore), every token id that is no
    text blocked except EOS, line breaks only where the span has one. A
    measurement path: engine.sampler blocks EOS in every span, so the editor needs
    the sampler wiring named in engine.bench.length's report before it can offer
    this. Raises InputError for a request with other than one span, or a model
    without an EOS token."""
    if len(request.spans) != 1:
        raise InputError("EOS padding fills one span at a time; give one span")
    eos = getattr(model.tokenizer, "eos_token_id", None)
    if eos is None:
        raise InputError(f"{model.name} has no end-of-text token to pad with")
    req = with_lengths(request, {0: budget})
    canvas = canvas_mod.build(model, req)
    profile = vocab.profile(model.tokenizer, model.vocab_size)
    blocked = (set(profile.blocked_ids.tolist()) | set(model.special_ids) | {model.mask_id}) - {eos}
    blocked_ids = torch.tensor(sorted(b for b in blocked if 0 <= b < model.vocab_size), dtype=torch.long)
    span = request.spans[0]
    if not any(c in "\n\r" for c in request.text[span.start:span.end]):
        blocked_ids = torch.unique(torch.cat([blocked_ids, profile.newline_ids]))
    device = model.device
    ids = canvas.ids.to(device)
    slots = canvas.slots.to(device)
    open_rows = torch.arange(slots.numel(), device=device)
    nfe = 0
    with model_lock(model):
        while open_rows.numel():
            if cancel is not None and cancel.is_set():
                raise Cancelled("the infill was stopped before it finished")
            logits = model.logits(ids, slots[open_rows]).float().clone()
            nfe += 1
            logits[:, blocked_ids.to(device)] = -math.inf
            conf, tokens = torch.softmax(logits, -1).max(-1)
            j = int(conf.argmax())
            ids[slots[open_rows[j]]] = tokens[j]
            open_rows = torch.cat([open_rows[:j], open_rows[j + 1:]])
    fill_ids = ids[slots].tolist()
    cut = fill_ids.index(eos) if eos in fill_ids else len(fill_ids)
    kept = fill_ids[:cut]
    left = request.text[span.start - 1] if span.start > 0 else ""
    right = request.text[span.end] if span.end < len(request.text) else ""
    fill, _ = canvas_mod.decode_span(model, kept, canvas.lead[0], left, right, canvas.trail[0]) if kept else ("", [])
    text = request.text[:span.start] + fill + request.text[span.end:]
    return EosFill(text=text, fill=fill, length=len(kept), eos=fill_ids.count(eos),
                   inner=any(t != eos for t in fill_ids[cut:]), nfe=nfe)
