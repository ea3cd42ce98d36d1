"""lacuna.engine.bench.overhead: the engine's cost over the forward passes it made,
by wall time against the same passes replayed bare and by CPU time inside and
outside them (the figure that holds on a shared machine)."""
from __future__ import annotations

import pytest
import torch

from lacuna.engine import load_model
from lacuna.engine.bench.overhead import _Recorder, overhead
from tests.support.dit_tiny import build_tiny_mdlm


@pytest.fixture(scope="module")
def tiny_mdlm(tmp_path_factory):
    folder = build_tiny_mdlm(tmp_path_factory.mktemp("mdlm"), with_tokenizer=True, vocab_size=401)
    return load_model(str(folder), device="cpu", dtype="float32")


@pytest.mark.parametrize("name", ["tiny_mdlm", "tiny_bert"])
def test_overhead_reports_wall_and_cpu_figures(request, name):
    model = request.getfixturevalue(name)
    report = overhead(model, context=24, span=4, steps=4, repeats=2)
    assert report["nfe"] == 4 and report["cache"] == "none"
    assert report["engine_cpu_pct"] > 0, "the sampler's own work costs something"
    assert report["engine_wall_pct"] > 0, "and takes wall time between the forward passes"
    assert report["bare_forwards_s"] > 0 and report["full_vocab_forwards_s"] > 0
    assert len(report["load_1min"]) == 2


def test_the_recorder_replays_the_passes_the_infill_made(tiny_mdlm):
    from lacuna.engine import InfillRequest, Span, infill

    recorder = _Recorder(tiny_mdlm)
    infill(recorder, InfillRequest(text="In the beginning God created", spans=[Span(7, 16)], steps=3, cache="none"))
    assert len(recorder.calls) == 3 and recorder.inside_cpu > 0 and recorder.inside_wall > 0
    first_ids, first_positions = recorder.calls[0]
    assert (first_ids[first_positions] == tiny_mdlm.mask_id).all(), "the first pass sees every slot masked"
    last_ids, _ = recorder.calls[-1]
    assert int((last_ids == tiny_mdlm.mask_id).sum()) < int((first_ids == tiny_mdlm.mask_id).sum())
    assert isinstance(first_ids, torch.Tensor) and first_ids is not recorder.calls[1][0]
