"""Tiny random Dream and LLaDA-MoE models saved in the official layouts, for tests.

Dream as Dream-org ships it: config.json with an ``auto_map``, safetensors
weights, a Qwen2 BPE as vocab.json + merges.txt (no tokenizer.json) with its
added tokens in tokenizer_config.json, and the repository's code files. The
code files here are traps: importing any of them raises, so a test that loads
the folder proves Lacuna never runs a repository's Python.
"""
from __future__ import annotations

import json
from pathlib import Path

from tests.support.tiny import TEXT
from tests.support.tiny_llada import save_sharded

# Dream's added tokens, in id order after the BPE vocabulary (a subset of the real 24).
DREAM_ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|beginoftext|>", "<|mask|>"]
# LLaDA-MoE's specials (a subset; the mask's real id is 156895).
MOE_SPECIALS = ["<|endoftext|>", "<|role_start|>", "<|role_end|>", "<|mdm_mask|>"]
TRAP = 'raise RuntimeError("Lacuna imported a repository code file: {name}")\n'
DREAM_CODE = ("configuration_dream.py", "modeling_dream.py", "tokenization_dream.py", "generation_utils.py")
MOE_CODE = ("configuration_lladamoe.py", "modeling_lladamoe.py")


def _bpe(vocab_size: int, specials: list[str] | None = None):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    from lacuna.engine.models.dream import _QWEN2_SPLIT

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials or [],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    return tok


def _traps(out: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (out / name).write_text(TRAP.format(name=name))


def build_tiny_dream(out: Path, seed: int = 0, shards: int = 1, dtype: str = "bfloat16",
                     tokenizer_json: bool = False, **shape) -> Path:
    """A random Dream (hidden 32, 2 layers, GQA 4/2 heads by default) in ``out``.

    tokenizer_json: also write tokenizer.json (as some Dream-architecture repositories do)."""
    import torch

    from lacuna.engine.models.dream import DreamConfig, DreamNetwork

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = _bpe(400)
    tok.model.save(str(out))  # vocab.json, merges.txt
    base = tok.get_vocab_size()
    ids = {t: base + i for i, t in enumerate(DREAM_ADDED)}
    vocab = -(-(base + len(DREAM_ADDED)) // 64) * 64  # padded like Dream's 152064 rows for 151667 ids
    config = DreamConfig.from_config({
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": vocab, "max_position_embeddings": 131072,
        "mask_token_id": ids["<|mask|>"], "pad_token_id": ids["<|endoftext|>"],
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|endoftext|>"], **shape,
    })
    torch.manual_seed(seed)
    net = DreamNetwork(config).to(getattr(torch, dtype))
    save_sharded(net.state_dict(), out, shards)
    official = config.to_config()
    official["auto_map"] = {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"}
    (out / "config.json").write_text(json.dumps(official, indent=2))
    decoder = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                        "special": True} for t, i in ids.items()}
    specials = {"bos_token": "<|beginoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                "mask_token": "<|mask|>", "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    (out / "tokenizer_config.json").write_text(json.dumps({
        **specials, "added_tokens_decoder": decoder, "tokenizer_class": "DreamTokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]}, "model_max_length": 131072,
        "errors": "replace", "clean_up_tokenization_spaces": False,
    }, indent=2))
    (out / "added_tokens.json").write_text(json.dumps(ids, indent=2))
    if tokenizer_json:
        from lacuna.engine.models.dream import qwen2_backend

        qwen2_backend(out, "tiny").save(str(out / "tokenizer.json"))
    _traps(out, DREAM_CODE)
    return out


def build_tiny_llada_moe(out: Path, seed: int = 0, shards: int = 1, dtype: str = "bfloat16",
                         mask_in_config: bool = True, **shape) -> Path:
    """A random LLaDA-MoE (hidden 32, 2 MoE layers of 4 experts, top-2, q/k norms by default) in ``out``.

    mask_in_config False leaves mask_token_id out of config.json, as the released
    models do (the loader then falls back to 156895, so shape the vocabulary for it)."""
    import torch

    from lacuna.engine.models.llada_moe import LLaDAMoEConfig, LLaDAMoENetwork

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = _bpe(400, MOE_SPECIALS)
    ids = {t: tok.token_to_id(t) for t in MOE_SPECIALS}
    vocab = -(-tok.get_vocab_size() // 64) * 64
    values = {
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
        "dense_intermediate_size": 64, "expert_intermediate_size": 16, "shared_expert_intermediate_size": None,
        "num_experts": 4, "num_experts_per_tok": 2, "moe_layer_freq": [1, 1], "vocab_size": vocab,
        "max_position_embeddings": 256, "rope_theta": 50000.0, "partial_rotary_factor": 1.0,
        "qk_layernorm": True, "mask_token_id": ids["<|mdm_mask|>"], "eos_token_id": ids["<|endoftext|>"],
        "pad_token_id": ids["<|endoftext|>"], **shape,
    }
    config = LLaDAMoEConfig.from_config(values)
    torch.manual_seed(seed)
    net = LLaDAMoENetwork(config).to(getattr(torch, dtype))
    save_sharded(net.state_dict(), out, shards)
    official = config.to_config()
    if not mask_in_config:
        official.pop("mask_token_id")
    official["auto_map"] = {"AutoConfig": "configuration_lladamoe.LLaDAConfig",
                            "AutoModel": "modeling_lladamoe.LLaDAMoEModelLM"}
    (out / "config.json").write_text(json.dumps(official, indent=2))
    tok.save(str(out / "tokenizer.json"))
    specials = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                "additional_special_tokens": ["<|role_start|>", "<|role_end|>", "<|mdm_mask|>"]}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {**specials, "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 256}, indent=2))
    _traps(out, MOE_CODE)
    return out
