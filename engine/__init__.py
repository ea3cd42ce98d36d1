"""Lacuna's engine: masked-diffusion infilling, streamed step by step. No Qt here.

``import engine`` is cheap: torch and transformers load only when a function
that needs them is first used, so a GUI can import the types on its main thread.
"""
from __future__ import annotations

__version__ = "0.2.0"  # the one place the version is set (pyproject reads it)

from .errors import Cancelled, ContextTooLong, InputError, LacunaError, ModelLoadError, OutOfMemory
from .types import SAMPLERS, Commit, InfillRequest, InfillResult, Span, StepEvent, TokenPiece

_LAZY = {
    "load_model": ("lacuna.engine.models.loader", "load_model"),
    "ModelAdapter": ("lacuna.engine.models.base", "ModelAdapter"),  # what load_model returns, to type against
    "stream_infill": ("lacuna.engine.sampler", "stream_infill"),
    "infill": ("lacuna.engine.sampler", "infill"),
    "stream_candidates": ("lacuna.engine.sampler", "stream_candidates"),
    "infill_candidates": ("lacuna.engine.sampler", "infill_candidates"),
    "token_count": ("lacuna.engine.canvas", "token_count"),
}

__all__ = [
    "SAMPLERS",
    "Cancelled",
    "Commit",
    "ContextTooLong",
    "InfillRequest",
    "InfillResult",
    "InputError",
    "LacunaError",
    "ModelLoadError",
    "OutOfMemory",
    "Span",
    "StepEvent",
    "TokenPiece",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
