"""Model folders whose claims are hostile or absurd (issue 20): checked before any library
parses a file or anything is built (engine.models.claims), each refusal one sentence that
names the file, never a Python exception, never a hang, never a million modules."""
from __future__ import annotations

import json
import os
import re
import shutil
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lacuna.engine import ModelLoadError, load_model
from lacuna.engine.models import claims

EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|Traceback")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    from tests.support.tiny import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("hostile-bert"))


def _copy(source, tmp_path, name="model"):
    folder = tmp_path / name
    shutil.copytree(source, folder)
    return folder


def _edit_json(file, change) -> None:
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data))


def _refusal(folder) -> str:
    with pytest.raises(ModelLoadError) as err:
        load_model(str(folder), device="cpu", dtype="float32")
    message = str(err.value)
    assert "\n" not in message and not EXCEPTION_NAME.search(message), message
    return message


@pytest.fixture
def nothing_built(monkeypatch):
    """Fail the test if a network is built: every refusal here comes first."""
    import transformers

    from lacuna.engine.models import native

    def refuse(*args, **kwargs):
        raise AssertionError("a network was built for a folder that should have been refused")

    monkeypatch.setattr(native, "build_network", refuse)
    monkeypatch.setattr(transformers.AutoModelForMaskedLM, "from_pretrained", refuse)


# config sizes against the weights ----------------------------------------------------
def test_a_million_layers_with_tiny_widths_is_refused_before_building(tiny_llada_dir, tmp_path, nothing_built):
    # issue 20's input: it passed the fit check, then memory grew until the OOM killer
    folder = _copy(tiny_llada_dir, tmp_path)
    _edit_json(folder / "config.json", lambda c: c.update(n_layers=1_000_000, d_model=4, n_heads=1, n_kv_heads=1,
                                                         mlp_hidden_size=4))
    message = _refusal(folder)
    assert "config.json" in message and "1,000,000" in message


@pytest.mark.parametrize("layers, held", [(3, "2 layers"), (4096, "2 layers"), (1_000_000, "2 layers")])
def test_more_layers_than_the_weights_hold_is_refused(tiny_dream_dir, tmp_path, nothing_built, layers, held):
    # a second input: Dream one layer over its weights, and past the absolute limit
    folder = _copy(tiny_dream_dir, tmp_path)
    _edit_json(folder / "config.json", lambda c: c.update(num_hidden_layers=layers))
    message = _refusal(folder)
    assert "config.json" in message and held in message


def test_past_the_layer_limit_is_refused_where_the_weights_cannot_tell(tiny_llada_dir, tmp_path, nothing_built):
    folder = _copy(tiny_llada_dir, tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"a pickle")
    _edit_json(folder / "config.json", lambda c: c.update(n_layers=claims.LAYER_LIMIT + 1))
    assert f"{claims.LAYER_LIMIT + 1:,} layers, more than the {claims.LAYER_LIMIT:,}" in _refusal(folder)


def test_the_transformers_path_checks_layers_and_parameters(bert_dir, tmp_path, nothing_built):
    folder = _copy(bert_dir, tmp_path, "layers")
    _edit_json(folder / "config.json", lambda c: c.update(num_hidden_layers=1_000_000, hidden_size=2,
                                                         num_attention_heads=1, intermediate_size=2))
    assert "1,000,000 layers" in _refusal(folder)
    folder = _copy(bert_dir, tmp_path, "widths")
    _edit_json(folder / "config.json", lambda c: c.update(intermediate_size=4_000_000))
    message = _refusal(folder)
    assert "parameters" in message and "config.json" in message


def test_a_size_the_fit_formula_does_not_read_is_checked_on_the_meta_device(bert_dir, tmp_path, nothing_built):
    # type_vocab_size 10**9: a [10**9, 32] table that transformers would allocate, then re-initialise
    folder = _copy(bert_dir, tmp_path)
    _edit_json(folder / "config.json", lambda c: c.update(type_vocab_size=10**9))
    assert "32,000,0" in _refusal(folder)


def test_a_shape_the_weights_contradict_is_refused_not_reinitialised(bert_dir, tmp_path):
    # transformers would put random rows in place of the model's (a note in its load report)
    folder = _copy(bert_dir, tmp_path)
    _edit_json(folder / "config.json", lambda c: c.update(type_vocab_size=3))
    message = _refusal(folder)
    assert "token_type_embeddings" in message and "config.json" in message


