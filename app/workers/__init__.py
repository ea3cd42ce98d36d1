"""Workers: one QObject per kind of job, each moved to a QThread its owner made.

Only immutable plain data crosses threads (requests, StepEvents, results, str);
the model object is an opaque handle the GUI passes back to the infill worker
and never touches. Cancellation is a threading.Event set from the GUI thread.
"""
from .infill import InfillWorker, readable_error
from .model import ModelInfo, ModelWorker

__all__ = ["InfillWorker", "ModelInfo", "ModelWorker", "readable_error"]
