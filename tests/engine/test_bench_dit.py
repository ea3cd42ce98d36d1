"""`python -m lacuna.engine.bench.speed dit`: MDLM and SEDD in their real layouts on the
CPU, plain loop against the dual cache (tiny sizes here; docs/benchmarks.md has
the full-size figures)."""
from __future__ import annotations

import json

import pytest
import torch

from lacuna.engine.bench.speed import cache_agreement, cache_drift, dit_main, hole_request, random_dit
from lacuna.engine.canvas import build
from tests.support.real_checkpoints import gpt2_tokenizer_json


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    (folder / "tokenizer.json").write_bytes(gpt2_tokenizer_json())
    return folder


@pytest.mark.parametrize("family", ["mdlm", "sedd"])
def test_random_networks_have_the_real_layout(gpt2_folder, family):
    model = random_dit(family, str(gpt2_folder), layers=1)
    backbone = getattr(model.network, "backbone", model.network)
    assert (backbone.shape.hidden_size, backbone.shape.n_heads, backbone.shape.cond_dim) == (768, 12, 128)
    assert model.vocab_size == 50258 and model.mask_id == 50257 and model.context_length == 1024
    assert model.family == family and model.default_cache == "dual"


@pytest.mark.parametrize("insertion", [False, True])
def test_hole_requests_mask_the_asked_tokens_in_a_document_of_the_asked_length(gpt2_folder, insertion):
    model = random_dit("mdlm", str(gpt2_folder), layers=1)
    req = hole_request(model, 300, 32, 8, insertion=insertion)
    canvas = build(model, req)
    assert int(canvas.masked.sum()) == 32
    frame = 2  # <|endoftext|> on both sides
    assert abs(canvas.ids.numel() - (300 + (32 if insertion else 0) + frame)) <= 4  # word edges may retokenise


def test_agreement_counts_every_slot(gpt2_folder):
    torch.manual_seed(0)
    model = random_dit("sedd", str(gpt2_folder), layers=1, init_std=0.1)
    report = cache_agreement(model, requests=2, document=40, hole=4, steps=4)
    assert report["tokens"] == 8 and 0 <= report["tokens_same"] <= 8
    assert report["agreement"] == report["tokens_same"] / 8


def test_the_command_reports_plain_and_cached_per_thread_count(capsys, gpt2_folder):
    code = dit_main(["--family", "mdlm", "--dtype", "float32", "--tokenizer", str(gpt2_folder), "--layers", "1",
                     "--threads", "1", "--document", "40", "--hole", "4", "--insertion", "6", "--steps", "2",
                     "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = json.loads(out)["runs"][0]["rows"]
    assert [(r["fill"], r["cache"]) for r in rows] == [("hole", "none"), ("hole", "dual"),
                                                       ("insertion", "none"), ("insertion", "dual")]
    assert all(r["cpu_s"] > 0 and r["wall_s"] > 0 and r["nfe"] == 2 for r in rows)
    assert 0 <= rows[1]["agreement"] <= 1 and "agreement" not in rows[0]


def test_without_a_gpt2_tokenizer_it_says_how_to_get_one(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    code = dit_main(["--family", "mdlm", "--tokenizer", str(tmp_path), "--layers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "lacuna-cli models pull openai-community/gpt2" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["--threads", "0"], ["--threads", "1,x"], ["--steps", "-3"]])
def test_bad_numbers_are_refused_by_the_parser(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        dit_main(argv)
    assert exit_.value.code == 2 and "positive whole number" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["mdlm", "sedd"])
def test_cache_drift_is_nil_before_any_commit_and_reported_after(gpt2_folder, family):
    model = random_dit(family, str(gpt2_folder), layers=1, init_std=0.1)
    rows = cache_drift(model, document=40, hole=6, committed=(0, 3, 6))
    assert [r["committed"] for r in rows] == [0, 3], "a k that leaves no masked slot is skipped"
    assert rows[0]["argmax_same"] == rows[0]["slots"] == 6
    assert rows[0]["max_abs_logprob_diff"] < 1e-4, "with nothing committed the cached step is the plain pass"
    assert rows[1]["slots"] == 3 and 0 <= rows[1]["argmax_same"] <= 3
    if family == "mdlm":  # mdlm-owt is not time-conditioned
        assert rows[1]["sigma_refresh"] == rows[1]["sigma_step"] == 0
    else:  # SEDD's sigma falls as slots commit: the cached context was computed at the refresh's
        assert rows[1]["sigma_step"] < rows[1]["sigma_refresh"]


def test_the_command_reports_the_drift(capsys, gpt2_folder):
    code = dit_main(["--family", "sedd", "--dtype", "float32", "--tokenizer", str(gpt2_folder), "--layers", "1",
                     "--threads", "1", "--document", "40", "--hole", "4", "--no-figures", "--drift"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "| committed | sigma refresh -> step |" in out and "| 0 |" in out and "| 1 |" in out
