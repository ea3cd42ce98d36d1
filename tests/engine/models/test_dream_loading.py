"""Dream and LLaDA-MoE load natively from folders in their official layouts and fill spans
end to end (API and CLI); their code files are never imported."""
from __future__ import annotations

import json
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from lacuna.engine import InfillRequest, ModelLoadError, Span, infill, load_model
from lacuna.engine.models.base import ModelAdapter
from lacuna.engine.models.dream import DreamNetwork
from lacuna.engine.models.llada_moe import LLaDAMoENetwork
from tests.support.tiny_dream import DREAM_CODE, MOE_CODE, build_tiny_dream, build_tiny_llada_moe

TEXT = "In the beginning God created the heaven and the earth."


@pytest.fixture(scope="module")
def dream(tiny_dream_dir):
    return load_model(str(tiny_dream_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def moe(tiny_llada_moe_dir):
    return load_model(str(tiny_llada_moe_dir), device="cpu", dtype="float32")


def _no_repository_code_imported(names):
    stems = {n.removesuffix(".py") for n in names}
    return not any(m.rsplit(".", 1)[-1] in stems for m in sys.modules)


def test_dream_loads_natively_and_follows_the_protocol(dream, tiny_dream_dir):
    assert isinstance(dream, ModelAdapter)
    assert dream.family == "dream" and isinstance(dream.network, DreamNetwork)
    assert dream.logit_shift == 1 and dream.context_length == 2048
    config = json.loads((tiny_dream_dir / "config.json").read_text())
    assert dream.mask_id == config["mask_token_id"] == dream.tokenizer.mask_token_id
    assert dream.tokenizer.convert_ids_to_tokens(dream.mask_id) == "<|mask|>"
    assert config["eos_token_id"] in dream.special_ids
    assert dream.vocab_size == len(dream.tokenizer) < config["vocab_size"]  # padded rows cut off
    # Qwen2's BPE adds no BOS/EOS; the engine starts the canvas with bos so no mask sits at position 0
    assert dream.prefix_ids == (config["bos_token_id"],) and dream.suffix_ids == ()
    stored = load_file(str(tiny_dream_dir / "model.safetensors"))
    for name, tensor in dream.network.state_dict().items():
        assert torch.equal(tensor, stored[name].float()), name
    assert _no_repository_code_imported(DREAM_CODE)


def test_dream_logits_are_shifted_by_one(dream):
    ids = torch.tensor([dream.mask_id, 5, dream.mask_id, dream.mask_id, 9])
    got = dream.logits(ids, torch.tensor([0, 2, 3]))
    with torch.no_grad():
        rows = dream.network(ids[None])[0, :, : dream.vocab_size]
    torch.testing.assert_close(got, rows[[0, 1, 2]])


def test_dream_tokenizer_json_and_vocab_merges_agree(tmp_path, dream):
    with_json = load_model(str(build_tiny_dream(tmp_path / "json", tokenizer_json=True)), device="cpu",
                           dtype="float32")
    for text in [TEXT, "don't 1234 Café\n\n  x <|mask|><|endoftext|>", "日本語 🙂"]:
        assert with_json.tokenizer.encode(text) == dream.tokenizer.encode(text)
    assert with_json.mask_id == dream.mask_id


def test_moe_loads_natively_and_follows_the_protocol(moe, tiny_llada_moe_dir):
    assert isinstance(moe, ModelAdapter)
    assert moe.family == "llada_moe" and isinstance(moe.network, LLaDAMoENetwork)
    assert moe.logit_shift == 0 and moe.context_length == 256
    config = json.loads((tiny_llada_moe_dir / "config.json").read_text())
    assert config["model_type"] == "llada"  # as released: the MoE keys tell it from dense LLaDA
    assert moe.mask_id == config["mask_token_id"] == moe.tokenizer.mask_token_id
    ids = torch.tensor([3, moe.mask_id, 7, moe.mask_id])
    with torch.no_grad():
        full = moe.network(ids[None])[0, :, : moe.vocab_size]
    torch.testing.assert_close(moe.logits(ids, torch.tensor([1, 3])), full[[1, 3]])
    assert _no_repository_code_imported(MOE_CODE)


def test_moe_mask_id_without_config_key_comes_from_the_tokenizer_then_the_release_default(tmp_path):
    folder = build_tiny_llada_moe(tmp_path / "released", mask_in_config=False)
    specials = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**specials, "mask_token": "<|mdm_mask|>"}))
    model = load_model(str(folder), device="cpu", dtype="float32")
    assert model.tokenizer.convert_ids_to_tokens(model.mask_id) == "<|mdm_mask|>"
    (folder / "tokenizer_config.json").write_text(json.dumps(specials))
    # Nothing names a mask: the released id 156895, which this tiny vocabulary lacks.
    with pytest.raises(ModelLoadError, match="156895"):
        load_model(str(folder), device="cpu", dtype="float32")


