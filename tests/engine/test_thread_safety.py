"""Runs on one model from several threads (issue 20): the engine serialises the calls
to one model (engine.models.serial.model_lock, held by the sampler while a step is
computed), so every adapter gives each run exactly its single-threaded result."""
from __future__ import annotations

import threading

import pytest

from lacuna.engine import InfillRequest, Span, infill, load_model
from lacuna.engine.models.serial import model_lock
from lacuna.engine.sampler import stream_infill
from tests.support.fake import FakeModel

THREADS, RUNS = 4, 20
TEXTS = (
    "In the beginning God created the heaven and the earth.",
    "To be, or not to be, that is the question.",
    "The quick brown fox jumps over the lazy dog.",
    "And God said, Let there be light: and there was light.",
)


def _requests(**settings) -> list[InfillRequest]:
    # each thread its own text, span, seed and step count: a fill that leaks into another run shows
    return [InfillRequest(text, (Span(4, 9 + k),), steps=3 + k, temperature=0.8, seed=k, **settings)
            for k, text in enumerate(TEXTS)]


def _hammer(model, requests: list[InfillRequest]) -> tuple[list[str], list[tuple[int, str, str]]]:
    """THREADS threads, RUNS runs each, all started together; (errors, wrong results)."""
    want = [infill(model, r).text for r in requests]
    errors: list[str] = []
    wrong: list[tuple[int, str, str]] = []
    start = threading.Barrier(THREADS)

    def work(k: int) -> None:
        start.wait()
        for _ in range(RUNS):
            try:
                got = infill(model, requests[k]).text
            except Exception as exc:  # noqa: BLE001 - any failure is what this test counts
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if got != want[k]:
                wrong.append((k, got, want[k]))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors, wrong


def test_the_bert_adapter_from_four_threads_gives_each_run_its_own_fill(tiny_bert):
    # issue 20's input: 4 threads on the BERT-family adapter (9 of 20 failed, 1 returned another's fill)
    errors, wrong = _hammer(tiny_bert, _requests())
    assert errors == [] and wrong == []


def test_a_modernbert_from_four_threads_gives_each_run_its_own_fill(tiny_model):
    # a second input: another transformers family, whose forward runs rotary embeddings
    errors, wrong = _hammer(tiny_model, _requests(sampler="margin"))
    assert errors == [] and wrong == []


@pytest.fixture(scope="module")
def tiny_llada(tiny_llada_dir):
    return load_model(str(tiny_llada_dir), device="cpu", dtype="float32")


@pytest.mark.parametrize("cache", ["none", "dual"])
def test_a_native_adapter_from_four_threads_gives_each_run_its_own_fill(tiny_llada, cache):
    # the dual cache keeps per-run state in a context variable: it must not leak either
    errors, wrong = _hammer(tiny_llada, _requests(cache=cache, block_length=3))
    assert errors == [] and wrong == []


def test_a_step_is_computed_under_the_models_lock_and_released_between_steps(tiny_model):
    inside, release = threading.Event(), threading.Event()
    held: list[bool] = []

    def on_forward(n: int) -> None:
        if n == 1:
            inside.set()
            release.wait()

    fake = FakeModel(tiny_model.tokenizer, on_forward=on_forward)
    lock = model_lock(fake)
    run = stream_infill(fake, InfillRequest("one two three four", (Span(4, 13),), steps=2))
    worker = threading.Thread(target=lambda: held.append(next(run) is not None))
    worker.start()
    assert inside.wait(10)
    # mid-forward, another thread cannot take the model
    assert lock.acquire(blocking=False) is False
    release.set()
    worker.join()
    # between steps (the consumer holds an event) it can
    assert held == [True] and lock.acquire(blocking=False) is True
    lock.release()
    run.close()


def test_model_lock_is_one_lock_per_model():
    class Slotted:
        __slots__ = ()

    a, b = FakeModel.__new__(FakeModel), FakeModel.__new__(FakeModel)
    assert model_lock(a) is model_lock(a) and model_lock(a) is not model_lock(b)
    s = Slotted()
    assert model_lock(s) is model_lock(s)
