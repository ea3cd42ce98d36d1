"""A hand-made stand-in for engine.stream_infill: plain StepEvents, no model."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from lacuna.engine.types import Commit, InfillResult, LengthTried, Span, StepEvent, TokenPiece

WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]


class FakeModel:
    name = "fake-model"
    path = None  # no folder: no chat template
    tokenizer = None  # counts fall back to characters / 4
    cache_modes = ()
    device = "cpu"
    dtype = "float32"
    context_length = 512


def fake_loader(spec: str):
    if spec == "broken":
        from lacuna.engine.errors import ModelLoadError

        raise ModelLoadError("no model at 'broken'")
    return FakeModel()


def make_stream(step_delay: float = 0.0, on_step=None):
    """A stream_infill replacement. ``step_delay`` stands in for a forward pass
    (waited on the cancel event, so Stop is seen at once); ``on_step(n)`` runs
    before forward pass n.

    An auto-length span (Span.is_auto) gets N tokens for "~N", else one a word of
    its covered text (two for an insertion); the result's ``lengths`` then lists
    that count and two others, best first, each with a fill of its own, as
    engine.length ranks them."""

    def stream(model, request, cancel: threading.Event | None = None):
        cancel = cancel or threading.Event()
        slot_span: list[int] = []
        for i, sp in enumerate(request.spans):
            slot_span += [i] * _count(request, sp)
        n = len(slot_span)
        seed = request.seed
        words = [WORDS[(seed + j) % len(WORDS)] for j in range(n)]
        tokens: list[str | None] = [None] * n
        confs: list[float | None] = [None] * n
        order = list(range(n))[::-1]
        steps = min(request.steps, n)
        per = [n // steps + (1 if k < n % steps else 0) for k in range(steps)]
        nfe = 0
        for step, k in enumerate(per, 1):
            if cancel.is_set():
                return
            if on_step is not None:
                on_step(step)
            if step_delay and cancel.wait(step_delay):
                return
            nfe += 1
            committed = []
            for _ in range(k):
                j = order.pop(0)
                c = 0.5 + 0.5 * ((j * 37 + seed) % 10) / 10
                tokens[j], confs[j] = " " + words[j], c
                committed.append(Commit(j, slot_span[j], 100 + j, " " + words[j], c))
            done = step == len(per)
            result = _with_lengths(request, _result(request, slot_span, words, confs, nfe), slot_span,
                                   nfe) if done else None
            yield StepEvent(step, len(per), nfe, 0.01 * step, tuple(committed), tuple(tokens), tuple(confs),
                            tuple(slot_span), done, result)

    return stream


def _count(request, sp) -> int:
    """The tokens the fake writes in span ``sp`` (the best length of an auto span)."""
    if sp.about is not None:
        return sp.about
    if sp.length_range is not None:
        return sp.length_range[0]
    if isinstance(sp.length, int):
        return sp.length
    return max(1, len(request.text[sp.start:sp.end].split())) if sp.end > sp.start else 2


def _with_lengths(request, result, slot_span, nfe):
    """``result`` with the lengths tried for each auto span: the fill's own count first,
    then one more and one fewer (or two more), scored lower each, each a whole fill."""
    lengths = []
    for i, sp in enumerate(request.spans):
        if not sp.is_auto:
            lengths.append(())
            continue
        best = slot_span.count(i)
        others = [best + 1, best - 1 if best > 1 else best + 2]
        tried = [LengthTried(best, -1.0, result)]
        for k, n in enumerate(others, 1):
            slots = [s for s in slot_span if s < i] + [i] * n + [s for s in slot_span if s > i]
            words = [WORDS[(request.seed + 3 * k + j) % len(WORDS)] for j in range(len(slots))]
            alt = _result(request, slots, words, [0.5] * len(slots), nfe)
            tried.append(LengthTried(n, -1.0 - 0.25 * k, alt))
        lengths.append(tuple(tried))
    if not any(lengths):
        return result
    return InfillResult(result.text, result.spans, result.pieces, result.nfe, result.steps, result.seconds,
                        result.seed, result.revision, lengths=tuple(lengths))


def _result(request, slot_span, words, confs, nfe):
    text, parts, pos, spans, pieces = request.text, [], 0, [], []
    length = 0
    for i, sp in enumerate(request.spans):
        outside = text[pos:sp.start]
        parts.append(outside)
        length += len(outside)
        js = [j for j, s in enumerate(slot_span) if s == i]
        fill, ps = "", []
        for j in js:
            w = (" " if fill else "") + words[j]
            a = length + len(fill) + (1 if fill else 0)
            fill += w
            ps.append(TokenPiece(a, length + len(fill), confs[j]))
        spans.append(Span(length, length + len(fill), length=len(js)))
        pieces.append(tuple(ps))
        parts.append(fill)
        length += len(fill)
        pos = sp.end
    parts.append(text[pos:])
    return InfillResult("".join(parts), tuple(spans), tuple(pieces), nfe, nfe, 0.01 * nfe, request.seed,
                        request.revision)


STARTER = Path(__file__).resolve().parents[2] / "resources" / "models" / "starter" / "model.safetensors"


class StallProbe:
    """A QTimer ticking every few milliseconds on the GUI thread: the longest
    gap between two ticks is the worst event-loop stall (wall clock: it grows
    with the machine's load), and ``busy`` holds the GUI thread's own CPU time
    spent in each gap (``time.thread_time``: the work our handlers do there,
    which the load does not inflate)."""

    def __init__(self, interval_ms: int = 5) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self.busy: list[float] = []
        self._last = 0.0
        self._last_cpu = 0.0
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.gaps.append(now - self._last)
        self.busy.append(cpu - self._last_cpu)
        self._last, self._last_cpu = now, cpu

    def start(self) -> None:
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