def test_the_transformers_path_has_a_fit_check(bert_dir, monkeypatch):
    from lacuna.engine.hub import fit

    monkeypatch.setattr(fit, "cpu_memory", lambda: (1 << 20, 1 << 20))
    with pytest.raises(ModelLoadError, match=r"needs about .* GiB in fp32 on cpu, which has 0\.0 GiB"):
        load_model(str(bert_dir), device="cpu", dtype="float32")


@pytest.mark.parametrize("key, value", [
    ("hidden_size", 10**12), ("hidden_size", "32"), ("hidden_size", 0), ("hidden_size", -32), ("hidden_size", True),
    ("hidden_size", 32.5), ("vocab_size", [300]), ("num_hidden_layers", {"n": 2}), ("intermediate_size", 1e400),
    ("max_position_embeddings", "long"), ("max_position_embeddings", float("nan")),
])
def test_absurd_config_sizes_are_one_sentence_naming_the_key(bert_dir, tmp_path, nothing_built, key, value):
    folder = _copy(bert_dir, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))  # 1e400 and NaN as JSON writes them: Infinity, NaN
    message = _refusal(folder)
    assert f"{key} = " in message and "config.json" in message


@pytest.mark.parametrize("family, key, value", [
    # each of these raised a TypeError, OverflowError or IndexError out of a family's config reader
    ("tiny_dream_dir", "architectures", 3), ("tiny_dream_dir", "bos_token_id", -1),
    ("tiny_dream_dir", "mask_token_id", 1e400), ("tiny_dream_dir", "max_position_embeddings", 1e400),
    ("tiny_llada_moe_dir", "moe_layer_freq", [1]), ("tiny_llada_moe_dir", "moe_layer_freq", "x"),
    ("tiny_llada_moe_dir", "num_experts_per_tok", 1e400), ("tiny_llada_moe_dir", "eos_token_id", [2, "x"]),
    ("tiny_llada_dir", "model_type", ["llada"]),
])
def test_a_config_value_of_the_wrong_kind_is_one_sentence(request, tmp_path, nothing_built, family, key, value):
    folder = _copy(request.getfixturevalue(family), tmp_path)
    _edit_json(folder / "config.json", lambda c: c.update({key: value}))
    message = _refusal(folder)
    assert f"{key} = " in message and "config.json" in message


_values = st.one_of(st.none(), st.booleans(), st.integers(-2, 1 << 70), st.floats(allow_nan=True),
                    st.text(max_size=5), st.lists(st.integers(), max_size=2))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["d_model", "n_layers", "n_heads", "mlp_hidden_size", "vocab_size", "embedding_size",
                            "max_sequence_length"]), value=_values)
def test_any_size_in_a_native_config_loads_or_is_refused_in_one_sentence(tiny_llada_dir, tmp_path_factory, key, value):
    folder = _copy(tiny_llada_dir, tmp_path_factory.mktemp("prop"))
    _edit_json(folder / "config.json", lambda c: c.update({key: value}))
    try:
        load_model(str(folder), device="cpu", dtype="float32")
    except ModelLoadError as exc:
        assert "\n" not in str(exc) and not EXCEPTION_NAME.search(str(exc)), str(exc)


# tokenizer files ---------------------------------------------------------------------
def test_a_tokenizer_json_with_millions_of_entries_is_refused_by_size(bert_dir, tmp_path, nothing_built):
    # issue 20's input had 3,000,000 extra entries (88 s, 2.4 GB): its size alone gives it away;
    # here a sparse file of that size stands in for it (nothing reads past the size check)
    folder = _copy(bert_dir, tmp_path)
    with open(folder / "tokenizer.json", "r+b") as fh:
        fh.truncate(3_000_000 * 110)
    message = _refusal(folder)
    assert "tokenizer.json" in message and "MB" in message


