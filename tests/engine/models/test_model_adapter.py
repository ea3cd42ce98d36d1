"""The adapter base: identity, capabilities with defaults, vocabulary facts built once at load."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from lacuna.engine.models import vocab
from lacuna.engine.models.base import DEFAULT_THRESHOLD, ModelAdapter
from lacuna.engine.models.families import BY_NAME
from tests.support.fake import FakeModel
from tests.support.tiny_native import native_adapter


def test_a_model_without_logits_cannot_be_made(tiny_model):
    class Half(ModelAdapter):
        pass

    with pytest.raises(TypeError):
        Half("half", tiny_model.tokenizer, mask_id=0, vocab_size=4, context_length=8,
             device=torch.device("cpu"), dtype=torch.float32)


def test_capabilities_default_to_none_and_the_fake_declares_its_own(tiny_model):
    class Plain(ModelAdapter):
        def logits(self, ids, positions):
            return torch.zeros(positions.numel(), self.vocab_size)

    plain = Plain("plain", tiny_model.tokenizer, mask_id=tiny_model.mask_id, vocab_size=tiny_model.vocab_size,
                  context_length=64, device=torch.device("cpu"), dtype=torch.float32)
    assert (plain.batches, plain.cache_modes, plain.default_cache, plain.scores, plain.logit_shift) == (
        False, (), "none", False, 0)
    assert plain.default_threshold == DEFAULT_THRESHOLD
    with pytest.raises(NotImplementedError):
        plain.prefill(torch.zeros(1, 4, dtype=torch.long), torch.tensor([0]))
    fake = FakeModel(tiny_model.tokenizer)
    assert isinstance(fake, ModelAdapter) and fake.batches and fake.cache_modes == ()
    assert isinstance(tiny_model, ModelAdapter) and tiny_model.batches and tiny_model.default_cache == "none"


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_a_native_adapter_takes_its_capabilities_from_its_record(tiny_model, family):
    model = native_adapter(family, tiny_model.tokenizer, layers=1)
    record = BY_NAME[family]
    assert model.family == family and model.logit_shift == record.logit_shift
    assert (model.batches, model.cache_modes, model.default_cache, model.scores) == (
        record.batches, record.cache_modes, record.default_cache, record.scores)


def test_vocabulary_facts_are_held_by_the_adapter_not_written_into_the_tokenizer(tiny_roberta_dir):
    from lacuna.engine import InfillRequest, Span, infill, load_model

    model = load_model(str(tiny_roberta_dir), device="cpu", dtype="float32")
    before = set(vars(model.tokenizer))
    infill(model, InfillRequest(text="The quick brown fox", spans=[Span(4, 9)], steps=2))
    written = set(vars(model.tokenizer)) - before
    assert not written and not {"_lacuna_profiles", "_lacuna_encoders", "_lacuna_prepends", "_lacuna_moves_space"} & before
    facts = model.vocab
    assert isinstance(facts, vocab.VocabFacts)
    assert facts.profile is vocab.profile(model.tokenizer, model.vocab_size)  # built once, at load
    assert facts.profile.n_rows == model.vocab_size
    assert facts.moves_space == vocab.moves_space(model.tokenizer)
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.moves_space = not facts.moves_space


def test_token_text_is_the_tokenizers_and_wordpiece_pieces_join(tiny_bert):
    tok = tiny_bert.tokenizer
    piece = next(t for t, i in tok.get_vocab().items() if t.startswith("##") and len(t) > 2)
    word = next(t for t, i in tok.get_vocab().items() if t.isalpha() and len(t) > 2)
    assert tiny_bert.token_text(tok.convert_tokens_to_ids(piece)) == piece[2:]
    assert tiny_bert.token_text(tok.convert_tokens_to_ids(word)) == " " + word