@pytest.mark.parametrize("family", ["dream", "llada_moe"])
def test_sharded_bf16_checkpoints(tmp_path, family):
    build = build_tiny_dream if family == "dream" else build_tiny_llada_moe
    folder = build(tmp_path / family, shards=3)
    model = load_model(str(folder), device="cpu", dtype="bfloat16")
    assert model.family == family and model.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in model.network.parameters())


@pytest.mark.parametrize("family", ["dream", "llada_moe"])
def test_a_checkpoint_with_a_wrong_tensor_is_refused_naming_it(tmp_path, family):
    build = build_tiny_dream if family == "dream" else build_tiny_llada_moe
    folder = build(tmp_path / family)
    state = load_file(str(folder / "model.safetensors"))
    name = "model.layers.1.self_attn.k_proj.weight"
    state[name] = state[name][:-2].contiguous()
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ModelLoadError, match=name.replace(".", r"\.")):
        load_model(str(folder), device="cpu", dtype="float32")


def test_moe_config_asking_for_an_unsupported_router_is_refused(tmp_path):
    folder = build_tiny_llada_moe(tmp_path / "sigmoid")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "moe_router_score_function": "sigmoid"}))
    with pytest.raises(ModelLoadError, match="softmax"):
        load_model(str(folder), device="cpu", dtype="float32")


def test_dream_without_any_tokenizer_file_is_refused(tmp_path):
    folder = build_tiny_dream(tmp_path / "bare")
    (folder / "merges.txt").unlink()
    with pytest.raises(ModelLoadError, match="merges.txt"):
        load_model(str(folder), device="cpu", dtype="float32")


@pytest.mark.parametrize("which", ["dream", "moe"])
def test_spans_fill_end_to_end_and_the_text_outside_is_kept(which, dream, moe):
    model = dream if which == "dream" else moe
    start = TEXT.index("heaven")
    request = InfillRequest(text=TEXT, spans=[Span(start, start + 6), Span(len(TEXT), len(TEXT), length=3)],
                            steps=4, sampler="low_confidence", seed=0)
    result = infill(model, request)
    first, second = result.spans
    assert result.text[: first.start] == TEXT[:start]
    assert result.text[first.end : second.start] == TEXT[start + 6 :]
    assert second.end == len(result.text)
    assert result.nfe == 4
    again = infill(model, request)
    assert again.text == result.text  # same seed, same fill


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, len(TEXT) - 1), width=st.integers(1, 12), seed=st.integers(0, 1000))
def test_any_span_of_the_dream_canvas_is_filled_and_the_rest_kept(dream, start, width, seed):
    end = min(len(TEXT), start + width)
    result = infill(dream, InfillRequest(text=TEXT, spans=[Span(start, end)], steps=2, seed=seed))
    (span,) = result.spans
    assert result.text[: span.start] == TEXT[:start] and result.text[span.end :] == TEXT[end:]


@pytest.mark.parametrize("which", ["tiny_dream_dir", "tiny_llada_moe_dir"])
def test_cli_infill_with_a_model_folder(which, request, capsys):
    from lacuna.engine.cli import main

    folder = request.getfixturevalue(which)
    code = main(["infill", "--model", str(folder), "--steps", "3", "--seed", "1", "--device", "cpu",
                 "--dtype", "float32", "--json", "In the [[2]] God created the [[heaven]]."])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["nfe"] == 3 and len(data["spans"]) == 2
    assert data["text"].startswith("In the ") and data["text"].endswith(".")


