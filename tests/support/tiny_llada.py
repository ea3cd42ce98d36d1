"""A tiny random LLaDA saved in the official layout (config.json, safetensors
weights, tokenizer.json and its JSON configs; no code files), for tests."""
from __future__ import annotations

import json
from pathlib import Path

from tests.support.tiny import TEXT

SPECIALS = ["<|startoftext|>", "<|endoftext|>", "<|eot_id|>", "<|mdm_mask|>", "<unk>", "<|reserved_5|>"]


def _tokenizer(vocab_size: int, mask_index: int = 3):
    specials = [t for t in SPECIALS if t != "<|mdm_mask|>"]
    specials.insert(mask_index, "<|mdm_mask|>")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    return tok


def save_sharded(state: dict, out: Path, shards: int) -> None:
    """Write ``state`` as ``shards`` safetensors files plus model.safetensors.index.json."""
    from safetensors.torch import save_file

    names = list(state)
    if shards <= 1:
        save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
        return
    per = -(-len(names) // shards)
    weight_map = {}
    for i in range(shards):
        part = names[i * per : (i + 1) * per]
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: state[k].contiguous() for k in part}, str(out / file))
        weight_map.update({k: file for k in part})
    total = sum(v.numel() * v.element_size() for v in state.values())
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))


def build_tiny_llada(out: Path, seed: int = 0, context: int = 256, shards: int = 1, dtype: str = "bfloat16",
                     mask_index: int = 3, **shape) -> Path:
    """A random LLaDA (d_model 32, 2 blocks, GQA 4/2 heads by default) in ``out``.

    mask_index: the mask token's id (3 here; iLLaDA's is 5). ``shape`` overrides
    config keys (e.g. weight_tying=True for an iLLaDA-like head)."""
    import torch

    from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(400, mask_index)
    vocab = tok.get_vocab_size()
    ids = {t: tok.token_to_id(t) for t in SPECIALS}
    config = LLaDAConfig.from_config({
        "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "mlp_hidden_size": 64,
        "vocab_size": vocab, "embedding_size": -(-vocab // 64) * 64, "max_sequence_length": context,
        "mask_token_id": ids["<|mdm_mask|>"], "eos_token_id": ids["<|endoftext|>"],
        "pad_token_id": ids["<|endoftext|>"], **shape,
    })
    torch.manual_seed(seed)
    net = LLaDANetwork(config).to(getattr(torch, dtype))
    save_sharded(net.state_dict(), out, shards)
    (out / "config.json").write_text(json.dumps(config.to_config(), indent=2))
    tok.save(str(out / "tokenizer.json"))
    specials = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                "unk_token": "<unk>", "additional_special_tokens": ["<|eot_id|>", "<|mdm_mask|>"]}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {**specials, "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": context}, indent=2))
    return out
