"""Tiny random native-family adapters (LLaDA, Dream) built in memory, float32,
on a test tokenizer: for the context-cache and batching tests."""
from __future__ import annotations


def native_adapter(family: str, tokenizer, seed: int = 0, context: int = 256, layers: int = 2):
    """A NativeAdapter over a random LLaDANetwork (logit shift 0) or
    DreamNetwork (logit shift 1), hidden 32, 4 query / 2 key-value heads."""
    import torch

    from lacuna.engine.models.native import NativeAdapter

    vocab = len(tokenizer)
    torch.manual_seed(seed)
    if family == "llada":
        from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork

        config = LLaDAConfig(d_model=32, n_layers=layers, n_heads=4, n_kv_heads=2, mlp_hidden_size=64,
                             vocab_size=vocab, embedding_size=vocab, max_sequence_length=context,
                             rope_theta=10000.0, mask_token_id=tokenizer.mask_token_id,
                             eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id)
        network, shift = LLaDANetwork(config), 0
    else:
        from lacuna.engine.models.dream import DreamConfig, DreamNetwork

        config = DreamConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab,
                             max_position_embeddings=context, rope_theta=10000.0,
                             mask_token_id=tokenizer.mask_token_id, pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
        network, shift = DreamNetwork(config), 1
    # Larger weights than the training init, so attention is far from uniform
    # and a stale cache shows.
    network.reset_parameters(std=0.2)
    return NativeAdapter(f"tiny-{family}", family, network.float(), tokenizer, tokenizer.mask_token_id,
                         context, logit_shift=shift)
