import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine import InfillRequest, InputError, Span


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(start=-1, end=2), "negative"),
        (dict(start=3, end=2), "before its start"),
        (dict(start=2, end=2), "needs a length"),
        (dict(start=0, end=2, length=0), "positive integer"),
        (dict(start=0, end=2, strength=0.0), "strength"),
        (dict(start=0, end=2, strength=1.5), "strength"),
        (dict(start=2, end=2, length=3, strength=0.5), "insertion"),
    ],
)
def test_bad_spans_are_refused_with_a_message(kwargs, message):
    with pytest.raises(InputError, match=message):
        Span(**kwargs)


def test_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        Span(3, 1)


def test_overlapping_spans_in_any_order_are_refused():
    with pytest.raises(InputError, match="overlap"):
        InfillRequest(text="abcdefgh", spans=[Span(4, 7), Span(1, 5)])
    with pytest.raises(InputError, match="overlap"):
        InfillRequest(text="abcdefgh", spans=[Span(2, 2, length=1), Span(2, 2, length=2)])


def test_adjacent_spans_and_an_insertion_at_a_boundary_are_fine():
    req = InfillRequest(text="abcdefgh", spans=[Span(4, 6), Span(2, 4), Span(4, 4, length=1), Span(8, 8, length=2)])
    assert len(req.spans) == 4
    assert isinstance(req.spans, tuple)


def test_out_of_range_span_is_refused():
    with pytest.raises(InputError, match="outside the text"):
        InfillRequest(text="abc", spans=[Span(1, 4)])


@pytest.mark.parametrize(
    "kwargs",
    [dict(sampler="nope"), dict(steps=0), dict(temperature=-1.0), dict(top_p=0.0), dict(top_k=-1),
     dict(block_length=0), dict(threshold=1.5), dict(spans=[])],
)
def test_bad_settings_are_refused(kwargs):
    base = dict(text="hello world", spans=[Span(0, 5)])
    with pytest.raises(InputError):
        InfillRequest(**{**base, **kwargs})


def test_request_is_immutable():
    req = InfillRequest(text="hello", spans=[Span(0, 5)])
    with pytest.raises(AttributeError):
        req.steps = 3


# Issue 23: a span whose length the model chooses: "auto", about N ("~N") or a range (low, high).
@pytest.mark.parametrize("length, stored", [
    ("auto", "auto"), ("~4", "~4"), ("~007", "~7"), ((2, 9), (2, 9)), ([3, 3], (3, 3)), (5, 5),
])
def test_auto_lengths_are_accepted_in_one_stored_form(length, stored):
    span = Span(3, 3, length=length)
    assert span.length == stored and span.is_auto == (stored != 5)
    assert span.about == (int(stored[1:]) if isinstance(stored, str) and stored != "auto" else None)
    assert span.length_range == (stored if isinstance(stored, tuple) else None)
    InfillRequest(text="abcdef", spans=[span])  # and a request takes it


@pytest.mark.parametrize("kwargs, message", [
    (dict(length="~0"), "not a length"),
    (dict(length="~"), "not a length"),
    (dict(length="~²"), "digits 0-9"),
    (dict(length="about 4"), "not a length"),
    (dict(length="AUTO"), "not a length"),
    (dict(length=(0, 3)), "1 <= low <= high"),
    (dict(length=(5, 2)), "1 <= low <= high"),
    (dict(length=(1, 2, 3)), "or a range (low, high)"),
    (dict(length=(1.0, 2)), "or a range (low, high)"),
    (dict(length=True), "positive integer"),
    (dict(length=2.5), "positive integer"),
    (dict(end=5, length="auto", strength=0.5), "keeps the covered text's own length"),
])
def test_bad_auto_lengths_are_refused_in_one_sentence(kwargs, message):
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        Span(**{"start": 2, "end": 2, **kwargs})
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)


def test_a_result_span_may_hold_no_tokens_but_a_request_span_may_not():
    assert Span.filled(4, 4, 0).length == 0 and Span.filled(4, 9, 0).length == 0
    assert Span.filled(4, 9, 3) == Span(4, 9, length=3)
    with pytest.raises(InputError):
        Span(4, 4, length=0)


_LENGTHS = st.one_of(
    st.none(), st.integers(-3, 10**6), st.text(max_size=6), st.just("auto"),
    st.from_regex(r"~[0-9]{1,4}", fullmatch=True), st.tuples(st.integers(-2, 50), st.integers(-2, 50)),
    st.floats(allow_nan=True), st.booleans(), st.lists(st.integers(0, 9), max_size=3))


@given(_LENGTHS, st.booleans())
@settings(max_examples=300, deadline=None)
def test_every_length_is_stored_in_a_checked_form_or_refused_in_one_sentence(length, insertion):
    try:
        span = Span(2, 2 if insertion else 5, length=length)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    kept = span.length
    if kept is None:
        assert not insertion
    elif isinstance(kept, int):
        assert kept >= 1 and not span.is_auto
    elif isinstance(kept, tuple):
        assert 1 <= kept[0] <= kept[1] and span.is_auto and span.length_range == kept
    else:
        assert kept == "auto" or (span.about >= 1 and kept == f"~{span.about}")
    assert Span(span.start, span.end, length=kept) == span  # the stored form is accepted as it is
