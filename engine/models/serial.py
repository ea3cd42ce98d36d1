"""One thread at a time per model: how the engine makes every adapter safe to share.

Adapters are not required to be thread-safe, and several are not: the
masked-LM adapter hands the positions to gather to a forward hook through
shared state (4 threads on one BERT: IndexErrors, and one run got another's
fill), and a transformers fast tokenizer sets truncation and padding on its
shared Rust object inside each call ("RuntimeError: Already borrowed" when two
threads meet there: huggingface/tokenizers#537, transformers#47085). Instead
of asking each family to be re-entrant, the engine serialises
the calls to one model: engine.sampler computes every step of a run under
``model_lock(model)``, released while the consumer holds the event, so runs on
one model from several threads interleave step by step and each step sees the
model alone. Code that calls a model or its tokenizer outside the sampler, on
a thread a run may be using at the same time, takes the same lock.
"""
from __future__ import annotations

import threading

_ATTRIBUTE = "_lacuna_model_lock"
_GUARD = threading.Lock()
_BY_ID: dict[int, threading.RLock] = {}  # models that cannot carry an attribute (slots, frozen)


def model_lock(model: object) -> threading.RLock:
    """The re-entrant lock that serialises calls to ``model`` (created on first use)."""
    lock = getattr(model, _ATTRIBUTE, None)
    if lock is not None:
        return lock
    with _GUARD:
        lock = getattr(model, _ATTRIBUTE, None)
        if lock is None:
            lock = threading.RLock()
            try:
                object.__setattr__(model, _ATTRIBUTE, lock)
            except (AttributeError, TypeError):
                lock = _BY_ID.setdefault(id(model), lock)
        return lock
