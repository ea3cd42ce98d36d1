"""DreamOn through Lacuna's API (issue 23): the official layout loads as the "dreamon" family,
an auto-length span runs DreamOn's loop (engine.dreamon) and its StepEvents follow the canvas
as it grows and shrinks, the text outside the span comes back byte for byte, and the CLI's
``[[?]]`` / ``[[~N]]`` report the chosen length in --json.

The tiny DreamOn (tests.support.tiny_dreamon, seed 2) has a head nudged towards
``<|expand|>`` (0.05) and the delete token (0.1): with "~4" its canvas grows from 4 to 8
slots and loses some again, deterministically (greedy, float32, one thread).
"""
from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine import InfillRequest, InputError, Span, load_model
from lacuna.engine.cli import main
from lacuna.engine.dreamon import is_dreamon
from lacuna.engine.models import families
from lacuna.engine.sampler import infill, stream_candidates, stream_infill
from tests.support.tiny_dreamon import build_tiny_dreamon

TEXT = "the cat sat on the mat and then it ran away"
AT = 8  # an insertion after "the cat "


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: a second thread only adds contention
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dreamon_dir(tmp_path_factory):
    return build_tiny_dreamon(tmp_path_factory.mktemp("dreamon") / "DreamOn-tiny", seed=2, expand=0.05, delete=0.1)


@pytest.fixture(scope="module")
def dreamon(dreamon_dir):
    return load_model(str(dreamon_dir), device="cpu", dtype="float32")


def request(length="~4", **kw) -> InfillRequest:
    return InfillRequest(text=TEXT, spans=(Span(AT, AT, length=length),), **kw)


def test_the_official_layout_loads_as_dreamon_with_its_frame(dreamon, dreamon_dir):
    config = json.loads((dreamon_dir / "config.json").read_text())
    assert dreamon.family == "dreamon" and dreamon.grows_canvas
    assert not dreamon.batches and dreamon.cache_modes == () and dreamon.default_cache == "none"
    assert dreamon.expand_id == config["expand_token_id"] and dreamon.delete_id == config["eos_token_id"]
    # DreamOn's README frame: <|beginoftext|> before the text, the end-of-text token after it
    # (Dream's own start token is DreamOn's delete token)
    assert dreamon.tokenizer.convert_ids_to_tokens(list(dreamon.prefix_ids)) == ["<|beginoftext|>"]
    assert dreamon.suffix_ids == (config["eos_token_id"],)
    assert dreamon.expand_id in dreamon.special_ids  # a fixed-length run never emits it


# config.json keys with the types real configs give them (engine.dreamon.is_dreamon reads no others)
_CONFIG_KEYS = st.fixed_dictionaries({}, optional={
    "model_type": st.sampled_from(["Dream", "dream", "DREAM", "llada", "dreamon", ""]),
    "architectures": st.lists(st.sampled_from(["DreamModel", "LLaDAModelLM", "Qwen2ForCausalLM"]), max_size=1),
    "expand_token_id": st.one_of(st.none(), st.integers(0, 200000)),
    "mask_token_id": st.integers(0, 200000),
})


@given(_CONFIG_KEYS)
@settings(max_examples=200, deadline=None)
def test_the_registry_and_engine_dreamon_agree_on_what_is_dreamon(config):
    assert (families.family_name(config) == "dreamon") == is_dreamon(config)


def test_an_auto_span_grows_and_shrinks_and_events_follow_the_canvas(dreamon):
    events = list(stream_infill(dreamon, request()))
    sizes = [len(ev.tokens) for ev in events]
    assert max(sizes) > 4 and any(b < a for a, b in zip(sizes, sizes[1:])), sizes  # grew, and shrank
    assert any(ev.expanded for ev in events) and any(ev.deleted for ev in events)
    before = 4
    for ev in events:
        # the slots after a step: the ones it began with, less its deletions, plus one per expansion
        assert len(ev.tokens) == before - len(ev.deleted) + len(ev.expanded)
        assert len(ev.confidence) == len(ev.tokens) and ev.slot_span == (0,) * len(ev.tokens)
        assert len(ev.committed) == 1 and 0 <= ev.committed[0].index < before
        assert all(0 <= i < before for i in ev.deleted)
        for i in ev.expanded:  # an expanded slot is two masks now
            assert ev.tokens[i + sum(e < i for e in ev.expanded)] is None
        before = len(ev.tokens)
    assert [ev.nfe for ev in events] == list(range(1, len(events) + 1))
    last = events[-1]
    assert last.done and last.masked == 0 and not any(ev.done for ev in events[:-1])
    assert last.steps == last.step == last.nfe == last.result.nfe
    result = last.result
    span = result.spans[0]
    assert span.length == len(last.tokens)  # the chosen length
    assert result.text[:AT] == TEXT[:AT] and result.text[span.end:] == TEXT[AT:]  # byte for byte
    assert result.span_text(0) and len(result.pieces[0]) == span.length


def test_a_selection_auto_span_keeps_the_outside_text(dreamon):
    start, end = TEXT.index("sat on"), TEXT.index(" the mat")
    req = InfillRequest(text=TEXT, spans=(Span(start, end, length=(2, 6)),))
    result = infill(dreamon, req)
    span = result.spans[0]
    assert result.text[:start] == TEXT[:start] and result.text[span.end:] == TEXT[end:]
    assert 0 <= span.length <= 6


def test_the_same_request_and_seed_give_the_same_run(dreamon):
    req = request(temperature=0.7, top_k=20, seed=5)
    a = [(ev.tokens, ev.expanded, ev.deleted) for ev in stream_infill(dreamon, req)]
    b = [(ev.tokens, ev.expanded, ev.deleted) for ev in stream_infill(dreamon, req)]
    assert a == b


