"""A model folder Lacuna refuses: one plain sentence, and the loaded model stays (issue 8, item 7, GUI)."""
from __future__ import annotations

import json
import shutil

import pytest

from lacuna.app.workers.model import TOKENIZER_FILES


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.support.tiny import _bpe_tokenizer

    out = tmp_path_factory.mktemp("gpt2")
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=400, n_positions=32)).save_pretrained(out)
    _bpe_tokenizer().save_pretrained(out)
    return out


@pytest.fixture
def no_tokenizer_dir(tiny_model_dir, tmp_path):
    out = tmp_path / "no-tokenizer"
    out.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.name not in TOKENIZER_FILES and "token" not in f.name and f.name not in ("merges.txt",):
            shutil.copy(f, out)
    return out


@pytest.fixture
def no_config_dir(tmp_path):
    out = tmp_path / "just-a-folder"
    out.mkdir()
    (out / "notes.txt").write_text("not a model")
    return out


@pytest.fixture
def loaded_window(make_window, qtbot):
    from lacuna.engine import load_model

    from tests.app.fakes import FakeModel

    w = make_window(loader=lambda spec: FakeModel() if spec == "fake" else load_model(spec, device="cpu"))
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("fake")
    return w


def _is_one_plain_sentence(msg: str) -> bool:
    body = msg.rstrip(".")
    return ("\n" not in msg and msg.endswith(".") and ". " not in body and "<class" not in msg
            and "Traceback" not in msg and "Error" not in msg and len(msg) < 300)


@pytest.mark.parametrize("folder, words", [
    ("gpt2_dir", "GPT2LMHeadModel model, an architecture Lacuna cannot run"),
    ("no_tokenizer_dir", "has no tokenizer"),
    ("no_config_dir", "no config.json"),
])
def test_a_refused_folder_gets_one_sentence_and_the_loaded_model_stays(loaded_window, qtbot, request, folder, words):
    w = loaded_window
    path = request.getfixturevalue(folder)
    with qtbot.waitSignal(w.modelFailed, timeout=60000) as sig:
        w.models.load_model(str(path))
        assert "loading" in w.model_label.text()
    msg = sig.args[0]
    assert _is_one_plain_sentence(msg), msg
    assert words in msg and path.name in msg and "fake-model is still loaded" in msg
    assert w.banner_label.text() == msg
    assert w.model_label.text() == "Model: fake-model"
    assert w.models.model is not None and w.models.model_info.name == "fake-model"
    assert w.model_picker.currentData() == "fake"
    assert w.state_label.text() == "Idle"


def test_an_unknown_model_type_is_named_too(loaded_window, qtbot, tmp_path):
    folder = tmp_path / "mystery"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"]}))
    (folder / "tokenizer.json").write_text("{}")
    with qtbot.waitSignal(loaded_window.modelFailed, timeout=60000) as sig:
        loaded_window.models.load_model(str(folder))
    assert _is_one_plain_sentence(sig.args[0]) and "GPTNeoXForCausalLM" in sig.args[0]
