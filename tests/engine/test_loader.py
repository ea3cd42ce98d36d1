import json
import shutil

import pytest
import torch

from engine import ModelLoadError, load_model
from engine.models.base import DiffusionModel
from engine.models.loader import pick_device, pick_dtype


def test_adapter_follows_the_protocol(tiny_model):
    assert isinstance(tiny_model, DiffusionModel)
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


def test_families_without_a_native_loader_say_so(tiny_model_dir, tmp_path):
    import importlib.util

    from engine.models.loader import NATIVE_FAMILIES

    pending = [f for f, module in NATIVE_FAMILIES if importlib.util.find_spec(f"engine.models.{module}") is None
               and f != "llada_moe"]
    if not pending:
        pytest.skip("every native family has its loader")
    folder = tmp_path / pending[0]
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = pending[0]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=f"cannot load {pending[0]}"):
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
