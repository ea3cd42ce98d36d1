"""The live view follows a canvas that grows and shrinks (issue 23, DreamOn).

A tiny DreamOn in the official layout (tests.support.tiny_dreamon) fills an
auto-length insertion; every StepEvent is drawn in the preview as a live run
draws it, and the span holds exactly one calm-layout cell per slot of the event
(each cell ends with a zero-width space), while the text around it stays as it
was. ``new_slots`` (the bold "new this step" tokens) is checked against a
simulated canvas under random deletions and expansions.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.app.editor.preview import ZWSP, PreviewView, new_slots
from lacuna.app.viz.panel import DenoisePanel
from lacuna.engine import InfillRequest, Span, load_model
from lacuna.engine.sampler import stream_infill
from lacuna.engine.types import Commit, StepEvent
from tests.support.tiny_dreamon import build_tiny_dreamon

TEXT = "the cat sat on the mat and then it ran away"
AT = 8


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder = build_tiny_dreamon(tmp_path_factory.mktemp("dreamon") / "m", seed=2, expand=0.05, delete=0.1)
        model = load_model(str(folder), device="cpu", dtype="float32")
        return list(stream_infill(model, InfillRequest(text=TEXT, spans=(Span(AT, AT, length="~4"),))))
    finally:
        torch.set_num_threads(threads)


def test_the_preview_grows_and_shrinks_with_the_canvas(qtbot, events):
    view = PreviewView()
    qtbot.addWidget(view)
    view.start(TEXT, [(AT, AT)])
    cells = []
    for ev in events:
        view.render_event(ev)
        text = view.text()
        a, b = view.spans.ranges[0]
        assert text[:AT] == TEXT[:AT] and text[b:] == TEXT[AT:]  # ASCII: Qt units are characters
        cells.append(text[a:b].count(ZWSP))
        assert cells[-1] == len(ev.tokens)
    assert max(cells) > cells[0] and any(y < x for x, y in zip(cells, cells[1:])), cells
    view.render_result(events[-1].result)
    assert view.text() == events[-1].result.text


def test_the_panel_counts_the_slots_of_a_growing_canvas(qtbot, events):
    panel = DenoisePanel()
    qtbot.addWidget(panel)
    panel.reset()
    for ev in events:
        panel.record(ev)
        panel.show_event(ev)
        assert panel.masked_label.text() == f"{ev.masked} masked of {len(ev.tokens)}"
    assert panel.step_label.text() == f"Step {events[-1].step} / {events[-1].step}"
    assert panel.saved_label.text() == ""  # a growing run plans no steps it could save
    panel.reset()
    assert panel.masked_label.text() == "– masked"


MASK, EXPAND, DELETE = -1, -2, -3


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 8).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from([EXPAND, DELETE, 7, 8])),
                         min_size=1, max_size=n, unique_by=lambda c: c[0]))))
def test_new_slots_are_where_the_committed_tokens_end_up(case):
    """A step on a canvas of n masks commits tokens (some of them delete or expand); after
    DreamOn's removals and expansions, new_slots names exactly the slots holding the
    step's committed text tokens."""
    n, commits = case
    canvas = [MASK] * n
    for i, token in commits:
        canvas[i] = token
    origin = list(range(n))  # which starting slot each slot came from
    deleted = [i for i in range(n) if canvas[i] == DELETE]
    kept = [(t, o) for t, o in zip(canvas, origin) if t != DELETE]
    expanded, after = [], []
    for j, (t, o) in enumerate(kept):
        if t == EXPAND:
            expanded.append(j)
            after += [(MASK, None), (MASK, None)]
        else:
            after.append((t, o))
    ev = StepEvent(
        step=1, steps=1, nfe=1, elapsed=0.0,
        committed=tuple(Commit(i, 0, t, "x", 0.5) for i, t in commits),
        tokens=tuple(None if t == MASK else "x" for t, _ in after), confidence=(None,) * len(after),
        slot_span=(0,) * len(after), expanded=tuple(expanded), deleted=tuple(deleted))
    texts = {i for i, t in commits if t >= 0}
    assert new_slots(ev) == {j for j, (_, o) in enumerate(after) if o in texts}
