"""Byte-level BPE tokenizer for the starter model.

* ByteLevel pre-tokenizer with ``add_prefix_space=False``: a word and the
  space before it are one pre-token, so `` heaven`` is one token.
* ByteLevel decoder: decoding round-trips bytes exactly.
* No post-processor: encoding adds no special tokens; the model is trained on
  raw packed token windows, as the engine feeds it.
* Special tokens as in the LLaDA family's tokenizer (GSAI-ML/LLaDA-8B-Base
  tokenizer_config.json): ``<|startoftext|>`` (bos), ``<|endoftext|>`` (eos,
  also pad, and the document separator in training) and ``<|mdm_mask|>`` (the
  mask token), here at ids 0, 1, 2. A byte-level BPE needs no unknown token.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ["<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>"]
BOS, EOS, MASK = SPECIAL_TOKENS
BOS_ID, EOS_ID, MASK_ID = range(len(SPECIAL_TOKENS))
DEFAULT_VOCAB = 8192


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB,
                    min_frequency: int = 2) -> Tokenizer:
    """Train a byte-level BPE on ``texts`` (deterministic for the same input)."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_iter(texts), trainer=trainer)
    return tok


def _iter(texts: Iterable[str]) -> Iterator[str]:
    yield from texts


def wrap(tok: Tokenizer, model_max_length: int):
    """A transformers fast tokenizer around ``tok`` with the special tokens set."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS, eos_token=EOS, pad_token=EOS, mask_token=MASK,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def save(tok: Tokenizer, out_dir: str | Path, model_max_length: int) -> None:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json."""
    import json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast = wrap(tok, model_max_length)
    fast.save_pretrained(str(out_dir))
    stm = out_dir / "special_tokens_map.json"
    if not stm.exists():  # transformers 5 no longer writes it; some loaders still read it
        stm.write_text(json.dumps({
            "bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "mask_token": MASK}, indent=2) + "\n")


def load(path: str | Path) -> Tokenizer:
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    return Tokenizer.from_file(str(path))
