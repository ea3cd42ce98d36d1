"""The starter's network: LLaDA's own architecture (:mod:`engine.models.llada`)
at a size that trains and runs on a CPU.

Training uses :class:`~engine.models.llada.LLaDANetwork` itself, so the
exported weights have the official tensor names and the starter runs the
same code as LLaDA-8B.
"""

from __future__ import annotations

from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork

from .tokenizer import EOS_ID, MASK_ID

# d_model / n_layers / n_heads / mlp_hidden_size (SwiGLU width).
SHAPES = {
    "tiny": dict(d_model=64, n_layers=2, n_heads=2, mlp_hidden_size=128),
    "p4": dict(d_model=128, n_layers=4, n_heads=2, mlp_hidden_size=384),
    "m4": dict(d_model=192, n_layers=4, n_heads=3, mlp_hidden_size=512),
    "s4": dict(d_model=256, n_layers=4, n_heads=4, mlp_hidden_size=768),
    "s6": dict(d_model=256, n_layers=6, n_heads=4, mlp_hidden_size=768),
    "s8": dict(d_model=256, n_layers=8, n_heads=4, mlp_hidden_size=768),
    "w6": dict(d_model=320, n_layers=6, n_heads=5, mlp_hidden_size=896),
    "m8": dict(d_model=384, n_layers=8, n_heads=6, mlp_hidden_size=1024),
}
ROPE_THETA = 10000.0  # a 512-token context needs no longer wavelengths


def make_config(shape: str | dict, vocab: int, context: int) -> LLaDAConfig:
    """An LLaDA config for one of :data:`SHAPES` (or a dict of the same keys)
    with the starter tokenizer's ids (eos = pad, mask as in tokenizer.py)."""
    dims = SHAPES[shape] if isinstance(shape, str) else dict(shape)
    return LLaDAConfig(
        **dims, n_kv_heads=dims["n_heads"], vocab_size=vocab, embedding_size=vocab,
        max_sequence_length=context, rope_theta=ROPE_THETA, rms_norm_eps=1e-5,
        mask_token_id=MASK_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID)


def make_network(config: LLaDAConfig, seed: int = 0) -> LLaDANetwork:
    """A freshly initialised network: normal(0, 1/sqrt(d_model)) matrices
    (fan-in scaling) rather than GPT-2's fixed 0.02, which at d_model 192
    starts the attention logits about 13 times smaller and kept a first run on
    the unigram plateau until its attention collapsed onto single keys."""
    import torch

    torch.manual_seed(seed)
    net = LLaDANetwork(config)
    net.reset_parameters(std=config.d_model ** -0.5)
    return net


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
