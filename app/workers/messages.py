"""What workers send to the GUI thread: frozen dataclasses of plain, immutable data.

Each signal of a worker carries one of these, so a slot reads fields by name
(never a tuple by position or by length). The model handle in ModelLoaded is
opaque: the GUI passes it back to the infill worker and never touches it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Steps:
    """StepEvents of run ``run_id``, in order, sent together (InfillWorker.step)."""

    run_id: int
    events: tuple  # of engine.types.StepEvent


@dataclass(frozen=True)
class CandidateRun:
    """Another candidate computed in the same batch as the one streamed live."""

    events: tuple  # of StepEvent
    result: object  # engine.types.InfillResult


@dataclass(frozen=True)
class Finished:
    """Run ``run_id`` ended with ``result`` (InfillWorker.finished); ``others``: the
    candidates that ran in one batch with it, in the batch's order."""

    run_id: int
    result: object  # InfillResult
    others: tuple[CandidateRun, ...] = ()


@dataclass(frozen=True)
class Failed:
    """Run ``run_id`` failed; ``message`` is one sentence for the user (InfillWorker.failed)."""

    run_id: int
    message: str


@dataclass(frozen=True)
class ModelLoaded:
    """A model load succeeded: the model handle and its ModelInfo."""

    model: object
    info: object  # app.workers.model.ModelInfo


@dataclass(frozen=True)
class LoadFailed:
    """A model load failed; ``message`` names the folder or file and the fix."""

    message: str
