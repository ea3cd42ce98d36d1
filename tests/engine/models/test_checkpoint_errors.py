"""What a new user meets with a broken model folder, for every native family: one
clear line that says which model and what is wrong (found by trying each family
through the CLI on bad folders; docs/benchmarks.md lists what was tried)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from lacuna.engine import ModelLoadError, load_model
from lacuna.engine.cli import main
from tests.support.dit_tiny import build_tiny_mdlm, build_tiny_sedd

FAMILIES = ["tiny_llada_dir", "tiny_dream_dir", "tiny_llada_moe_dir", "tiny_mdlm_dir", "tiny_sedd_dir"]


@pytest.fixture(scope="module")
def tiny_mdlm_dir(tmp_path_factory):
    return build_tiny_mdlm(tmp_path_factory.mktemp("err-mdlm"), with_tokenizer=True, vocab_size=401)


@pytest.fixture(scope="module")
def tiny_sedd_dir(tmp_path_factory):
    return build_tiny_sedd(tmp_path_factory.mktemp("err-sedd"), with_tokenizer=True, tokens=400)


def _copy(request, fixture, tmp_path):
    folder = tmp_path / fixture
    shutil.copytree(request.getfixturevalue(fixture), folder)
    return folder


def _refusal(folder) -> str:
    with pytest.raises(ModelLoadError) as err:
        load_model(str(folder), device="cpu", dtype="float32")
    message = str(err.value)
    assert message.startswith(str(folder)) and "\n" not in message  # which model, one line
    return message


def _rewrite(folder, change) -> str:
    state = load_file(str(folder / "model.safetensors"))
    name = sorted(k for k in state if k.endswith("weight") and state[k].dim() == 2)[0]
    state[name] = change(state[name])
    save_file(state, str(folder / "model.safetensors"))
    return name


@pytest.mark.parametrize("fixture", FAMILIES)
def test_a_wrong_shape_names_the_tensor_and_the_model(fixture, request, tmp_path):
    folder = _copy(request, fixture, tmp_path)
    name = _rewrite(folder, lambda t: torch.zeros(t.shape[0] + 1, t.shape[1], dtype=t.dtype))
    assert f"tensor {name} has shape" in _refusal(folder)


@pytest.mark.parametrize("fixture", FAMILIES)
def test_integer_weights_are_refused_naming_the_tensor(fixture, request, tmp_path):
    # was: RuntimeError "self and mat2 must have the same dtype" from the first forward pass
    folder = _copy(request, fixture, tmp_path)
    name = _rewrite(folder, lambda t: t.to(torch.int32))
    assert f"tensor {name} is stored as int32, where the model needs floating-point values" in _refusal(folder)


@pytest.mark.parametrize("fixture", FAMILIES)
def test_a_truncated_checkpoint_says_download_it_again(fixture, request, tmp_path):
    folder = _copy(request, fixture, tmp_path)
    file = folder / "model.safetensors"
    file.write_bytes(file.read_bytes()[: file.stat().st_size * 2 // 3])
    assert "model.safetensors is cut short" in _refusal(folder) and "download or copy it again" in _refusal(folder)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.999))
def test_a_checkpoint_cut_anywhere_is_one_clear_refusal(cut, tiny_llada_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cut")
    for file in tiny_llada_dir.iterdir():
        shutil.copy(file, folder / file.name)
    data = (tiny_llada_dir / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: int(cut * len(data))])
    message = _refusal(folder)
    assert "cut short" in message or "not a safetensors file" in message


def test_a_local_dit_folder_without_tokenizer_says_what_to_pull(tiny_mdlm_dir, tmp_path, monkeypatch):
    # was: "run `lacuna-cli models pull /the/folder`", which cannot work for a local folder
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    folder = tmp_path / "mdlm"
    shutil.copytree(tiny_mdlm_dir, folder)
    (folder / "tokenizer.json").unlink()
    message = _refusal(folder)
    assert "lacuna-cli models pull openai-community/gpt2" in message and f"pull {folder}" not in message
    assert message.count(str(folder)) == 1


def test_cli_says_a_broken_config_is_not_valid_json(tiny_dream_dir, tmp_path, capsys):
    folder = tmp_path / "dream"
    shutil.copytree(tiny_dream_dir, folder)
    (folder / "config.json").write_text("{not json")
    assert main(["infill", "--model", str(folder), "--device", "cpu", "In the [[2]] God."]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lacuna-cli: error: {folder / 'config.json'} is not valid JSON (") and "\n" not in err


def test_cli_code_files_beside_weights_are_not_run(tiny_llada_moe_dir, tmp_path, capsys):
    """A .py beside the weights (as LLaDA-MoE ships) is never imported: a folder whose
    only "weights" are code is refused for having no weights."""
    folder = tmp_path / "moe"
    shutil.copytree(tiny_llada_moe_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "modeling_lladamoe.py").write_text("raise SystemExit('imported!')\n")
    assert main(["infill", "--model", str(folder), "--device", "cpu", "In the [[2]] God."]) != 0
    err = capsys.readouterr().err.strip()
    assert err == f"lacuna-cli: error: {folder} has no weights (no *.safetensors file)"
    assert json.loads((folder / "config.json").read_text())  # untouched
