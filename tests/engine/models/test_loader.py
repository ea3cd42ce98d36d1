import json
import shutil

import pytest
import torch

from lacuna.engine import ModelLoadError, load_model
from lacuna.engine.models.base import ModelAdapter
from lacuna.engine.models.loader import pick_device, pick_dtype


def test_adapter_follows_the_protocol(tiny_model):
    assert isinstance(tiny_model, ModelAdapter)
    assert tiny_model.mask_id == tiny_model.tokenizer.mask_token_id
    assert tiny_model.mask_id in tiny_model.special_ids
    assert tiny_model.context_length == 128


def test_device_and_dtype_overrides(tiny_model_dir):
    model = load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert model.device.type == "cpu" and model.dtype == torch.bfloat16
    assert pick_device(None).type in ("cpu", "cuda", "mps")
    assert pick_dtype(torch.device("cpu"), "fp16") == torch.float16


def test_bad_device_and_dtype_are_clear(tiny_model_dir):
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no usable CUDA"):
            load_model(str(tiny_model_dir), device="cuda")
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        load_model(str(tiny_model_dir), dtype="int3")


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_remote_code_models_are_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="my_custom_lm", auto_map={"AutoModelForMaskedLM": "modeling_custom.Model"})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="remote code"):
        load_model(str(folder))


def test_a_llada_config_over_other_weights_is_refused_clearly(tiny_model_dir, tmp_path):
    folder = tmp_path / "llada"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "llada"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="LLaDA config"):
        load_model(str(folder))


def test_corrupt_weights_are_a_clear_error(tiny_model_dir, tmp_path):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(str(folder))


def test_uncached_repo_id_names_the_pull_command():
    with pytest.raises(ModelLoadError, match="models pull"):
        load_model("nobody/nothing-here")


def test_a_folder_without_a_tokenizer_is_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_model_dir, folder)
    for f in folder.iterdir():
        if "token" in f.name:
            f.unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_model(str(folder))


def test_an_architecture_lacuna_cannot_run_is_one_plain_sentence(tiny_model_dir, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=len_of(tiny_model_dir))).save_pretrained(folder)
    for f in tiny_model_dir.iterdir():
        if "token" in f.name:
            shutil.copy(f, folder / f.name)
    with pytest.raises(ModelLoadError) as info:
        load_model(str(folder))
    message = str(info.value)
    assert "cannot run gpt2 models" in message and "masked language models" in message
    assert "\n" not in message and "Unrecognized" not in message


def len_of(folder):
    return json.loads((folder / "config.json").read_text())["vocab_size"]


def test_a_tokenizer_bigger_than_the_model_is_refused_at_load(tiny_model_dir, tmp_path):
    folder = tmp_path / "small-head"
    shutil.copytree(tiny_model_dir, folder)
    from transformers import AutoConfig, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(folder)
    config.vocab_size = 300  # the tokenizer has 400 ids
    AutoModelForMaskedLM.from_config(config).save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="does not belong to this model"):
        load_model(str(folder))
