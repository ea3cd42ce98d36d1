"""MDLM and SEDD repositories ship no tokenizer: pulling one from the catalog
also fetches (and verifies) GPT-2's tokenizer, and only its tokenizer files;
then the model loads from the HF cache by its catalog id, with a fit verdict."""
from __future__ import annotations

import pytest

from lacuna.engine import InfillRequest, Span, infill, load_model
from lacuna.engine.hub import local_snapshot, records
from lacuna.engine.hub.fit import Device, dit_parameters, fit_model
from lacuna.engine.hub.manage import companions, list_models, pull_with_companions
from lacuna.engine.models.dit import DiTShape
from tests.support.dit_tiny import build_tiny_mdlm, build_tiny_sedd, write_tokenizer_repo

from .conftest import fast_options

GPT2 = "openai-community/gpt2"
VOCAB = 401


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def tokenizer_files(tmp_path_factory):
    files = _files(write_tokenizer_repo(tmp_path_factory.mktemp("gpt2"), VOCAB - 1))
    files["model.safetensors"] = b"\0" * 300_000  # GPT-2's own weights: never wanted
    files["README.md"] = b"gpt2\n"
    return files


@pytest.mark.parametrize("model_id, repo, build, kw", [
    ("mdlm-owt", "kuleshov-group/mdlm-owt", build_tiny_mdlm, {"vocab_size": VOCAB}),
    ("sedd-small", "louaaron/sedd-small", build_tiny_sedd, {"tokens": VOCAB - 1}),
])
def test_pull_fetches_the_tokenizer_companion_and_the_model_loads(hub, tmp_path, tokenizer_files,
                                                                  model_id, repo, build, kw):
    assert companions(model_id) == [GPT2]
    hub.add_repo(repo, _files(build(tmp_path / "m", **kw)))
    hub.add_repo(GPT2, tokenizer_files)
    record = pull_with_companions(model_id, options=fast_options())
    assert record["repo"] == repo
    gpt2 = records.get_install(GPT2)
    assert gpt2 and gpt2["verified"]
    assert {f["path"] for f in gpt2["files"]} == {"config.json", "tokenizer.json", "tokenizer_config.json"}
    assert not (local_snapshot(GPT2) / "model.safetensors").exists()
    assert all(f["sha256"] for f in gpt2["files"]), "the companion is verified by sha256 like the model"

    model = load_model(model_id, device="cpu", dtype="float32")
    assert model.family == model_id.split("-")[0] and len(model.tokenizer) == VOCAB - 1
    text = "And God said, Let there be light: and there was light."
    result = infill(model, InfillRequest(text=text, spans=(Span(14, 26),), steps=4, seed=1))
    assert result.text[:14] == text[:14] and result.text[result.spans[0].end:] == text[26:]

    fits = fit_model(model_id, [Device("cpu", 0, "test cpu", 8 << 30, 8 << 30, bf16=True)])
    assert fits[0].exact and fits[0].verdict == "fits"


def test_the_companion_is_not_listed_as_a_model(hub):
    ids = {m.id for m in list_models()}
    assert "gpt2-tokenizer" not in ids and "mdlm-owt" in ids and "sedd-medium" in ids


def test_a_pull_without_companions_is_a_plain_pull(hub, tmp_path):
    assert companions("starter") == [] and companions("someone/else") == []


@pytest.mark.parametrize("hidden, heads, blocks, cond, vocab", [(768, 12, 12, 128, 50258), (1024, 16, 24, 128, 50258),
                                                                (64, 4, 2, 32, 101)])
def test_fit_counts_dit_parameters_like_the_network(hidden, heads, blocks, cond, vocab):
    shape = DiTShape(hidden, heads, blocks, cond, vocab)
    assert dit_parameters(hidden, blocks, cond, vocab) == shape.parameter_count()
    if hidden == 64:
        import torch

        from lacuna.engine.models.dit import DiT

        with torch.device("meta"):
            net = DiT(shape)
        assert sum(p.numel() for p in net.parameters()) == shape.parameter_count()
