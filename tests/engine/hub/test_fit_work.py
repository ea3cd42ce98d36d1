"""The fit estimate for the work a user does (issue 19): the document the editor feeds, the dual
cache, the sampler's buffers over the hole and the vocabulary, the CUDA runtime, the longest
document that fits. Pure arithmetic on catalog shapes: no model is built here (the measured
checks are in test_fit.py and test_fit_measured.py)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine.hub import fit

GIB = 1 << 30


def card(gib: float) -> fit.Device:
    size = int(gib * GIB)
    return fit.Device("cuda", 0, f"{gib} GiB", size, size, True)


@pytest.fixture(scope="module")
def llada():
    return fit.shape_for("llada-8b-instruct")


@pytest.fixture(scope="module")
def dream():
    return fit.shape_for("dream-7b-instruct")


# the four cases, each an example of the kind: the work was not what was sized up ----------------
def test_llada_nf4_on_an_8_gb_card_does_not_fit_a_full_context_document(llada):
    """Was "fits (6.2)": 512 tokens, no cache. A 4096-token document with a small hole needs about 8.1 GiB."""
    est = fit.estimate(llada, "int4", "cuda:0", 4096, hole=32)
    assert est.context == 4096 and est.cache == 2 * 32 * 4096 * 4096 * 2  # layers x L x kv width x bf16, k and v
    assert 7.8 * GIB < est.total < 8.6 * GIB
    assert fit.verdict(est.total, 8 * GIB, 8 * GIB) == "won't fit"
    longest = fit.longest_context(llada, "int4", card(8), hole=32)
    assert 512 < longest < 4096
    assert fit.verdict(fit.estimate(llada, "int4", "cuda:0", longest, hole=32).total, 8 * GIB, 8 * GIB) == "fits"


def test_llada_int8_on_a_12_gb_card_is_no_longer_a_plain_fit(llada):
    est = fit.estimate(llada, "int8", "cuda:0", 4096, hole=32)
    assert 10.8 * GIB < est.total < 11.6 * GIB  # the issue measured about 11.1 GiB
    assert fit.verdict(est.total, 12 * GIB, 12 * GIB) != "fits"


def test_a_3000_token_hole_counts_the_sampler_over_the_vocabulary(llada):
    """The sampler holds 16 bytes per masked position x vocabulary entry with the cache on, 12 without."""
    on = fit.estimate(llada, "bf16", "cuda:0", 4096, hole=3000, cache=True)
    off = fit.estimate(llada, "bf16", "cuda:0", 4096, hole=3000, cache=False)
    assert on.sampler == 3000 * 126464 * 16 and off.sampler == 3000 * 126464 * 12
    assert 19 * GIB < off.total < on.total < 23.5 * GIB  # the issue measured 20 to 23.5 GiB


def test_dream_bf16_with_a_1400_token_hole_does_not_fit_16_gb(dream):
    """Was "tight" on 16 GB; about 18 GiB (Dream's README asks for 20 GB). Dream's context is 2048, not
    the 131072 positions of its config."""
    assert dream.max_context == 2048
    est = fit.estimate(dream, "bf16", "cuda:0", 100_000, hole=1400)
    assert est.context == 2048 and 17.3 * GIB < est.total < 18.5 * GIB
    assert fit.verdict(est.total, 16 * GIB, 16 * GIB) == "won't fit"
    assert fit.longest_context(dream, "bf16", card(16), hole=1400) == 0


# a second input of the same kind: grouped-query attention, a longer context, two candidates ---------------
def test_illada_cache_counts_its_key_value_heads_and_candidates_share_nothing_else():
    shape = fit.shape_for("illada-8b-instruct")
    assert shape.kv_width == 8 * 128 and shape.max_context == 8192
    one = fit.estimate(shape, "bf16", "cuda:0", 8192, hole=256)
    two = fit.estimate(shape, "bf16", "cuda:0", 8192, hole=256, candidates=2)
    assert one.cache == 2 * 32 * 8192 * 1024 * 2 == GIB
    assert two.cache == 2 * one.cache and two.activations == 2 * one.activations
    assert two.sampler == 256 * 155136 * fit.sampler_bytes(True, 2)


def test_sampler_bytes_follow_the_sampler_code():
    assert fit.sampler_bytes(cache=True) == 16       # logits, the rows taken out, the constrained copy, softmax
    assert fit.sampler_bytes(cache=False) == 12      # the rows are the logits themselves
    assert fit.sampler_bytes(cache=True, sampling=True) == 44  # float64 Gumbel-max instead of the softmax
    assert fit.sampler_bytes(cache=False, candidates=2) == 28  # batched: every candidate takes its rows out
    assert fit.sampler_bytes(cache=False, top_p=True) == 32


def test_the_runtime_on_cuda_is_counted_and_the_tokenizer_on_the_cpu(llada):
    gpu = fit.estimate(llada, "bf16", "cuda:0", 1024, hole=64)
    cpu = fit.estimate(llada, "bf16", "cpu", 1024, hole=64)
    assert gpu.overhead == fit.CUDA_CONTEXT + fit.CUBLAS_WORKSPACE
    assert cpu.overhead == fit.OVERHEAD["cpu"] + fit.tokenizer_bytes(126464)


def test_the_load_check_still_sizes_a_short_document(llada):
    """lacuna.engine.models.loader.check_fit calls estimate_for_config without a context: it refuses a load
    only when not even a short fill (512 tokens, 32 masked) can run."""
    from lacuna.engine.models.llada import LLaDAConfig

    est = fit.estimate_for_config(LLaDAConfig.llada_8b().to_config(), "bf16", "cuda")
    assert (est.context, est.hole) == (fit.DEFAULT_CONTEXT, fit.SHORT_HOLE)
    assert est.total < fit.estimate(llada, "bf16", "cuda", 4096).total


def test_dream_context_cap_is_the_engines():
    from lacuna.engine.models import dream

    assert fit.FAMILY_CONTEXT["dream"] == dream.CONTEXT


def test_fit_model_takes_the_whole_context_the_document_and_context_tokens(llada):
    gpu = card(10)
    whole = {f.precision: f for f in fit.fit_model("llada-8b-instruct", [gpu])}
    assert whole["int4"].context == 4096 and whole["int4"].hole == fit.DEFAULT_HOLE
    doc = {f.precision: f for f in fit.fit_model("llada-8b-instruct", [gpu], 600, hole=40)}
    assert (doc["int4"].context, doc["int4"].hole) == (600, 40)
    longer = {f.precision: f for f in fit.fit_model("llada-8b-instruct", [gpu], 9000)}
    assert longer["int4"].context == 4096, "the editor feeds at most the model's context"
    view = {f.precision: f for f in fit.fit_model("llada-8b-instruct", [gpu], 9000, context_tokens=1000)}
    assert view["int4"].context == 1000 and view["int4"].max_context == 1000
    assert whole["int4"].need > doc["int4"].need


# properties ------------------------------------------------------------------------------------------
_shapes = st.sampled_from(["llada-8b-instruct", "dream-7b-instruct", "illada-8b-base", "mdlm-owt",
                           "modernbert-large-chat"])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(name=_shapes, precision=st.sampled_from(["bf16", "fp32", "int8", "int4"]),
       device=st.sampled_from(["cpu", "cuda:0"]), context=st.integers(1, 9000), more=st.integers(0, 4000),
       hole=st.integers(1, 4000), cache=st.sampled_from([None, True, False]), candidates=st.integers(1, 4))
def test_the_estimate_grows_with_the_document_and_the_hole(name, precision, device, context, more, hole, cache,
                                                           candidates):
    shape = fit.shape_for(name)
    work = dict(cache=cache, candidates=candidates)
    base = fit.estimate(shape, precision, device, context, hole=hole, **work)
    assert base.context <= (shape.max_context or context) and base.hole <= base.context
    assert fit.estimate(shape, precision, device, context + more, hole=hole, **work).total >= base.total
    assert fit.estimate(shape, precision, device, context, hole=hole + more, **work).total >= base.total
    assert base.working == base.cache + max(base.activations, base.sampler)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(name=_shapes, precision=st.sampled_from(["bf16", "int8", "int4"]), gib=st.floats(1, 40),
       hole=st.integers(1, 3000), cache=st.sampled_from([None, False]))
def test_the_longest_document_that_fits_is_the_boundary(name, precision, gib, hole, cache):
    shape = fit.shape_for(name)
    device = card(gib)
    longest = fit.longest_context(shape, precision, device, hole=hole, cache=cache)

    def fits(length: int) -> bool:
        est = fit.estimate(shape, precision, device.label, length, hole=min(hole, length), cache=cache)
        return est.total <= fit.FITS * device.available

    limit = shape.max_context or fit.LONGEST_SEARCH
    if longest:
        assert fits(longest) and longest <= limit
        if longest < limit:
            assert not fits(longest + 1)
    else:
        assert not fits(min(hole, limit))
