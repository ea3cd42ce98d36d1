import pytest

from engine import InfillRequest, InputError, Span


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
