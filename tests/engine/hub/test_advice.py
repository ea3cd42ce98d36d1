"""The best model for a machine (issue 21): what engine.hub.advice.recommend chooses on a CPU-only
laptop at several speeds and on 8, 12, 16 and 24 GB cards; download sizes; and one truth about
8/4-bit: fit's verdict says n/a exactly where the loader refuses."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lacuna.engine.hub import advice, catalog, fit
from lacuna.engine.hub import speed_estimate as se

GIB = 1 << 30


@pytest.fixture
def entries(hub):
    """The bundled catalog, with the user's data folder and the HF cache isolated (the hub fixture)."""
    return catalog.entries()


def laptop(free_gib: float = 12, bf16: bool = True) -> fit.Device:
    return fit.Device("cpu", 0, "A 2-core laptop", 16 * GIB, int(free_gib * GIB), bf16)


def rate_for(entries, model_id: str, seconds: float) -> float:
    """The FLOP/s at which ``model_id`` fills a sentence in ``seconds``."""
    entry = next(e for e in entries if e["id"] == model_id)
    return advice.fill_seconds(entry, 1.0, advice.TYPICAL, "bf16", laptop()) / seconds


def test_a_fast_cpu_gets_the_largest_model_that_fills_within_the_bound(entries):
    rate = rate_for(entries, "sedd-medium", 20)
    best = advice.recommend([laptop()], rate, entries=entries)
    assert (best.id, best.precision, best.verdict, best.fast_enough) == ("sedd-medium", "bf16", "fits", True)
    assert best.seconds == pytest.approx(20)
    assert best.size == 1_700_000_000 and not best.size_estimated
    assert "the largest model that fits this machine's memory" in best.reason and "about 20 s" in best.reason


def test_a_slower_cpu_gets_mdlm_and_the_8b_models_are_never_offered_for_their_minutes(entries):
    rate = rate_for(entries, "mdlm-owt", 20)
    best = advice.recommend([laptop()], rate, entries=entries)
    assert best.id == "mdlm-owt" and best.seconds == pytest.approx(20) and best.alternative is None
    llada = advice.option_for(next(e for e in entries if e["id"] == "llada-8b-base"), laptop(), rate)
    # the issue: an 8B model "fits" a 2-core laptop's memory, and takes many minutes a fill
    assert llada.verdict == "fits" and llada.seconds > 10 * 60


def test_when_nothing_writes_in_time_the_starter_is_kept_and_the_quickest_writer_named(entries):
    rate = rate_for(entries, "mdlm-owt", 300)
    best = advice.recommend([laptop()], rate, entries=entries)
    assert best.id == "starter" and best.bundled and best.size == 0 and best.fast_enough
    assert best.alternative is not None and best.alternative.id == "mdlm-owt"
    assert best.alternative.seconds == pytest.approx(300)
    assert best.reason.startswith("No model in the catalog fills a sentence within 30 s on this machine")
    assert "5 min" in best.reason and "demonstration" in best.reason
    # a longer bound the user accepts brings the writer back
    assert advice.recommend([laptop()], rate, max_seconds=600, entries=entries).id == "mdlm-owt"


def test_without_a_measured_speed_the_largest_model_that_fits_is_named_and_the_reason_says_so(entries):
    best = advice.recommend([laptop(free_gib=12)], None, entries=entries)
    # bf16 LLaDA-8B needs ~16.5 GB: over 85% of 12 GiB; 8-bit fits
    assert (best.id, best.precision, best.seconds) == ("llada-8b-base", "int8", None)
    assert "speed is not measured yet" in best.reason


@pytest.mark.parametrize("gb, precision", [(8, "int4"), (12, "int8"), (16, "int8"), (24, "bf16")])
def test_gpu_cards_get_llada_8b_base_at_the_best_precision_that_fits(entries, gb, precision):
    card = advice.card(gb)
    assert card.total == card.available == gb * GIB
    best = advice.recommend([card], 1e9, entries=entries)
    assert (best.id, best.precision, best.verdict, best.seconds) == ("llada-8b-base", precision, "fits", None)
    assert best.need <= fit.FITS * card.available
    assert best.reason == (f"LLaDA 8B Base: the largest model that fits {card.name} "
                           f"({advice.PRECISION_LABEL[precision]}, needs {advice.human_bytes(best.need)}); "
                           "its speed on a GPU is not measured here.")