@pytest.mark.parametrize("fixture, repo, entry, family", [
    ("tiny_dream_dir", "Dream-org/Dream-v0-Base-7B", "dream-7b-base", "dream"),
    ("tiny_dream_dir", "apple/DiffuCoder-7B-Instruct", "diffucoder-7b-instruct", "dream"),
    ("tiny_llada_moe_dir", "inclusionAI/LLaDA-MoE-7B-A1B-Base", "llada-moe-7b-a1b-base", "llada_moe"),
])
def test_catalog_entries_load_from_the_hf_cache(fixture, repo, entry, family, request, tmp_path, monkeypatch):
    import shutil

    from lacuna.engine.hub import catalog_entry

    assert catalog_entry(entry)["family"] == family and catalog_entry(entry)["loadable"]
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = tmp_path / "hub" / ("models--" + repo.replace("/", "--"))
    shutil.copytree(request.getfixturevalue(fixture), folder / "snapshots" / commit)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    for name in (repo, entry):
        model = load_model(name, device="cpu", dtype="float32")
        assert model.family == family and model.path == str(folder / "snapshots" / commit)


@pytest.mark.parametrize("which", ["dream", "moe"])
def test_nf4_weights_on_cpu(which, dream, moe, tiny_dream_dir, tiny_llada_moe_dir):
    bnb = pytest.importorskip("bitsandbytes")
    ref, folder = (dream, tiny_dream_dir) if which == "dream" else (moe, tiny_llada_moe_dir)
    model = load_model(str(folder), device="cpu", dtype="bfloat16", quantization="nf4")
    layer = model.network.model.layers[1]
    assert isinstance(layer.self_attn.o_proj, bnb.nn.Linear4bit)
    assert isinstance(model.network.lm_head, torch.nn.Linear)  # the head stays 16-bit
    if which == "dream":  # biased q/k/v quantise too, their biases kept as stored
        stored = load_file(str(folder / "model.safetensors"))
        for proj in ("q_proj", "k_proj", "v_proj"):
            q = getattr(layer.self_attn, proj)
            assert isinstance(q, bnb.nn.Linear4bit) and q.bias.dtype == torch.bfloat16
            assert torch.equal(q.bias.data, stored[f"model.layers.1.self_attn.{proj}.bias"].to(torch.bfloat16))
    if which == "moe":
        assert isinstance(layer.mlp.experts[0].down_proj, bnb.nn.Linear4bit)
        assert type(layer.mlp.gate) is torch.nn.Linear  # the router stays 16-bit
    else:
        assert isinstance(layer.mlp.gate_proj, bnb.nn.Linear4bit)
    ids = torch.tensor([7, 8, model.mask_id, model.mask_id, 9, 10])
    got = model.logits(ids, torch.tensor([2, 3]))
    want = ref.logits(ids, torch.tensor([2, 3]))
    assert torch.isfinite(got).all()
    assert torch.corrcoef(torch.stack([got.flatten(), want.flatten()]))[0, 1] > 0.9


def test_int8_dream_quantises_its_biased_projections(dream, tiny_dream_dir):
    bnb = pytest.importorskip("bitsandbytes")
    model = load_model(str(tiny_dream_dir), device="cpu", dtype="bfloat16", quantization="int8")
    attention = model.network.model.layers[0].self_attn
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
        assert isinstance(getattr(attention, proj), bnb.nn.Linear8bitLt)
    assert attention.q_proj.bias is not None and attention.o_proj.bias is None
    ids = torch.tensor([7, 8, model.mask_id, model.mask_id, 9, 10])
    got = model.logits(ids, torch.tensor([2, 3]))
    want = dream.logits(ids, torch.tensor([2, 3]))
    assert torch.isfinite(got).all()
    assert torch.corrcoef(torch.stack([got.flatten(), want.flatten()]))[0, 1] > 0.9


