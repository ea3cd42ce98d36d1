"""Whatever a caller puts in an InfillRequest or a Span, the answer is the request or one
InputError sentence (issue 20: wrong types, oversized seeds and lone surrogates gave
TypeError/ValueError), and every sampler plans at most sampler.MAX_STEPS steps."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine import InfillRequest, InputError, Span
from lacuna.engine import sampler as sampler_module
from lacuna.engine.sampler import MAX_STEPS, infill_candidates, stream_candidates, stream_infill
from lacuna.engine.types import SEED_MAX, SEED_MIN
from tests.support.fake import FakeModel

TEXT = "hello world, hello again"
SPAN = Span(0, 5)


def _request(**changes):
    return InfillRequest(**{"text": TEXT, "spans": (SPAN,), **changes})


@pytest.mark.parametrize("changes", [
    # issue 20's inputs
    dict(steps="16"), dict(temperature="0.5"), dict(top_p="0.9"), dict(seed=2**64), dict(text="a\ud800b" + TEXT),
    # wrong types of every field
    dict(text=b"bytes"), dict(spans=5), dict(spans="ab"), dict(spans=[(0, 5)]), dict(sampler=["margin"]),
    dict(sampler=None), dict(top_k="3"), dict(top_k=2.0), dict(block_length="4"), dict(threshold="0.5"),
    dict(cache=["dual"]), dict(context_tokens=64.0), dict(seed="1"), dict(seed=1.0), dict(revision="3"),
    dict(allow_newlines=1), dict(allow_newlines="yes"),
    # bools are not numbers here
    dict(steps=True), dict(top_k=False), dict(seed=True), dict(block_length=True), dict(context_tokens=True),
    dict(temperature=True), dict(top_p=True), dict(threshold=False), dict(revision=False),
    # out of range, NaN, infinities, and numbers too large for a float
    dict(seed=SEED_MAX + 1), dict(seed=SEED_MIN - 1), dict(seed=10**5000), dict(temperature=math.inf),
    dict(temperature=math.nan), dict(temperature=10**400), dict(top_p=math.nan), dict(top_p=10**400),
    dict(threshold=math.nan), dict(steps=0), dict(steps=-(10**5000)),
    # surrogates anywhere: a lone high, a lone low, and a pair kept as two code points
    dict(text="\udfff" + TEXT), dict(text=TEXT + "\ud83d\ude00"),
])
def test_a_bad_request_is_one_input_error(changes):
    with pytest.raises(InputError) as err:
        _request(**changes)
    message = str(err.value)
    assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize("fields", [
    dict(start="0", end=5), dict(start=0, end=5.0), dict(start=True, end=5), dict(start=0, end=5, length=True),
    dict(start=0, end=5, length="2"), dict(start=0, end=5, strength="0.5"), dict(start=0, end=5, strength=math.nan),
    dict(start=0, end=5, strength=True), dict(start=-(10**5000), end=5), dict(start=10**5000, end=10**5000 + 1),
])
def test_a_bad_span_is_one_input_error(fields):
    with pytest.raises(InputError) as err:
        req = _request(spans=(Span(**fields),))
        assert req is None  # a span that passed must still be refused by the request
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_the_lone_surrogate_is_named_with_its_place():
    with pytest.raises(InputError, match=r"U\+D800, at character 1"):
        _request(text="a\ud800b" + TEXT)


def test_seeds_at_the_ends_of_torchs_range_are_accepted():
    for seed in (SEED_MIN, -1, 0, 2**63 - 1, SEED_MAX):
        assert _request(seed=seed).seed == seed
        torch.Generator().manual_seed(seed)  # what the sampler does with it


def test_numbers_of_other_kinds_are_stored_as_plain_python_numbers():
    np = pytest.importorskip("numpy")
    span = Span(np.int64(0), np.int32(5), strength=np.float32(0.5))
    req = _request(spans=(span,), steps=np.int64(4), temperature=np.float64(0.5), top_p=np.float32(0.5),
                   seed=np.uint64(2**63), threshold=np.float16(0.5))
    for value, kind in ((req.spans[0].start, int), (req.spans[0].end, int), (req.spans[0].strength, float),
                        (req.steps, int), (req.temperature, float), (req.top_p, float), (req.seed, int),
                        (req.threshold, float)):
        assert type(value) is kind
    assert req.seed == 2**63 and req.steps == 4


_anything = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                      st.text(max_size=4), st.binary(max_size=2), st.lists(st.integers(), max_size=2),
                      st.sampled_from(["low_confidence", "ancestral", "dual", "none"]))
_fields = ["steps", "sampler", "temperature", "top_k", "top_p", "block_length", "threshold", "seed", "revision",
           "allow_newlines", "cache", "context_tokens"]


@settings(max_examples=400, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(_fields), _anything, max_size=4),
       text=st.text(alphabet=st.characters(codec=None), max_size=12))
def test_any_request_is_built_or_refused_with_an_input_error(changes, text):
    try:
        req = InfillRequest(text=text + "hello", spans=(Span(len(text), len(text) + 5),), **changes)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    text.encode("utf-8")  # what was accepted can be tokenised
    assert type(req.steps) is int and type(req.seed) is int and type(req.temperature) is float


# the step cap -------------------------------------------------------------------------
@pytest.fixture
def fake(tiny_model):
    return FakeModel(tiny_model.tokenizer)


def test_an_ancestral_run_plans_at_most_max_steps(fake):
    # issue 20's input: the API let an ancestral run plan every one of 10**9 steps
    events = list(stream_infill(fake, _request(steps=10**9, sampler="ancestral_recompute")))
    assert events[-1].result is not None
    assert len(events) <= MAX_STEPS and all(e.steps <= MAX_STEPS for e in events)
    assert len(fake.calls) <= MAX_STEPS


@pytest.mark.parametrize("sampler", ["ancestral", "ancestral_analytic", "low_confidence", "threshold"])
def test_every_sampler_obeys_the_cap(fake, monkeypatch, sampler):
    # a second input: every sampler, and 10**100 steps over three blocks (the cap shared by
    # all of them, two steps at least per block); a small cap keeps the runs short
    monkeypatch.setattr(sampler_module, "MAX_STEPS", 8)
    request = _request(steps=10**100, sampler=sampler, block_length=2, spans=(Span(0, 0, length=6),))
    (result,) = infill_candidates(fake, request, seeds=[1])
    assert result.steps <= 8 + 2 * 3
    events = list(stream_infill(fake, _request(steps=10**9, sampler=sampler)))
    assert events[-1].result is not None and len(events) <= 8


@pytest.mark.parametrize("seeds", [[2**64], [1, True], ["3"], [1.5]])
def test_candidate_seeds_are_checked_too(fake, seeds):
    with pytest.raises(InputError, match="seed of candidate"):
        next(stream_candidates(fake, _request(), seeds))
