"""lacuna.engine.models.vocab's load-time work made fast without changing its results:
the VocabProfile against the per-token reference it replaced, and the two
encoders (sharing the tokenizer's model) against the JSON round trip, on the
real GPT-2, Dream (Qwen2) and LLaDA-sized vocabularies and the tiny test ones."""
from __future__ import annotations

import gzip
import json
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine.models import vocab
from tests.support import real_checkpoints as rc


def _reference_profile(tokenizer, n_rows):
    """The profile as engine.models.vocab computed it before (one token at a time)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    mode = vocab._mode(backend) if backend is not None else "text"
    tokens = [None] * n_rows
    for token, i in tokenizer.get_vocab().items():
        if 0 <= i < n_rows:
            tokens[i] = token
    blocked = vocab._special_like(tokenizer)
    alphabet = vocab._byte_level_alphabet()
    generable = torch.zeros(n_rows, dtype=torch.bool)
    lead = torch.zeros(n_rows, dtype=torch.bool)
    newline, by_id, partial = [], [None] * n_rows, {}
    for i, token in enumerate(tokens):
        if token is None or i in blocked or vocab._CONTROL.match(token):
            continue
        raw = vocab._token_bytes(token, mode, alphabet)
        if not raw:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if mode not in ("bytes", "fallback") or b"\n" in raw or b"\r" in raw:
                continue
            partial[i] = by_id[i] = raw
            generable[i] = True
            continue
        by_id[i] = raw
        generable[i] = True
        lead[i] = text[0].isspace()
        if any(c in vocab._LINE_BREAKS for c in text):
            newline.append(i)
    table = vocab.utf8.Table.build(partial) if partial else None
    for i in table.dead if table else ():
        generable[i] = False
        by_id[i] = None
    return mode, generable, lead, newline, tuple(by_id) if mode in ("bytes", "fallback") else None, table


def _gpt2(tmp_path):
    from lacuna.engine.models.dit_adapter import load_gpt2_tokenizer

    (tmp_path / "tokenizer.json").write_bytes(rc.gpt2_tokenizer_json())
    return load_gpt2_tokenizer("gpt2", tmp_path, "openai-community/gpt2")


def _dream(tmp_path):
    from lacuna.engine.models.dream import qwen2_backend
    from lacuna.engine.models.native import load_tokenizer

    folder = "dream-v0-instruct-7b"
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        (tmp_path / name).write_bytes(rc.real(f"{folder}/{name}"))
    config = rc.real_json(f"{folder}/config.json")
    return load_tokenizer(tmp_path, config, "dream", 4096, backend=qwen2_backend(tmp_path, "dream"))


def _llada(tmp_path):
    from lacuna.engine.models.native import load_tokenizer

    folder = "llada-8b-instruct"
    decoder = rc.real_json(f"{folder}/tokenizer_config.json")["added_tokens_decoder"]
    added = tuple((int(i), tuple((k, e[k]) for k in ("content", "single_word", "lstrip", "rstrip", "normalized",
                                                      "special"))) for i, e in decoder.items())
    (tmp_path / "tokenizer.json").write_bytes(rc.cached_tokenizer(min(i for i, _ in added), added))
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / name).write_bytes(rc.real(f"{folder}/{name}"))
    return load_tokenizer(tmp_path, rc.real_json(f"{folder}/config.json"), "llada", 4096)


BUILDERS = {"gpt2": _gpt2, "dream": _dream, "llada": _llada}


@pytest.fixture(scope="module")
def real_tokenizers(tmp_path_factory):
    return {name: build(tmp_path_factory.mktemp(name)) for name, build in BUILDERS.items()}


def _tokenizer(request, real_tokenizers, name):
    if name in real_tokenizers:
        return real_tokenizers[name]
    if name == "tiny_roberta":
        from lacuna.engine import load_model

        return load_model(str(request.getfixturevalue("tiny_roberta_dir")), device="cpu", dtype="float32").tokenizer
    return request.getfixturevalue(name).tokenizer


# The LLaDA stand-in is byte-level BPE like GPT-2 and Dream: its profile adds nothing, its added tokens do.
TINY = ["tiny_bert", "tiny_sp", "tiny_roberta"]


def _fresh(tokenizer):
    vocab.forget(tokenizer)
    return tokenizer


@pytest.mark.parametrize("name", ["gpt2", "dream", *TINY])
def test_the_profile_is_the_reference_profile(request, real_tokenizers, name):
    tokenizer = _tokenizer(request, real_tokenizers, name)
    n_rows = len(tokenizer) + 7  # padded output rows, as real checkpoints have
    got = vocab.profile(_fresh(tokenizer), n_rows)
    mode, generable, lead, newline, by_id, table = _reference_profile(tokenizer, n_rows)
    assert got.mode == mode
    assert torch.equal(got.generable, generable) and torch.equal(got.lead_space, lead)
    assert torch.equal(got.blocked_ids, torch.nonzero(~generable).squeeze(1))
    assert got.newline_ids.tolist() == newline
    assert got.token_bytes == by_id
    if table is None or table.ids.numel() == 0:
        assert got.utf8 is None
    else:
        assert torch.equal(got.utf8.ids, table.ids) and torch.equal(got.utf8.trans, table.trans)
        assert (got.utf8.dead, got.utf8.reach) == (table.dead, table.reach)


def _pair(tokenizer):
    """(encoders sharing the model, encoders by the JSON round trip), once per tokenizer."""
    pair = tokenizer.__dict__.get("_test_encoder_pair")
    if pair is None:
        backend = tokenizer.backend_tokenizer
        pair = tokenizer.__dict__["_test_encoder_pair"] = (vocab._encoders_sharing_model(backend),
                                                           vocab._encoders_from_json(backend))
        for t in (*(pair[0] or ()), *pair[1]):
            t.encode_special_tokens = True
    return pair


@pytest.mark.parametrize("name", ["gpt2", "dream", "llada", *TINY])
def test_the_encoders_equal_the_json_round_trip(request, real_tokenizers, name):
    fast, slow = _pair(_tokenizer(request, real_tokenizers, name))
    assert fast is not None, "every test tokenizer keeps its added ids when shared"
    for mine, theirs in zip(fast, slow):
        assert mine.to_str() == theirs.to_str()  # one serialiser, ordered by id: equal states, equal text


def test_a_150k_vocabulary_loads_in_well_under_a_second(real_tokenizers):
    """Measured on the 2-core test machine (CPU seconds): Dream's profile 0.3-0.4 s
    (was 0.9-1.3 s), its encoders 0.002 s (was 1.9-2.5 s). Asserted loosely: the
    point is that nothing copies the vocabulary through JSON any more."""
    tok = _fresh(real_tokenizers["dream"])
    start = time.process_time()
    vocab._encoders(tok)
    assert time.process_time() - start < 0.5


PIECES = list("ab cd\n日本語é<|>▁") + ["<|endoftext|>", "[MASK]", "<s>", "</s>", " the", "<|mdm_mask|>", "\t"]


@settings(max_examples=40, deadline=None)
@given(text=st.lists(st.sampled_from(PIECES), max_size=16).map("".join))
def test_property_fast_encoders_encode_and_decode_as_the_json_ones(real_tokenizers, text):
    for tok in real_tokenizers.values():
        fast, slow = _pair(tok)
        for mine, theirs in zip(fast, slow):
            a, b = mine.encode(text, add_special_tokens=False), theirs.encode(text, add_special_tokens=False)
            assert (a.ids, a.word_ids) == (b.ids, b.word_ids)
            assert mine.decode(a.ids, skip_special_tokens=False) == theirs.decode(b.ids, skip_special_tokens=False)


def test_gz_vocabularies_are_the_real_sizes():
    # The fixtures above are the real vocabularies, not shrunk ones.
    assert len(json.loads(gzip.decompress((rc.DATA / "dream-v0-instruct-7b" / "vocab.json.gz").read_bytes()))) > 150_000