def test_an_apple_gpu_is_never_offered_8_or_4_bit(entries):
    mps = fit.Device("mps", 0, "Apple GPU (MPS)", 12 * GIB, 12 * GIB, True)
    best = advice.recommend([mps], None, entries=entries)
    assert best.precision == "bf16"
    fits = {f.precision: f for f in fit.fit_model("llada-8b-base", [mps])}
    assert fits["int4"].verdict == "n/a" and fits["int4"].note == fit.QUANT_NOT_ON_MPS


def test_download_sizes_are_the_hubs_or_marked_estimates(entries):
    by_id = {e["id"]: e for e in entries}
    assert advice.download_size(by_id["starter"]) == (0, False)
    assert advice.download_size(by_id["mdlm-owt"]) == (679_000_000, False)
    size, estimated = advice.download_size(by_id["dream-7b-base"])  # bf16, not listed
    assert estimated and size == 2 * by_id["dream-7b-base"]["parameters"]
    assert advice.size_text(size, estimated) == "≈15.2 GB"
    size, estimated = advice.download_size(by_id["ldm-modernbert-base"])  # dtype not recorded: float32
    assert estimated and size == 4 * by_id["ldm-modernbert-base"]["parameters"]
    # every loadable catalog model now has a size (the issue: "?" for 16 of 18)
    assert all(advice.download_size(e)[0] is not None for e in advice.candidates(entries))


@given(st.integers(1, 10**12), st.sampled_from(["float32", "bfloat16", "float16", None, "int8"]),
       st.one_of(st.none(), st.integers(1, 10**12)))
def test_download_size_is_the_listing_when_known_else_parameters_times_dtype_bytes(params, dtype, listed):
    size, estimated = advice.download_size({"parameters": params, "dtype": dtype, "download_size": listed})
    if listed:
        assert (size, estimated) == (listed, False)
    else:
        assert estimated and size == params * advice.DTYPE_BYTES.get(dtype or "", 4)
        assert advice.size_text(size, estimated).startswith("≈")


@given(st.floats(0.01, 1e6))
def test_seconds_read_as_seconds_minutes_or_hours(seconds):
    text = advice.seconds_text(seconds)
    number, unit = text.split(" ")
    scale = {"s": 1, "min": 60, "h": 3600}[unit]
    assert abs(float(number) * scale - seconds) <= max(0.05, 0.5 * scale, 0.05 * seconds)


def test_quantised_fills_on_a_cpu_are_slower_not_faster(entries):
    llada = next(e for e in entries if e["id"] == "llada-8b-base")
    for bf16 in (True, False):
        cpu = laptop(bf16=bf16)
        base = advice.fill_seconds(llada, 1e10, advice.TYPICAL, "bf16", cpu)
        assert base < advice.fill_seconds(llada, 1e10, advice.TYPICAL, "int8", cpu) \
            <= advice.fill_seconds(llada, 1e10, advice.TYPICAL, "int4", cpu)
    assert advice.fill_seconds(llada, 1e10, advice.TYPICAL, "bf16", advice.card(24)) is None


# one truth about 8/4-bit -------------------------------------------------------
NATIVE = set(fit.QUANT_FAMILIES)  # the registry's families that 8/4-bit loading quantises


@pytest.mark.parametrize("device", [laptop(), advice.card(24), fit.Device("mps", 0, "Apple", 16 * GIB, 16 * GIB)])
def test_8_and_4_bit_verdicts_follow_the_loader_on_every_device(entries, monkeypatch, device):
    monkeypatch.setattr(fit, "bitsandbytes_available", lambda: False)
    for entry in advice.candidates(entries):
        fits = {f.precision: f for f in fit.fit_model(entry, [device])}
        for precision in ("int8", "int4"):
            f = fits[precision]
            assert "CUDA" not in f.note, (entry["id"], f.note)  # the issue: "needs CUDA" on a CPU
            if entry["family"] not in NATIVE:
                assert (f.verdict, f.note) == ("n/a", fit.QUANT_NOT_NATIVE), entry["id"]
            elif device.kind == "mps":
                assert (f.verdict, f.note) == ("n/a", fit.QUANT_NOT_ON_MPS), entry["id"]
            else:
                assert f.verdict != "n/a" and fit.QUANT_INSTALL in f.note, entry["id"]
                assert f.estimate is not None and "0 B" not in fit.QUANT_INSTALL


