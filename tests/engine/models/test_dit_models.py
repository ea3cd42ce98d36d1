"""MDLM and SEDD end to end on tiny random checkpoints in their official layouts:
loading, refusals, the adapters' meaning, and infilling through API and CLI."""
from __future__ import annotations

import datetime
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from lacuna.engine import InfillRequest, ModelLoadError, Span, infill, load_model
from lacuna.engine.cli import main
from lacuna.engine.models.base import ModelAdapter
from lacuna.engine.models.mdlm import MDLMNetwork, subs
from lacuna.engine.models.sedd import SEDDNetwork, loglinear_sigma
from lacuna.engine.select import tweedie_reveal
from tests.support.dit_tiny import build_tiny_mdlm, build_tiny_sedd

VOCAB = 401  # 400 tokens (the last <|endoftext|>) + the mask
TEXT = "In the beginning God created the heaven and the earth. And the earth was without form."


@pytest.fixture(scope="module")
def mdlm_dir(tmp_path_factory):
    return build_tiny_mdlm(tmp_path_factory.mktemp("mdlm"), with_tokenizer=True, vocab_size=VOCAB)


@pytest.fixture(scope="module")
def sedd_dir(tmp_path_factory):
    return build_tiny_sedd(tmp_path_factory.mktemp("sedd"), with_tokenizer=True, tokens=VOCAB - 1)


