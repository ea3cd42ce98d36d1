"""A folder whose weights exist only as a pickle is refused in one sentence on every path.

The transformers path (BERT, ModernBERT) used to hand a ``.bin``-only folder to
``from_pretrained``, which unpickled it (tensor-only pickles loaded, others
failed with torch's several-paragraph text). Both paths now refuse before any
unpickling by transformers, naming the file and what to do.
"""
from __future__ import annotations

import shutil

import pytest
import torch

from lacuna.engine import ModelLoadError, load_model


class Payload:
    """A class torch.load(weights_only=True) must refuse to unpickle."""


class Reduces:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def _pickle_only(src, dest, payload):
    shutil.copytree(src, dest)
    for weights in dest.glob("*.safetensors"):
        weights.unlink()
    torch.save(payload, dest / "pytorch_model.bin")
    return dest


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_bert_dir", "tiny_llada_dir"])
@pytest.mark.parametrize("payload", [Payload(), Reduces()], ids=["class", "reduce"])
def test_a_pickle_with_code_is_one_sentence_naming_the_file(fixture, payload, request, tmp_path):
    folder = _pickle_only(request.getfixturevalue(fixture), tmp_path / "m", {"w": torch.zeros(2), "p": payload})
    with pytest.raises(ModelLoadError) as err:
        load_model(str(folder), device="cpu")
    message = str(err.value)
    assert "pytorch_model.bin" in message and "refused" in message and "safetensors" in message
    assert "\n" not in message and "weights_only" not in message and "PyTorch 2.6" not in message


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_bert_dir"])
def test_a_tensor_only_pickle_is_not_loaded_by_transformers_either(fixture, request, tmp_path):
    source = request.getfixturevalue(fixture)
    from safetensors.torch import load_file

    state = load_file(str(next(source.glob("*.safetensors"))))
    folder = _pickle_only(source, tmp_path / "m", state)  # a genuine, loadable state dict
    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin is a pickled checkpoint.*safetensors weights only"):
        load_model(str(folder), device="cpu")
