"""lacuna.engine.models.tokenizer.FastTokenizer (native families tokenise without
importing transformers) against transformers' PreTrainedTokenizerFast built
from the same tokenizer.json and specials, as the loaders built it before."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lacuna.engine.models import vocab
from lacuna.engine.models.native import _read_tokenizer_json, load_tokenizer

NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _pair(folder):
    from transformers import PreTrainedTokenizerFast

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    ours = load_tokenizer(folder, config, "tiny", 256)
    theirs = PreTrainedTokenizerFast(
        tokenizer_object=_read_tokenizer_json(folder, "tiny"), model_max_length=256,
        **{k: getattr(ours, k) for k in NAMES if getattr(ours, k) is not None},
        **({"additional_special_tokens": ours.additional_special_tokens} if ours.additional_special_tokens else {}),
    )
    return ours, theirs


@pytest.fixture(scope="module")
def pair(tiny_llada_dir):
    return _pair(tiny_llada_dir)


def test_specials_size_and_vocabulary_profile_match(pair):
    ours, theirs = pair
    assert len(ours) == len(theirs)
    assert sorted(ours.all_special_ids) == sorted(theirs.all_special_ids)
    for name in NAMES:
        assert getattr(ours, name) == getattr(theirs, name)
        assert getattr(ours, name + "_id") == getattr(theirs, name + "_id")
    a, b = vocab.profile(ours, len(ours)), vocab.profile(theirs, len(theirs))
    assert a.mode == b.mode and a.blocked_ids.tolist() == b.blocked_ids.tolist()
    assert a.generable.tolist() == b.generable.tolist() and a.lead_space.tolist() == b.lead_space.tolist()


def test_an_unknown_attribute_is_an_attribute_error(pair):
    with pytest.raises(AttributeError):
        pair[0].no_such_thing  # noqa: B018


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(st.sampled_from([*"ab é日\n ,.", "<|mdm_mask|>", "the ", "  "]), max_size=20).map("".join),
       special=st.booleans())
def test_encode_and_decode_match_transformers(pair, text, special):
    ours, theirs = pair
    ids = ours.encode(text, add_special_tokens=special)
    assert ids == theirs.encode(text, add_special_tokens=special)
    assert ours.decode(ids) == theirs.decode(ids, clean_up_tokenization_spaces=False)
    assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True,
                                                                       clean_up_tokenization_spaces=False)
    assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)