@pytest.fixture(scope="module")
def mdlm(mdlm_dir):
    return load_model(str(mdlm_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def sedd(sedd_dir):
    return load_model(str(sedd_dir), device="cpu", dtype="float32")


def test_families_load_behind_the_protocol(mdlm, sedd):
    for model, family, network in ((mdlm, "mdlm", MDLMNetwork), (sedd, "sedd", SEDDNetwork)):
        assert isinstance(model, ModelAdapter)
        assert model.family == family and isinstance(model.network, network)
        assert model.mask_id == VOCAB - 1 == len(model.tokenizer)
        assert model.vocab_size == VOCAB and model.context_length == 128
        eos = model.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        assert model.prefix_ids == model.suffix_ids == (eos,)
        assert {eos, model.mask_id} <= model.special_ids


def _canvas(model, length=20, masked=(4, 5, 6, 7)):
    ids = torch.randint(0, model.mask_id, (length,), generator=torch.Generator().manual_seed(1))
    ids[list(masked)] = model.mask_id
    return ids, torch.tensor(masked)


def test_mdlm_logits_are_subs_of_the_unconditioned_network(mdlm):
    ids, positions = _canvas(mdlm)
    with torch.no_grad():
        full = mdlm.network(ids[None], torch.tensor([0.7]))
        assert torch.equal(full, mdlm.network(ids[None], torch.tensor([0.0]))), "time_conditioning false zeroes sigma"
        expected = subs(full, ids[None], mdlm.mask_id)[0, positions]
    got = mdlm.logits(ids, positions)
    assert got.dtype == torch.float32 and got.shape == (4, VOCAB)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.isneginf(got[:, mdlm.mask_id]).all()
    assert torch.allclose(got.exp().sum(-1), torch.ones(4), atol=1e-5)


def test_sedd_logits_are_log_scores_at_the_canvas_sigma(sedd):
    ids, positions = _canvas(sedd)
    sigma = -math.log1p(-4 / 20)  # 4 of 20 positions masked
    assert sedd.sigma(ids).item() == pytest.approx(sigma, rel=1e-6)
    with torch.no_grad():
        expected = sedd.network(ids[None], torch.tensor([sigma]))[0, positions]
    got = sedd.logits(ids, positions)
    real = torch.arange(VOCAB) != sedd.mask_id
    assert torch.allclose(got[:, real], expected[:, real], atol=1e-5)
    assert torch.isneginf(got[:, sedd.mask_id]).all() and (expected[:, sedd.mask_id] == 0).all()


@pytest.mark.parametrize("family", ["mdlm", "sedd"])
@pytest.mark.parametrize("sampler", ["low_confidence", "ancestral", "ancestral_analytic"])
def test_infill_keeps_the_text_outside_the_spans(request, family, sampler):
    model = request.getfixturevalue(family)
    req = InfillRequest(text=TEXT, spans=(Span(34, 40), Span(len(TEXT) - 5, len(TEXT) - 5, length=3)),
                        steps=8, sampler=sampler, temperature=1.0, seed=5)
    first = infill(model, req)
    assert first.text[: first.spans[0].start] == TEXT[:34]
    assert first.text[first.spans[0].end : first.spans[1].start] == TEXT[40:-5]
    assert first.text[first.spans[1].end :] == TEXT[-5:]
    assert all(len(p) == s.length for p, s in zip(first.pieces, first.spans))
    assert infill(model, req).text == first.text, "same seed, same fill"


def test_analytic_sampler_reveals_by_the_scores(sedd, monkeypatch):
    # With all score mass far below the schedule's, the Tweedie step reveals
    # nothing until the block's last step, which reveals everything.
    real = sedd._sampling_logits
    monkeypatch.setattr(sedd, "_sampling_logits", lambda out, ids, pos: real(out, ids, pos) - 40.0)
    req = InfillRequest(text=TEXT, spans=(Span(34, 40),), steps=6, sampler="ancestral_analytic", seed=0)
    from lacuna.engine.sampler import stream_infill

    events = list(stream_infill(sedd, req))
    assert [len(e.committed) for e in events[:-1]] == [0] * (len(events) - 1)
    assert events[-1].done and events[-1].masked == 0
    assert events[-1].nfe == 1, "an unchanged canvas reuses its scores"


@settings(max_examples=60, deadline=None)
@given(f_now=st.floats(0.01, 0.99), frac=st.floats(0.0, 1.0))
def test_tweedie_reveal_of_an_exact_score_is_the_schedules_share(f_now, frac):
    # An exact score at sigma sums to 1 / (e^sigma - 1) over the real tokens;
    # then the analytic step reveals (f_now - f_next) / f_now of the masks.
    f_next = f_now * frac
    s_now, s_next = loglinear_sigma(f_now), loglinear_sigma(f_next)
    log_mass = torch.tensor([-math.log(math.expm1(s_now))], dtype=torch.float64)
    got = tweedie_reveal(log_mass, s_now, s_next).item()
    assert got == pytest.approx((f_now - f_next) / f_now, abs=1e-5)


def test_tweedie_reveal_is_a_probability():
    p = tweedie_reveal(torch.tensor([-50.0, 0.0, 50.0]), 1.0, 0.5)
    assert p[0] == pytest.approx(0.0, abs=1e-12) and 0 < p[1] < 1 and p[2] == 1.0
    assert tweedie_reveal(torch.tensor([3.0]), 0.5, 0.7).item() == 0.0, "no reveal when the noise rises"


def test_bf16_keeps_rotary_frequencies_in_float32(mdlm_dir):
    model = load_model(str(mdlm_dir), device="cpu", dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    assert model.network.backbone.rotary_emb.inv_freq.dtype == torch.float32
    ids, positions = _canvas(model)
    assert torch.isfinite(model.logits(ids, positions)[:, :-1]).all()
    model.network.to(torch.float16)
    assert model.network.backbone.rotary_emb.inv_freq.dtype == torch.float32, "a later cast keeps them too"


def test_a_time_conditioned_mdlm_sees_the_canvas_sigma(tmp_path):
    folder = build_tiny_mdlm(tmp_path / "m", with_tokenizer=True, vocab_size=VOCAB, time_conditioning=True)
    model = load_model(str(folder), device="cpu", dtype="float32")
    ids, positions = _canvas(model)
    assert model.sigma(ids).item() == pytest.approx(-math.log1p(-4 / 20))
    with torch.no_grad():
        expected = subs(model.network(ids[None], model.sigma(ids)), ids[None], model.mask_id)[0, positions]
    assert torch.allclose(model.logits(ids, positions), expected, atol=1e-5)


@pytest.mark.parametrize("build", [build_tiny_mdlm, build_tiny_sedd])
def test_cli_fills_with_either_family(capsys, tmp_path, build):
    kw = {"vocab_size": VOCAB} if build is build_tiny_mdlm else {"tokens": VOCAB - 1}
    folder = build(tmp_path / "m", with_tokenizer=True, **kw)
    code = main(["infill", "--model", str(folder), "--json", "--device", "cpu", "--sampler", "ancestral",
                 "--steps", "4", "In the [[3]] God created the [[heaven]] and the earth."])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["text"].startswith("In the ") and data["text"].endswith(" and the earth.")
    assert data["spans"][0]["length"] == 3 and data["spans"][1]["length"] >= 1


# refusals ---------------------------------------------------------------------

def _rewrite_weights(folder, change):
    path = folder / "model.safetensors"
    state = load_file(path)
    change(state)
    save_file(state, str(path))


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("backbone.blocks.1.attn_out.weight"), "lacks tensor backbone.blocks.1.attn_out.weight"),
    (lambda s: s.update({"backbone.extra": torch.zeros(2)}), "has a tensor backbone.extra that this model does not"),
    (lambda s: s.update({"backbone.blocks.0.norm1.weight": torch.ones(3)}),
     r"backbone.blocks.0.norm1.weight has shape \[3\] in the checkpoint, the config implies \[64\]"),
])
def test_a_checkpoint_that_does_not_match_is_refused_naming_the_tensor(tmp_path, change, message):
    folder = build_tiny_mdlm(tmp_path / "m", with_tokenizer=True, vocab_size=VOCAB)
    _rewrite_weights(folder, change)
    with pytest.raises(ModelLoadError, match=message):
        load_model(str(folder), device="cpu")