def test_more_added_tokens_than_the_model_has_rows_is_refused_before_parsing(bert_dir, tmp_path, monkeypatch):
    # a second input: small enough for the size cap, but 5,000 added tokens for a 300-token model
    import tokenizers

    folder = _copy(bert_dir, tmp_path)

    def add(data):
        base = len(data["model"]["vocab"])
        data["added_tokens"] += [{"id": base + i, "content": f"<x{i}>", "single_word": False, "lstrip": False,
                                  "rstrip": False, "normalized": False, "special": False} for i in range(5000)]

    _edit_json(folder / "tokenizer.json", add)

    def refuse(*args, **kwargs):
        raise AssertionError("tokenizers parsed a tokenizer.json that should have been refused")

    monkeypatch.setattr(tokenizers.Tokenizer, "from_file", refuse)
    message = _refusal(folder)
    assert "tokenizer.json" in message and "5,0" in message


def test_dream_added_tokens_in_tokenizer_config_are_counted_too(tiny_dream_dir, tmp_path, nothing_built):
    folder = _copy(tiny_dream_dir, tmp_path)
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]

    def add(data):
        data["added_tokens_decoder"] = {str(vocab + i): {"content": f"<y{i}>", "special": False}
                                        for i in range(vocab + 1)}

    _edit_json(folder / "tokenizer_config.json", add)
    assert "tokenizer_config.json" in _refusal(folder)


# special files and JSON that never ends or never stops nesting -----------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX thing")
@pytest.mark.parametrize("family, file", [
    ("tiny_llada_dir", "tokenizer_config.json"),  # issue 20's input: the loader hung forever
    ("tiny_llada_dir", "config.json"), ("tiny_llada_dir", "tokenizer.json"), ("tiny_dream_dir", "merges.txt"),
    ("bert_dir", "tokenizer_config.json"), ("bert_dir", "special_tokens_map.json"),
])
def test_a_fifo_in_the_folder_is_refused_not_waited_on(request, tmp_path, family, file):
    folder = _copy(request.getfixturevalue(family), tmp_path)
    (folder / file).unlink(missing_ok=True)  # the tiny BERT has no special_tokens_map.json: a FIFO one is new
    os.mkfifo(folder / file)
    done = threading.Event()
    outcome: list[BaseException | None] = []

    def load():
        try:
            load_model(str(folder), device="cpu", dtype="float32")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)
        done.set()

    threading.Thread(target=load, daemon=True).start()
    if not done.wait(60):
        with open(os.open(folder / file, os.O_WRONLY | os.O_NONBLOCK), "wb"):  # let the stuck reader go
            pass
        done.wait(10)
        pytest.fail(f"loading a folder whose {file} is a FIFO hung")
    assert isinstance(outcome[0], ModelLoadError), outcome
    assert f"{file} in the model folder is a FIFO" in str(outcome[0])


@pytest.mark.parametrize("file, text", [
    ("tokenizer_config.json", "[" * 100_000),  # issue 20's input: "RecursionError"
    ("config.json", '{"a": ' * 70 + "1" + "}" * 70),  # parses, but deeper than any real config
    ("special_tokens_map.json", '{"x": ' + "[" * 65 + "]" * 65 + "}"),
])
def test_deeply_nested_json_is_refused_in_one_sentence(tiny_llada_dir, tmp_path, file, text):
    folder = _copy(tiny_llada_dir, tmp_path)
    (folder / file).write_text(text)
    message = _refusal(folder)
    assert f"{file} is nested more than {claims.MAX_DEPTH} levels deep" in message


@pytest.mark.parametrize("depth", [1, claims.MAX_DEPTH - 1, claims.MAX_DEPTH, claims.MAX_DEPTH + 1, 5000])
def test_read_json_depth_limit(tmp_path, depth):
    file = tmp_path / "x.json"
    file.write_text("[" * depth + "]" * depth)
    if depth <= claims.MAX_DEPTH:
        assert claims.read_json(file, "m") is not None
    else:
        with pytest.raises(ModelLoadError, match="nested more than"):
            claims.read_json(file, "m")


def test_an_oversized_config_is_refused_by_its_size(tiny_llada_dir, tmp_path):
    folder = _copy(tiny_llada_dir, tmp_path)
    with open(folder / "config.json", "r+b") as fh:
        fh.truncate(claims.JSON_LIMIT + 1)
    assert "config.json is 16.0 MB, more than the 16 MB" in _refusal(folder)


def test_a_real_folder_passes_every_check(tiny_llada_dir, tiny_dream_dir, bert_dir):
    for folder in (tiny_llada_dir, tiny_dream_dir, bert_dir):
        config = claims.read_json(folder / "config.json", "m")
        found = claims.check_folder("m", folder, config)
        assert found.parameters and found.layers == 2