def test_moe_expert_bias_is_read_when_stored_and_zero_when_the_checkpoint_has_none(tmp_path):
    folder = build_tiny_llada_moe(tmp_path / "bias", moe_router_enable_expert_bias=True)
    state = load_file(str(folder / "model.safetensors"))
    state["model.layers.0.mlp.expert_bias"] = torch.tensor([0.5, 0.0, 0.0, 0.0], dtype=torch.bfloat16)
    save_file(state, str(folder / "model.safetensors"))
    model = load_model(str(folder), device="cpu", dtype="float32")
    assert model.network.model.layers[0].mlp.expert_bias[0] == 0.5
    # A config that enables the bias over a checkpoint without it: upstream's zero buffer, i.e. no bias.
    for key in [k for k in state if k.endswith("expert_bias")]:
        del state[key]
    save_file(state, str(folder / "model.safetensors"))
    model = load_model(str(folder), device="cpu", dtype="float32")
    assert model.network.model.layers[0].mlp.expert_bias is None


@pytest.mark.parametrize("entry", ["dream-7b-base", "dream-7b-instruct", "diffucoder-7b-base",
                                   "diffucoder-7b-instruct", "llada-moe-7b-a1b-base", "llada-moe-7b-a1b-instruct"])
def test_catalog_entries_get_a_fit_verdict_per_precision(entry):
    from lacuna.engine.hub import fit

    gib = 1 << 30
    big = fit.Device("cuda", 0, "Simulated 24GB", 24 * gib, 23 * gib, True)
    small = fit.Device("cuda", 0, "Simulated 8GB", 8 * gib, 7 * gib, True)
    on_big = {f.precision: f for f in fit.fit_model(entry, [big])}
    on_small = {f.precision: f for f in fit.fit_model(entry, [small])}
    assert set(on_big) == {"bf16", "int8", "int4"}
    assert on_big["bf16"].verdict in ("fits", "tight") and on_big["int4"].verdict == "fits"
    # 4-bit may be tight on 8 GB: the embedding and head stay 16-bit (2.2 GB at Dream's 152k tokens)
    assert on_small["bf16"].verdict == "won't fit" and on_small["int4"].verdict in ("fits", "tight")
    assert on_big["bf16"].need > on_big["int8"].need > on_big["int4"].need > 3 * gib


@pytest.mark.parametrize("fixture", ["tiny_dream_dir", "tiny_llada_moe_dir"])
def test_a_downloaded_folder_is_sized_from_its_own_weights(fixture, request):
    from lacuna.engine.hub import fit

    folder = request.getfixturevalue(fixture)
    shape = fit.shape_for(str(folder))
    counted = fit.count_safetensors_parameters(folder)
    assert shape is not None and shape.exact and shape.parameters == counted


@pytest.mark.parametrize("family, config", [
    ("dream", None),
    ("dream", dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, vocab_size=64, mask_token_id=63)),
    ("llada_moe", None),
    ("llada_moe", dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                       dense_intermediate_size=48, expert_intermediate_size=16, num_experts=4,
                       num_experts_per_tok=2, moe_layer_freq=[0, 1, 1], vocab_size=64, mask_token_id=63,
                       shared_expert_intermediate_size=24, moe_router_enable_expert_bias=True,
                       attention_bias=True)),
])
def test_fit_split_counts_exactly_what_loading_holds_and_quantises(family, config):
    from torch import nn

    from lacuna.engine.hub import fit
    from lacuna.engine.models import dream as dream_module
    from lacuna.engine.models import llada_moe as moe_module

    from lacuna.engine.models.families import BY_NAME

    if family == "dream":
        cfg = dream_module.DreamConfig.dream_7b() if config is None else dream_module.DreamConfig.from_config(config)
        factory = dream_module.DreamNetwork
    else:
        cfg = moe_module.LLaDAMoEConfig.llada_moe_7b() if config is None else moe_module.LLaDAMoEConfig.from_config(config)
        factory = moe_module.LLaDAMoENetwork
    with torch.device("meta"):
        net = factory(cfg)
    found, split = fit.family_split(cfg.to_config())
    assert found == family
    assert split.total == sum(t.numel() for t in [*net.parameters(), *net.buffers()])
    quantised = sum(m.weight.numel() for name, m in net.named_modules()
                    if isinstance(m, nn.Linear) and BY_NAME[family].quantizes(name))
    assert split.quantized == quantised  # biased layers (Dream's q/k/v) quantise too; their biases stay 16-bit
