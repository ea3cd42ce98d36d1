"""Seconds per fill before a download: the starter's measured fill, scaled by FLOPs."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lacuna.engine.hub import catalog, speed_estimate as se


def test_calibration_is_recorded_per_machine_and_reproduces_the_starter(hub):
    assert se.measured_rate() is None
    rate = se.calibrate(repeats=1)
    assert rate > 0 and se.measured_rate() == pytest.approx(rate)
    data = se.store.read(se.SPEED_FILE, {})
    seconds = data[se.machine_key()]["seconds"]
    # by construction the starter's own estimate is its measured fill
    starter = se.entry_seconds(catalog.catalog_entry("starter"), rate, context=data[se.machine_key()]["context"])
    assert starter == pytest.approx(seconds, rel=1e-3)


def test_mixture_of_experts_counts_only_active_experts():
    moe = catalog.catalog_entry("llada-moe-7b-a1b-instruct")
    cost = se.cost_from_shape(moe["shape"], moe["parameters"])
    # 16 layers x (attention 4 x 2048^2 + 8 of 64 experts x 3 x 2048 x 1024 + router) ~ 1.08e9
    assert 1.0e9 < cost.active_parameters < 1.15e9
    dense = catalog.catalog_entry("llada-8b-instruct")
    assert se.cost_from_shape(dense["shape"], dense["parameters"]).active_parameters == \
        dense["parameters"] - 2 * 126464 * 4096


@given(st.integers(16, 4096), st.integers(1, 512), st.integers(1, 256))
def test_fill_cost_grows_with_context_hole_and_steps(context, hole, steps):
    cost = se.cost_from_shape(catalog.catalog_entry("llada-8b-instruct")["shape"], 8_015_581_184)
    base = cost.fill_flops(context, hole, steps)
    assert cost.fill_flops(context + 1, hole, steps) > base
    assert cost.fill_flops(context, hole + 1, steps) > base
    assert cost.fill_flops(context, hole, steps + 1) > base
    if hole * 4 <= context and steps > 1:
        assert cost.fill_flops(context, hole, steps, cached=True) < cost.fill_flops(context, hole, steps, cached=False)


def test_the_dual_cache_families_are_the_adapters_with_the_cache_by_default(tiny_llada_dir, tiny_dream_dir,
                                                                            tiny_llada_moe_dir, tiny_bert_dir,
                                                                            tmp_path):
    from lacuna.engine import load_model
    from tests.support.dit_tiny import build_tiny_mdlm, build_tiny_sedd

    mdlm = build_tiny_mdlm(tmp_path / "mdlm", with_tokenizer=True, vocab_size=401)
    sedd = build_tiny_sedd(tmp_path / "sedd", with_tokenizer=True, tokens=400)
    for folder, family in ((tiny_llada_dir, "llada"), (tiny_dream_dir, "dream"), (tiny_llada_moe_dir, "llada_moe"),
                           (tiny_bert_dir, "bert"), (mdlm, "mdlm"), (sedd, "sedd")):
        model = load_model(str(folder), device="cpu", dtype="float32")
        assert model.family == family
        default = getattr(model, "default_cache", "none")
        assert (default == "dual") == (family in se.DUAL_CACHE_FAMILIES), family
        assert default == "none" or default in model.cache_modes, family


def test_the_dit_families_are_estimated_with_the_cache_they_run():
    """mdlm-owt and sedd-small run the dual cache by default, so their expected seconds per
    fill are the cached loop's: at the editor's default fill that is a fraction of the plain
    loop's (one full pass, then passes over the hole alone)."""
    rate = 1e11
    for model_id in ("mdlm-owt", "sedd-small"):
        entry = catalog.catalog_entry(model_id)
        assert entry is not None and entry["family"] in se.DUAL_CACHE_FAMILIES, model_id
        cost = se.cost_from_shape(entry["shape"], entry["parameters"])
        context = min(se.DEFAULT_CONTEXT, entry["context_length"])
        cached = se.seconds_per_fill(cost, rate, context, cached=True)
        plain = se.seconds_per_fill(cost, rate, context, cached=False)
        assert se.entry_seconds(entry, rate) == pytest.approx(cached)
        assert cached < plain / 4, model_id
