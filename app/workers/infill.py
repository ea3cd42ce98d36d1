"""The infill worker: iterates engine.stream_infill and emits every StepEvent."""
from __future__ import annotations

import logging
import threading
import time
import traceback

from PySide6.QtCore import QObject, Signal, Slot

from .messages import CandidateRun, Failed, Finished, Steps

log = logging.getLogger(__name__)


def readable_error(exc: BaseException) -> str:
    """A message a person can act on, for any exception out of the engine."""
    try:
        from lacuna.engine.errors import ContextTooLong, LacunaError, ModelLoadError
    except Exception:  # engine not importable: fall through to generic handling
        LacunaError = ContextTooLong = ModelLoadError = ()  # type: ignore[assignment]
    text = str(exc).strip() or type(exc).__name__
    if ContextTooLong and isinstance(exc, ContextTooLong):
        return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
    if ModelLoadError and isinstance(exc, ModelLoadError):
        return f"The model could not be loaded: {text}"
    if LacunaError and isinstance(exc, LacunaError):
        return text
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return ("Out of memory while running the model. Try fewer masked tokens, fewer candidates, "
                "or a smaller model.")
    return f"Unexpected error ({type(exc).__name__}): {text}"


def _user_caused(exc: BaseException) -> bool:
    try:
        from lacuna.engine.errors import InputError
    except Exception:  # noqa: BLE001
        return False
    return isinstance(exc, InputError)


class InfillWorker(QObject):
    """Runs one request at a time. Signals carry the messages of app.workers.messages.

    Events are sent in batches at most every ``min_interval`` seconds (the
    first and the last at once): every event reaches the GUI, in order, but a
    fast model does not wake the GUI thread, and contend for the GIL, at every
    step.
    """

    step = Signal(object)  # Steps
    finished = Signal(object)  # Finished
    cancelled = Signal(int)  # run_id
    failed = Signal(object)  # Failed

    def __init__(self, stream=None, min_interval: float = 0.06) -> None:
        super().__init__()
        self._stream = stream
        self.min_interval = min_interval
        # The engine's own stream can run several candidates in one batch
        # (engine.sampler.stream_candidates); an injected stream runs one.
        self.can_batch = stream is None or getattr(stream, "__module__", "") == "lacuna.engine.sampler"

    def _stream_fn(self):
        if self._stream is None:
            from lacuna.engine import stream_infill  # imported on the worker thread

            self._stream = stream_infill
        return self._stream

    @Slot(int, object, object, object)
    def run(self, run_id: int, model, request, cancel: threading.Event) -> None:
        """``request``: one InfillRequest, or a tuple of them that differ only in
        their seeds (candidates, run in one batch). In a batch the first
        candidate streams its events live; ``finished`` then carries the others'
        events and results in Finished.others."""
        if cancel.is_set():
            self.cancelled.emit(run_id)
            return
        others: list[list] = []
        try:
            if isinstance(request, tuple):
                stream = _Batch(request, others)
                request = request[0]
            else:
                stream = self._stream_fn()
            result = None
            batch: list = []
            sent = 0.0
            for ev in stream(model, request, cancel=cancel):
                batch.append(ev)
                now = time.perf_counter()
                if ev.done or now - sent >= self.min_interval:
                    self.step.emit(Steps(run_id, tuple(batch)))
                    batch, sent = [], now
                if ev.done:
                    result = ev.result
                    break
                if cancel.is_set():
                    break
            if result is not None and others:
                stream.finish()  # the others may still be running after the first finished
                extras = tuple(CandidateRun(tuple(evs), evs[-1].result if evs else None) for evs in others)
                if cancel.is_set() or any(x.result is None for x in extras):
                    self.cancelled.emit(run_id)
                else:
                    self.finished.emit(Finished(run_id, result, extras))
            elif result is not None:
                self.finished.emit(Finished(run_id, result))
            elif cancel.is_set():
                self.cancelled.emit(run_id)
            else:
                self.failed.emit(Failed(run_id, "The run ended without a result."))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message
            if type(exc).__name__ == "Cancelled":
                self.cancelled.emit(run_id)
                return
            if _user_caused(exc):  # the message says it all; no traceback for a user's input
                log.info("infill refused: %s", exc)
            else:
                log.error("infill failed:\n%s", traceback.format_exc())
            self.failed.emit(Failed(run_id, readable_error(exc)))


class _Batch:
    """Adapts stream_candidates to the worker's one-candidate loop: yields the
    first candidate's events and keeps the others' in ``others``."""

    def __init__(self, requests: tuple, others: list[list]) -> None:
        from lacuna.engine.sampler import stream_candidates  # imported on the worker thread

        self._seeds = [r.seed for r in requests]
        self._stream_candidates = stream_candidates
        self._others = others
        others.extend([] for _ in requests[1:])
        self._it = None

    def __call__(self, model, request, cancel=None):
        self._it = self._stream_candidates(model, request, self._seeds, cancel)
        for events in self._it:
            self._keep(events)
            if events[0] is not None:
                yield events[0]

    def _keep(self, events) -> None:
        for evs, ev in zip(self._others, events[1:]):
            if ev is not None:
                evs.append(ev)

    def finish(self) -> None:
        for events in self._it:
            self._keep(events)
