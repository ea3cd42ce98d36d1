"""A companion lends its tokenizer and nothing else; pickle consent covers only a model's own weights.

MDLM and SEDD use GPT-2's tokenizer, which their repositories lack: the pull
fetches it from openai-community/gpt2, whose real main branch also holds
model.safetensors, pytorch_model.bin, flax, TF, TFLite, ONNX and Rust weights.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine.hub.download import PICKLE_SUFFIXES, select_files
from lacuna.engine.hub.errors import PickleConsentRequired
from lacuna.engine.hub.hubapi import RemoteFile
from lacuna.engine.hub.manage import pull_with_companions

from .conftest import fast_options

GPT2 = "openai-community/gpt2"
TOKENIZER_FILES = {"config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"}
# openai-community/gpt2's main branch, every file (their contents here are stand-ins)
GPT2_WEIGHTS = ("64-8bits.tflite", "64-fp16.tflite", "64.tflite", "flax_model.msgpack", "model.safetensors",
                "onnx/decoder_model.onnx", "pytorch_model.bin", "rust_model.ot", "tf_model.h5")


def gpt2_files() -> dict[str, bytes]:
    files = {name: f"{name} stand-in\n".encode() * 20 for name in GPT2_WEIGHTS}
    files.update({
        ".gitattributes": b"*.bin filter=lfs\n", "README.md": b"GPT-2\n",
        "config.json": json.dumps({"model_type": "gpt2", "vocab_size": 50257}).encode(),
        "generation_config.json": b"{}", "onnx/config.json": b"{}",
        "tokenizer.json": b'{"model": {}}', "tokenizer_config.json": b'{"model_max_length": 1024}',
        "vocab.json": b'{"a": 0}', "merges.txt": b"#version: 0.2\n",
    })
    return files


def dit_files() -> dict[str, bytes]:
    config = {"model_type": "mdlm", "architectures": ["MDLM"], "hidden_dim": 8, "n_blocks": 1, "n_heads": 2,
              "cond_dim": 8, "vocab_size": 50258, "model_length": 64, "time_conditioning": False}
    return {"config.json": json.dumps(config).encode(), "README.md": b"mdlm\n",
            "configuration_mdlm.py": b"# code\n", "modeling_mdlm.py": b"# code\n"}


def _served_from(hub, repo: str) -> set[str]:
    """The files whose bytes the mock Hub sent for ``repo`` (direct or via the LFS route)."""
    return {path for path, request in hub.served if repo in request.path}


def test_mdlm_pull_fetches_gpt2s_tokenizer_files_only(hub):
    hub.add_repo(GPT2, gpt2_files())
    hub.add_repo("kuleshov-group/mdlm-owt", dict(dit_files(), **{"model.safetensors": b"w" * 4096}))
    pull_with_companions("mdlm-owt", options=fast_options())  # no pickle consent asked
    assert _served_from(hub, GPT2) == TOKENIZER_FILES
    assert hub.requests_for("modeling_mdlm.py") == [] and hub.requests_for("configuration_mdlm.py") == []
    from lacuna.engine.hub import local_snapshot

    assert {p.name for p in local_snapshot(GPT2).iterdir()} == TOKENIZER_FILES


def test_sedd_pull_asks_consent_for_its_own_pickle_and_never_fetches_gpt2s(hub):
    hub.add_repo(GPT2, gpt2_files())
    sedd = {"config.json": b'{"tokens": 50257, "model": {"hidden_size": 8}}', "README.md": b"sedd\n",
            "pytorch_model.bin": b"\x80\x04sedd" * 100}
    hub.add_repo("louaaron/sedd-small", sedd)
    with pytest.raises(PickleConsentRequired, match="louaaron/sedd-small.*pytorch_model.bin"):
        pull_with_companions("sedd-small", options=fast_options())
    pull_with_companions("sedd-small", options=fast_options(allow_pickle=True))
    assert "pytorch_model.bin" in _served_from(hub, "louaaron/sedd-small")
    assert _served_from(hub, GPT2) == TOKENIZER_FILES


_names = st.one_of(
    st.sampled_from(sorted(TOKENIZER_FILES) + list(GPT2_WEIGHTS) + ["modeling_gpt2.py", "special_tokens_map.json",
                                                                    "model.safetensors.index.json"]),
    st.from_regex(r"[a-z_]{1,8}\.(bin|pt|pth|ckpt|safetensors|gguf|h5|msgpack|py|json|txt)", fullmatch=True))


@settings(max_examples=150, deadline=None)
@given(st.lists(_names, min_size=1, max_size=12, unique=True), st.booleans())
def test_a_tokenizer_only_pull_never_selects_weights_pickles_or_code(names, allow_pickle):
    tree = [RemoteFile(n, 10, "0" * 40, None) for n in names]
    patterns = ["*.json", "*.txt", "*.model", "tokenizer*", "*.bin", "*.safetensors"]  # even greedy patterns
    try:
        chosen = select_files("org/tok", "0" * 40, tree, patterns, allow_pickle=allow_pickle,
                              with_code=True, weights=False)
    except Exception as exc:  # noqa: BLE001 - only "no tokenizer files" may refuse
        assert "no tokenizer files" in str(exc)
        return
    for f in chosen:
        assert not f.path.endswith(PICKLE_SUFFIXES + (".safetensors", ".py", ".gguf", ".h5", ".msgpack"))