def test_candidates_run_one_after_another_each_as_its_own_run(dreamon):
    req = request(temperature=0.7, top_k=20)
    seeds = (3, 4)
    ends = {}
    for events in stream_candidates(dreamon, req, seeds):
        assert sum(ev is not None for ev in events) == 1
        for seed, ev in zip(seeds, events):
            if ev is not None and ev.done:
                ends[seed] = ev.result
    for seed in seeds:
        assert ends[seed].text == infill(dreamon, replace(req, seed=seed)).text


def test_a_fixed_length_span_on_dreamon_never_emits_the_length_tokens(tmp_path):
    # a head that strongly prefers <|expand|> and the delete token
    model = load_model(str(build_tiny_dreamon(tmp_path / "m", seed=0, expand=2.0, delete=1.5)),
                       device="cpu", dtype="float32")
    events = list(stream_infill(model, InfillRequest(text=TEXT, spans=(Span(AT, AT, length=6),), steps=6)))
    assert events[-1].result.spans[0].length == 6 and all(len(ev.tokens) == 6 for ev in events)
    ids = {c.token_id for ev in events for c in ev.committed}
    assert len(ids) and model.expand_id not in ids and model.delete_id not in ids
    assert all(not ev.expanded and not ev.deleted for ev in events)


def test_a_cancelled_run_stops_between_steps(dreamon):
    cancel = threading.Event()
    seen = []
    for ev in stream_infill(dreamon, request(), cancel):
        seen.append(ev)
        cancel.set()
    assert len(seen) == 1 and not seen[0].done


def test_samplers_map_to_dreamon_confidences_that_rank_alike():
    from lacuna.engine.policies import POLICIES
    from lacuna.engine.sampler import DREAMON_ALGORITHMS

    algs = {p.name: DREAMON_ALGORITHMS.get(p.rule) for p in POLICIES}
    assert (algs["low_confidence"], algs["margin"], algs["entropy"]) == ("maskgit_plus", "topk_margin", "entropy")
    assert algs["random"] is None and algs["threshold"] is None


@pytest.mark.parametrize("change, message", [
    (dict(spans=(Span(AT, AT, length="auto"), Span(0, 3))), "one span per run"),
    (dict(sampler="random"), "cannot grow a canvas"),
    (dict(block_length=2), "without blocks"),
    (dict(instruction="make it formal"), "without an instruction"),
    (dict(cache="dual"), "no 'dual' context cache"),
])
def test_what_dreamon_cannot_run_is_refused_in_one_sentence(dreamon, change, message):
    with pytest.raises(InputError, match=message) as caught:
        infill(dreamon, replace(request(), **change))
    assert "\n" not in str(caught.value)


def test_an_auto_span_on_a_model_that_does_not_grow_ranks_several_lengths(tmp_path):
    """Issue 23: a model without DreamOn's tokens tries several lengths (engine.length) and
    streams the winner; the result lists every length tried, best first."""
    from tests.support.tiny_dream import build_tiny_dream

    model = load_model(str(build_tiny_dream(tmp_path / "dream")), device="cpu", dtype="float32")
    assert model.family == "dream" and not model.grows_canvas
    asked = request("auto")
    events = list(stream_infill(model, asked))
    result = events[-1].result
    tried = result.lengths[0]
    assert len(tried) >= 2 and [t.score for t in tried] == sorted((t.score for t in tried), reverse=True)
    assert result.spans[0].length == tried[0].length  # the streamed fill is the winner
    assert result.text == tried[0].result.text
    assert len({t.length for t in tried}) == len(tried)
    for t in tried:  # every alternative keeps the text outside the span
        assert t.result.text.startswith(asked.text[: asked.spans[0].start])
        assert t.result.text.endswith(asked.text[asked.spans[0].end:])
    assert result.nfe > events[-1].step  # the ranking's forward passes are counted


def test_cli_auto_holes_report_the_chosen_length(capsys, dreamon_dir):
    marked = "the cat [[~4]]sat on the mat and then it ran away"
    code = main(["infill", "--model", str(dreamon_dir), "--device", "cpu", "--dtype", "float32", "--json", marked])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    (span,) = data["spans"]
    assert span["asked"] == "~4" and isinstance(span["length"], int) and span["length"] > 0
    assert data["text"][:AT] == TEXT[:AT] and data["text"][span["end"]:] == TEXT[AT:]
    assert data["nfe"] == data["steps"] > span["length"]  # one commit per step, some of them length tokens


def test_cli_question_mark_hole_runs_and_writes_growing_events(capsys, dreamon_dir, tmp_path):
    events = tmp_path / "events.jsonl"
    code = main(["infill", "--model", str(dreamon_dir), "--device", "cpu", "--dtype", "float32", "--json",
                 "--events", str(events), "the cat [[?]]sat on the mat"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["spans"][0]["asked"] == "auto"
    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == data["nfe"] and lines[-1]["done"]
    assert len(lines[-1]["tokens"]) == data["spans"][0]["length"]


def test_cli_reports_every_length_tried_on_a_model_that_does_not_grow(capsys, tmp_path):
    from tests.support.tiny_dream import build_tiny_dream

    folder = build_tiny_dream(tmp_path / "dream")
    code = main(["infill", "--model", str(folder), "--device", "cpu", "--dtype", "float32", "--json",
                 "the cat [[?]]sat on the mat"])
    out, err = capsys.readouterr()
    assert code == 0, err
    span = json.loads(out)["spans"][0]
    scores = [t["score"] for t in span["tried"]]
    assert span["asked"] == "auto" and len(scores) >= 2 and scores == sorted(scores, reverse=True)
    assert span["length"] == span["tried"][0]["length"]
