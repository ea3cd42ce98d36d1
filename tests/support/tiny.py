"""Tiny models built by the tests: a byte-level BPE ModernBERT and a
WordPiece BERT, random weights, a few hundred KB, saved like Hub checkpoints."""
from __future__ import annotations

from pathlib import Path

TEXT = (
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
    "and darkness was upon the face of the deep. And God said, Let there be light: and there was light. "
    "To be, or not to be, that is the question. All the world's a stage, and all the men and women merely players. "
    "The quick brown fox jumps over the lazy dog. Café naïve façade — 日本語のテキスト, emoji 🙂 and tabs\tand\r\nlines. "
)


def _bpe_tokenizer(vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", bos_token="[CLS]", eos_token="[SEP]",
    )


def build_tiny_modernbert(out: Path, seed: int = 0, context: int = 128) -> Path:
    import torch
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    out = Path(out)
    tok = _bpe_tokenizer()
    torch.manual_seed(seed)
    config = ModernBertConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=context, global_attn_every_n_layers=1,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
        cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
    )
    model = ModernBertForMaskedLM(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_bert(out: Path, seed: int = 0, context: int = 128) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    out = Path(out)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False
    )
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=context, pad_token_id=fast.pad_token_id,
    )
    BertForMaskedLM(config).save_pretrained(out)
    fast.save_pretrained(out)
    return out


def _sentencepiece_tokenizer(vocab_size: int = 300):
    """Llama-style: Metaspace (▁, prepended at the start of a text only), BPE
    with byte fallback (<0xE6> tokens for characters outside the alphabet)."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([
        decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0),
    ])
    specials = ["<unk>", "<s>", "</s>", "<mask>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, limit_alphabet=40,
                                  show_progress=False)
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    state = json.loads(tok.to_str())
    vocab = state["model"]["vocab"]
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    tok = Tokenizer.from_str(json.dumps(state))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", mask_token="<mask>",
        pad_token="<unk>",
    )


def _roberta_like_tokenizer():
    """Byte-level BPE with RoBERTa's specials plus extra added specials that
    are not named (<|endoftext|>, <|padding|>), a chat marker added as a
    non-special token, and a BERT-style unused slot."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True), AddedToken("<|padding|>", special=True)])
    tok.add_tokens([AddedToken("<|im_start|>", special=False), AddedToken("[unused3]", special=False)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>",
    )


def _save_modernbert(out: Path, tok, seed: int, context: int, extra_rows: int = 0) -> Path:
    import torch
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    out = Path(out)
    torch.manual_seed(seed)
    config = ModernBertConfig(
        vocab_size=len(tok) + extra_rows, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=context, global_attn_every_n_layers=1,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        cls_token_id=tok.bos_token_id, sep_token_id=tok.eos_token_id,
    )
    ModernBertForMaskedLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_sentencepiece(out: Path, seed: int = 0, context: int = 128) -> Path:
    """A tiny random ModernBERT with a Llama-style SentencePiece (Metaspace,
    byte fallback) tokenizer."""
    return _save_modernbert(out, _sentencepiece_tokenizer(), seed, context)


def build_tiny_roberta_like(out: Path, seed: int = 0, context: int = 128, extra_rows: int = 13) -> Path:
    """A tiny random ModernBERT with RoBERTa's specials, unnamed added specials
    and an output layer padded ``extra_rows`` past the tokenizer."""
    return _save_modernbert(out, _roberta_like_tokenizer(), seed, context, extra_rows)