def test_sedd_weights_under_mdlm_names_are_refused(tmp_path):
    folder = build_tiny_sedd(tmp_path / "s", with_tokenizer=True, tokens=VOCAB - 1)
    _rewrite_weights(folder, lambda s: s.update({"backbone." + k: s.pop(k) for k in list(s)}))
    with pytest.raises(ModelLoadError, match="has a tensor backbone.* that this model does not have"):
        load_model(str(folder), device="cpu")


@pytest.mark.parametrize("section, value, message", [
    ("graph", {"type": "uniform"}, "uniform.*only 'absorb'"),
    ("noise", {"type": "geometric"}, "geometric.*only 'loglinear'"),
])
def test_sedd_configs_it_cannot_sample_are_refused(tmp_path, section, value, message):
    folder = build_tiny_sedd(tmp_path / "s", with_tokenizer=True, tokens=VOCAB - 1)
    config = json.loads((folder / "config.json").read_text())
    config[section] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=message):
        load_model(str(folder), device="cpu")


def test_a_folder_without_tokenizer_names_the_companion(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    folder = build_tiny_mdlm(tmp_path / "m", vocab_size=VOCAB)
    with pytest.raises(ModelLoadError, match="tokenizer of openai-community/gpt2, which is not downloaded"):
        load_model(str(folder), device="cpu")


def test_a_tokenizer_of_the_wrong_size_is_refused(tmp_path):
    folder = build_tiny_mdlm(tmp_path / "m", with_tokenizer=True, vocab_size=VOCAB)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = VOCAB + 10
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="tokenizer has 400 tokens, but the model expects 410"):
        load_model(str(folder), device="cpu")


# pickles ----------------------------------------------------------------------

def test_a_pickle_only_sedd_loads_after_consent_and_matches(tmp_path, monkeypatch, sedd):
    from lacuna.engine.models import pickles

    monkeypatch.setenv("LACUNA_DATA_DIR", str(tmp_path / "data"))
    folder = build_tiny_sedd(tmp_path / "p", pickle=True, with_tokenizer=True, tokens=VOCAB - 1)
    with pytest.raises(ModelLoadError, match="only a pickle checkpoint .*--allow-pickle"):
        load_model(str(folder), device="cpu")
    asked = []
    with pytest.raises(ModelLoadError, match="not allowed"):
        pickles.convert(folder, consent=lambda q: asked.append(q) or False)
    assert "pytorch_model.bin" in asked[0]
    target = pickles.convert(folder, consent=True)
    assert target.name == "model.safetensors" and not (folder / "model.safetensors").exists()
    model = load_model(str(folder), device="cpu", dtype="float32")
    ids, positions = _canvas(model)
    assert torch.equal(model.logits(ids, positions), sedd.logits(ids, positions)), "same seed, same weights"


def test_a_pickle_that_is_not_plain_tensors_is_refused(tmp_path, monkeypatch):
    from lacuna.engine.models import pickles

    monkeypatch.setenv("LACUNA_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "evil"
    folder.mkdir()
    # weights_only refuses any global outside torch's allow-list, like this date.
    torch.save({"weights": torch.zeros(2), "when": datetime.date(2024, 1, 1)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="cannot be read safely"):
        pickles.convert(folder, consent=True)


def test_a_pickle_pulled_with_consent_is_converted_on_load(tmp_path, monkeypatch):
    from lacuna.engine.hub import records

    monkeypatch.setenv("LACUNA_DATA_DIR", str(tmp_path / "data"))
    commit = "c" * 40
    snapshot = tmp_path / "hub" / "models--louaaron--sedd-small" / "snapshots" / commit
    build_tiny_sedd(snapshot, pickle=True, with_tokenizer=True, tokens=VOCAB - 1)
    state = torch.load(snapshot / "pytorch_model.bin", weights_only=True)
    state["tied.copy"] = state["vocab_embed.embedding"]  # shared memory must not stop the conversion
    torch.save(state, snapshot / "pytorch_model.bin")
    records.put_install({"repo": "louaaron/sedd-small", "commit": commit, "pickle": False, "files": []})
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        load_model(str(snapshot), device="cpu")
    records.put_install({"repo": "louaaron/sedd-small", "commit": commit, "pickle": True, "files": []})
    with pytest.raises(ModelLoadError, match="has a tensor tied.copy that this model does not have"):
        load_model(str(snapshot), device="cpu")
