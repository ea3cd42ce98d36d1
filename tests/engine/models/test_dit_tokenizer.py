"""MDLM and SEDD folders with the tokenizers users really have beside them.

A folder saved by MDLM's or SEDD's own training code holds GPT-2's tokenizer
with ``[MASK]`` added at the mask id; a snapshot fetched with narrower patterns
may hold GPT-2's vocab.json and merges.txt without tokenizer.json. Both are the
right vocabulary and load; a tokenizer of another size is still refused.
"""
from __future__ import annotations

import json

import pytest
from tokenizers import AddedToken

from lacuna.engine import InfillRequest, ModelLoadError, Span, infill, load_model
from tests.support.dit_tiny import build_tiny_mdlm, build_tiny_sedd, gpt2_like_tokenizer

VOCAB = 301  # 300 tokens + the mask at id 300
TEXT = "And God said, Let there be light: and there was light."


def _fills(model) -> None:
    result = infill(model, InfillRequest(text=TEXT, spans=(Span(14, 26),), steps=3, seed=0))
    assert result.text[:14] == TEXT[:14] and result.text[result.spans[0].end:] == TEXT[26:]


def _with_mask_token(folder, name: str) -> None:
    tok = gpt2_like_tokenizer(VOCAB - 1)
    tok.add_special_tokens([AddedToken(name, special=True)])
    assert tok.token_to_id(name) == VOCAB - 1
    tok.save(str(folder / "tokenizer.json"))


@pytest.mark.parametrize("mask", ["[MASK]", "<|mask|>"])
def test_mdlm_with_the_mask_already_in_its_tokenizer_loads(tmp_path, mask):
    folder = build_tiny_mdlm(tmp_path / "mdlm", vocab_size=VOCAB)
    _with_mask_token(folder, mask)
    model = load_model(str(folder), device="cpu", dtype="float32")
    assert model.mask_id == VOCAB - 1 and len(model.tokenizer) == VOCAB
    _fills(model)


def test_sedd_with_the_mask_already_in_its_tokenizer_loads(tmp_path):
    folder = build_tiny_sedd(tmp_path / "sedd", tokens=VOCAB - 1)
    _with_mask_token(folder, "[MASK]")
    _fills(load_model(str(folder), device="cpu", dtype="float32"))


def test_vocab_and_merges_without_tokenizer_json_load(tmp_path):
    folder = build_tiny_mdlm(tmp_path / "mdlm", vocab_size=VOCAB)
    data = json.loads(gpt2_like_tokenizer(VOCAB - 1).to_str())
    vocab = dict(data["model"]["vocab"], **{t["content"]: t["id"] for t in data["added_tokens"]})
    (folder / "vocab.json").write_text(json.dumps(vocab))  # GPT-2's vocab.json holds <|endoftext|> too
    merges = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    model = load_model(str(folder), device="cpu", dtype="float32")
    assert len(model.tokenizer) == VOCAB - 1
    _fills(model)


@pytest.mark.parametrize("size", [VOCAB - 2, VOCAB + 1])
def test_a_tokenizer_of_another_size_is_refused(tmp_path, size):
    folder = build_tiny_mdlm(tmp_path / "mdlm", vocab_size=VOCAB)
    gpt2_like_tokenizer(size).save(str(folder / "tokenizer.json"))
    with pytest.raises(ModelLoadError, match="right tokenizer"):
        load_model(str(folder), device="cpu")


def test_an_added_token_at_the_mask_id_that_is_not_the_only_extra_is_refused(tmp_path):
    folder = build_tiny_mdlm(tmp_path / "mdlm", vocab_size=VOCAB)
    tok = gpt2_like_tokenizer(VOCAB - 1)
    tok.add_special_tokens([AddedToken("[MASK]", special=True), AddedToken("[PAD]", special=True)])
    tok.save(str(folder / "tokenizer.json"))
    with pytest.raises(ModelLoadError, match="right tokenizer"):
        load_model(str(folder), device="cpu")