def test_the_loader_quantises_on_a_cpu_exactly_where_fit_gives_a_verdict(tiny_llada_dir, tiny_bert_dir):
    pytest.importorskip("bitsandbytes")
    from lacuna.engine import InfillRequest, Span, infill, load_model
    from lacuna.engine.errors import ModelLoadError

    cpu = laptop()
    for folder, loads in ((tiny_llada_dir, True), (tiny_bert_dir, False)):
        int8 = next(f for f in fit.fit_model(str(folder), [cpu]) if f.precision == "int8")
        assert (int8.verdict != "n/a") == loads, folder
        if loads:
            model = load_model(str(folder), device="cpu", quantization="nf4")
            text = infill(model, InfillRequest("In the beginning God created", (Span(3, 16),), steps=2)).text
            assert text.endswith(" created")
        else:
            with pytest.raises(ModelLoadError):
                load_model(str(folder), device="cpu", quantization="int8")


def test_the_cached_families_are_the_adapters_with_the_dual_cache_by_default(tmp_path):
    from lacuna.engine import load_model
    from tests.support.dit_tiny import build_tiny_mdlm, build_tiny_sedd

    for family, folder in (("mdlm", build_tiny_mdlm(tmp_path / "mdlm", with_tokenizer=True, vocab_size=401)),
                           ("sedd", build_tiny_sedd(tmp_path / "sedd", with_tokenizer=True, tokens=400))):
        model = load_model(str(folder), device="cpu", dtype="float32")
        assert (model.default_cache == "dual") == (family in advice.CACHED_FAMILIES), family
    # one list: the advice and the speed estimate cannot disagree about a family's cache
    assert advice.CACHED_FAMILIES == se.DUAL_CACHE_FAMILIES


# the command line ----------------------------------------------------------------
def _record_rate(rate: float) -> None:
    se.store.update(se.SPEED_FILE, {}, lambda data: {**(data or {}), se.machine_key(): {"flops_per_s": rate}})


def test_models_recommend_on_this_machine_and_for_a_card(entries, capsys, monkeypatch):
    from lacuna.engine.hub.cli import main

    monkeypatch.setattr(fit, "detect_devices", lambda: [laptop()])
    _record_rate(rate_for(entries, "mdlm-owt", 12))
    assert main(["models", "recommend"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("mdlm-owt (MDLM (OpenWebText)), download 679 MB, fits on cpu in bf16 (needs "
                      f"{advice.human_bytes(advice.recommend([laptop()], rate_for(entries, 'mdlm-owt', 12)).need)}), "
                      "about 12 s per fill")
    assert out[-1] == "Download it with: lacuna-cli models pull mdlm-owt"
    assert main(["models", "recommend", "--card", "12", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert (data["id"], data["precision"], data["seconds"]) == ("llada-8b-base", "int8", None)
    # a first speed measured while the machine was busy can be measured again
    timed = []
    monkeypatch.setattr(advice, "_RATES", {})
    monkeypatch.setattr(se, "calibrate", lambda: timed.append(1) or rate_for(entries, "mdlm-owt", 600))
    assert main(["models", "recommend"]) == 0 and timed == []
    capsys.readouterr()
    assert main(["models", "recommend", "--remeasure"]) == 0 and timed == [1]
    out = capsys.readouterr()
    assert out.out.startswith("starter (Lacuna starter)") and "Measuring this machine's speed" in out.err
    assert main(["models", "recommend", "--max-seconds", "0"]) == 2
    assert capsys.readouterr().err.strip() == \
        "lacuna-cli: models recommend: --max-seconds must be a positive number, got 0"


def test_models_list_gives_every_size_and_the_speed_once_measured(entries, capsys):
    from lacuna.engine.hub.cli import main

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "run `lacuna-cli models recommend` once to measure this machine's speed" in out
    _record_rate(rate_for(entries, "mdlm-owt", 12))
    assert main(["models", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "≈15.2 GB" in rows["dream-7b-base"] and "679 MB" in rows["mdlm-owt"] and " 12 s " in rows["mdlm-owt"]
    assert "?" not in rows["dream-7b-base"]


def test_models_fit_says_8_and_4_bit_run_on_a_cpu(entries, capsys, monkeypatch):
    from lacuna.engine.hub.cli import main

    monkeypatch.setattr(fit, "detect_devices", lambda: [laptop()])
    monkeypatch.setattr(fit, "bitsandbytes_available", lambda: False)
    assert main(["models", "fit", "llada-8b-base"]) == 0
    out = capsys.readouterr().out
    assert "CUDA" not in out and fit.QUANT_INSTALL in out and fit.QUANT_ON_CPU in out
    assert main(["models", "fit", "sedd-small"]) == 0
    assert f"int8: n/a ({fit.QUANT_NOT_NATIVE})" in capsys.readouterr().out
