"""The dual context cache on MDLM and SEDD (engine.models.dit_adapter, kvcache):
equal to the plain pass where it is exact, a stated agreement where it
approximates; MDLM's ddpm cache; batched candidates. Tiny seeded checkpoints
in the official layouts (tests.support.dit_tiny, the reference tests' recipe)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lacuna.engine import InfillRequest, Span, infill, load_model, stream_infill
from lacuna.engine.sampler import infill_candidates, resolve_cache
from tests.support.dit_tiny import build_tiny_mdlm, build_tiny_sedd

VOCAB = 401
TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void."


@pytest.fixture(scope="module")
def mdlm(tmp_path_factory):
    folder = build_tiny_mdlm(tmp_path_factory.mktemp("mdlm"), with_tokenizer=True, vocab_size=VOCAB)
    return load_model(str(folder), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def sedd(tmp_path_factory):
    folder = build_tiny_sedd(tmp_path_factory.mktemp("sedd"), with_tokenizer=True, tokens=VOCAB - 1)
    return load_model(str(folder), device="cpu", dtype="float32")


@pytest.fixture(scope="module", params=["mdlm", "sedd"])
def dit(request):
    return request.getfixturevalue(request.param)


def _canvas(model, masked=range(20, 28), length=48, seed=0):
    ids = torch.randint(0, model.mask_id, (2, length), generator=torch.Generator().manual_seed(seed))
    ids[:, list(masked)] = model.mask_id
    return ids


def _finite_close(a, b, atol=1e-5):
    assert torch.equal(torch.isfinite(a), torch.isfinite(b))
    return torch.allclose(a[torch.isfinite(a)], b[torch.isfinite(b)], atol=atol)


def test_the_families_offer_the_dual_cache_by_default(mdlm, sedd):
    req = InfillRequest(text=TEXT, spans=[Span(17, 26)])
    for model in (mdlm, sedd):
        assert model.cache_modes == ("dual",) and resolve_cache(model, req) == "dual"


def test_prefill_is_the_plain_pass_and_keeps_every_layer(dit):
    ids = _canvas(dit)
    block = torch.arange(20, 28)
    logits, cache = dit.prefill(ids, block)
    assert _finite_close(logits, dit.logits(ids, block))
    assert len(cache.keys) == 2 and cache.length == ids.shape[1]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_a_cached_step_on_an_unchanged_canvas_is_exact(dit, data):
    length = data.draw(st.integers(4, 64))
    block = sorted(data.draw(st.sets(st.integers(0, length - 1), min_size=1, max_size=length)))
    ids = _canvas(dit, masked=block, length=length, seed=data.draw(st.integers(0, 1000)))
    block = torch.tensor(block)
    want = block[data.draw(st.integers(0, block.numel() - 1)):]
    _, cache = dit.prefill(ids, block)
    assert _finite_close(dit.logits_cached(ids, block, want, cache), dit.logits(ids, want))


def test_a_block_over_the_whole_canvas_is_exact_after_commits(dit):
    # Every position runs again, at the canvas's sigma now: nothing of the cache is read.
    ids = _canvas(dit)
    everything = torch.arange(ids.shape[1])
    _, cache = dit.prefill(ids, everything)
    ids[:, 20:24] = 9
    want = torch.tensor([3, 24, 27])
    assert _finite_close(dit.logits_cached(ids, everything, want, cache), dit.logits(ids, want))


def test_after_commits_a_partial_block_approximates(mdlm, sedd):
    block = torch.arange(20, 28)
    first = {}
    for model in (mdlm, sedd):
        ids = _canvas(model)
        _, cache = model.prefill(ids, block)
        ids[:, 20:24] = 9
        approx = model.logits_cached(ids, block, block[4:], cache)
        assert not _finite_close(approx, model.logits(ids, block[4:]), atol=1e-4)  # deeper context K/V are stale
        fresh = model.prefill(ids, block)[1]
        first[model.family] = (cache.keys[0][:, :, :20] - fresh.keys[0][:, :, :20]).abs().max().item()
    # MDLM's first layer sees (token, position) only; SEDD's also the sigma, which moved with the commits.
    assert first["mdlm"] < 1e-6 < first["sedd"]


def test_the_first_step_of_every_block_equals_the_plain_loop(dit):
    base = InfillRequest(text=TEXT, spans=[Span(17, 26), Span(60, 70, length=6)], steps=8, block_length=4, seed=1)
    plain = list(stream_infill(dit, dataclasses.replace(base, cache="none")))
    dual = list(stream_infill(dit, dataclasses.replace(base, cache="dual")))
    assert plain[0].committed == dual[0].committed
    assert [e.nfe for e in dual] == [e.nfe for e in plain]
    assert dual[-1].result.text[:17] == TEXT[:17]


def test_dual_agrees_with_the_plain_loop(dit):
    """Stated agreement on the tiny seeded networks, greedy, blocks of 4: at
    least 80% of tokens equal (measured: 41/45 MDLM, 45/45 SEDD;
    docs/benchmarks.md has the real-width figures)."""
    same = total = 0
    for seed, at in enumerate((10, 33, 80)):
        req = InfillRequest(text=TEXT, spans=[Span(at, at, length=15)], steps=15, block_length=4, seed=seed)
        a = infill(dit, dataclasses.replace(req, cache="none"))
        b = infill(dit, req)  # the family's default: dual
        assert b.nfe == a.nfe
        pa = [a.text[p.start:p.end] for p in a.pieces[0]]
        pb = [b.text[p.start:p.end] for p in b.pieces[0]]
        same += sum(x == y for x, y in zip(pa, pb))
        total += len(pa)
    print(f"{dit.family} agreement {same}/{total}")
    assert same / total >= 0.8


@pytest.mark.parametrize("sampler", ["ancestral", "ancestral_analytic"])
def test_ddpm_cache_reuses_logits_of_an_unchanged_canvas_exactly(dit, sampler):
    # kuleshov-group/mdlm's _ddpm_caching_update: no forward pass when the last step
    # committed nothing. The reused logits are those a pass would give, so the fill is
    # the one of the sampler that always runs the network.
    req = InfillRequest(text=TEXT, spans=[Span(33, 39, length=4)], steps=24, sampler=sampler, temperature=1.0,
                        seed=4, cache="none")
    cached = infill(dit, req)
    every = infill(dit, dataclasses.replace(req, sampler="ancestral_nocache"))
    if sampler == "ancestral":
        assert cached.text == every.text
    assert cached.nfe < every.nfe == 24


@pytest.mark.parametrize("cache", ["none", "dual"])
def test_candidates_share_passes_and_equal_separate_runs(dit, cache):
    seeds = [3, 11, 12345]
    req = InfillRequest(text=TEXT, spans=[Span(33, 39, length=5), Span(60, 70)], steps=6, block_length=3,
                        temperature=0.8, cache=cache)
    batched = infill_candidates(dit, req, seeds)
    for got, seed in zip(batched, seeds):
        want = infill(dit, dataclasses.replace(req, seed=seed))
        assert (got.text, got.nfe) == (want.text, want.nfe)


def test_each_row_of_a_batch_sees_its_own_sigma(sedd):
    ids = _canvas(sedd)
    ids[1, 10:20] = sedd.mask_id  # the second canvas is noisier
    sigma = sedd.sigma(ids)
    assert sigma[1] > sigma[0] > 0
    block = torch.arange(20, 28)
    both = sedd.logits(ids, block)
    for b in range(2):
        assert _finite_close(both[b], sedd.logits(ids[b], block))


@pytest.mark.parametrize("cache", ["dual", "none"])
def test_the_cli_runs_either_cache(capsys, tmp_path, cache):
    import json

    from lacuna.engine.cli import main

    folder = build_tiny_sedd(tmp_path / "s", with_tokenizer=True, tokens=VOCAB - 1)
    code = main(["infill", "--model", str(folder), "--json", "--device", "cpu", "--cache", cache, "--steps", "3",
                 "In the [[3]] God created the heaven."])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["text"].startswith("In the ") and data["nfe"] == 3
